"""Scale-out on Redis: several API and worker processes sharing one Redis and one file store act as one service."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_jobs import stream_url, upload
from tests.support.images import photo
from tests.support.redis_server import RedisServer
from tests.support.sse import WireEvent, read_events, wait_status
from tests.support.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.redis]


@pytest.fixture(scope="module")
def backend() -> str:
    """These tests build their own Redis deployment."""
    return "redis"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def hosts(tmp_path: Path, redis: RedisServer) -> Iterator[dict[str, Stack]]:
    """Three "hosts" of one deployment: same Redis, same data dir (the shared file store)."""
    stacks = {name: Stack(tmp_path / "data", name=name, redis_url=redis.url) for name in ("a", "b", "c")}
    yield stacks
    for stack in stacks.values():
        stack.stop()


def processing_items(base: str, job_ids: list[str]) -> int:
    snaps = [httpx.get(f"{base}/api/v1/status/tasks/{j}", timeout=5).json() for j in job_ids]
    return sum(f["status"] == "processing" for s in snaps for f in s["files"])


def test_two_apis_and_three_workers_on_redis_act_as_one_service(hosts):
    a, b, c = hosts["a"], hosts["b"], hosts["c"]
    a.start_api()
    b.start_api()
    a.start_worker(workers=1, periodic=True)
    b.start_worker(workers=1, periodic=False)
    c.start_worker(workers=1, periodic=False)

    apis = [a, b]
    jobs = [
        upload(apis[i % 2].url, [(f"j{i}-x.jpg", photo()), (f"j{i}-y.jpg", photo())], delay="1.5", steps="10")
        for i in range(6)
    ]
    job_ids = [j["job_id"] for j in jobs]
    streamed: dict[str, list[WireEvent]] = {}

    def follow(i: int, job_id: str) -> None:
        other = apis[(i + 1) % 2]  # each job's stream is read from the API that did not take the upload
        streamed[job_id] = read_events(stream_url(other.url, job_id), timeout=90)

    readers = [threading.Thread(target=follow, args=(i, j)) for i, j in enumerate(job_ids)]
    for reader in readers:
        reader.start()

    deadline = time.monotonic() + 30
    while processing_items(a.url, job_ids) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processing_items(a.url, job_ids) >= 3, "three workers should be busy at once"
    b.kill_worker()  # mid-item: its item's lease expires and the periodic worker (on host a) re-queues it

    snaps = [wait_status(a.url, j, {"completed", "failed"}, timeout=90) for j in job_ids]
    for reader in readers:
        reader.join(timeout=90)
    assert [s["status"] for s in snaps] == ["completed"] * 6, snaps
    assert any(f["attempts"] == 2 for s in snaps for f in s["files"]), "the killed worker's item ran again"

    for job_id in job_ids:
        live = streamed[job_id]
        assert [e.id for e in live] == list(range(1, len(live) + 1)), f"gap or duplicate in {job_id}"
        assert live[-1].event == "task_completed"
        replay = read_events(stream_url(b.url, job_id), timeout=30)
        assert [(e.id, e.event, e.data) for e in replay] == [(e.id, e.event, e.data) for e in live]
        listing = httpx.get(f"{b.url}/api/v1/download/{job_id}/all", timeout=10).json()
        glb = httpx.get(listing["files"][0]["download_url"], timeout=10).content
        assert glb[:4] == b"glTF"
    assert "two workers run the periodic tasks" not in a.log("worker")


def test_a_second_periodic_worker_is_reported(hosts):
    a, b = hosts["a"], hosts["b"]
    a.start_worker(workers=1, periodic=True)
    b.start_worker(workers=1, periodic=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        logs = a.log("worker") + b.log("worker")
        if "two workers run the periodic tasks" in logs:
            break
        time.sleep(0.2)
    assert "two workers run the periodic tasks" in logs
    assert "start exactly one worker with --periodic" in logs


def test_a_redis_deployment_without_a_periodic_worker_says_so(hosts):
    a = hosts["a"]
    a.start_worker(workers=1, periodic=False)
    deadline = time.monotonic() + 30
    while "no worker runs the periodic tasks" not in a.log("worker") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "no worker runs the periodic tasks" in a.log("worker")


def test_the_upload_rate_limit_holds_across_api_processes(tmp_path: Path, redis: RedisServer):
    apis = [Stack(tmp_path / "data", name=n, redis_url=redis.url, rate_limit_per_minute="3") for n in "ab"]
    try:
        for api in apis:
            api.start_api()
        files = [("files", ("a.jpg", photo(), "image/jpeg"))]
        codes = [httpx.post(f"{apis[i % 2].url}/api/v1/upload/", files=files).status_code for i in range(3)]
        assert codes == [200, 200, 200]
        for api in apis:
            refused = httpx.post(f"{api.url}/api/v1/upload/", files=files)
            assert refused.status_code == 429, "the bucket is shared, not one per process"
            assert refused.json()["error_code"] == "RATE_LIMITED"
            assert 1 <= int(refused.headers["retry-after"]) <= 20
        assert apis[0].stored_jobs() == 3
    finally:
        for api in apis:
            api.stop()
