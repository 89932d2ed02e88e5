"""Signed webhooks (Standard Webhooks): what an upload's `webhook_url` subscribes to, the durable delivery records
on either backend, and the deliverer process (`image2model worker --queue webhooks`)."""

from __future__ import annotations

from image2model.api.store import JobStore
from image2model.api.webhooks.records import Delivery, Subscription, WebhookStore
from image2model.core.models import WebhookDelivery, WebhookLog

__all__ = ["Delivery", "Subscription", "WebhookStore", "delivery_log", "open_webhook_store"]


def open_webhook_store(jobs: JobStore) -> WebhookStore:
    """The webhook records next to the given job store: its SQLite file, or its Redis."""
    from image2model.api.store.sqlite import SqliteJobStore

    if isinstance(jobs, SqliteJobStore):
        from image2model.api.webhooks.sqlite import SqliteWebhookStore

        return SqliteWebhookStore(jobs)
    from image2model.api.store.redis import RedisJobStore

    if isinstance(jobs, RedisJobStore):
        from image2model.api.webhooks.redis import RedisWebhookStore

        return RedisWebhookStore(jobs.client)
    raise TypeError(f"no webhook store for {type(jobs).__name__}")


def delivery_log(hooks: WebhookStore, job_id: str) -> WebhookLog:
    """A job's webhook and its deliveries, as `GET /jobs/{job_id}/webhooks` answers."""
    subscription = hooks.subscriptions([job_id]).get(job_id)
    return WebhookLog(
        job_id=job_id,
        url=subscription.url if subscription else None,
        events=subscription.events if subscription else [],
        deliveries=[
            WebhookDelivery(
                webhook_id=d.webhook_id,
                event=d.event,
                status=d.status,
                attempts=d.attempts,
                last_status=d.last_status,
                last_error=d.last_error,
                created_at=d.created_at,
                delivered_at=d.delivered_at,
                next_attempt_at=d.next_attempt_at,
            )
            for d in hooks.deliveries(job_id)
        ],
    )
