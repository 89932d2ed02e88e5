"""`JobView`: what a client shows of a job, folded from the job's events. Every front-end renders one; none of
them re-derives per-file state from the stream.

    view = JobView.from_upload(upload)
    for event in client.events(upload.job_id, queue_positions=True):
        view = view.apply(event)

or simply `for view in client.watch(upload.job_id, view)`. Folding is pure (no I/O, no clock) and idempotent: an
event at or before `last_event_id` (a replay after a reconnect) changes nothing, a `queue_position` notice counts
only while the job waits, and nothing changes after the terminal event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from image2model.core.models import (
    Event,
    EventType,
    FileEntry,
    ItemStatus,
    JobStatus,
    UploadResponse,
)

__all__ = ["FileView", "JobView", "preview_urls", "url_filename"]

_TERMINAL_JOB = {
    EventType.TASK_COMPLETED: JobStatus.COMPLETED,
    EventType.TASK_FAILED: JobStatus.FAILED,
    EventType.TASK_CANCELLED: JobStatus.CANCELLED,
}


def url_filename(url: str) -> str:
    """The file name a download or preview URL ends in (percent-decoded, query string dropped)."""
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def preview_urls(entry: FileEntry) -> dict[str, str]:
    """A model's preview URLs by kind (png still, gif/webp turntable); servers that list only `preview_url`
    give a png."""
    if entry.previews:
        return dict(entry.previews)
    return {"png": entry.preview_url} if entry.preview_url else {}


@dataclass(frozen=True)
class FileView:
    """One item of the job (one photo, or the views of one multi-view object) as its events report it."""

    index: int
    file_id: str = ""
    filename: str = ""
    status: ItemStatus = ItemStatus.QUEUED
    progress: float = 0.0
    """The item's own progress, 0..100."""
    stage: str = ""
    """The generator's word for what it is doing ("cutting out", "shaping", "retrying: ..."), as reported."""
    error: str | None = None
    attempt: int = 0
    outputs: tuple[str, ...] = ()
    """Names of the output files, from the item's events: its model as soon as that is listed (the model
    first), all of them once it completed."""
    duration_ms: float | None = None
    entries: tuple[FileEntry, ...] = ()
    """The job listing's entries of this item (download URLs, previews, metadata), once attached."""
    listed: tuple[str, ...] = ()
    """The `outputs` the attached entries were listed for: when the two differ, the entries are out of date."""

    @property
    def finished(self) -> bool:
        return self.status.terminal

    def entry(self, fmt: str) -> FileEntry | None:
        """The listing entry of this item in format `fmt` (e.g. "glb"), if attached and made."""
        return next((e for e in self.entries if e.format == fmt), None)

    @property
    def previews(self) -> dict[str, str]:
        """Preview URLs by kind (png still, gif/webp turntable) from the first entry that has any."""
        return next((found for e in self.entries if (found := preview_urls(e))), {})

    @property
    def metadata(self) -> dict[str, Any]:
        """The model's figures (faces, watertight, ...) from its listing entry, once attached."""
        return dict(self.entries[0].metadata) if self.entries else {}


