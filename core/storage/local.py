"""Blobs as files under one directory: `data_dir/blobs` by default, or a directory every host mounts."""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

from image2model.core.storage.base import check_key


def _move(source: Path, dest: Path) -> None:
    """Rename, or copy and remove where `dest` is on another file system (a shared mount)."""
    try:
        os.replace(source, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(source, dest)


class LocalBlobStore:
    """Files under one directory. Writes are atomic (temp file + rename), so a re-run overwrites cleanly."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """Local path of a key."""
        return self.root / check_key(key)

    def put_file(self, key: str, source: Path, move: bool = False) -> int:
        """Store a local file under `key`; returns its size."""
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
        if move:
            _move(source, tmp)
        else:
            shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
        return dest.stat().st_size

    def adopt_dir(self, prefix: str, source: Path) -> None:
        """Move a whole local directory into the store as `prefix/...` (one rename on the same file system)."""
        dest = self.path(prefix)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _move(source, dest)

    def local_path(self, key: str, scratch: Path) -> Path:
        """The stored file itself (nothing is copied into `scratch`)."""
        return self.path(key)

    def serve(self, key: str, filename: str, media_type: str, ttl: int) -> Path | str:
        """The stored file's path: the API sends it (Range and ETag included)."""
        return self.path(key)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete_prefix(self, prefix: str) -> None:
        """Remove every blob under `prefix` (a job id)."""
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def check(self) -> None:
        """Raise if the store cannot be written (readiness)."""
        probe = self.root / f".ready-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink()
