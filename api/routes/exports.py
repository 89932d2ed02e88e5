"""Exports of a finished job's stored models: other formats, face budgets, real-world sizes and orientations."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from image2model.api.deps import AppState, access, app_state, base_url, require_key
from image2model.api.exports import MAX_BODY_BYTES, parse_export_request
from image2model.api.idempotency import Answer, IdempotencyKeyDep, fingerprint
from image2model.api.security import Caller
from image2model.api.service import Access
from image2model.api.store import ExportRecord, JobState
from image2model.core.errors import ExportFailed, FileTooLarge
from image2model.core.models import ExportRequest, ExportResponse, ExportStatus

router = APIRouter(prefix="/api/v1", tags=["exports"])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ExportRequest.model_json_schema()}},
    }
}
_ERRORS = {
    202: {
        "model": ExportResponse,
        "description": "Still being made after the wait: `status` says where it is.",
    },
    400: {"description": "VALIDATION_ERROR: unknown format or field, bad number (details.errors per field)"},
    401: {"description": "UNAUTHORIZED"},
    404: {"description": "JOB_NOT_FOUND / FILE_NOT_FOUND (a file_id not in the job)"},
    409: {
        "description": "JOB_NOT_FINISHED / NOT_EXPORTABLE (no completed model, or none kept) / "
        "IDEMPOTENCY_IN_PROGRESS: the first request with this Idempotency-Key is still running"
    },
    413: {"description": "FILE_TOO_LARGE: the body is over 64 KiB"},
    422: {
        "description": "VALIDATION_ERROR: not a JSON object or a bad Idempotency-Key / EXPORT_FAILED: the worker "
        "could not make it / IDEMPOTENCY_MISMATCH: the key was used with a different request"
    },
    503: {"description": "NOT_READY: the queue is down"},
}


async def _body(request: Request) -> bytes:
    """The request body, refused past MAX_BODY_BYTES without reading further."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise FileTooLarge(
                f"An export request is a small JSON object; this one is over {MAX_BODY_BYTES} bytes."
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _response(state: AppState, job: JobState, record: ExportRecord, request: Request) -> ExportResponse:
    names = {f["filename"] for f in record.files}
    listing = state.service.listing(job, base_url(request)) if names else None
    return ExportResponse(
        export_id=record.export_id,
        job_id=record.job_id,
        status=record.status,
        formats=record.formats,
        export=record.shaping,
        files=[e for e in listing.files if e.filename in names] if listing else [],
        error=record.error,
        created_at=record.created_at,
        finished_at=record.finished_at,
    )


@router.post(
    "/jobs/{job_id}/exports",
    status_code=201,
    response_model=ExportResponse,
    openapi_extra=_BODY,
    responses=_ERRORS,
)
async def create_export(
    job_id: str,
    request: Request,
    key: IdempotencyKeyDep = None,
    state: AppState = Depends(app_state),
    who: Caller = Depends(require_key),
) -> JSONResponse:
    """Make other formats, a face budget, a real-world height (`height_mm`), Z up and the origin at the bottom
    from the job's stored models, without generating again. A worker writes the files; the request waits for it
    (up to 60 s): `201` with the new listing entries, or `202` with `status` if it takes longer (follow it with
    `GET .../exports/{export_id}`). With an `Idempotency-Key`, a retry of the same request makes nothing new and
    answers with the first export as it stands now (`Idempotent-Replayed: true`)."""
    wanted = parse_export_request(await _body(request))
    job = state.service.job(job_id, Access(caller=who))
    fp = fingerprint(
        "POST /api/v1/jobs/{job_id}/exports", {"job_id": job_id, "body": wanted.model_dump(mode="json")}
    )

    async def action() -> Answer:
        record = await anyio.to_thread.run_sync(state.exports.start, job, wanted)
        record = await state.exports.wait(record, state.services.settings.export_wait_seconds)
        return await _answer(state, job, record, request)

    answer = await state.idempotency.run(who.owner or "", key, fp, action)
    if answer.replayed:
        record = await anyio.to_thread.run_sync(state.exports.load, job, str(answer.body["export_id"]))
        current = await _answer(state, job, record, request)
        return JSONResponse(current.body, status_code=current.status_code, headers=answer.headers())
    return answer.response()


async def _answer(state: AppState, job: JobState, record: ExportRecord, request: Request) -> Answer:
    """201 with the files once the export is written, 202 while a worker is still at it; `ExportFailed` when the
    worker could not make it."""
    if record.status == ExportStatus.FAILED:
        raise ExportFailed(record.error or "The export failed.", {"export_id": record.export_id})
    body = await anyio.to_thread.run_sync(_response, state, job, record, request)
    code = 201 if record.status == ExportStatus.COMPLETED else 202
    return Answer(code, body.model_dump(mode="json"), job.job.job_id)


@router.get(
    "/jobs/{job_id}/exports/{export_id}",
    response_model=ExportResponse,
    responses={401: {"description": "UNAUTHORIZED"}, 404: {"description": "JOB_NOT_FOUND / FILE_NOT_FOUND"}},
)
async def get_export(
    job_id: str,
    export_id: str,
    request: Request,
    state: AppState = Depends(app_state),
    how: Access = Depends(access),
) -> ExportResponse:
    """An export as it stands: `queued`, `processing`, `completed` (with its files) or `failed` (with `error`)."""
    job = state.service.job(job_id, how)
    record = await anyio.to_thread.run_sync(state.exports.load, job, export_id)
    return await anyio.to_thread.run_sync(_response, state, job, record, request)
