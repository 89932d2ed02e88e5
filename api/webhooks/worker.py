"""The webhook worker process: `image2model worker --queue webhooks` (started by `serve`, and by
docker-compose as `worker-webhooks`). Any number may run against one deployment: deliveries are leased."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from image2model.api.context import build_services
from image2model.api.webhooks.deliverer import Deliverer
from image2model.api.webhooks.records import RetrySchedule
from image2model.api.webhooks.sender import Sender
from image2model.api.webhooks.signing import SECRET_FILE, SECRET_KEY, WebhookSigner, load_webhook_secret
from image2model.api.webhooks.targets import allow_list
from image2model.core.logs import configure_logging
from image2model.core.settings import Settings

log = logging.getLogger("image2model.webhooks")

REPORT_SECONDS = 60.0


def retry_schedule(settings: Settings) -> RetrySchedule:
    return RetrySchedule(
        first=settings.webhook_retry_first_seconds,
        longest=settings.webhook_retry_max_seconds,
        window=settings.webhook_retry_window_seconds,
    )


def run_webhook_worker(settings: Settings) -> int:
    """Deliver webhooks until SIGTERM or SIGINT; returns the exit code."""
    configure_logging(settings.log_level, settings.log_file)
    try:
        secret = load_webhook_secret(settings)
    except ValueError as exc:
        print(f"image2model webhooks: {exc}.", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it on Linux
        return asyncio.run(_deliver(settings, secret))
    return uvloop.run(_deliver(settings, secret))


async def _deliver(settings: Settings, secret: str) -> int:
    services = build_services(settings)
    where = (
        "IMAGE2MODEL_WEBHOOK_SECRET"
        if settings.webhook_secret
        else f"redis key {SECRET_KEY}"
        if settings.redis_url
        else str(settings.data_dir / SECRET_FILE)
    )
    sender = Sender(
        settings.webhook_timeout_seconds,
        allow_list(settings.webhook_allow_hosts),
        settings.webhook_max_in_flight,
    )
    deliverer = Deliverer(
        services.store,
        services.webhooks,
        WebhookSigner(secret),
        sender,
        retry_schedule(settings),
        poll_interval=settings.webhook_poll_interval,
        max_in_flight=settings.webhook_max_in_flight,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, deliverer.stop)
    log.info(
        "event=webhooks_started secret_from=%r allow_hosts=%d timeout_s=%g",
        where,
        len(settings.webhook_allow_hosts),
        settings.webhook_timeout_seconds,
    )
    report = asyncio.create_task(_report(deliverer))
    try:
        await deliverer.run()
    finally:
        report.cancel()
        await sender.close()
        services.store.close()
    log.info(
        "event=webhooks_stopped delivered=%d failed_attempts=%d",
        deliverer.delivered,
        deliverer.failed_attempts,
    )
    return 0


async def _report(deliverer: Deliverer) -> None:
    """A line a minute while deliveries happen: the deliverer logs no line per delivery."""
    seen = (0, 0)
    while True:
        await asyncio.sleep(REPORT_SECONDS)
        now = (deliverer.delivered, deliverer.failed_attempts)
        if now != seen:
            log.info(
                "event=webhooks_progress delivered=%d failed_attempts=%d in_flight=%d",
                now[0] - seen[0],
                now[1] - seen[1],
                deliverer.in_flight,
            )
            seen = now
