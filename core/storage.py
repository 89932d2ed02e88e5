"""Blob storage for uploaded inputs and generated outputs, keyed `{job_id}/in/...` and `{job_id}/out/...`."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


class LocalBlobStore:
    """Files under one directory. Writes are atomic (temp file + rename), so a re-run overwrites cleanly."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """Local path of a key (keys are built by us, never from user input; checked all the same)."""
        if not key or key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
            raise ValueError(f"not a valid blob key: {key!r}")
        return self.root / key

    def put_file(self, key: str, source: Path, move: bool = False) -> int:
        """Store a local file under `key`; returns its size."""
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
        if move:
            os.replace(source, tmp)
        else:
            shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
        return dest.stat().st_size

    def adopt_dir(self, prefix: str, source: Path) -> None:
        """Move a whole local directory into the store as `prefix/...` (one rename on the same file system)."""
        dest = self.path(prefix)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, dest)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def delete_prefix(self, prefix: str) -> None:
        """Remove every blob under `prefix` (a job id)."""
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def check(self) -> None:
        """Raise if the store cannot be written (readiness)."""
        probe = self.root / f".ready-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink()
