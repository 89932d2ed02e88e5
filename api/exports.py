"""Exports of stored models: reading and checking the request, planning which items it covers, queueing it for a
worker and waiting (bounded) for the worker's record; and the listing entries of the files it made."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio

from image2model.api.context import Services
from image2model.api.store import ExportRecord, JobState
from image2model.api.worker.exports import master_of
from image2model.core.errors import (
    FileNotFound,
    JobNotFinished,
    MalformedRequest,
    NotExportable,
    NotReady,
    ValidationFailed,
)
from image2model.core.models import (
    EXPORT_FACE_LIMIT,
    EXPORT_FORMATS,
    EXPORT_HEIGHT_MM,
    EXPORT_MAX_FILES,
    ExportRequest,
    ExportStatus,
    FileEntry,
    ItemStatus,
)

MAX_BODY_BYTES = 64 * 1024
_FIELDS = ("formats", "face_limit", "height_mm", "up", "origin", "files")
_UP = {"y": "y", "z": "z"}
_ORIGIN = {"center": "center", "centre": "center", "bottom": "bottom"}
POLL_FIRST, POLL_MAX, POLL_GROWTH = 0.005, 0.1, 1.3
"""How the API checks the export record while it waits: every 5 ms at first, growing to every 100 ms."""


def parse_export_request(raw: bytes) -> ExportRequest:
    """The body of `POST /jobs/{job_id}/exports`, checked: 422 when it is not a JSON object, 400 listing every
    bad field otherwise (unknown fields included, so a typo is not silently ignored)."""
    try:
        body = json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        body = None
    if not isinstance(body, dict):
        raise MalformedRequest(
            'The body must be a JSON object, e.g. {"formats": ["stl"], "height_mm": 80, "up": "z"}.'
        )
    errors: list[dict[str, str]] = []

    def bad(name: str, message: str) -> None:
        errors.append({"field": name, "message": f"{name} {message}"})

    for name in body:
        if name not in _FIELDS:
            bad(name, f"is not a field of an export (allowed: {', '.join(_FIELDS)})")
    formats = _formats(body.get("formats"), bad)
    face_limit = _whole(body.get("face_limit"), "face_limit", EXPORT_FACE_LIMIT, bad)
    height_mm = _height(body.get("height_mm"), bad)
    up = _choice(body.get("up", "y"), "up", _UP, bad)
    origin = _choice(body.get("origin", "center"), "origin", _ORIGIN, bad)
    files = _file_ids(body.get("files"), bad)
    if errors:
        raise ValidationFailed("; ".join(e["message"] for e in errors), {"errors": errors})
    return ExportRequest.model_validate(
        {
            "formats": formats,
            "face_limit": face_limit,
            "height_mm": height_mm,
            "up": up,
            "origin": origin,
            "files": files,
        }
    )


def _formats(value: Any, bad: Callable[[str, str], None]) -> list[str]:
    if value is None:
        bad("formats", f"is required: a list of formats from {', '.join(EXPORT_FORMATS)}")
        return []
    raw = value.split(",") if isinstance(value, str) else value
    if not isinstance(raw, list) or not all(isinstance(f, str) for f in raw):
        bad("formats", 'must be a list of format names, e.g. ["stl", "3mf"]')
        return []
    formats = list(dict.fromkeys(f.strip().lower().lstrip(".") for f in raw if f.strip()))
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown:
        bad("formats", f"has unknown format(s) {', '.join(unknown)}; choose from {', '.join(EXPORT_FORMATS)}")
    elif not formats:
        bad("formats", f"must name at least one format from {', '.join(EXPORT_FORMATS)}")
    return formats


def _whole(value: Any, name: str, bounds: tuple[int, int], bad: Callable[[str, str], None]) -> int | None:
    if value is None:
        return None
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        bad(name, f"must be a whole number, got {json.dumps(value)[:40]}")
        return None
    if not bounds[0] <= value <= bounds[1]:
        bad(name, f"must be between {bounds[0]} and {bounds[1]}, got {str(int(value))[:40]}")
        return None
    return int(value)


def _height(value: Any, bad: Callable[[str, str], None]) -> float | None:
    if value is None:
        return None
    number = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if isinstance(value, bool) or not number:
        bad("height_mm", f"must be a number of millimetres, got {json.dumps(value)[:40]}")
        return None
    low, high = EXPORT_HEIGHT_MM
    if not low < value <= high:
        bad("height_mm", f"must be more than {low:g} and at most {high:g} (100 m), got {str(value)[:40]}")
        return None
    return float(value)


def _choice(value: Any, name: str, allowed: dict[str, str], bad: Callable[[str, str], None]) -> str | None:
    choice = allowed.get(value.strip().lower()) if isinstance(value, str) else None
    if choice is None:
        bad(name, f"must be one of {', '.join(sorted(set(allowed.values())))}, got {json.dumps(value)[:40]}")
    return choice


def _file_ids(value: Any, bad: Callable[[str, str], None]) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(f, str) and f for f in value):
        bad("files", "must be a non-empty list of file_id strings from the job's listing")
        return None
    if len(value) > EXPORT_MAX_FILES:
        bad("files", f"names {len(value)} files; at most {EXPORT_MAX_FILES}")
        return None
    return list(dict.fromkeys(value))


class ExportService:
    """Creates export records for the routes, queues them and waits for the worker's outcome."""

    def __init__(self, services: Services, enqueue: Callable[[str], None]) -> None:
        self.services = services
        self.store = services.store
        self._enqueue = enqueue

    def start(self, state: JobState, request: ExportRequest) -> ExportRecord:
        """Check that the job can be exported as asked, then store and queue the export. Every refusal comes
        before anything is written."""
        job = state.job
        if not job.status.terminal:
            raise JobNotFinished(
                f"Job {job.job_id} is still {job.status.value}; export it once it has finished.",
                {"status": job.status.value},
            )
        by_file = {item.file_id: item for item in state.items}
        if request.files is None:
            items = [i for i in state.items if i.status == ItemStatus.COMPLETED]
            if not items:
                raise NotExportable(
                    f"Job {job.job_id} has no completed model to export (it {job.status.value}).",
                    {"status": job.status.value},
                )
        else:
            unknown = [f for f in request.files if f not in by_file]
            if unknown:
                raise FileNotFound(
                    f"Job {job.job_id} has no file with id {', '.join(unknown)}; use the file_id of its listing.",
                    {"errors": [{"field": "files", "message": f"unknown file_id {f}"} for f in unknown]},
                )
            items = [by_file[f] for f in request.files]
            unfinished = [i for i in items if i.status != ItemStatus.COMPLETED]
            if unfinished:
                raise NotExportable(
                    "Only completed files can be exported; "
                    + ", ".join(f"{i.filename} is {i.status.value}" for i in unfinished)
                    + ".",
                    {
                        "errors": [
                            {"field": "files", "message": f"{i.file_id} {i.status.value}"} for i in unfinished
                        ]
                    },
                )
        without = [i for i in items if master_of(i) is None]
        if without:
            raise NotExportable(
                "No full-resolution model was kept for "
                + ", ".join(i.filename for i in without)
                + " (made before exports existed, or its generator wrote no GLB); generate it again to export it.",
                {"files": [i.file_id for i in without]},
            )
        t = time.time()
        record = ExportRecord(
            export_id=str(uuid.uuid4()),
            job_id=job.job_id,
            formats=list(request.formats),
            shaping=request.shaping(),
            file_ids=[i.file_id for i in items],
            created_at=t,
        )
        self.store.create_export(record)
        try:
            self._enqueue(record.export_id)
        except Exception as exc:
            self.store.fail_export(record.export_id, record.attempt, "The job queue was not available.")
            raise NotReady("The job queue is not available right now; try again in a moment.") from exc
        return record

    async def wait(self, record: ExportRecord, seconds: float) -> ExportRecord:
        """The export once a worker has finished it, or as it stands after `seconds`."""
        deadline = time.monotonic() + seconds
        delay = POLL_FIRST
        while not record.status.terminal:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await anyio.sleep(min(delay, left))
            delay = min(delay * POLL_GROWTH, POLL_MAX)
            fresh = await anyio.to_thread.run_sync(self.store.load_export, record.export_id)
            if fresh is not None:
                record = fresh
        return record

    def load(self, state: JobState, export_id: str) -> ExportRecord:
        """An export of this job; FILE_NOT_FOUND for anything else."""
        record = self.store.load_export(export_id)
        if record is None or record.job_id != state.job.job_id:
            raise FileNotFound(f"Job {state.job.job_id} has no export {export_id}.")
        return record


