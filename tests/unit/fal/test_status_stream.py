"""FAL's status stream as the generator reads it from the fake: every change pushed and parsed like a status check,
closed after COMPLETED, and each failure (404, stall, early close, 429) raised so the service can fall back."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fal_client import Completed, InProgress, Queued

from image2model.core.generators.base import RemoteBusy, StreamUnavailable
from image2model.core.generators.fal.status_stream import StreamEnded
from tests.fakes.fal_server import FakeFal
from tests.unit.fal.conftest import KEY


async def collect(gen, state, limit: float = 10.0, on_status=None) -> list:
    seen = []

    async def read() -> None:
        updates = gen.watch(state)
        assert updates is not None
        async for status in updates:
            seen.append((time.monotonic(), status))
            if on_status is not None:
                on_status(status)

    await asyncio.wait_for(read(), limit)
    return seen


def submitted(gen, request_for, images) -> dict:
    return gen.start(request_for(gen, images[:1]))


def test_every_change_is_pushed_and_the_stream_ends_after_completed(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    fake.configure(stream_keepalive=0.05)
    fake.script({"stuck": True, "queue_polls": 2, "logs": ["Loading", "Meshing"]})
    gen = make_generator()
    state = submitted(gen, request_for, images)
    released: list[float] = []

    def release(status) -> None:
        if isinstance(status, InProgress) and not released:
            released.append(time.monotonic())
            fake.complete(state["request_id"])

    seen = asyncio.run(collect(gen, state, on_status=release))
    kinds = [type(status) for _, status in seen]
    assert kinds == [Queued, Queued, InProgress, Completed]  # one per change; keep-alives in between add none
    assert [status.position for _, status in seen[:2]] == [1, 0]
    assert [entry["message"] for entry in seen[2][1].logs] == ["Loading", "Meshing"]
    assert seen[-1][0] >= released[0]  # pushed when it happened
    (opened,) = fake.requests("stream")
    assert opened["auth"] == f"Key {KEY}" and opened["query"]["logs"] == "1"
    assert fake.requests("status") == []  # no status check at all


def test_a_stream_that_is_not_offered_says_so(fake: FakeFal, make_generator, request_for, images) -> None:
    gen = make_generator()
    state = submitted(gen, request_for, images)
    fake.fault("stream", "http", code=404)
    with pytest.raises(StreamUnavailable, match="404"):
        asyncio.run(collect(gen, state))


def test_a_silent_stream_raises_after_the_stall_time(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    fake.script({"stuck": True})
    gen = make_generator(fal_stream_stall_seconds=0.5)
    state = submitted(gen, request_for, images)
    fake.fault("stream", "stall")
    began = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        asyncio.run(collect(gen, state))
    assert 0.45 <= time.monotonic() - began < 5


def test_keep_alive_comments_keep_a_quiet_stream_alive(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    fake.configure(stream_keepalive=0.1)
    fake.script({"queue_s": 0.1, "run_s": 1.2})
    gen = make_generator(fal_stream_stall_seconds=0.5)  # longer than any gap between keep-alives only
    state = submitted(gen, request_for, images)
    kinds = [type(status) for _, status in asyncio.run(collect(gen, state))]
    assert kinds[-1] is Completed


def test_a_stream_closed_early_raises(fake: FakeFal, make_generator, request_for, images) -> None:
    fake.script({"stuck": True})
    gen = make_generator()
    state = submitted(gen, request_for, images)
    fake.fault("stream", "close")
    with pytest.raises(StreamEnded):
        asyncio.run(collect(gen, state))


def test_a_rate_limited_stream_carries_fals_retry_after(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    gen = make_generator()
    state = submitted(gen, request_for, images)
    fake.fault("stream", "http", code=429, retry_after=3)
    with pytest.raises(RemoteBusy) as refused:
        asyncio.run(collect(gen, state))
    assert refused.value.retry_after == 3


def test_no_stream_when_turned_off(make_generator, fake: FakeFal, request_for, images) -> None:
    gen = make_generator(fal_stream=False)
    assert gen.watch(submitted(gen, request_for, images)) is None
