"""The Huey queues (SQLite-backed in embedded mode): `cpu` for local generation in worker processes and `io` for
remote generators polled from worker threads. Two queue names, one file."""

from __future__ import annotations

from huey import Huey, SqliteHuey

from image2model.core.settings import Settings, get_settings

QUEUES = ("cpu", "io")


def build_huey(settings: Settings, queue: str) -> Huey:
    """The queue the settings select. Results are off: the job store is the source of truth."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    name = "image2model" if queue == "cpu" else f"image2model-{queue}"
    return SqliteHuey(name, filename=str(settings.huey_path), results=False, utc=True, timeout=10)


huey: Huey = build_huey(get_settings(), "cpu")
huey_io: Huey = build_huey(get_settings(), "io")


def item_task_id(job_id: str, index: int) -> str:
    """Deterministic Huey task id of an item, so a queued item can be revoked without stored handles."""
    return f"{job_id}.{index}"


def pending_count() -> int:
    """Tasks waiting in both queues."""
    return huey.pending_count() + huey_io.pending_count()
