"""The deliverer in-process on a real SQLite job store and a receiver on 127.0.0.1: events become deliveries
at once, a page that could not be recorded is read again, jobs without a webhook cost nothing, the catch-up
sweep finds what happened while no deliverer ran, and stopping waits for the attempts in flight."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from image2model.api.store import ItemRecord, JobRecord
from image2model.api.store.sqlite import SqliteJobStore
from image2model.api.webhooks import open_webhook_store
from image2model.api.webhooks.deliverer import Deliverer
from image2model.api.webhooks.records import RetrySchedule, Subscription
from image2model.api.webhooks.sender import Sender
from image2model.api.webhooks.signing import WebhookSigner, new_secret
from image2model.api.webhooks.targets import allow_list
from tests.support.webhooks import Receiver

SECRET = new_secret()
ALL = ["task_queued", "file_update", "task_progress", "task_completed"]


@pytest.fixture
def jobs(tmp_path: Path):
    store = SqliteJobStore(tmp_path / "state.db")
    yield store
    store.close()


def run_job(jobs: SqliteJobStore, url: str | None, events: list[str] = ALL) -> str:
    """A one-item job through all its transitions (with a webhook subscription first when `url` is given)."""
    job_id, t = str(uuid.uuid4()), time.time()
    if url is not None:
        open_webhook_store(jobs).subscribe(Subscription(job_id, url, events, t))
    jobs.create_job(
        JobRecord(job_id, "o", "instant", None, ["glb"], {}, 1, t, t),
        [ItemRecord(0, "f", "p.jpg", "p", [f"{job_id}/in/0.jpg"], "image/jpeg", 1)],
    )
    item = jobs.claim(job_id, 0, 30)
    assert item is not None
    jobs.complete(job_id, 0, item.attempt, [], {})
    return job_id


async def started(jobs: SqliteJobStore, **options) -> tuple[Deliverer, asyncio.Task[None]]:
    sender = Sender(2, allow_list(["127.0.0.1"]), 32)
    deliverer = Deliverer(
        jobs, open_webhook_store(jobs), WebhookSigner(SECRET), sender, RetrySchedule(first=0.2), **options
    )
    task = asyncio.create_task(deliverer.run())
    await asyncio.sleep(0.1)
    return deliverer, task


async def stopped(deliverer: Deliverer, task: asyncio.Task[None]) -> None:
    deliverer.stop()
    await asyncio.wait_for(task, 10)
    await deliverer.sender.close()


async def until(condition, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_every_subscribed_event_is_delivered_once_and_other_jobs_cost_nothing(jobs):
    with Receiver(SECRET) as receiver:
        deliverer, task = await started(jobs)
        try:
            plain = run_job(jobs, None)
            hooked = run_job(jobs, receiver.url)
            assert await until(lambda: len(receiver.application) == 5)
        finally:
            await stopped(deliverer, task)
    assert {p["job_id"] for p in receiver.payloads()} == {hooked}
    assert [p["type"] for p in receiver.payloads()].count("file_update") == 2
    assert open_webhook_store(jobs).deliveries(plain) == []
    assert all(d.status == "delivered" for d in open_webhook_store(jobs).deliveries(hooked))


async def test_a_page_that_could_not_be_recorded_is_read_again(jobs, monkeypatch):
    with Receiver(SECRET) as receiver:
        deliverer, task = await started(jobs)
        real = deliverer.hooks.record
        failures = []

        def flaky(*args, **kwargs):
            if not failures:
                failures.append(1)
                raise OSError("disk I/O error")
            return real(*args, **kwargs)

        monkeypatch.setattr(deliverer.hooks, "record", flaky)
        try:
            job_id = run_job(jobs, receiver.url, ["task_completed"])
            assert await until(lambda: len(receiver.application) == 1, 5)  # well before the next sweep
        finally:
            await stopped(deliverer, task)
    assert failures == [1]
    assert receiver.payloads()[0]["job_id"] == job_id


async def test_events_from_while_no_deliverer_ran_are_caught_up_at_start(jobs):
    with Receiver(SECRET) as receiver:
        missed = run_job(jobs, receiver.url, ["task_queued", "task_completed"])
        deliverer, task = await started(jobs)
        try:
            assert await until(lambda: len(receiver.application) == 2)
        finally:
            await stopped(deliverer, task)
    # Caught-up deliveries go out concurrently, so they may arrive in any order (Standard Webhooks promises none).
    assert sorted(p["type"] for p in receiver.payloads()) == ["task_completed", "task_queued"]
    assert {p["job_id"] for p in receiver.payloads()} == {missed}
    assert open_webhook_store(jobs).active() == []  # the terminal event retired the subscription


async def test_stop_waits_for_attempts_in_flight_and_records_them(jobs):
    with Receiver(SECRET, hang=True) as receiver:
        deliverer, task = await started(jobs)
        job_id = run_job(jobs, receiver.url, ["task_completed"])
        assert await until(lambda: len(receiver.requests) == 1)
        await stopped(deliverer, task)  # the attempt times out (2 s) and is recorded before run() returns
    (delivery,) = open_webhook_store(jobs).deliveries(job_id)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("pending", 1, "no answer within 2 s")
