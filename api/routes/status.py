"""Job snapshot, per-file progress and the live event stream."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Query, Request

from image2model.api.deps import AppState, access, app_state, base_url
from image2model.api.event_stream import EventStreamResponse
from image2model.api.service import Access
from image2model.core.models import JobProgress, JobSnapshot
from image2model.core.numbers import MAX_INT64

router = APIRouter(prefix="/api/v1", tags=["jobs"])

_NOT_FOUND = {404: {"description": "JOB_NOT_FOUND"}, 401: {"description": "UNAUTHORIZED"}}


@router.get("/status/tasks/{job_id}", response_model=JobSnapshot, responses=_NOT_FOUND)
@router.get("/status/tasks/{job_id}/status", response_model=JobSnapshot, include_in_schema=False)
async def job_status(
    job_id: str, request: Request, state: AppState = Depends(app_state), how: Access = Depends(access)
) -> JobSnapshot:
    """A JSON snapshot of the job and each of its files."""
    job = state.service.job(job_id, how)
    return state.service.snapshot(job, base_url(request))


@router.get("/status/jobs/{job_id}/progress", response_model=JobProgress, responses=_NOT_FOUND)
async def job_progress(
    job_id: str, state: AppState = Depends(app_state), how: Access = Depends(access)
) -> JobProgress:
    """Per-file progress of a job."""
    return state.service.progress(state.service.job(job_id, how))


@router.get(
    "/status/tasks/{job_id}/stream",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        **_NOT_FOUND,
    },
    response_class=EventStreamResponse,
    status_code=200,
)
async def job_stream(
    job_id: str,
    state: AppState = Depends(app_state),
    how: Access = Depends(access),
    last_event_id_header: str | None = Header(
        None,
        alias="Last-Event-ID",
        pattern=r"^[0-9]{1,18}$",
        description="Resume after this event id, as EventSource sends it on reconnect.",
    ),
    last_event_id: int | None = Query(
        None, ge=0, le=MAX_INT64, description="Resume after this event id (for clients without headers)."
    ),
) -> EventStreamResponse:
    """Server-Sent Events: the job's whole history after `Last-Event-ID`, then live events until the terminal one."""
    # Both are bounded above (SQLite ids are 64-bit) and ASCII digits only (FastAPI checks the pattern).
    start = int(last_event_id_header) if last_event_id_header is not None else last_event_id or 0
    loaded = state.service.job(job_id, how)
    subscription = state.hub.subscribe(job_id)  # before the replay, so nothing written meanwhile is missed
    return EventStreamResponse(
        state.hub,
        state.services.store,
        subscription,
        loaded.job,
        start,
        state.services.settings.sse_retry_ms,
    )
