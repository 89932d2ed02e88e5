"""Event streams over real HTTP: typed events, resume with Last-Event-ID, bounds, errors, wait()."""

from __future__ import annotations

import time

import pytest
from fakeapi import JOB, FakeAPI, envelope, frame, snapshot

from image2model.core.client import AsyncClient, Client, ReconnectPolicy
from image2model.core.errors import JobNotFound, NotReady, ServerUnavailable
from image2model.core.models import EventType, JobStatus

FAST = ReconnectPolicy(max_attempts=3, max_elapsed=10.0, initial_delay=0.01, max_delay=0.05)


def _full_job() -> list[bytes]:
    return [
        frame(1, "task_queued", retry=10, status="queued", total_files=1),
        frame(2, "file_update", file_id="f1", filename="a.png", index=0, progress=50),
        frame(3, "task_progress", progress=50, current=0, total=1, message="half"),
        frame(4, "file_update", file_id="f1", filename="a.png", index=0, status="completed", progress=100),
        frame(5, "task_progress", progress=100, current=1, total=1),
        frame(6, "task_completed", status="completed", progress=100, summary={"total_files": 1}),
    ]


def _resume_script() -> list[list[object]]:
    ev = _full_job()
    return [
        # 1st connection: three events, a keep-alive, then the connection breaks mid-frame.
        [ev[0], b": ping\n\n", ev[1], ev[2], ev[3][:20], "drop"],
        # 2nd: the server replays an event the client already has (overlap), sends two more, then ends
        # without a terminal event (as an API restart would).
        [ev[2], ev[3], ev[4]],
        # 3rd: the rest.
        [ev[5], b"id: 7\nevent: task_progress\ndata: {}\n\n"],
    ]


def test_stream_resumes_after_last_event_id_without_gaps_or_duplicates(fake: FakeAPI, url: str) -> None:
    fake.streams = _resume_script()
    with Client(url, reconnect=FAST) as client:
        events = list(client.events(JOB))
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.type for e in events][:2] == [EventType.TASK_QUEUED, EventType.FILE_UPDATE]
    assert events[-1].terminal and events[-1].data["summary"] == {"total_files": 1}
    assert [r["last_event_id"] for r in fake.stream_requests] == [None, "3", "5"]
    assert fake.stream_requests[0]["accept"] == "text/event-stream"


async def test_async_stream_resumes_after_last_event_id(fake: FakeAPI, url: str) -> None:
    fake.streams = _resume_script()
    async with AsyncClient(url, reconnect=FAST) as client:
        seqs = [e.seq async for e in client.events(JOB)]
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert [r["last_event_id"] for r in fake.stream_requests] == [None, "3", "5"]


def _waiting_job() -> list[bytes]:
    notice = b'event: queue_position\ndata: {"status":"queued","progress":0,"queue_position":%d,"seq":1}\n\n'
    ev = _full_job()
    return [ev[0], notice % 2, b": ping\n\n", notice % 1, *ev[1:]]


@pytest.mark.parametrize("asked", [False, True])
def test_queue_position_notices_come_only_when_asked_and_move_no_cursor(
    fake: FakeAPI, url: str, asked: bool
) -> None:
    fake.streams = [_waiting_job()[:5], _waiting_job()[5:]]
    with Client(url, reconnect=FAST) as client:
        events = list(client.events(JOB, queue_positions=asked))
    stored = [e for e in events if e.type is not EventType.QUEUE_POSITION]
    notices = [e for e in events if e.type is EventType.QUEUE_POSITION]
    assert [e.seq for e in stored] == [1, 2, 3, 4, 5, 6]
    assert [(n.seq, n.data["queue_position"]) for n in notices] == ([(1, 2), (1, 1)] if asked else [])
    assert [r["last_event_id"] for r in fake.stream_requests] == [None, "2"]


def test_events_start_after_given_last_event_id(fake: FakeAPI, url: str) -> None:
    ev = _full_job()
    fake.streams = [[ev[3], ev[4], ev[5]]]
    with Client(url, reconnect=FAST) as client:
        seqs = [e.seq for e in client.events(JOB, last_event_id=3)]
    assert seqs == [4, 5, 6]
    assert fake.stream_requests[0]["last_event_id"] == "3"


