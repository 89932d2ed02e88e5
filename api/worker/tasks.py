"""Huey tasks: one per uploaded image, plus the periodic reaper and retention purge.

Run them with `image2model worker` (or `huey_consumer image2model.api.worker.tasks.huey -k process`)."""

from __future__ import annotations

import logging
import shutil
import time

from image2model.api.context import services
from image2model.api.worker.periodic import Every
from image2model.api.worker.queue import huey, item_task_id
from image2model.api.worker.runner import run_item, warm_up_all
from image2model.core.settings import get_settings

log = logging.getLogger("image2model.worker")
_settings = get_settings()

__all__ = ["enqueue_item", "huey", "purge", "reap", "revoke_item", "run_item_task"]


@huey.task(timeout=_settings.item_timeout_seconds)
def run_item_task(job_id: str, index: int) -> None:
    """Generate one item of a job."""
    run_item(services(), job_id, index)


def enqueue_item(job_id: str, index: int) -> None:
    """Put an item on the queue under its deterministic task id."""
    huey.enqueue(run_item_task.s(job_id, index, id=item_task_id(job_id, index)))


def revoke_item(job_id: str, index: int) -> None:
    """Drop a queued item's task before a worker picks it up."""
    huey.revoke_by_id(item_task_id(job_id, index))


@huey.periodic_task(Every(_settings.reaper_interval_seconds))
def reap() -> None:
    """Re-enqueue items whose worker died (expired lease) and queued items whose enqueue was lost."""
    s = services()
    queue_empty = huey.pending_count() == 0
    result = s.store.reap(
        s.settings.lease_seconds,
        s.settings.max_attempts,
        s.settings.requeue_after_seconds if queue_empty else 0,
    )
    for job_id, index in result.requeue:
        enqueue_item(job_id, index)
    if result.requeue or result.failed or result.cancelled:
        log.info(
            "event=reaped requeued=%d failed=%d cancelled=%d",
            len(result.requeue),
            result.failed,
            result.cancelled,
        )


@huey.periodic_task(Every(_settings.retention_interval_seconds))
def purge() -> None:
    """Delete jobs, events and files older than the retention period, and abandoned upload staging dirs."""
    s = services()
    cutoff = time.time() - s.settings.retention_seconds
    removed = s.store.purge_before(cutoff)
    for job_id in removed:
        s.blobs.delete_prefix(job_id)
    for scratch in (s.settings.staging_dir, s.settings.data_dir / "work"):
        if scratch.is_dir():
            for entry in scratch.iterdir():
                if entry.stat().st_mtime < time.time() - 3600:
                    shutil.rmtree(entry, ignore_errors=True)
    if removed:
        log.info("event=purged jobs=%d", len(removed))


@huey.on_startup()
def _warm_up() -> None:
    warm_up_all(services())
