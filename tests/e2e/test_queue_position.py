"""While a job waits, its stream tells it its place in the queue: id-less `queue_position` notices that move up as
the jobs ahead start, are never stored and never replayed, and stop once the job runs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from image2model.core.client import Client
from image2model.core.models import EventType
from tests.support.images import photo
from tests.support.sse import read_events
from tests.support.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def stopped_worker(tmp_path: Path):
    """An API whose worker starts only when the test says so; positions are told every 0.2 s."""
    stack = Stack(tmp_path / "data", queue_position_interval="0.2")
    stack.start_api()
    try:
        yield stack
    finally:
        stack.stop()


def test_a_waiting_job_hears_its_place_in_the_queue_move_up_until_it_runs(stopped_worker: Stack):
    with Client(stopped_worker.url) as client:
        ahead = [client.submit(photo(), generator="instant", delay=0.6, steps=2) for _ in range(3)]
        mine = client.submit([photo(), photo(color=(200, 60, 60))], generator="instant", delay=0.3)
        assert len(ahead) == 3 and mine.total_files == 2

        positions: list[int] = []
        stored: list[int] = []
        after_first_notice = []
        for event in client.events(mine.job_id, timeout=60, queue_positions=True):
            if event.type is EventType.QUEUE_POSITION:
                assert event.data["status"] == "queued" and event.seq == (stored[-1] if stored else 0)
                positions.append(event.data["queue_position"])
                if stopped_worker.worker is None:
                    stopped_worker.start_worker(1)
                continue
            stored.append(event.seq)
            if positions:
                after_first_notice.append(event.type)
            if event.terminal:
                break

    assert positions[0] == 4, positions  # three one-photo jobs ahead of its first photo
    assert positions[-1] == 1 and positions == sorted(positions, reverse=True), positions
    assert len(set(positions)) == len(positions), "a notice is sent only when the place changes"
    assert stored == list(range(1, len(stored) + 1)), "notices take no id"
    assert after_first_notice[-1] is EventType.TASK_COMPLETED

    replay = read_events(f"{stopped_worker.url}/api/v1/status/tasks/{mine.job_id}/stream", notices=True)
    assert [e.id for e in replay] == stored and all(e.event != "queue_position" for e in replay)


def test_queue_position_notices_have_no_id_and_carry_the_last_stored_seq(stopped_worker: Stack):
    with Client(stopped_worker.url) as client:
        client.submit(photo(), generator="instant")
        second = client.submit(photo(), generator="instant")

    url = f"{stopped_worker.url}/api/v1/status/tasks/{second.job_id}/stream"
    raw = ""
    with httpx.stream("GET", url, timeout=10) as response:
        for text in response.iter_text():
            raw += text.replace("\r\n", "\n")
            if "event: queue_position" in raw and raw.endswith("\n\n"):
                break
    frames = [frame.splitlines() for frame in raw.strip().split("\n\n") if "event:" in frame]
    assert [next(x for x in f if x.startswith("event:")) for f in frames] == [
        "event: task_queued",
        "event: queue_position",
    ]
    assert "id: 1" in frames[0] and not any(line.startswith("id:") for line in frames[1])
    data = json.loads(next(line for line in frames[1] if line.startswith("data:"))[5:])
    assert data["queue_position"] == 2 and data["seq"] == 1
    assert {"job_id", "task_id", "timestamp", "status", "progress"} <= data.keys()
