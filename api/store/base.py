"""The job store: jobs, their items and each job's event sequence.

Backends implement a handful of primitives (`_transaction`, `_create`, reads and scans); every state change is
written here once, as a function of a loaded `JobState`, so all backends behave the same. Each transaction
loads one job with its items, applies a transition, and atomically saves the changed rows and the events the
transition appended (each bumping the job's `seq`)."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from image2model.core.errors import JobFinished, JobNotFound
from image2model.core.models import Event, EventType, ExportStatus, ItemStatus, JobStatus

T = TypeVar("T")


def now() -> float:
    return time.time()


@dataclass
class ItemRecord:
    """One uploaded image and its generation attempt state."""

    index: int
    file_id: str
    filename: str
    basename: str
    inputs: list[str]
    """Blob keys of the input image(s): one photo, or 2..N views of one object."""
    content_type: str
    size: int
    status: ItemStatus = ItemStatus.QUEUED
    progress: float = 0.0
    message: str = "queued"
    error: str | None = None
    attempt: int = 0
    lease_until: float = 0.0
    enqueued_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    last_event_at: float = 0.0
    outputs: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    remote: dict[str, Any] = field(default_factory=dict)
    """State of a remote generation (e.g. FAL's request id), kept across attempts so a crash resumes it."""
    remote_group: str = ""
    """In-flight group while the item holds a remote slot (empty otherwise)."""

    @property
    def output_names(self) -> list[str]:
        """The files a client can use (the master kept for exports is not one of them)."""
        return [o["filename"] for o in self.outputs if o.get("role") != "master"]


@dataclass
class JobRecord:
    job_id: str
    owner: str
    generator: str
    face_limit: int | None
    formats: list[str]
    options: dict[str, Any]
    total: int
    created_at: float
    updated_at: float
    status: JobStatus = JobStatus.QUEUED
    progress: float = 0.0
    message: str = "queued"
    error: str | None = None
    seq: int = 0
    cancel_requested: bool = False


@dataclass
class JobState:
    """A job and its items as loaded in one transaction, plus the events appended during it."""

    job: JobRecord
    items: list[ItemRecord]
    events: list[Event] = field(default_factory=list)

    def counts(self) -> dict[ItemStatus, int]:
        out = {s: 0 for s in ItemStatus}
        for item in self.items:
            out[item.status] += 1
        return out

    def overall_progress(self) -> float:
        if not self.items:
            return 0.0
        total = sum(100.0 if i.status.terminal else i.progress for i in self.items)
        return round(total / len(self.items), 1)

    def emit(self, type: EventType, item: ItemRecord | None = None, **extra: Any) -> Event:
        """Append an event: bumps the job's seq and stamps the fields every event carries."""
        job = self.job
        job.seq += 1
        job.updated_at = now()
        data: dict[str, Any] = {
            "job_id": job.job_id,
            "task_id": job.job_id,
            "seq": job.seq,
            "timestamp": int(job.updated_at * 1000),
        }
        if item is None:
            data.update(status=job.status.value, progress=job.progress)
        else:
            data.update(
                status=item.status.value,
                progress=item.progress,
                overall_progress=job.progress,
                file_id=item.file_id,
                filename=item.filename,
                index=item.index,
                message=item.message,
                attempt=item.attempt,
            )
            if item.status == ItemStatus.FAILED:
                data["error"] = item.error
            # A remote model is listed while its other formats are made: outputs before completion too.
            if item.status == ItemStatus.COMPLETED or (item.status == ItemStatus.PROCESSING and item.outputs):
                data["outputs"] = item.output_names
            if item.status == ItemStatus.COMPLETED and item.started_at and item.finished_at:
                data["duration_ms"] = round((item.finished_at - item.started_at) * 1000, 1)
        data.update(extra)
        event = Event(seq=job.seq, type=type, data=data)
        self.events.append(event)
        return event

    def summary(self) -> dict[str, int]:
        counts = self.counts()
        return {
            "total_files": len(self.items),
            "successful_files": counts[ItemStatus.COMPLETED],
            "failed_files": counts[ItemStatus.FAILED],
            "cancelled_files": counts[ItemStatus.CANCELLED],
        }


@dataclass
class ExportRecord:
    """One `POST /jobs/{job_id}/exports`: what to make from which items, and the files once written. Kept apart
    from the job's rows and events: a finished job's stream has ended, so an export adds no events."""

    export_id: str
    job_id: str
    formats: list[str]
    shaping: dict[str, Any]
    """`{height_mm, up, origin, face_limit}`."""
    file_ids: list[str]
    """The items (by file_id) to export."""
    created_at: float
    status: ExportStatus = ExportStatus.QUEUED
    enqueued_at: float = 0.0
    attempt: int = 0
    lease_until: float = 0.0
    finished_at: float | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    """Stored outputs: `{file_id, filename, format, mime_type, size, key, metadata}`."""
    error: str | None = None


@dataclass
class IdempotencyRecord:
    """What the store keeps for one (owner, Idempotency-Key): the first request's fingerprint, how long its claim
    holds while it runs, and, once it finished, its answer and the job it concerns."""

    fingerprint: str
    locked_until: float
    status_code: int | None = None
    body: dict[str, Any] | None = None
    job_id: str | None = None

    @property
    def finished(self) -> bool:
        return self.status_code is not None


@dataclass(frozen=True)
class IdempotencyAnswer:
    """The answer of a claimed idempotent request, to be stored with what the request creates (in one
    transaction, so a crash cannot leave a job whose key would later create a second one)."""

    owner: str
    key: str
    fingerprint: str
    status_code: int
    body: dict[str, Any]
    keep_seconds: float


HistoryCursor = tuple[float, str]
"""Where a page of a caller's history ends: the last job's (created_at, job_id); the next page is older."""


@dataclass(frozen=True)
class HistoryEntry:
    """One job of a caller's history, as much of it as the history shows (read without decoding the rest)."""

    job_id: str
    status: JobStatus
    created_at: float
    total: int
    generator: str
    face_limit: int | None
    preview: str | None
    """File name of the PNG preview of the job's first completed item, if any."""


def first_preview(outputs: list[dict[str, Any]]) -> str | None:
    """The PNG preview among an item's outputs."""
    return next((o["filename"] for o in outputs if o["role"] == "preview" and o["format"] == "png"), None)


@dataclass(frozen=True)
class ReapResult:
    """What one reaper pass did."""

    requeue: list[tuple[str, int, str]]
    """(job_id, index, generator) of items to put back on their queue."""
    failed: int
    cancelled: int


class JobStore(abc.ABC):
    """Jobs, items and per-job event sequences. All methods are synchronous and short."""

    progress_min_interval: float = 0.25

    # ---- primitives each backend implements -------------------------------------------------------------

    @abc.abstractmethod
    def _create(self, state: JobState, answer: IdempotencyAnswer | None = None) -> None:
        """Insert a new job, its items and its events atomically (with `answer` recorded on its claim)."""

    @abc.abstractmethod
    def _transaction(self, job_id: str) -> AbstractContextManager[JobState | None]:
        """Load a job for update; on normal exit save changed job/item fields and `state.events` atomically."""

    @abc.abstractmethod
    def load(self, job_id: str) -> JobState | None:
        """Read a job and its items (no lock)."""

    @abc.abstractmethod
    def events_after(self, job_id: str, after_seq: int = 0, limit: int = 10_000) -> list[Event]:
        """Events of one job with seq > after_seq, in order."""

    @abc.abstractmethod
    def tail(self, cursor: Any, limit: int = 1000) -> tuple[Any, list[tuple[str, Event]]]:
        """Events of every job appended after `cursor` (from `head()`), in append order, with the new cursor."""

    blocking_tail = False
    """True when `wait_tail` blocks inside the backend until events arrive (no polling)."""

    def wait_tail(
        self, cursor: Any, timeout: float, limit: int = 1000
    ) -> tuple[Any, list[tuple[str, Event]]]:
        """Like `tail`, but waits up to `timeout` seconds for the first event. Backends that cannot block
        (`blocking_tail` False) answer at once; their readers poll."""
        return self.tail(cursor, limit)

    @abc.abstractmethod
    def head(self) -> Any:
        """Cursor pointing after the newest event."""

    @abc.abstractmethod
    def reap_candidates(self, now: float, stale_before: float) -> list[str]:
        """Ids of jobs with a processing item whose lease ended, or a queued item enqueued before stale_before."""

    @abc.abstractmethod
    def jobs_created_before(self, cutoff: float, limit: int = 500) -> list[str]:
        """Ids of jobs older than cutoff."""

    @abc.abstractmethod
    def delete(self, job_ids: list[str]) -> None:
        """Remove jobs with every record that belongs to them, one job at a time atomically: items, events,
        history entries, idempotency records, and each backend's other per-job records (`JOB_TABLES` in SQLite,
        `job_keys()` in Redis). Files are not the store's: `api.deletion.delete_jobs` removes those too."""

    @abc.abstractmethod
    def counts(self) -> dict[str, dict[str, int]]:
        """`{"jobs": {status: n}, "items": {status: n}}` over the whole store."""

    @abc.abstractmethod
    def queued_items(self, limit: int) -> list[str]:
        """Job ids of the first `limit` waiting (queued) items, oldest enqueue first, one entry per item."""

    def queue_positions(self, limit: int = 10_000) -> dict[str, int]:
        """For each job with a waiting item among the first `limit`: 1 + the items of any job waiting ahead of its
        first one (1 = next to run)."""
        positions: dict[str, int] = {}
        for ahead, job_id in enumerate(self.queued_items(limit)):
            positions.setdefault(job_id, ahead + 1)
        return positions

    @abc.abstractmethod
    def in_flight(self, group: str) -> int:
        """Processing items holding a remote slot of `group` (called inside a transaction)."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise if the store cannot be read and written."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""

    # ---- export primitives -----------------------------------------------------------------------------

    @abc.abstractmethod
    def _create_export(self, record: ExportRecord) -> None:
        """Insert a new export record."""

    @abc.abstractmethod
    def _update_export(self, export_id: str, change: Callable[[ExportRecord], T]) -> T | None:
        """Load an export record, apply `change` (which mutates it and may be called again on a conflict, so it
        must depend on the record alone), save it if it changed, and return what `change` returned; None when
        there is no such record."""

    @abc.abstractmethod
    def load_export(self, export_id: str) -> ExportRecord | None:
        """Read one export record."""

    @abc.abstractmethod
    def exports_of(self, job_id: str) -> list[ExportRecord]:
        """Every export of a job, oldest first."""

    @abc.abstractmethod
    def export_reap_candidates(self, now: float, stale_before: float) -> list[str]:
        """Ids of processing exports whose lease ended, and queued ones enqueued before `stale_before`."""

    # ---- job API v1.1: history and idempotency records ---------------------------------------------------

    @abc.abstractmethod
    def list_jobs(
        self, owner: str, limit: int, status: JobStatus | None = None, before: HistoryCursor | None = None
    ) -> list[HistoryEntry]:
        """Up to `limit` jobs of `owner`, newest first by (created_at, job_id), only those older than `before` when
        given, only those in `status` when given."""

    @abc.abstractmethod
    def idempotency_claim(
        self, owner: str, key: str, fingerprint: str, now: float, ttl: float, lock_seconds: float
    ) -> IdempotencyRecord | None:
        """Atomically: when `(owner, key)` has a live record (finished and kept for `ttl` after its claim, or still
        claimed until its `locked_until`), return it untouched; otherwise store a claim for this `fingerprint`
        until `now + lock_seconds` and return None (the caller goes ahead)."""

    @abc.abstractmethod
    def idempotency_finish(
        self, owner: str, key: str, fingerprint: str, status_code: int, body: dict[str, Any], job_id: str
    ) -> None:
        """Record the answer of a claimed request (the job it concerns ties the record to that job's deletion)."""

    @abc.abstractmethod
    def idempotency_release(self, owner: str, key: str, fingerprint: str) -> None:
        """Drop a claim whose request failed, so a retry with the same key runs again."""

    def purge_idempotency(self, now: float) -> int:
        """Remove records past their keep time; returns how many. Backends whose records expire by themselves
        (Redis) have nothing to do."""
        return 0

    # ---- transitions ---------------------------------------------------------------------------------

    def create_job(
        self, job: JobRecord, items: list[ItemRecord], answer: IdempotencyAnswer | None = None
    ) -> JobState:
        """Store a new job with its queued items and its `task_queued` event (and, for an idempotent upload, the
        answer on the request's claim, in the same transaction)."""
        t = now()
        for item in items:
            item.enqueued_at = t
        state = JobState(job=job, items=items)
        state.emit(
            EventType.TASK_QUEUED,
            total_files=job.total,
            message=f"{job.total} file(s) queued",
            files=[{"file_id": i.file_id, "filename": i.filename, "index": i.index} for i in items],
        )
        self._create(state, answer)
        return state

    def claim(self, job_id: str, index: int, lease_seconds: float) -> ItemRecord | None:
        """Compare-and-set an item from queued to processing; None when it is not ours to run."""
        with self._transaction(job_id) as state:
            if state is None or state.job.cancel_requested or state.job.status.terminal:
                return None
            item = _item(state, index)
            if item is None or item.status != ItemStatus.QUEUED:
                return None
            t = now()
            item.status = ItemStatus.PROCESSING
            item.attempt += 1
            item.lease_until = t + lease_seconds
            item.started_at = t
            item.last_event_at = t
            item.message = "processing" if item.attempt == 1 else f"processing (attempt {item.attempt})"
            if state.job.status == JobStatus.QUEUED:
                state.job.status = JobStatus.PROCESSING
                state.job.message = "processing"
            state.emit(EventType.FILE_UPDATE, item)
            return replace(item)

    def report_progress(
        self,
        job_id: str,
        index: int,
        attempt: int,
        fraction: float,
        message: str,
        lease_seconds: float,
        remote: dict[str, Any] | None = None,
    ) -> bool:
        """Record a running item's progress (and, for remote items, its new remote state) and renew its lease.
        False when the run should stop (job cancelled, or this attempt no longer owns the item)."""
        with self._transaction(job_id) as state:
            item = _owned(state, index, attempt)
            if item is None or state is None:
                return False
            if state.job.cancel_requested:
                return False
            t = now()
            item.lease_until = t + lease_seconds
            if remote is not None:
                item.remote = remote
            progress = max(item.progress, min(99.0, round(float(fraction) * 100, 1)))
            changed_stage = bool(message) and message != item.message
            due = t - item.last_event_at >= self.progress_min_interval
            if changed_stage or (progress > item.progress and due):
                item.progress = progress
                item.message = message or item.message
                item.last_event_at = t
                state.emit(EventType.FILE_UPDATE, item)
                self._update_overall(state)
            return True

    def add_outputs(
        self,
        job_id: str,
        index: int,
        attempt: int,
        outputs: list[dict[str, Any]],
        fraction: float,
        message: str,
        lease_seconds: float,
        remote: dict[str, Any] | None = None,
    ) -> bool:
        """Give a running item outputs before it completes, and renew its lease: a remote model is listed as soon
        as it is fetched, and its other formats and previews join one by one. Each call emits a `file_update`
        carrying every output so far. False when the run should stop (as `report_progress`)."""
        with self._transaction(job_id) as state:
            item = _owned(state, index, attempt)
            if item is None or state is None or state.job.cancel_requested:
                return False
            t = now()
            item.lease_until = t + lease_seconds
            if remote is not None:
                item.remote = remote
            known = {o["filename"] for o in item.outputs}
            item.outputs = item.outputs + [o for o in outputs if o["filename"] not in known]
            item.progress = max(item.progress, min(99.0, round(float(fraction) * 100, 1)))
            item.message = message or item.message
            item.last_event_at = t
            state.emit(EventType.FILE_UPDATE, item)
            self._update_overall(state)
            return True

    def renew_lease(self, job_id: str, index: int, attempt: int, lease_seconds: float) -> bool:
        """Extend a running item's lease; False when the run should stop."""
        with self._transaction(job_id) as state:
            item = _owned(state, index, attempt)
            if item is None or state is None or state.job.cancel_requested:
                return False
            item.lease_until = now() + lease_seconds
            return True

    def complete(
        self, job_id: str, index: int, attempt: int, outputs: list[dict[str, Any]], metadata: dict[str, Any]
    ) -> bool:
        """Mark an item completed with its outputs; False if this attempt no longer owns it."""
        with self._transaction(job_id) as state:
            item = _owned(state, index, attempt)
            if item is None or state is None:
                return False
            if state.job.cancel_requested:
                self._end_item(state, item, ItemStatus.CANCELLED, "cancelled")
                return False
            item.outputs = outputs
            item.metadata = metadata
            # A generator's caveat (a fallback it took, part of the photo it left out) is the item's message.
            self._end_item(state, item, ItemStatus.COMPLETED, str(metadata.get("warning") or "completed"))
            return True

    def fail(
        self, job_id: str, index: int, attempt: int, error: str, metadata: dict[str, Any] | None = None
    ) -> bool:
        """Mark an item failed with a user-facing error; False if this attempt no longer owns it."""
        with self._transaction(job_id) as state:
            item = _owned(state, index, attempt)
            if item is None or state is None:
                return False
            if metadata:
                item.metadata = metadata
            if state.job.cancel_requested:
                self._end_item(state, item, ItemStatus.CANCELLED, "cancelled")
            else:
                item.error = error
                self._end_item(state, item, ItemStatus.FAILED, "failed")
            return True

    def mark_cancelled(self, job_id: str, index: int, attempt: int) -> bool:
        """A running item stopped because its job was cancelled. False when this attempt no longer owned the
        item (it was re-queued after its lease expired): then nothing was cancelled."""
        with self._transaction(job_id) as state:
            item = _owned(state, index, attempt)
            if item is None or state is None:
                return False
            self._end_item(state, item, ItemStatus.CANCELLED, "cancelled")
            return True

    def take_remote_slot(self, job_id: str, index: int, attempt: int, group: str, cap: int) -> bool:
        """Atomically reserve one of `cap` remote slots of `group` for a running item (0: no cap)."""
        with self._transaction(job_id) as state:
            item = _owned(state, index, attempt)
            if item is None:
                return False
            if item.remote_group == group:
                return True
            if cap and self.in_flight(group) >= cap:
                return False
            item.remote_group = group
            return True

    def save_remote(
        self, job_id: str, index: int, attempt: int, remote: dict[str, Any], lease_seconds: float
    ) -> bool:
        """Persist a running item's remote state and renew its lease; False when the run should stop."""
        with self._transaction(job_id) as state:
            item = _owned(state, index, attempt)
            if item is None or state is None:
                return False
            item.remote = remote
            item.lease_until = now() + lease_seconds
            return not state.job.cancel_requested

    def release(self, job_id: str, index: int, attempt: int, message: str) -> bool:
        """Put a claimed item back in the queue without counting the attempt (e.g. no remote slot free)."""
        with self._transaction(job_id) as state:
            item = _owned(state, index, attempt)
            if item is None or state is None:
                return False
            item.status = ItemStatus.QUEUED
            item.attempt -= 1
            item.lease_until = 0.0
            item.remote_group = ""
            item.enqueued_at = now()
            if message != item.message:
                item.message = message
                state.emit(EventType.FILE_UPDATE, item)
            return True

    def cancel(self, job_id: str) -> list[int]:
        """Request cancellation. Queued items end at once; running ones stop at their next progress report.
        Returns the indexes of the items that were still queued (to revoke from the queue)."""
        with self._transaction(job_id) as state:
            if state is None:
                raise JobNotFound(f"Job {job_id} was not found.")
            if state.job.status.terminal:
                raise JobFinished(
                    f"Job {job_id} already ended ({state.job.status.value}); there is nothing to cancel.",
                    {"status": state.job.status.value},
                )
            state.job.cancel_requested = True
            state.job.message = "cancelling"
            queued = [i for i in state.items if i.status == ItemStatus.QUEUED]
            for item in queued:
                self._end_item(state, item, ItemStatus.CANCELLED, "cancelled", finalize=False)
            self._finalize(state)
            return [i.index for i in queued]

    def reap(self, lease_seconds: float, max_attempts: int, stale_after: float) -> ReapResult:
        """Recover items whose worker died (lease expired) and queued items that were never picked up.

        `stale_after` <= 0 disables the second check (pass it only when the queue is known to be empty)."""
        t = now()
        stale_before = t - stale_after if stale_after > 0 else float("-inf")
        requeue: list[tuple[str, int, str]] = []
        failed = cancelled = 0
        for job_id in self.reap_candidates(t, stale_before):
            with self._transaction(job_id) as state:
                if state is None:
                    continue
                for item in state.items:
                    if item.status == ItemStatus.PROCESSING and item.lease_until < t:
                        if state.job.cancel_requested:
                            self._end_item(state, item, ItemStatus.CANCELLED, "cancelled", finalize=False)
                            cancelled += 1
                        elif item.attempt >= max_attempts:
                            item.error = (
                                f"The worker processing {item.filename} stopped {item.attempt} times "
                                "(crashed or was killed), so it was given up. Try a smaller image or fewer faces."
                            )
                            self._end_item(state, item, ItemStatus.FAILED, "failed", finalize=False)
                            failed += 1
                        else:
                            item.status = ItemStatus.QUEUED
                            item.enqueued_at = t
                            item.message = (
                                f"retrying: the worker stopped (attempt {item.attempt} of {max_attempts})"
                            )
                            item.last_event_at = t
                            state.emit(EventType.FILE_UPDATE, item)
                            requeue.append((job_id, item.index, state.job.generator))
                    elif (
                        item.status == ItemStatus.QUEUED
                        and item.enqueued_at < stale_before
                        and not state.job.cancel_requested
                    ):
                        item.enqueued_at = t
                        requeue.append((job_id, item.index, state.job.generator))
                self._finalize(state)
        return ReapResult(requeue, failed, cancelled)

    def iter_events(self, job_id: str, after_seq: int = 0) -> Iterator[Event]:
        """All events of a job after `after_seq`, paging through the log."""
        while page := self.events_after(job_id, after_seq):
            yield from page
            after_seq = page[-1].seq

    # ---- export transitions ----------------------------------------------------------------------------

    def create_export(self, record: ExportRecord) -> ExportRecord:
        """Store a new, queued export."""
        record.enqueued_at = now()
        self._create_export(record)
        return record

    def claim_export(self, export_id: str, lease_seconds: float) -> ExportRecord | None:
        """Compare-and-set an export from queued to processing; None when it is not ours to run."""

        def claim(record: ExportRecord) -> ExportRecord | None:
            if record.status != ExportStatus.QUEUED:
                return None
            record.status = ExportStatus.PROCESSING
            record.attempt += 1
            record.lease_until = now() + lease_seconds
            return replace(record)

        return self._update_export(export_id, claim)

    def renew_export(self, export_id: str, attempt: int, lease_seconds: float) -> bool:
        """Extend a running export's lease; False when this attempt no longer owns it."""

        def renew(record: ExportRecord) -> bool:
            if record.status != ExportStatus.PROCESSING or record.attempt != attempt:
                return False
            record.lease_until = now() + lease_seconds
            return True

        return bool(self._update_export(export_id, renew))

    def complete_export(self, export_id: str, attempt: int, files: list[dict[str, Any]]) -> bool:
        """Record an export's stored files; False when this attempt no longer owns it."""
        return self._end_export(export_id, attempt, ExportStatus.COMPLETED, files=files)

    def fail_export(self, export_id: str, attempt: int, error: str) -> bool:
        """End an export with a user-facing error; False when this attempt no longer owns it (attempt 0: the
        API giving up on one no worker has claimed, as when the queue was down)."""
        return self._end_export(export_id, attempt, ExportStatus.FAILED, error=error)

    def _end_export(self, export_id: str, attempt: int, status: ExportStatus, **fields: Any) -> bool:
        def end(record: ExportRecord) -> bool:
            if record.status.terminal or record.attempt != attempt:
                return False
            record.status = status
            for name, value in fields.items():
                setattr(record, name, value)
            record.finished_at = now()
            record.lease_until = 0.0
            return True

        return bool(self._update_export(export_id, end))

    def reap_exports(self, max_attempts: int, stale_after: float) -> list[str]:
        """Exports to put back on the queue: those whose worker died (lease ended; failed after `max_attempts`)
        and queued ones never picked up (`stale_after` <= 0 disables that check). Returns their ids."""
        t = now()
        stale_before = t - stale_after if stale_after > 0 else float("-inf")

        def recover(record: ExportRecord) -> bool:
            if record.status == ExportStatus.PROCESSING and record.lease_until < t:
                if record.attempt >= max_attempts:
                    record.status = ExportStatus.FAILED
                    record.error = (
                        f"The worker making this export stopped {record.attempt} times; it was given up."
                    )
                    record.finished_at = t
                    return False
                record.status = ExportStatus.QUEUED
            elif not (record.status == ExportStatus.QUEUED and record.enqueued_at < stale_before):
                return False
            record.enqueued_at = t
            record.lease_until = 0.0
            return True

        return [e for e in self.export_reap_candidates(t, stale_before) if self._update_export(e, recover)]

    # ---- helpers -------------------------------------------------------------------------------------

    def _update_overall(self, state: JobState) -> None:
        overall = state.overall_progress()
        job = state.job
        if overall > job.progress:
            job.progress = overall
            done = sum(1 for i in state.items if i.status.terminal)
            state.emit(
                EventType.TASK_PROGRESS,
                current=done,
                total=len(state.items),
                message=f"{done} of {len(state.items)} file(s) done",
            )

    def _end_item(
        self, state: JobState, item: ItemRecord, status: ItemStatus, message: str, finalize: bool = True
    ) -> None:
        item.status = status
        item.message = message
        item.finished_at = now()
        item.lease_until = 0.0
        item.remote_group = ""
        if status == ItemStatus.COMPLETED:
            item.progress = 100.0
        state.emit(EventType.FILE_UPDATE, item)
        self._update_overall(state)
        if finalize:
            self._finalize(state)

    def _finalize(self, state: JobState) -> None:
        job = state.job
        if job.status.terminal or not all(i.status.terminal for i in state.items):
            return
        summary = state.summary()
        if job.cancel_requested:
            job.status = JobStatus.CANCELLED
            job.message = "cancelled"
            state.emit(EventType.TASK_CANCELLED, summary=summary, message="Job cancelled")
        elif summary["successful_files"]:
            job.status = JobStatus.COMPLETED
            job.progress = 100.0
            failed = summary["failed_files"]
            job.message = "completed" if not failed else f"completed; {failed} file(s) failed"
            state.emit(EventType.TASK_COMPLETED, summary=summary, message=job.message)
        else:
            job.status = JobStatus.FAILED
            errors = [f"{i.filename}: {i.error}" for i in state.items if i.error]
            job.error = (
                errors[0] if len(errors) == 1 else f"All {len(errors)} files failed. " + " | ".join(errors)
            )
            job.message = "failed"
            state.emit(EventType.TASK_FAILED, summary=summary, error=job.error, message="Job failed")


def _item(state: JobState, index: int) -> ItemRecord | None:
    return state.items[index] if 0 <= index < len(state.items) else None


def _owned(state: JobState | None, index: int, attempt: int) -> ItemRecord | None:
    if state is None:
        return None
    item = _item(state, index)
    if item is None or item.status != ItemStatus.PROCESSING or item.attempt != attempt:
        return None
    return item
