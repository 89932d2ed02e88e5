"""The Huey instance (SQLite-backed in embedded mode) and the calls the API makes on it."""

from __future__ import annotations

from huey import Huey, SqliteHuey

from image2model.core.settings import Settings, get_settings


def build_huey(settings: Settings) -> Huey:
    """The queue the settings select. Results are off: the job store is the source of truth."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("image2model", filename=str(settings.huey_path), results=False, utc=True, timeout=10)


huey: Huey = build_huey(get_settings())


def item_task_id(job_id: str, index: int) -> str:
    """Deterministic Huey task id of an item, so a queued item can be revoked without stored handles."""
    return f"{job_id}.{index}"


def pending_count() -> int:
    """Tasks waiting in the queue."""
    return huey.pending_count()
