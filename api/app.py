"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from image2model.api.context import Services, build_services
from image2model.api.cors import EnvelopeCORSMiddleware
from image2model.api.deps import AppState
from image2model.api.errors import install_error_handlers
from image2model.api.exports import ExportService
from image2model.api.hub import EventHub
from image2model.api.idempotency import Idempotency
from image2model.api.metrics import Metrics, MetricsMiddleware
from image2model.api.openapi import install_openapi
from image2model.api.ratelimit import build_limiter
from image2model.api.routes import download, exports, health, jobs, models, status, upload, webhooks
from image2model.api.security import KeyRing, LinkSigner, load_secret
from image2model.api.service import JobService
from image2model.api.slow_clients import BodyDeadline
from image2model.api.worker.queue import pending_count
from image2model.api.worker.tasks import enqueue_export, enqueue_item, revoke_item
from image2model.core.logs import HEADLINE, configure_logging
from image2model.core.models import Event
from image2model.core.settings import Settings, get_settings

log = logging.getLogger("image2model.api")


def log_job_end(job_id: str, event: Event) -> None:
    """One headline per finished job (what the terminal of `image2model serve` shows)."""
    if not event.terminal:
        return
    summary = event.data.get("summary") or {}
    error = event.data.get("error")
    log.info(
        "event=job_finished job_id=%s status=%s files=%s failed=%s%s",
        job_id,
        event.data.get("status"),
        summary.get("total_files"),
        summary.get("failed_files"),
        f" error={error!r}" if error else "",
        extra=HEADLINE,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for the given settings (default: from the environment)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_file)
    services: Services = build_services(settings)
    keys = KeyRing(settings.api_keys)
    hub = EventHub(
        services.store,
        settings.hub_poll_interval,
        position_interval=settings.queue_position_interval,
        ping_seconds=settings.sse_ping_seconds,
        max_pending=settings.sse_max_pending_events,
    )
    service = JobService(
        services, LinkSigner(load_secret(settings), settings.link_ttl_seconds), enqueue_item, revoke_item
    )
    metrics = Metrics(services.store, pending_count, hub)
    hub.observers += [metrics.observe_event, log_job_end]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if keys.enabled:
            log.info("event=auth mode=api_keys keys=%d", len(settings.api_keys))
        else:
            log.warning(
                "event=auth mode=OFF message='No IMAGE2MODEL_API_KEYS set: anyone who can reach this port can use "
                "the API (local single-user mode).'"
            )
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    app = FastAPI(
        title="image2model",
        version="0.1.0",
        description="Photos in, textured watertight 3D models out. See the contract in the README.",
        lifespan=lifespan,
    )
    app.state.image2model = AppState(
        services=services,
        keys=keys,
        service=service,
        hub=hub,
        limiter=build_limiter(settings),
        exports=ExportService(services, enqueue_export),
        idempotency=Idempotency(services.store, settings.idempotency_ttl_seconds),
    )
    install_error_handlers(app)
    for module in (upload, status, download, jobs, exports, models, health, webhooks):
        app.include_router(module.router)
    app.include_router(health.root_router)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        body = await anyio.to_thread.run_sync(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def root() -> dict[str, str]:
        return {"service": "image2model", "docs": "/docs", "api": "/api/v1"}

    if settings.cors_origins:
        app.add_middleware(
            EnvelopeCORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "DELETE"],
            allow_headers=[
                "Authorization",
                "X-API-Key",
                "Last-Event-ID",
                "Content-Type",
                "Idempotency-Key",
                "Prefer",
                "If-None-Match",
                "Range",
            ],
            expose_headers=[
                "Idempotent-Replayed",
                "Preference-Applied",
                "ETag",
                "Content-Range",
                "Retry-After",
            ],
        )
    app.add_middleware(
        BodyDeadline, timeout=settings.http_body_timeout, min_rate=float(settings.http_body_min_rate)
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    install_openapi(app, settings)
    return app
