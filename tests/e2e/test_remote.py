"""Remote generators driven in short polling steps on the io queue: durable, capped, cancellable."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.e2e.test_jobs import stream_url, upload
from tests.support.images import photo
from tests.support.sse import read_events, wait_file_status, wait_status
from tests.support.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def remote_stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("remote") / "data")
    stack.start_api()
    stack.start_io_worker(threads=4)
    stack.start_worker(workers=1)  # finishes fetched results; runs the reaper
    yield stack
    stack.stop()


def submissions(stack: Stack) -> list[dict]:
    folder = stack.data_dir / "fake-remote" / "submitted"
    return [json.loads(p.read_text()) for p in sorted(folder.iterdir())] if folder.exists() else []


def wait_for_submissions(stack: Stack, count: int, timeout: float) -> None:
    """Wait until the fake remote has seen `count` submissions: an item shows `processing` just before the io
    worker submits it."""
    deadline = time.monotonic() + timeout
    while len(submissions(stack)) < count:
        assert time.monotonic() < deadline, (
            f"the remote saw {len(submissions(stack))} submissions, not {count}"
        )
        time.sleep(0.05)


def wait_for_stored_request(stack: Stack, job_id: str, timeout: float) -> None:
    """Wait until the item reports its remote progress: only the poll of a request whose id is stored does, so
    a worker killed after this resumes that request (one killed between submission and storing must submit
    again: the remote's answer never reached us)."""
    deadline = time.monotonic() + timeout
    while True:
        snap = httpx.get(f"{stack.url}/api/v1/status/jobs/{job_id}/progress", timeout=5).json()
        if snap["files"][0]["message"] == "generating remotely":
            return
        assert time.monotonic() < deadline, f"the item never reported remote progress: {snap['files'][0]}"
        time.sleep(0.05)


def cancelled(stack: Stack) -> int:
    folder = stack.data_dir / "fake-remote" / "cancelled"
    return len(list(folder.iterdir())) if folder.exists() else 0


def test_remote_items_are_polled_to_completion(remote_stack):
    before = len(submissions(remote_stack))
    job = upload(
        remote_stack.url, [("a.jpg", photo()), ("b.jpg", photo())], generator="remote-test", seconds="1"
    )
    events = read_events(stream_url(remote_stack.url, job["job_id"]), timeout=30)
    assert events[-1].event == "task_completed"
    assert any(e.data.get("message") == "generating remotely" for e in events if e.event == "file_update")
    assert len(submissions(remote_stack)) == before + 2
    listing = httpx.get(f"{remote_stack.url}/api/v1/download/{job['job_id']}/all").json()
    assert sorted(f["filename"] for f in listing["files"]) == ["a.glb", "b.glb"]
    assert all("request_id" in f["metadata"] for f in listing["files"])


def test_multiview_upload_makes_one_item_from_all_views(remote_stack):
    views = [(f"view{i}.jpg", photo(200 + i, 200)) for i in range(3)]
    job = upload(remote_stack.url, views, generator="remote-test", seconds="0.2", multiview="true")
    assert job["multiview"] is True and job["total_files"] == 1
    assert len({f["file_id"] for f in job["uploaded_files"]}) == 1 and len(job["uploaded_files"]) == 3
    snap = wait_status(remote_stack.url, job["job_id"], {"completed", "failed"}, timeout=30)
    assert snap["status"] == "completed"
    listing = httpx.get(f"{remote_stack.url}/api/v1/download/{job['job_id']}/all").json()
    assert [f["filename"] for f in listing["files"]] == ["view0.glb"]
    assert listing["files"][0]["metadata"]["views"] == 3


def test_multiview_is_refused_for_single_photo_generators(remote_stack):
    response = httpx.post(
        f"{remote_stack.url}/api/v1/upload/",
        files=[("files", (f"v{i}.jpg", photo(), "image/jpeg")) for i in range(2)],
        data={"generator": "instant", "multiview": "true"},
    )
    assert response.status_code == 400
    assert "does not take several views" in response.json()["message"]


def test_cancel_during_remote_work_cancels_it_remotely(remote_stack):
    before = cancelled(remote_stack)
    job = upload(remote_stack.url, [("c.jpg", photo())], generator="remote-test", seconds="30")
    wait_file_status(remote_stack.url, job["job_id"], 0, "processing", timeout=20)
    assert httpx.post(f"{remote_stack.url}/api/v1/jobs/{job['job_id']}/cancel").status_code == 200
    snap = wait_status(remote_stack.url, job["job_id"], {"cancelled"}, timeout=10)
    assert snap["files"][0]["status"] == "cancelled"
    assert cancelled(remote_stack) == before + 1


def test_killed_io_worker_resumes_polling_without_a_second_submission(fresh_stack):
    stack = fresh_stack
    stack.start_api()
    stack.start_io_worker(threads=2)
    stack.start_worker(workers=1)  # runs the reaper
    job = upload(stack.url, [("k.jpg", photo())], generator="remote-test", seconds="4")
    wait_file_status(stack.url, job["job_id"], 0, "processing", timeout=20)
    wait_for_submissions(stack, 1, timeout=10)
    wait_for_stored_request(stack, job["job_id"], timeout=10)
    stack.kill_io_worker()
    stack.start_io_worker(threads=2)
    snap = wait_status(stack.url, job["job_id"], {"completed", "failed"}, timeout=40)
    assert snap["status"] == "completed", snap
    assert len(submissions(stack)) == 1, "the remote request was submitted twice"


def test_in_flight_cap_holds_items_until_a_slot_frees(tmp_path):
    stack = Stack(tmp_path / "data")
    stack.env["FAKE_REMOTE_MAX_IN_FLIGHT"] = "1"
    stack.start_api()
    stack.start_io_worker(threads=4)
    stack.start_worker(workers=1)
    try:
        job = upload(
            stack.url, [(f"q{i}.jpg", photo()) for i in range(3)], generator="remote-test", seconds="0.6"
        )
        events = read_events(stream_url(stack.url, job["job_id"]), timeout=40)
        assert events[-1].event == "task_completed"
        assert any(
            "waiting for a free" in e.data.get("message", "") for e in events if e.event == "file_update"
        )
        times = sorted(s["t"] for s in submissions(stack))
        assert len(times) == 3
        assert all(later - earlier >= 0.5 for earlier, later in zip(times, times[1:], strict=False))
    finally:
        stack.stop()
