"""Deleting jobs: the one code path behind `DELETE /jobs/{job_id}` and the retention purge.

A job's rows go through `JobStore.delete` (items, events, history, idempotency records, exports, and whatever
per-job records a feature registers with its backend: `JOB_TABLES` in `store/sqlite.py`, `job_keys()` in
`store/redis.py`); its webhook subscription and deliveries through `services.webhooks.forget`. Its files are every
blob under `{job_id}/` (inputs, outputs, exports), on disk or in S3."""

from __future__ import annotations

import contextlib
import logging

import anyio

from image2model.api.context import Services
from image2model.api.hub import EventHub
from image2model.api.service import JobService
from image2model.api.store import JobState
from image2model.api.waiting import wait_until_ended
from image2model.core.errors import JobFinished

log = logging.getLogger("image2model.api")

CANCEL_WAIT_SECONDS = 10.0
"""How long DELETE waits for a running job's items to stop before removing it anyway (a worker that finishes
later finds its job gone and removes what it wrote)."""


def delete_jobs(services: Services, job_ids: list[str]) -> None:
    """Remove jobs with every record and every file they have."""
    for job_id in job_ids:
        services.blobs.delete_prefix(job_id)
    services.store.delete(job_ids)
    services.webhooks.forget(job_ids)
    # Again after the rows: a worker may have written an output between the two steps; from now on a worker
    # finds its job gone and cleans up after itself.
    for job_id in job_ids:
        services.blobs.delete_prefix(job_id)


async def delete_job(service: JobService, hub: EventHub, state: JobState) -> None:
    """Cancel the job's queued and running items, wait (bounded) until they stopped, then delete it."""
    job_id = state.job.job_id
    if not state.job.status.terminal:
        with contextlib.suppress(JobFinished):  # it ended meanwhile
            await anyio.to_thread.run_sync(service.cancel, state)
        await wait_until_ended(hub, service.store, job_id, CANCEL_WAIT_SECONDS)
    await anyio.to_thread.run_sync(delete_jobs, service.services, [job_id])
    log.info("event=job_deleted job_id=%s", job_id)