@dataclass(frozen=True)
class JobView:
    """A job as its events report it: status, overall progress, stage, queue position, per-file views."""

    job_id: str
    status: JobStatus = JobStatus.QUEUED
    progress: float = 0.0
    """Overall progress, 0..100; never decreases."""
    message: str = ""
    error: str | None = None
    """Why the job failed (`task_failed`), in words a user can act on."""
    queue_position: int | None = None
    """Place in the queue (1 = next) while the job waits and the server has said; None otherwise."""
    files: tuple[FileView, ...] = ()
    last_event_id: int | None = None
    """The `seq` of the last stored event folded in: where `watch()`/`events()` resume."""
    summary: Mapping[str, int] = field(default_factory=dict)
    active: int | None = None
    """Index of the file that last reported it is processing."""

    @classmethod
    def from_upload(cls, upload: UploadResponse) -> JobView:
        """The view right after the upload: every file queued (a multi-view upload is one file)."""
        files: list[FileView] = []
        for uploaded in upload.uploaded_files:
            if all(f.file_id != uploaded.file_id for f in files):
                files.append(FileView(len(files), uploaded.file_id, uploaded.filename))
        return cls(job_id=upload.job_id, message=upload.message, files=tuple(files))

    # -- reading --

    @property
    def finished(self) -> bool:
        return self.status.terminal

    @property
    def ok(self) -> bool:
        """True when the job completed (at least one file made a model)."""
        return self.status == JobStatus.COMPLETED

    def count(self, status: ItemStatus) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def done(self) -> int:
        """Files that ended, whichever way."""
        return sum(1 for f in self.files if f.finished)

    @property
    def failures(self) -> list[FileView]:
        return [f for f in self.files if f.status == ItemStatus.FAILED]

    @property
    def current(self) -> FileView | None:
        """The file being processed (the last to report so), if any."""
        if self.active is not None and self.files[self.active].status == ItemStatus.PROCESSING:
            return self.files[self.active]
        return next((f for f in reversed(self.files) if f.status == ItemStatus.PROCESSING), None)

    @property
    def stage(self) -> str:
        """What is happening now: the processing file's stage, else the job's own message or status."""
        current = self.current
        if current is not None and not self.finished:
            return current.stage or current.status.value
        return self.message or self.status.value

    def entries(self, fmt: str | None = None) -> list[FileEntry]:
        """Every attached listing entry (only format `fmt` when given), in file order."""
        return [e for f in self.files for e in f.entries if fmt is None or e.format == fmt]

    # -- folding --

    def apply(self, event: Event) -> JobView:
        """The view after `event` (this same object when the event changes nothing)."""
        if self.finished:
            return self
        if event.type is EventType.QUEUE_POSITION:
            position = event.data.get("queue_position")
            if self.status != JobStatus.QUEUED or not isinstance(position, int) or position < 1:
                return self
            return (
                self
                if position == self.queue_position
                else dataclasses.replace(self, queue_position=position)
            )
        if self.last_event_id is not None and event.seq <= self.last_event_id:
            return self  # a replay of what this view already holds
        view = dataclasses.replace(self, last_event_id=event.seq)
        data = event.data
        if event.type is EventType.TASK_QUEUED:
            return view._queued(data)
        if event.type is EventType.FILE_UPDATE:
            return view._file_update(data)
        if event.type is EventType.TASK_PROGRESS:
            status = _job_status(data.get("status"), view.status)
            return view._moved(status, data.get("progress"))._with_message(data)
        if event.type in _TERMINAL_JOB:
            return view._terminal(_TERMINAL_JOB[event.type], data)
        return view

    def fold(self, events: Iterable[Event]) -> JobView:
        """The view after every event in order."""
        view = self
        for event in events:
            view = view.apply(event)
        return view

    def with_entries(self, entries: Iterable[FileEntry]) -> JobView:
        """The view with the listing's entries attached to their files (matched by `file_id`), each file's entries
        marked as listed for its `outputs` so far."""
        by_file: dict[str, list[FileEntry]] = {}
        for entry in entries:
            by_file.setdefault(entry.file_id, []).append(entry)
        files = tuple(
            dataclasses.replace(f, entries=tuple(by_file.get(f.file_id, f.entries)), listed=f.outputs)
            for f in self.files
        )
        return dataclasses.replace(self, files=files)

    def _with_message(self, data: Mapping[str, Any]) -> JobView:
        message = data.get("message")
        return dataclasses.replace(self, message=str(message)) if message else self

    def _moved(self, status: JobStatus, reported: Any) -> JobView:
        """The view in `status` with the overall progress raised to `reported` (it never goes down)."""
        progress = self.progress
        if isinstance(reported, (int, float)):
            progress = max(progress, min(float(reported), 100.0))
        position = self.queue_position if status == JobStatus.QUEUED else None
        return dataclasses.replace(self, status=status, progress=progress, queue_position=position)

    def _queued(self, data: Mapping[str, Any]) -> JobView:
        files = list(self.files)
        for listed in data.get("files") or []:
            index = listed.get("index")
            if not isinstance(index, int) or index < 0:
                continue
            files = _ensure(files, index)
            old = files[index]
            files[index] = dataclasses.replace(
                old,
                file_id=old.file_id or str(listed.get("file_id") or ""),
                filename=old.filename or str(listed.get("filename") or ""),
            )
        total = data.get("total_files")
        if isinstance(total, int) and total > len(files):
            files = _ensure(files, total - 1)
        view = dataclasses.replace(self, files=tuple(files))
        return view._moved(_job_status(data.get("status"), view.status), data.get("progress"))._with_message(
            data
        )

    def _file_update(self, data: Mapping[str, Any]) -> JobView:
        files = list(self.files)
        index = _file_index(files, data)
        files = _ensure(files, index)
        old = files[index]
        status = _item_status(data.get("status"), old.status)
        progress = data.get("progress")
        outputs = data.get("outputs")
        duration = data.get("duration_ms")
        attempt = data.get("attempt")
        files[index] = dataclasses.replace(
            old,
            file_id=old.file_id or str(data.get("file_id") or ""),
            filename=str(data.get("filename") or old.filename),
            status=status,
            progress=float(progress) if isinstance(progress, (int, float)) else old.progress,
            stage=str(data.get("message") or old.stage),
            error=str(data["error"])
            if data.get("error")
            else (old.error if status == ItemStatus.FAILED else None),
            attempt=attempt if isinstance(attempt, int) else old.attempt,
            outputs=tuple(str(o) for o in outputs) if isinstance(outputs, list) else old.outputs,
            duration_ms=float(duration) if isinstance(duration, (int, float)) else old.duration_ms,
        )
        job_status = self.status
        if status == ItemStatus.PROCESSING and job_status == JobStatus.QUEUED:
            job_status = JobStatus.PROCESSING
        active = index if status == ItemStatus.PROCESSING else self.active
        view = dataclasses.replace(self, files=tuple(files), active=active)
        return view._moved(job_status, data.get("overall_progress"))

    def _terminal(self, status: JobStatus, data: Mapping[str, Any]) -> JobView:
        # Every file has ended before the job does; a file that did not say so ends the way the job did.
        ended = ItemStatus.CANCELLED if status == JobStatus.CANCELLED else ItemStatus.FAILED
        error = str(data.get("error") or "") or None
        files = tuple(
            f
            if f.finished or status == JobStatus.COMPLETED
            else dataclasses.replace(f, status=ended, error=error if ended == ItemStatus.FAILED else None)
            for f in self.files
        )
        summary = data.get("summary")
        view = dataclasses.replace(
            self,
            files=files,
            error=error if status == JobStatus.FAILED else None,
            summary=dict(summary) if isinstance(summary, Mapping) else self.summary,
            active=None,
        )
        view = view._moved(status, data.get("progress"))._with_message(data)
        return dataclasses.replace(view, progress=100.0) if status == JobStatus.COMPLETED else view


def _ensure(files: list[FileView], index: int) -> list[FileView]:
    """`files` long enough to hold `index` (files the view had not heard of yet come in queued)."""
    while len(files) <= index:
        files.append(FileView(len(files)))
    return files


def _file_index(files: list[FileView], data: Mapping[str, Any]) -> int:
    index = data.get("index")
    if isinstance(index, int) and index >= 0:
        return index
    file_id = data.get("file_id")
    found = next((f.index for f in files if file_id and f.file_id == file_id), None)
    return found if found is not None else len(files)


def _item_status(value: Any, default: ItemStatus) -> ItemStatus:
    try:
        return ItemStatus(value)
    except ValueError:
        return default


def _job_status(value: Any, default: JobStatus) -> JobStatus:
    try:
        status = JobStatus(value)
    except ValueError:
        return default
    # Only a terminal event ends a job; a job that has started does not go back to waiting.
    if status.terminal or (status == JobStatus.QUEUED and default != JobStatus.QUEUED):
        return default
    return status
