"""Webhook records, run against both backends (SQLite in a temp state.db, Redis on a real redis-server):
idempotent creation, leases, results recorded only by the attempt they belong to, the sweep's bookkeeping,
and forgetting a job."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from image2model.api.store import JobStore
from image2model.api.store.sqlite import SqliteJobStore
from image2model.api.webhooks import WebhookStore, delivery_log, open_webhook_store
from image2model.api.webhooks.records import (
    DELIVERED,
    FAILED,
    PENDING,
    Delivery,
    Outcome,
    RetrySchedule,
    Scan,
    Subscription,
)

URL = "https://hooks.example.com/in"


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def hooks(request, tmp_path: Path) -> WebhookStore:
    jobs: JobStore
    if request.param == "redis":
        from image2model.api.store.redis import RedisJobStore

        jobs = RedisJobStore(request.getfixturevalue("redis_server").url)
        jobs.client.flushdb()
    else:
        jobs = SqliteJobStore(tmp_path / "state.db")
    yield open_webhook_store(jobs)
    jobs.close()


def subscribe(hooks: WebhookStore, job_id: str, events: list[str] | None = None) -> Subscription:
    sub = Subscription(job_id, URL, events or ["task_completed"], created_at=time.time())
    hooks.subscribe(sub)
    return sub


def delivery(job_id: str, seq: int, event: str = "task_completed", created: float | None = None) -> Delivery:
    return Delivery(
        webhook_id=f"{job_id}:{seq}",
        job_id=job_id,
        seq=seq,
        event=event,
        url=URL,
        body=json.dumps({"type": event}, separators=(",", ":")),
        created_at=created if created is not None else time.time(),
    )


def test_a_delivery_is_created_once_leased_to_its_creator(hooks):
    subscribe(hooks, "a")
    now = time.time()
    created = hooks.record([delivery("a", 3)], {}, now, now + 30)
    assert [d.webhook_id for d in created] == ["a:3"]
    assert hooks.record([delivery("a", 3)], {}, now, now + 30) == []  # another deliverer, or a replay
    assert hooks.claim(now + 1, now + 31, 10) == []  # the creator holds it
    (stored,) = hooks.deliveries("a")
    assert (stored.status, stored.attempts, stored.body) == (PENDING, 0, '{"type":"task_completed"}')
    assert hooks.pending_count() == 1


def test_no_delivery_is_made_for_a_job_without_subscription(hooks):
    now = time.time()
    assert hooks.record([delivery("gone", 1)], {"gone": Scan(1, True)}, now, now + 30) == []
    assert hooks.deliveries("gone") == []
    assert hooks.subscriptions(["gone"]) == {}


def test_an_expired_lease_is_claimed_again_by_anyone(hooks):
    subscribe(hooks, "a")
    now = time.time()
    hooks.record([delivery("a", 1), delivery("a", 2)], {}, now, now + 5)
    claimed = hooks.claim(now + 6, now + 36, 10)
    assert sorted(d.webhook_id for d in claimed) == ["a:1", "a:2"]
    assert hooks.claim(now + 7, now + 37, 10) == []  # leased again by that claim
    assert len(hooks.claim(now + 40, now + 70, 1)) == 1  # limit respected


def test_a_failed_attempt_is_due_again_at_its_retry_time_then_delivered(hooks):
    subscribe(hooks, "a")
    now = time.time()
    hooks.record([delivery("a", 1)], {}, now, now + 30)
    failed = Outcome("a:1", 0, PENDING, 503, "HTTP 503", now + 1, next_attempt_at=now + 6)
    assert hooks.finish([failed]) == 1
    assert hooks.claim(now + 5, now + 35, 10) == []
    (again,) = hooks.claim(now + 6, now + 36, 10)
    assert (again.attempts, again.last_status, again.last_error) == (1, 503, "HTTP 503")
    assert hooks.finish([Outcome("a:1", 1, DELIVERED, 204, None, now + 7)]) == 1
    (done,) = hooks.deliveries("a")
    assert (done.status, done.attempts, done.last_status, done.delivered_at) == (DELIVERED, 2, 204, now + 7)
    assert done.next_attempt_at is None and done.last_error is None
    assert hooks.claim(now + 1000, now + 1030, 10) == []
    assert hooks.pending_count() == 0


def test_a_late_result_of_an_older_attempt_is_dropped(hooks):
    subscribe(hooks, "a")
    now = time.time()
    hooks.record([delivery("a", 1)], {}, now, now + 30)
    assert hooks.finish([Outcome("a:1", 0, PENDING, None, "timeout", now + 1, now + 2)]) == 1
    assert hooks.finish([Outcome("a:1", 0, DELIVERED, 200, None, now + 3)]) == 0  # attempt 1 again: stale
    assert hooks.finish([Outcome("a:9", 0, DELIVERED, 200, None, now + 3)]) == 0  # unknown delivery
    (stored,) = hooks.deliveries("a")
    assert (stored.status, stored.attempts, stored.last_error) == (PENDING, 1, "timeout")


def test_giving_up_ends_the_delivery(hooks):
    subscribe(hooks, "a")
    now = time.time()
    hooks.record([delivery("a", 1)], {}, now, now + 30)
    hooks.finish([Outcome("a:1", 0, FAILED, 500, "HTTP 500", now + 1)])
    (stored,) = hooks.deliveries("a")
    assert (stored.status, stored.next_attempt_at, stored.delivered_at) == (FAILED, None, None)
    assert hooks.claim(now + 10**6, now + 10**6, 10) == []


def test_scans_advance_and_a_terminal_event_retires_the_subscription_from_the_sweep(hooks):
    for job in ("a", "b", "c"):
        subscribe(hooks, job)
    now = time.time()
    hooks.record([], {"a": Scan(4), "b": Scan(9, True)}, now, now + 30)
    hooks.record([], {"a": Scan(2)}, now, now + 30)  # never goes back
    active = {s.job_id: s.scanned_seq for s in hooks.active()}
    assert active == {"a": 4, "c": 0}
    assert [s.job_id for s in hooks.active(limit=1, after="a")] == ["c"]
    assert hooks.subscriptions(["b"])["b"].done is True


def test_forget_removes_everything_of_a_job_and_nothing_else(hooks):
    subscribe(hooks, "a")
    subscribe(hooks, "b")
    now = time.time()
    hooks.record([delivery("a", 1), delivery("a", 2), delivery("b", 1)], {}, now, now)
    hooks.forget(["a"])
    assert hooks.deliveries("a") == [] and hooks.subscriptions(["a"]) == {}
    assert [d.webhook_id for d in hooks.claim(now + 1, now + 30, 10)] == ["b:1"]
    assert hooks.record([delivery("a", 3)], {}, now, now) == []  # an event tailed just before the delete
    assert [s.job_id for s in hooks.active()] == ["b"]


def test_the_delivery_log_lists_the_webhook_and_its_deliveries_in_event_order(hooks):
    subscribe(hooks, "a", ["task_queued", "task_completed"])
    now = time.time()
    hooks.record([delivery("a", 12), delivery("a", 1, "task_queued")], {}, now, now + 30)
    log = delivery_log(hooks, "a")
    assert (log.url, log.events) == (URL, ["task_queued", "task_completed"])
    assert [(d.webhook_id, d.event, d.status) for d in log.deliveries] == [
        ("a:1", "task_queued", PENDING),
        ("a:12", "task_completed", PENDING),
    ]
    assert delivery_log(hooks, "none").deliveries == []


def test_retry_waits_grow_to_an_hour_and_stop_after_the_window():
    schedule = RetrySchedule(first=5, longest=3600, window=24 * 3600, jitter=0)
    waits = [schedule.next_attempt(0, n, 0) for n in range(1, 14)]
    assert waits[:4] == [5, 10, 20, 40]
    assert max(w for w in waits if w is not None) == 3600
    at, attempts = 0.0, 0
    while (nxt := schedule.next_attempt(0, attempts + 1, at)) is not None:
        at, attempts = nxt, attempts + 1
    assert 23 * 3600 < at <= 24 * 3600 and 25 < attempts < 40
    jittered = RetrySchedule(first=10, jitter=0.1)
    assert all(9 <= jittered.next_attempt(0, 1, 0) <= 11 for _ in range(50))
