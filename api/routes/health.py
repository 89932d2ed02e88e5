"""Liveness and readiness."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Depends

from image2model.api.deps import AppState, app_state
from image2model.api.worker.queue import pending_count
from image2model.core.errors import NotReady

router = APIRouter(prefix="/api/v1", tags=["health"])


root_router = APIRouter(tags=["health"])
"""Routes outside /api/v1, for probes."""


@router.get("/health")
@router.head("/health")
@router.get("/health/", include_in_schema=False)
@root_router.get("/health", summary="Health (at the root, for probes)")
@root_router.head("/health", summary="Health (at the root, for probes)")
async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/health/ready", responses={503: {"description": "NOT_READY"}})
async def ready(state: AppState = Depends(app_state)) -> dict:
    """Checks for real that the queue, the job store and the blob storage answer."""
    services = state.services

    def check() -> dict[str, str]:
        results: dict[str, str] = {}
        for name, probe in (
            ("store", services.store.ping),
            ("queue", pending_count),
            ("blobs", services.blobs.check),
        ):
            try:
                probe()
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"error: {type(exc).__name__}: {exc}"
        return results

    components = await anyio.to_thread.run_sync(check)
    if any(v != "ok" for v in components.values()):
        failed = ", ".join(k for k, v in components.items() if v != "ok")
        raise NotReady(f"Not ready: {failed} unavailable.", {"components": components})
    return {"status": "ready", "components": components}
