"""A job's webhook delivery log."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Depends

from image2model.api.deps import AppState, app_state, require_key
from image2model.api.security import Caller
from image2model.api.service import Access
from image2model.api.webhooks import delivery_log
from image2model.core.models import WebhookLog

router = APIRouter(prefix="/api/v1", tags=["jobs"])


@router.get(
    "/jobs/{job_id}/webhooks",
    response_model=WebhookLog,
    responses={401: {"description": "UNAUTHORIZED"}, 404: {"description": "JOB_NOT_FOUND"}},
)
async def job_webhooks(
    job_id: str, state: AppState = Depends(app_state), who: Caller = Depends(require_key)
) -> WebhookLog:
    """Every delivery of the job's webhook: attempts, the last HTTP status or error, when it was delivered or
    will be tried again. Owner only (the log names the webhook URL, so a signed link does not open it)."""
    job = state.service.job(job_id, Access(caller=who))
    return await anyio.to_thread.run_sync(delivery_log, state.services.webhooks, job.job.job_id)
