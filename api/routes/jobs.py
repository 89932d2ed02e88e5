"""Job control and history: cancel, the caller's jobs, delete."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from image2model.api.deletion import delete_job
from image2model.api.deps import AppState, app_state, base_url, require_key
from image2model.api.security import Caller
from image2model.api.service import Access
from image2model.core.models import JobPage, JobSnapshot, JobStatus

router = APIRouter(prefix="/api/v1", tags=["jobs"])


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobSnapshot,
    responses={404: {"description": "JOB_NOT_FOUND"}, 409: {"description": "JOB_FINISHED"}},
)
async def cancel_job(
    job_id: str, request: Request, state: AppState = Depends(app_state), who: Caller = Depends(require_key)
) -> JobSnapshot:
    """Stop queued and running items; the job's stream ends with `task_cancelled`."""
    job = state.service.job(job_id, Access(caller=who))
    job = await anyio.to_thread.run_sync(state.service.cancel, job)
    return state.service.snapshot(job, base_url(request))


@router.get(
    "/jobs",
    response_model=JobPage,
    responses={400: {"description": "VALIDATION_ERROR: a cursor this server did not hand out"}},
)
async def list_jobs(
    request: Request,
    limit: int = Query(20, ge=1, le=100, description="Jobs per page."),
    cursor: str | None = Query(
        None, max_length=200, description="Where to go on: the `next_cursor` of the previous page, as it is."
    ),
    status: JobStatus | None = Query(None, description="Only jobs in this state."),
    state: AppState = Depends(app_state),
    who: Caller = Depends(require_key),
) -> Response:
    """The caller's jobs, newest first, a page at a time (another key's jobs never appear)."""
    page = await anyio.to_thread.run_sync(
        state.service.history, who, limit, status, cursor, base_url(request)
    )
    return Response(page.model_dump_json(), media_type="application/json")


@router.delete(
    "/jobs/{job_id}",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "Deleted: the job, its events and its files are gone"},
        404: {"description": "JOB_NOT_FOUND"},
    },
)
async def delete_job_route(
    job_id: str, state: AppState = Depends(app_state), who: Caller = Depends(require_key)
) -> Response:
    """Delete a job: its running items are cancelled first, then the job, its events and every file are removed
    (then it is 404 everywhere)."""
    job = await anyio.to_thread.run_sync(state.service.job, job_id, Access(caller=who))
    await delete_job(state.service, state.hub, job)
    return Response(status_code=204)