def test_reconnect_waits_for_the_servers_retry_hint(fake: FakeAPI, url: str) -> None:
    ev = _full_job()
    fake.streams = [[b"retry: 400\n\n", frame(1, "task_queued"), "drop"], [ev[5]]]
    with Client(url, reconnect=FAST) as client:
        started = time.monotonic()
        seqs = [e.seq for e in client.events(JOB)]
        elapsed = time.monotonic() - started
    assert seqs == [1, 6]
    assert elapsed >= 0.4  # FAST alone would have waited 10 ms


def test_reconnects_are_bounded(fake: FakeAPI, url: str) -> None:
    ev = _full_job()
    fake.streams = [[ev[0], "drop"]] + [["drop"] for _ in range(10)]
    with Client(url, reconnect=FAST) as client, pytest.raises(ServerUnavailable) as info:
        list(client.events(JOB))
    assert len(fake.stream_requests) == 1 + FAST.max_attempts
    assert all(r["last_event_id"] == "1" for r in fake.stream_requests[1:])
    assert JOB in info.value.message and "image2model serve" in info.value.message


def test_unknown_job_raises_without_retrying(fake: FakeAPI, url: str) -> None:
    fake.streams = [[("status", *envelope(404, "JOB_NOT_FOUND", "No job nope"))]]
    with Client(url, reconnect=FAST) as client, pytest.raises(JobNotFound) as info:
        list(client.events("nope"))
    assert info.value.message == "No job nope"
    assert len(fake.stream_requests) == 1


def test_not_ready_is_retried_then_raised(fake: FakeAPI, url: str) -> None:
    fake.streams = [[("status", *envelope(503, "NOT_READY", "starting"))] for _ in range(5)]
    with Client(url, reconnect=FAST) as client, pytest.raises(NotReady):
        list(client.events(JOB))
    assert len(fake.stream_requests) == 1 + FAST.max_attempts


def test_not_ready_then_stream(fake: FakeAPI, url: str) -> None:
    fake.streams = [[("status", *envelope(503, "NOT_READY", "starting"))], [_full_job()[5]]]
    with Client(url, reconnect=FAST) as client:
        assert [e.seq for e in client.events(JOB)] == [6]


def test_wait_returns_final_snapshot_and_calls_back(fake: FakeAPI, url: str) -> None:
    fake.streams = [_full_job()]
    seen: list[int] = []
    with Client(url, reconnect=FAST) as client:
        snap = client.wait(JOB, on_event=lambda e: seen.append(e.seq), timeout=10)
    assert seen == [1, 2, 3, 4, 5, 6]
    assert snap.status == JobStatus.COMPLETED


def test_wait_timeout_bounds_a_silent_stream(fake: FakeAPI, url: str) -> None:
    fake.streams = [[_full_job()[0]] + [("sleep", 0.1), b": ping\n\n"] * 50]
    with Client(url, reconnect=FAST) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            client.wait(JOB, timeout=0.5)
    assert time.monotonic() - started < 3


async def test_async_wait_awaits_coroutine_callbacks(fake: FakeAPI, url: str) -> None:
    fake.streams = [_full_job()]
    fake.status_answer = (200, snapshot("failed", error="all files failed"))
    seen: list[str] = []

    async def on_event(event) -> None:  # noqa: ANN001
        seen.append(event.type.value)

    async with AsyncClient(url, reconnect=FAST) as client:
        snap = await client.wait(JOB, on_event=on_event, timeout=10)
    assert seen[-1] == "task_completed" and len(seen) == 6
    assert snap.status == JobStatus.FAILED and snap.error == "all files failed"


def test_non_ascii_or_huge_ids_and_hints_from_a_server_are_ignored_not_fatal(fake: FakeAPI, url: str) -> None:
    ev = _full_job()
    huge = b"9" * 5000
    fake.streams = [
        [("status", *envelope(503, "NOT_READY", "starting"), {"Retry-After": "\u00b2"})],
        [b"retry: " + huge + b"\n\n", b'id: \xc2\xb2\nevent: task_queued\ndata: {"seq": 1}\n\n', "drop"],
        [b"id: " + huge + b'\nevent: file_update\ndata: {"seq": 2}\n\n', ev[5]],
    ]
    with Client(url, reconnect=FAST) as client:
        seqs = [e.seq for e in client.events(JOB)]
    assert seqs == [1, 2, 6]  # the seq in each event's data stands in for an unusable id
    assert [r["last_event_id"] for r in fake.stream_requests] == [None, None, "1"]
