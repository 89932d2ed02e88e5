"""The hub: which queue positions a waiting job's stream is told, events encoded once and shared by a job's
streams, written straight to idle streams, and a slow stream closed without holding up the others."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from image2model.api.hub import (
    END_BATCH,
    END_DELAY,
    EventHub,
    Notice,
    Subscription,
    encode_event,
    worth_telling,
)
from image2model.core.client._sse import SSEDecoder
from image2model.core.models import Event, EventType


@pytest.mark.parametrize(
    ("told", "position", "tell"),
    [
        (None, 250, True),  # the first place is always told
        (250, 250, False),  # nothing changed
        (250, 240, False),  # deep in the queue: 4 % closer is not worth a notice
        (250, 225, True),  # a tenth closer is
        (12, 11, False),
        (11, 10, True),  # within the first ten places, every step
        (3, 2, True),
    ],
)
def test_a_stream_hears_every_step_near_the_front_and_tenths_further_back(told, position, tell):
    assert worth_telling(told, position) is tell


class _CountingLog:
    """The part of a job store the hub reads, counting its reads; `add` appends an event."""

    blocking_tail = False

    def __init__(self) -> None:
        self.tails = 0
        self.rows: list = []

    def head(self) -> int:
        return 0

    def tail(self, cursor: int) -> tuple[int, list]:
        self.tails += 1
        return len(self.rows), self.rows[cursor:]

    def queue_positions(self) -> dict[str, int]:
        return {}


async def test_an_idle_hub_reads_the_log_rarely_and_a_new_stream_wakes_it() -> None:
    import asyncio

    from image2model.api import hub as hub_module
    from image2model.core.models import Event, EventType

    log = _CountingLog()
    hub = hub_module.EventHub(log, interval=0.001, position_interval=0.001)  # type: ignore[arg-type]
    await hub.start()
    try:
        await asyncio.sleep(0.3)
        assert log.tails <= 2, "with no stream open the hub polled at its streaming pace"
        sub = hub.subscribe("j")
        log.rows.append(("j", Event(seq=1, type=EventType.TASK_QUEUED, data={})))
        taken = await asyncio.wait_for(sub.take(), hub_module.IDLE_POLL / 2)
        assert taken is not None and [c.last for c in taken] == [1]
        busy = log.tails
        await asyncio.sleep(0.1)
        assert log.tails > busy + 10, "with a stream open the hub polls at its interval"
    finally:
        await hub.stop()


class _WaitingLog(_CountingLog):
    """A log whose job "j" waits third in the queue."""

    def queue_positions(self) -> dict[str, int]:
        return {"j": 3}


async def test_a_round_of_queue_notices_to_many_streams_is_spread_out_not_sent_at_once() -> None:
    import time

    hub = EventHub(_WaitingLog(), interval=0.005, position_interval=0.2)  # type: ignore[arg-type]
    subs = [hub.subscribe("j") for _ in range(200)]

    async def told(sub) -> tuple[float, list]:
        items = await sub.take()
        return time.monotonic(), items

    await hub.start()
    try:
        heard = await asyncio.wait_for(asyncio.gather(*(told(sub) for sub in subs)), 2.0)
    finally:
        await hub.stop()
    assert all(
        isinstance(item, Notice) and item.data["queue_position"] == 3 for _, items in heard for item in items
    )
    times = [t for t, _ in heard]
    # Spread over half the interval in 10 ms steps (about 20 streams a step), so live events go out in between.
    assert max(times) - min(times) >= 0.06


async def test_queue_notices_wait_while_live_events_are_fanned_out_and_go_once_they_pause() -> None:
    import time

    log = _WaitingLog()
    hub = EventHub(log, interval=0.005, position_interval=0.3)  # type: ignore[arg-type]
    waiting = [hub.subscribe("j") for _ in range(20)]
    running = hub.subscribe("k")
    await hub.start()
    start = time.monotonic()

    async def run_job() -> float:
        seq = 0
        while (
            time.monotonic() - start < 0.45
        ):  # live events every 5 ms, through the notice round due at 0.3 s
            seq += 1
            log.rows.append(("k", Event(seq=seq, type=EventType.TASK_PROGRESS, data={})))
            await asyncio.sleep(0.005)
        return time.monotonic()

    async def told(sub) -> float:
        await sub.take()
        return time.monotonic()

    try:
        last_event, *heard = await asyncio.wait_for(
            asyncio.gather(run_job(), *(told(sub) for sub in waiting)), 3.0
        )
        got = await asyncio.wait_for(running.take(), 1.0)
    finally:
        await hub.stop()
    assert got  # the running job's stream got its events
    assert min(heard) >= last_event - 0.02  # no notice while the events flowed
    assert max(heard) - start <= 0.3 + 0.3 + 0.3 * 0.5 + 0.2  # and all of them within the round's bound


async def test_what_was_written_before_the_hub_stopped_still_reaches_its_observers() -> None:
    from image2model.api import hub as hub_module
    from image2model.core.models import Event, EventType

    log = _CountingLog()
    seen: list[tuple[str, int]] = []
    hub = hub_module.EventHub(
        log, interval=0.001, observers=[lambda job, event: seen.append((job, event.seq))]
    )  # type: ignore[arg-type]
    await hub.start()
    log.rows.append(("j", Event(seq=1, type=EventType.TASK_COMPLETED, data={})))
    await hub.stop()  # idle (no stream open): the hub had not read the log again yet
    assert seen == [("j", 1)]


def _event(seq: int, type: EventType = EventType.FILE_UPDATE, status: str = "processing") -> Event:
    return Event(seq=seq, type=type, data={"job_id": "j", "seq": seq, "status": status, "timestamp": seq})


def test_an_event_is_encoded_once_as_the_frame_every_stream_sends():
    frame = encode_event(_event(7))
    assert frame == (
        b'id: 7\r\nevent: file_update\r\ndata: {"job_id":"j","seq":7,"status":"processing","timestamp":7}\r\n\r\n'
    )
    (decoded,) = SSEDecoder().feed(frame)
    assert (decoded.id, decoded.event, json.loads(decoded.data)["seq"]) == ("7", "file_update", 7)


def test_the_events_of_a_job_that_arrive_together_are_one_chunk_shared_by_all_its_streams():
    hub = EventHub(store=None, interval=1.0, max_pending=10)  # type: ignore[arg-type]
    subs = [hub.subscribe("j") for _ in range(3)]
    other = hub.subscribe("k")
    terminal = _event(3, EventType.TASK_COMPLETED, "completed")
    hub._dispatch([("j", _event(1, status="queued")), ("k", _event(9)), ("j", _event(2)), ("j", terminal)])
    chunks = [list(sub._items) for sub in subs]
    assert all(len(c) == 1 for c in chunks) and chunks[0][0] is chunks[1][0] is chunks[2][0]  # the same bytes
    chunk = chunks[0][0]
    assert (chunk.first, chunk.last, chunk.events, chunk.terminal, chunk.queued) == (1, 3, 3, True, False)
    assert chunk.data == encode_event(_event(1, status="queued")) + encode_event(_event(2)) + encode_event(
        terminal
    )
    assert [c.first for c in other._items] == [9]


def test_a_stream_that_falls_too_far_behind_is_closed_and_the_others_are_not_held_up():
    hub = EventHub(store=None, interval=1.0, max_pending=4)  # type: ignore[arg-type]
    slow, fast = hub.subscribe("j"), hub.subscribe("j")

    async def drain() -> list:
        return await fast.take() or []

    for seq in range(1, 7):
        hub._dispatch([("j", _event(seq))])
        if seq % 2 == 0:
            assert asyncio.run(drain())  # the fast one reads as it goes
    assert slow.closed and hub.subscribers == 1  # 6 events waited for it, more than its 4
    assert asyncio.run(slow.take()) is None  # its stream ends; the client resumes with Last-Event-ID
    assert not fast.closed


def test_a_queue_notice_carries_the_streams_own_last_seq():
    notice = Notice({"job_id": "j", "status": "queued", "queue_position": 3})
    (decoded,) = SSEDecoder().feed(notice.encode(12))
    assert decoded.event == "queue_position" and decoded.id == ""
    assert json.loads(decoded.data) == {"job_id": "j", "status": "queued", "queue_position": 3, "seq": 12}


class _Connection:
    """Stands in for an idle stream's connection (`BodyWriter`): what the hub wrote to it directly, and when."""

    def __init__(self) -> None:
        self.written: list[tuple[float, bytes]] = []

    def write(self, body: bytes) -> bool:
        self.written.append((time.monotonic(), body))
        return True


