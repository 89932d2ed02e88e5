"""Huey tasks: one per uploaded image (plus the CPU step and handed-back checks of remote items), the periodic
reaper and retention. The io worker also holds the tracker of its remote items and the follower of their status
streams.

Run them with `image2model worker` (`--queue io` for remote generators), or
`huey_consumer image2model.api.worker.tasks.huey -k process`."""

from __future__ import annotations

import logging
import shutil
import time
from typing import Any

from image2model.api.context import services
from image2model.api.deletion import delete_jobs
from image2model.api.worker import exports
from image2model.api.worker.follower import Follower
from image2model.api.worker.periodic import Every
from image2model.api.worker.queue import huey, huey_io, item_task_id
from image2model.api.worker.runner import finish_item, poll_item, run_item, warm_up_all
from image2model.api.worker.tracker import Key, Tracker
from image2model.core.generators import RemoteGenerator, generator_classes
from image2model.core.settings import get_settings

log = logging.getLogger("image2model.worker")
_settings = get_settings()

__all__ = ["enqueue_export", "enqueue_item", "huey", "huey_io", "purge", "reap", "revoke_item"]


class _HueyScheduler:
    """Follow-up steps of remote items, on the io queue."""

    def retry_start(self, job_id: str, index: int, delay: float) -> None:
        run_remote_item_task.schedule((job_id, index), delay=delay, id=item_task_id(job_id, index))

    def poll(self, job_id: str, index: int, attempt: int, delay: float) -> None:
        _tracker.add((job_id, index, attempt), delay)

    def finish(self, job_id: str, index: int, attempt: int) -> None:
        """The CPU step goes to the queue once the results pushed at the same time are all fetched."""
        _follower.after_fetches(lambda: finish_remote_item_task(job_id, index, attempt))

    def watch(
        self, job_id: str, index: int, attempt: int, gen: RemoteGenerator, remote: dict[str, Any]
    ) -> None:
        _follower.follow((job_id, index, attempt), gen, remote)


def _check(key: Key) -> None:
    poll_item(services(), *key, _scheduler, _follower.pushed(key))


_scheduler = _HueyScheduler()
_tracker = Tracker(_check, threads=_settings.io_threads, forget=lambda key: _follower.unfollow(key))
_follower = Follower(_tracker.nudge, hold_max=min(20.0, _settings.lease_seconds / 3))


@huey.task(timeout=_settings.item_timeout_seconds)
def run_item_task(job_id: str, index: int) -> None:
    """Generate one item of a job with a local generator."""
    run_item(services(), job_id, index, _scheduler)


@huey.task(timeout=_settings.item_timeout_seconds)
def finish_remote_item_task(job_id: str, index: int, attempt: int) -> None:
    """Make the formats and previews of a remote item from its fetched files (CPU work)."""
    finish_item(services(), job_id, index, attempt)


@huey_io.task()
def run_remote_item_task(job_id: str, index: int) -> None:
    """Submit one item to a remote generator (or resume polling it after a crash)."""
    run_item(services(), job_id, index, _scheduler)


@huey_io.task()
def poll_remote_items_task(keys: list[Key]) -> None:
    """Check each of a batch of remote items once (handed back by a stopping io worker); from then on this
    worker's tracker holds them."""
    s = services()
    for job_id, index, attempt in keys:
        try:
            poll_item(s, job_id, index, attempt, _scheduler)
        except Exception:  # the others still get their check; this one's lease lapses, the reaper retries it
            log.exception("event=remote_poll_crashed job_id=%s index=%s", job_id, index)


def _schedule_check(key: Key, delay: float) -> None:
    poll_remote_items_task.schedule(([key],), delay=delay)


@huey_io.on_shutdown()
def _hand_back_tracked() -> None:
    """A graceful stop (each io thread runs this; the first does the work): the tracked items' next checks go
    back to the queue as scheduled tasks, so the next io worker carries on without waiting for the reaper."""
    handed = _tracker.hand_back(_schedule_check)
    if handed:
        log.info("event=remote_handed_back items=%d", handed)


def queue_of(generator: str) -> str:
    """The queue a generator's items run on."""
    cls = generator_classes(_settings).get(generator)
    return cls.spec.queue if cls is not None else "cpu"


def enqueue_item(job_id: str, index: int, queue: str = "cpu") -> None:
    """Put an item on its queue under its deterministic task id."""
    task = run_remote_item_task if queue == "io" else run_item_task
    (huey_io if queue == "io" else huey).enqueue(task.s(job_id, index, id=item_task_id(job_id, index)))


@huey.task(timeout=_settings.item_timeout_seconds)
def run_export_task(export_id: str) -> None:
    """Make an export's files from its job's stored models."""
    exports.run_export(services(), export_id)


def enqueue_export(export_id: str) -> None:
    """Put an export on the CPU queue (enqueued twice, it still runs once: the claim is a compare-and-set)."""
    huey.enqueue(run_export_task.s(export_id, id=f"export.{export_id}"))


def revoke_item(job_id: str, index: int) -> None:
    """Drop a queued item's task before a worker picks it up."""
    for queue in (huey, huey_io):
        queue.revoke_by_id(item_task_id(job_id, index))


@huey.periodic_task(Every(_settings.reaper_interval_seconds))
def reap() -> None:
    """Re-enqueue items whose worker died (expired lease) and queued items whose enqueue was lost."""
    s = services()
    queue_empty = huey.pending_count() == 0 and huey_io.pending_count() == 0 and huey.scheduled_count() == 0
    queue_empty = queue_empty and huey_io.scheduled_count() == 0
    result = s.store.reap(
        s.settings.lease_seconds,
        s.settings.max_attempts,
        s.settings.requeue_after_seconds if queue_empty else 0,
    )
    for job_id, index, generator in result.requeue:
        enqueue_item(job_id, index, queue_of(generator))
    stale = s.settings.requeue_after_seconds if queue_empty else 0
    for export_id in s.store.reap_exports(s.settings.max_attempts, stale):
        enqueue_export(export_id)
    if result.requeue or result.failed or result.cancelled:
        log.info(
            "event=reaped requeued=%d failed=%d cancelled=%d",
            len(result.requeue),
            result.failed,
            result.cancelled,
        )


@huey.periodic_task(Every(_settings.retention_interval_seconds))
def purge() -> None:
    """Delete jobs (with their records, webhook deliveries and files) older than the retention period, expired
    idempotency records, and abandoned upload staging dirs."""
    s = services()
    cutoff = time.time() - s.settings.retention_seconds
    removed: list[str] = []
    while batch := s.store.jobs_created_before(cutoff):
        delete_jobs(s, batch)
        removed.extend(batch)
    s.store.purge_idempotency(time.time())
    for scratch in (s.settings.staging_dir, s.settings.data_dir / "work"):
        if scratch.is_dir():
            for entry in scratch.iterdir():
                if entry.stat().st_mtime < time.time() - 3600:
                    shutil.rmtree(entry, ignore_errors=True)
    if removed:
        log.info("event=purged jobs=%d", len(removed))


@huey.on_startup()
def _warm_up_cpu() -> None:
    warm_up_all(services(), "cpu")


@huey_io.on_startup()
def _warm_up_io() -> None:
    warm_up_all(services(), "io")


@huey_io.on_startup()
def _quiet_per_check_logs() -> None:
    """The io worker checks hundreds of remote requests a second; httpx's line per request and Huey's lines per
    task would cost more CPU than the checks. Both loggers keep their warnings; our own event lines stay."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("huey").setLevel(logging.WARNING)
    logging.getLogger("huey.consumer").setLevel(logging.INFO)
