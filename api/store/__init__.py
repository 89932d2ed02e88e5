"""Job store and event log: one interface (`JobStore`), one implementation per backend."""

from __future__ import annotations

from image2model.api.store.base import ExportRecord, ItemRecord, JobRecord, JobState, JobStore
from image2model.core.settings import Settings

__all__ = ["ExportRecord", "ItemRecord", "JobRecord", "JobState", "JobStore", "open_store"]


def open_store(settings: Settings) -> JobStore:
    """The job store the settings select: Redis when `redis_url` is set, else SQLite under the data directory."""
    if settings.redis_url:
        from image2model.api.store.redis import RedisJobStore

        return RedisJobStore(settings.redis_url)
    from image2model.api.store.sqlite import SqliteJobStore

    return SqliteJobStore(settings.state_path)
