"""Waiting for a job to end inside a request (`Prefer: wait=N`, DELETE of a running job): the event hub wakes the
wait on the job's terminal event, so nothing polls the store."""

from __future__ import annotations

import time

import anyio

from image2model.api.hub import Chunk, EventHub
from image2model.api.store import JobState, JobStore
from image2model.core.models import Event


async def wait_until_ended(hub: EventHub, store: JobStore, job_id: str, timeout: float) -> JobState | None:
    """The job once it reached a terminal state, or as it stands after `timeout` seconds, whichever is first;
    None when it no longer exists."""
    deadline = time.monotonic() + timeout
    while True:
        # Subscribe before reading, so a terminal event written in between still wakes this wait.
        subscription = hub.subscribe(job_id)
        try:
            state = await anyio.to_thread.run_sync(store.load, job_id)
            if state is None or state.job.status.terminal:
                return state
            with anyio.move_on_after(max(0.0, deadline - time.monotonic())) as waited:
                while (items := await subscription.take()) is not None:
                    if any(isinstance(i, Chunk | Event) and i.terminal for i in items):
                        break
            if waited.cancelled_caught:
                return await anyio.to_thread.run_sync(store.load, job_id)
            # The terminal event arrived, or the hub dropped this subscription: read the job again.
        finally:
            hub.unsubscribe(subscription)
