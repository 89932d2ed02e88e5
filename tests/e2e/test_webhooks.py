"""Webhooks end to end, on both backends: the real API, cpu worker and webhook worker, receivers on 127.0.0.1
that verify every delivery with `standardwebhooks` (and the README's `hmac` snippet) against the secret the
webhook worker generated, and the typed client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from image2model.core.client import AsyncClient, Client
from image2model.core.client.cli import generate_command
from image2model.core.errors import JobNotFound, Unauthorized, ValidationFailed
from image2model.core.models import WebhookLog
from tests.conftest import stored_files
from tests.support.images import photo
from tests.support.stack import Stack
from tests.support.webhooks import Receiver, readme_verifiers, webhook_records

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FAST = {"delay": "0", "steps": "1"}


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Stack]:
    """API, one cpu worker and the webhook worker; two API keys; retries after 0.2 s (doubling up to 1 s) and
    attempts cut after 1 s, so nothing here waits long; receivers on 127.0.0.1 allowed by address."""
    stack = Stack(
        tmp_path_factory.mktemp("webhooks") / "data",
        backend,
        api_keys="key-a,key-b",
        webhook_allow_hosts="127.0.0.1",
        webhook_retry_first_seconds="0.2",
        webhook_retry_max_seconds="1",
        webhook_timeout_seconds="1",
    )
    stack.start(workers=1)
    stack.start_webhook_worker()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def secret(hooked: Stack) -> str:
    """The secret the webhook worker generated at its first start and keeps with the signing secret."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if hooked.redis_url:
            import redis

            with redis.Redis.from_url(hooked.redis_url) as conn:
                value = conn.get("i2m:webhook-secret")
            if value:
                return value.decode()
        elif (hooked.data_dir / "webhook.key").exists():
            return (hooked.data_dir / "webhook.key").read_text().strip()
        time.sleep(0.1)
    raise AssertionError(f"no webhook secret was generated: {hooked.log('webhooks')[-2000:]}")


@pytest.fixture
def client(hooked: Stack) -> Iterator[Client]:
    with Client(hooked.url, "key-a") as c:
        yield c


def wait_log(client: Client, job_id: str, done, timeout: float = 30) -> WebhookLog:
    """Poll the delivery log (bounded) until `done(log)`."""
    deadline = time.monotonic() + timeout
    log = client.webhooks(job_id)
    while not done(log) and time.monotonic() < deadline:
        time.sleep(0.1)
        log = client.webhooks(job_id)
    return log


def test_a_receiver_failing_twice_gets_the_event_once_signed_after_three_attempts(client, secret):
    with Receiver(secret, fail_first=2) as receiver:
        job = client.submit(photo(), webhook_url=receiver.url, **FAST)
        assert job.webhook is not None and job.webhook.events == [
            "task_completed",
            "task_failed",
            "task_cancelled",
        ]
        assert receiver.wait_for(lambda r: len(r.application) == 1, 30), receiver.requests
        log = wait_log(
            client, job.job_id, lambda lg: lg.deliveries and lg.deliveries[0].status == "delivered"
        )
    events = list(client.events(job.job_id, timeout=30))
    completed = events[-1]
    webhook_id = f"{job.job_id}:{completed.seq}"
    assert receiver.payloads() == [{"type": "task_completed", "job_id": job.job_id, "data": completed.data}]
    attempts = [r for r in receiver.requests if r.webhook_id == webhook_id]
    assert [r.answered for r in attempts] == [503, 503, 204]
    assert len(receiver.requests) == 3  # only the terminal event by default
    assert all(r.verified for r in attempts)
    hmac_verify = readme_verifiers()["hmac"]
    assert all(hmac_verify(r.body, r.headers, secret) for r in attempts)
    assert len({r.body for r in attempts}) == 1  # the same body each time; the timestamp is the attempt's
    (delivery,) = log.deliveries
    assert (delivery.webhook_id, delivery.event, delivery.status) == (
        webhook_id,
        "task_completed",
        "delivered",
    )
    assert (delivery.attempts, delivery.last_status, delivery.next_attempt_at) == (3, 204, None)
    assert delivery.delivered_at is not None and delivery.delivered_at >= delivery.created_at
    assert log.url == receiver.url


def test_chosen_events_each_arrive_once_with_the_stream_s_data(client, secret):
    with Receiver(secret) as receiver:
        job = client.submit(
            photo(),
            webhook_url=receiver.url,
            webhook_events=["task_queued", "file_update", "task_completed"],
            **FAST,
        )
        events = list(client.events(job.job_id, timeout=30))
        wanted = [e for e in events if e.type.value in ("task_queued", "file_update", "task_completed")]
        assert receiver.wait_for(lambda r: len(r.application) == len(wanted), 30), receiver.requests
    by_id = {
        f"{job.job_id}:{e.seq}": {"type": e.type.value, "job_id": job.job_id, "data": e.data} for e in wanted
    }
    assert receiver.application == by_id
    assert len(receiver.requests) == len(wanted)


def test_a_hanging_receiver_is_timed_out_and_retried_while_other_webhooks_go_out(client, secret):
    with Receiver(secret, hang=True) as stuck, Receiver(secret) as fine:
        slow_job = client.submit(photo(), webhook_url=stuck.url, **FAST)
        assert stuck.wait_for(lambda r: len(r.requests) >= 1, 30)
        started = time.monotonic()
        other = client.submit(photo(), webhook_url=fine.url, **FAST)
        assert fine.wait_for(lambda r: len(r.application) == 1, 30)
        assert time.monotonic() - started < 10
        log = wait_log(client, slow_job.job_id, lambda lg: lg.deliveries and lg.deliveries[0].attempts >= 2)
        (delivery,) = log.deliveries
        assert delivery.status == "pending" and delivery.last_status is None
        assert delivery.last_error == "no answer within 1 s"
        stuck.hang = False
        assert stuck.wait_for(lambda r: len(r.application) == 1, 30)
    assert (
        wait_log(client, other.job_id, lambda lg: lg.deliveries[0].status == "delivered")
        .deliveries[0]
        .attempts
        == 1
    )


def test_deliveries_pending_when_the_webhook_worker_is_killed_are_delivered_after_restart(
    hooked, client, secret
):
    with Receiver(secret, fail_first=10**6) as receiver:
        failing = client.submit(photo(), webhook_url=receiver.url, **FAST)
        log = wait_log(client, failing.job_id, lambda lg: lg.deliveries and lg.deliveries[0].attempts >= 1)
        assert log.deliveries[0].status == "pending"
        hooked.kill_webhook_worker()
        unseen = client.submit(
            photo(), webhook_url=receiver.url, **FAST
        )  # its event happens with no deliverer
        assert client.wait(unseen.job_id, timeout=30).status == "completed"
        time.sleep(0.5)
        assert client.webhooks(unseen.job_id).deliveries == []
        receiver.fail_first = 0
        hooked.start_webhook_worker()
        assert receiver.wait_for(lambda r: len(r.application) == 2, 40), hooked.log("webhooks")[-3000:]
    assert {p["job_id"] for p in receiver.payloads("task_completed")} == {failing.job_id, unseen.job_id}
    for job in (failing, unseen):
        log = wait_log(client, job.job_id, lambda lg: lg.deliveries[0].status == "delivered")
        assert log.deliveries[0].status == "delivered"


def test_two_webhook_workers_send_each_delivery_once(hooked, client, secret):
    second = hooked.start_webhook_worker("webhooks-2")
    try:
        with Receiver(secret) as receiver:
            jobs = [
                client.submit(
                    photo(), webhook_url=receiver.url, webhook_events="task_queued,task_completed", **FAST
                )
                for _ in range(8)
            ]
            assert receiver.wait_for(lambda r: len(r.application) == 16, 60), receiver.requests
            for job in jobs:
                wait_log(client, job.job_id, lambda lg: all(d.status == "delivered" for d in lg.deliveries))
        assert len(receiver.requests) == 16  # leased: neither worker sent one the other was sending
    finally:
        hooked.stop_process(second)


def test_redirects_are_not_followed(client, secret):
    with Receiver(secret) as target, Receiver(secret, redirect_to=target.url) as redirector:
        job = client.submit(photo(), webhook_url=redirector.url, **FAST)
        log = wait_log(client, job.job_id, lambda lg: lg.deliveries and lg.deliveries[0].attempts >= 2)
        assert redirector.wait_for(lambda r: len(r.requests) >= 2, 10)
    (delivery,) = log.deliveries
    assert delivery.status == "pending" and delivery.last_status == 307
    assert "redirects are not followed" in (delivery.last_error or "")
    assert target.requests == []


REFUSED = [
    "http://localhost:{port}/hook",  # a name resolving to loopback (only the address 127.0.0.1 is allowed)
    "http://127.0.0.2:{port}/hook",
    "http://[::1]:{port}/hook",
    "http://[::ffff:127.0.0.1]:{port}/hook",
    "http://[::ffff:7f00:1]:{port}/hook",
    "http://2130706433:{port}/hook",
    "http://0x7f000001:{port}/hook",
    "http://127.1:{port}/hook",
    "http://0.0.0.0:{port}/hook",
    "http://10.1.2.3/hook",
    "http://172.16.5.4/hook",
    "http://192.168.0.10/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://100.64.0.1/hook",
    "http://[fe80::1]/hook",
    "http://[fc00::1]/hook",
    "http://[64:ff9b::a00:1]/hook",
]


def test_refused_webhook_targets_are_400_and_store_nothing(hooked, client, secret):
    with Receiver(secret) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        jobs_before, subs_before = hooked.stored_jobs(), webhook_records(hooked)[0]
        files_before = set(stored_files(hooked.data_dir))
        refused = [u.format(port=port) for u in REFUSED]
        for url in [*refused, "ftp://127.0.0.1/x", "http:///x", "hooks.example"]:
            with pytest.raises(ValidationFailed) as info:
                client.submit(photo(), webhook_url=url, **FAST)
            assert info.value.status_code == 400, url
            assert info.value.details["errors"][0]["field"] == "webhook_url", url
            # refused for where it points (after resolving names), not because a lookup failed
            assert ("IMAGE2MODEL_WEBHOOK_ALLOW_HOSTS" in info.value.message) == (url in refused), url
        with pytest.raises(ValidationFailed, match="Unknown webhook event.*task_done"):
            client.submit(photo(), webhook_url=receiver.url, webhook_events="task_done,task_completed")
        with pytest.raises(ValidationFailed, match="needs a webhook_url"):
            client.submit(photo(), webhook_events="task_completed")
        assert (hooked.stored_jobs(), webhook_records(hooked)[0]) == (jobs_before, subs_before)
        assert set(stored_files(hooked.data_dir)) == files_before
        assert receiver.requests == []


def test_the_delivery_log_is_the_job_owner_s(hooked, client, secret):
    with Receiver(secret) as receiver:
        job = client.submit(photo(), webhook_url=receiver.url, **FAST)
        with Client(hooked.url, "key-b") as other, pytest.raises(JobNotFound):
            other.webhooks(job.job_id)
        with Client(hooked.url, "") as nobody, pytest.raises(Unauthorized):
            nobody.webhooks(job.job_id)
        with pytest.raises(JobNotFound):
            client.webhooks("00000000-0000-4000-8000-000000000000")
        assert receiver.wait_for(lambda r: len(r.application) == 1, 30)
    plain = client.submit(photo(), **FAST)
    assert client.webhooks(plain.job_id) == WebhookLog(job_id=plain.job_id, deliveries=[])


def test_async_client_and_cli_take_webhooks(hooked, secret, tmp_path: Path):
    image = tmp_path / "mug.jpg"
    image.write_bytes(photo())

    async def with_async_client(url: str) -> WebhookLog:
        async with AsyncClient(hooked.url, "key-a") as client:
            job = await client.submit(image, webhook_url=url, webhook_events="task_queued", **FAST)
            for _ in range(300):
                log = await client.webhooks(job.job_id)
                if log.deliveries and log.deliveries[0].status == "delivered":
                    break
                await asyncio.sleep(0.1)
            return log

    with Receiver(secret) as receiver:
        log = asyncio.run(with_async_client(receiver.url))
        assert [(d.event, d.status) for d in log.deliveries] == [("task_queued", "delivered")]
        code = generate_command(
            [str(image)],
            server=hooked.url,
            api_key="key-a",
            out_dir=str(tmp_path / "out"),
            quiet=True,
            webhook=receiver.url,
        )
        assert code == 0
        assert receiver.wait_for(lambda r: len(r.payloads("task_completed")) == 1, 30)
    assert [p["type"] for p in receiver.payloads()] == ["task_queued", "task_completed"]
