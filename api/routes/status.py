"""Job snapshot, per-file progress and the live event stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from image2model.api.deps import AppState, access, app_state, base_url
from image2model.api.service import Access
from image2model.core.models import Event, EventType, JobProgress, JobSnapshot, JobStatus
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


def _frame(event: Event, retry: int | None) -> ServerSentEvent:
    return ServerSentEvent(
        data=json.dumps(event.data, separators=(",", ":")),
        event=event.type.value,
        id=str(event.seq),
        retry=retry,
    )


@router.get(
    "/status/tasks/{job_id}/stream",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        **_NOT_FOUND,
    },
    response_class=EventSourceResponse,
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
) -> EventSourceResponse:
    """Server-Sent Events: the job's whole history after `Last-Event-ID`, then live events until the terminal one."""
    # Both are bounded above (SQLite ids are 64-bit) and ASCII digits only (FastAPI checks the pattern).
    start = int(last_event_id_header) if last_event_id_header is not None else last_event_id or 0
    loaded = state.service.job(job_id, how)
    hub, store = state.hub, state.services.store
    subscription = hub.subscribe(job_id)
    retry_ms = state.services.settings.sse_retry_ms

    async def events() -> AsyncIterator[ServerSentEvent]:
        last = start
        retry: int | None = retry_ms
        waiting = loaded.job.status == JobStatus.QUEUED
        try:
            backlog = await anyio.to_thread.run_sync(store.events_after, job_id, last)
            if not backlog and loaded.job.status.terminal and last >= loaded.job.seq:
                return
            while True:
                for event in backlog:
                    if event.seq <= last:
                        continue
                    yield _frame(event, retry)
                    retry = None
                    last = event.seq
                    if event.terminal:
                        return
                    waiting = waiting and event.data.get("status") == "queued"
                live = await subscription.next()
                if live is None:
                    return
                if live.type is EventType.QUEUE_POSITION:
                    backlog = []
                    if waiting:
                        yield ServerSentEvent(
                            data=json.dumps({**live.data, "seq": last}), event=live.type.value
                        )
                elif live.seq <= last:
                    backlog = []
                elif live.seq == last + 1:
                    backlog = [live]
                else:
                    backlog = await anyio.to_thread.run_sync(store.events_after, job_id, last)
        finally:
            hub.unsubscribe(subscription)

    return EventSourceResponse(
        events(),
        ping=state.services.settings.sse_ping_seconds,
        send_timeout=30,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
