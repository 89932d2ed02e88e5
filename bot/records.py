"""What the bot remembers of each job on disk (who asked, where, with which options, and the photos), so its
buttons still work after a restart: one directory per job under `bot_data_dir/jobs/`."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .messages import JOB_ID_PATTERN


@dataclass
class JobRecord:
    job_id: str
    owner_id: int
    channel_id: int | None
    generator: str
    face_limit: int | None
    format: str
    image_names: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    multiview: bool = False
    """The photos were views of one object (one model), not one model each."""
    sources: list[str] = field(default_factory=list)
    """The photos' names as the user attached them."""
    pending: bool = False
    """A request waiting for the user's choice (one object or one model per photo); `job_id` is its own id."""


class JobRecords:
    """Job records with their photos; old ones are pruned after `ttl` seconds."""

    def __init__(self, root: Path, ttl: float) -> None:
        self.root = Path(root) / "jobs"
        self.ttl = ttl
        self.root.mkdir(parents=True, exist_ok=True)

    def _dir(self, job_id: str) -> Path:
        # Job ids reach here from custom ids, already matched against the pattern; check again anyway.
        if not re.fullmatch(JOB_ID_PATTERN, job_id):
            raise ValueError(f"bad job id {job_id!r}")
        return self.root / job_id

    def save(self, record: JobRecord, images: list[tuple[str, bytes]]) -> None:
        target = self._dir(record.job_id)
        staging = self.root / f".{record.job_id}.{os.getpid()}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        record.image_names = []
        record.sources = [Path(name).name for name, _ in images]
        for index, (name, data) in enumerate(images, start=1):
            stored = f"image{index}{Path(name).suffix.lower()[:6]}"
            (staging / stored).write_bytes(data)
            record.image_names.append(stored)
        (staging / "record.json").write_text(json.dumps(asdict(record)))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)

    def load(self, job_id: str) -> JobRecord | None:
        try:
            raw = json.loads((self._dir(job_id) / "record.json").read_text())
        except (OSError, ValueError):
            return None
        return JobRecord(**raw)

    def images(self, record: JobRecord) -> list[tuple[str, bytes]]:
        """The photos as attached: (the user's file name, bytes)."""
        folder = self._dir(record.job_id)
        names = record.sources if len(record.sources) == len(record.image_names) else record.image_names
        return [
            (name, (folder / stored).read_bytes())
            for name, stored in zip(names, record.image_names, strict=True)
        ]

    def owned_by(self, owner_id: int, limit: int) -> list[JobRecord]:
        """The user's job records (not pending requests), newest first, at most `limit`."""
        found = []
        for folder in self.root.iterdir():
            if folder.name.startswith("."):
                continue
            record = self.load(folder.name)
            if record is not None and record.owner_id == owner_id and not record.pending:
                found.append(record)
        found.sort(key=lambda r: r.created_at, reverse=True)
        return found[:limit]

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self._dir(job_id), ignore_errors=True)

    def prune(self, now: float | None = None) -> int:
        """Remove records older than the ttl; returns how many went."""
        now = time.time() if now is None else now
        removed = 0
        for folder in self.root.iterdir():
            record = folder / "record.json"
            try:
                old = now - record.stat().st_mtime > self.ttl
            except OSError:
                old = folder.name.startswith(".")
            if old:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed
