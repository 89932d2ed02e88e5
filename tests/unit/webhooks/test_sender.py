"""The sender against real receivers on 127.0.0.1: redirects are not followed, forbidden addresses are never
connected to (checked again at connect time, whatever the name said at upload), a name is connected to at
exactly the address that was checked, and a receiver that does not answer costs one timeout."""

from __future__ import annotations

import json
import time

import pytest

from image2model.api.webhooks.sender import Sender
from image2model.api.webhooks.signing import WebhookSigner, new_secret
from image2model.api.webhooks.targets import allow_list, parse_target
from tests.support.webhooks import Receiver

SECRET = new_secret()
BODY = json.dumps({"type": "task_completed", "job_id": "j", "data": {}}).encode()


def headers(webhook_id: str = "j:1") -> dict[str, str]:
    return WebhookSigner(SECRET).headers(webhook_id, int(time.time()), BODY)


async def test_a_delivery_reaches_an_allowed_receiver_signed():
    with Receiver(SECRET) as receiver:
        sender = Sender(5, allow_list(["127.0.0.1"]), 16)
        try:
            attempt = await sender.post(receiver.url, headers(), BODY)
        finally:
            await sender.close()
    assert attempt.ok and attempt.status == 204
    assert receiver.payloads() == [json.loads(BODY)]
    assert receiver.requests[0].headers["user-agent"].startswith("image2model-webhooks/")
    assert receiver.requests[0].headers["content-type"] == "application/json"


async def test_redirects_are_not_followed():
    with Receiver(SECRET) as target, Receiver(SECRET, redirect_to=target.url) as redirector:
        sender = Sender(5, allow_list(["127.0.0.1"]), 16)
        try:
            attempt = await sender.post(redirector.url, headers(), BODY)
        finally:
            await sender.close()
    assert not attempt.ok and attempt.status == 307
    assert "redirects are not followed" in (attempt.error or "") and target.url in (attempt.error or "")
    assert target.requests == []


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:{port}/hook", "http://[::ffff:127.0.0.1]:{port}/hook", "http://localhost:{port}/hook"],
)
async def test_forbidden_addresses_are_refused_without_connecting(url):
    with Receiver(SECRET) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        sender = Sender(5, frozenset(), 16)
        try:
            attempt = await sender.post(url.format(port=port), headers(), BODY)
        finally:
            await sender.close()
    assert attempt.status is None and (attempt.error or "").startswith("refused: ")
    assert "loopback" in (attempt.error or "")
    assert receiver.requests == []


async def test_a_name_that_rebinds_to_loopback_after_the_upload_check_is_refused_at_connect_time():
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])  # the upload's lookup, then the deliverer's

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    with Receiver(SECRET) as receiver:
        port = int(receiver.url.split(":")[2].split("/")[0])
        url = f"http://rebind.example.com:{port}/hook"
        assert parse_target(url, None, frozenset(), rebinding) is not None  # looked public at upload
        sender = Sender(5, frozenset(), 16, resolve=rebinding)
        try:
            attempt = await sender.post(url, headers(), BODY)
        finally:
            await sender.close()
    assert attempt.status is None
    assert "refused: rebind.example.com (127.0.0.1) is a loopback address" in (attempt.error or "")
    assert receiver.requests == []


async def test_an_allowed_name_is_connected_at_the_checked_address_with_its_own_host_header():
    looked_up: list[str] = []

    def dns(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return ["127.0.0.1"]

    with Receiver(SECRET) as receiver:
        port = int(receiver.url.split(":")[2].split("/")[0])
        sender = Sender(5, allow_list(["hooks.internal"]), 16, resolve=dns)
        try:
            first = await sender.post(f"http://hooks.internal:{port}/hook", headers("j:1"), BODY)
            second = await sender.post(f"http://hooks.internal:{port}/hook", headers("j:2"), BODY)
        finally:
            await sender.close()
    assert first.ok and second.ok
    assert [r.headers["host"] for r in receiver.requests] == [f"hooks.internal:{port}"] * 2
    assert looked_up == ["hooks.internal"]  # kept for the keep-alive connection (and a short DNS cache)


async def test_a_receiver_that_does_not_answer_costs_one_timeout():
    with Receiver(SECRET, hang=True) as receiver:
        sender = Sender(0.5, allow_list(["127.0.0.1"]), 16)
        started = time.monotonic()
        try:
            attempt = await sender.post(receiver.url, headers(), BODY)
        finally:
            await sender.close()
        took = time.monotonic() - started
    assert attempt.status is None and attempt.error == "no answer within 0.5 s"
    assert took < 5
    assert len(receiver.requests) == 1


async def test_a_closed_port_is_a_connection_error_not_an_exception():
    sender = Sender(2, allow_list(["127.0.0.1"]), 16)
    try:
        attempt = await sender.post("http://127.0.0.1:9/hook", headers(), BODY)
    finally:
        await sender.close()
    assert attempt.status is None and "could not connect to 127.0.0.1" in (attempt.error or "")