def export_entries(
    records: list[ExportRecord],
    state: JobState,
    url: Callable[[str], str],
    metadata: Callable[[dict[str, Any], ExportRecord], dict[str, Any]],
) -> list[FileEntry]:
    """Listing entries of the files completed exports made (one per file name: the same request makes the same
    file, so a repeated export replaces its entry). `metadata(stored file, record)` is the entry's metadata
    (the listing adds the recipe's commands)."""
    previews: dict[str, dict[str, str]] = {}
    for item in state.items:
        previews[item.file_id] = {
            o["format"]: url(o["filename"]) for o in item.outputs if o["role"] == "preview"
        }
    entries: dict[str, FileEntry] = {}
    for record in records:
        if record.status != ExportStatus.COMPLETED:
            continue
        for out in record.files:
            shown = previews.get(out["file_id"], {})
            entries[out["filename"]] = FileEntry(
                file_id=out["file_id"],
                source_filename=out["source_filename"],
                filename=out["filename"],
                format=out["format"],
                size=out["size"],
                mime_type=out["mime_type"],
                created_time=record.finished_at or record.created_at,
                download_url=url(out["filename"]),
                preview_url=shown.get("png") or next(iter(shown.values()), None),
                previews=shown,
                metadata=metadata(out, record),
            )
    return list(entries.values())


def export_output(records: list[ExportRecord], filename: str) -> dict[str, Any] | None:
    """The stored output of a completed export called `filename`."""
    for record in reversed(records):
        if record.status == ExportStatus.COMPLETED:
            for out in record.files:
                if out["filename"] == filename:
                    return out
    return None
