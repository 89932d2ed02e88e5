"""Job control: cancel."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Depends, Request

from image2model.api.deps import AppState, app_state, base_url, require_key
from image2model.api.security import Caller
from image2model.api.service import Access
from image2model.core.models import JobSnapshot

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