async def _watch_while_another_job_runs(
    seconds: float,
) -> tuple[float, list[Subscription], list[float], float]:
    """More than a batch of idle streams of job "j", which completes at once, while job "k" sends live events every
    5 ms for `seconds`: the start, the streams, when each stream's task ended, and the last live event."""
    log = _CountingLog()
    hub = EventHub(log, interval=0.005)  # type: ignore[arg-type]
    done = [hub.subscribe("j") for _ in range(END_BATCH + 50)]
    hub.subscribe("k").writer = _Connection()  # type: ignore[assignment]
    for sub in done:
        sub.writer = _Connection()  # type: ignore[assignment]

    async def stream(sub: Subscription) -> float:  # as a stream's task does: take until the stream ends
        while await sub.take() is not None:
            pass
        return time.monotonic()

    tasks = [asyncio.create_task(stream(sub)) for sub in done]
    await asyncio.sleep(0)  # every task waits for items: the streams are idle
    await hub.start()
    start = time.monotonic()
    log.rows.append(("j", _event(1, EventType.TASK_COMPLETED, "completed")))
    seq = 0
    try:
        while time.monotonic() - start < seconds:
            seq += 1
            log.rows.append(("k", _event(seq)))
            await asyncio.sleep(0.005)
        last_live = time.monotonic()
        ended = await asyncio.wait_for(asyncio.gather(*tasks), 3.0)
        assert (
            hub.subscribers == 1
        )  # the completed job's streams left the hub when its terminal event went out
    finally:
        await hub.stop()
    return start, done, ended, last_live


async def test_a_terminal_event_is_written_to_idle_streams_at_once_and_their_tasks_end_once_live_events_pause():
    start, done, ended, last_live = await _watch_while_another_job_runs(0.3)
    for sub in done:
        assert isinstance(sub.writer, _Connection)
        ((when, body),) = sub.writer.written
        assert b"event: task_completed" in body and when - start < 0.1  # delivered at once, by the hub
    assert (
        min(ended) >= last_live - 0.01
    )  # the ends of the responses waited while the other job's events flowed
    assert max(ended) - last_live < 0.2  # and followed once they paused


async def test_the_end_of_a_delivered_stream_waits_for_live_events_no_longer_than_the_end_delay():
    start, _, ended, last_live = await _watch_while_another_job_runs(END_DELAY + 0.4)
    assert min(ended) - start >= END_DELAY - 0.05 and max(ended) - start <= END_DELAY + 0.2
    assert max(ended) < last_live  # woken while the other job's events still flowed
