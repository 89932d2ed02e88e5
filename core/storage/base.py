"""What every blob store offers, and the rule for keys."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    """Uploaded inputs and generated outputs, keyed `{job_id}/in/...` and `{job_id}/out/...`.

    Keys are deterministic, so a re-run after a crash overwrites the same blob. Processes on other hosts reach
    the same blobs only through these methods: a path a store hands out is local to this process's host."""

    def put_file(self, key: str, source: Path, move: bool = False) -> int:
        """Store a local file under `key` (removing `source` when `move`); returns its size."""
        ...

    def adopt_dir(self, prefix: str, source: Path) -> None:
        """Store every file of the local directory `source` as `prefix/<name>`, then remove `source`."""
        ...

    def local_path(self, key: str, scratch: Path) -> Path:
        """A local file holding the blob: the stored file itself when the store is a directory, otherwise a
        download into `scratch` (which the caller removes)."""
        ...

    def serve(self, key: str, filename: str, media_type: str, ttl: int) -> Path | str:
        """Where a client gets the blob: a local path the API sends itself, or a URL (presigned, valid `ttl`
        seconds, served as an attachment called `filename`) the API redirects to."""
        ...

    def exists(self, key: str) -> bool:
        """True when a blob is stored under `key`."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every blob under `prefix/` (a job id)."""
        ...

    def check(self) -> None:
        """Raise if the store cannot be reached or written (readiness)."""
        ...


def check_key(key: str) -> str:
    """`key` itself; raises ValueError unless it is a relative path of plain names (keys are built by us, never
    from user input; checked all the same)."""
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"not a valid blob key: {key!r}")
    return key
