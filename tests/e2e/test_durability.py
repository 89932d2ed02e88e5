"""Crashes and restarts: a SIGKILLed worker, an API restart mid-stream, retention."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.test_jobs import stream_url, upload
from tests.support.images import photo
from tests.support.sse import read_events, wait_file_status, wait_status
from tests.support.webhooks import webhook_records

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_worker_killed_mid_item_does_not_lose_the_job(fresh_stack):
    stack = fresh_stack.start(workers=1)
    job = upload(stack.url, [("heavy.jpg", photo()), ("light.jpg", photo())], delay="3", steps="30")
    job_id = job["job_id"]
    wait_file_status(stack.url, job_id, 0, "processing", timeout=20)
    stack.kill_worker()
    stack.start_worker(workers=1)
    snap = wait_status(stack.url, job_id, {"completed", "failed"}, timeout=60)
    assert snap["status"] == "completed", snap
    assert snap["completed_files"] == 2
    assert snap["files"][0]["attempts"] == 2
    events = read_events(stream_url(stack.url, job_id))
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    retry = [e for e in events if e.event == "file_update" and "retrying" in e.data["message"]]
    assert retry and retry[0].data["index"] == 0 and retry[0].data["status"] == "queued"
    listing = httpx.get(f"{stack.url}/api/v1/download/{job_id}/all").json()
    assert sorted(f["filename"] for f in listing["files"]) == ["heavy.glb", "light.glb"]
    glb = httpx.get(listing["files"][0]["download_url"]).content
    assert glb[:4] == b"glTF"


def test_item_fails_with_a_clear_error_after_max_attempts(tmp_path):
    from tests.support.stack import Stack

    stack = Stack(tmp_path / "data", max_attempts="1").start(workers=1)
    try:
        job = upload(stack.url, [("crashy.jpg", photo())], delay="30", steps="60")
        wait_file_status(stack.url, job["job_id"], 0, "processing", timeout=20)
        stack.kill_worker()
        stack.start_worker(workers=1)
        snap = wait_status(stack.url, job["job_id"], {"failed", "completed"}, timeout=30)
        assert snap["status"] == "failed"
        assert "stopped 1 times" in snap["files"][0]["error"]
        assert "crashy.jpg" in snap["error"]
    finally:
        stack.stop()


def test_stream_resumes_across_an_api_restart(fresh_stack):
    stack = fresh_stack.start(workers=1)
    job = upload(stack.url, [("a.jpg", photo()), ("b.jpg", photo())], delay="2", steps="10")
    job_id = job["job_id"]
    first = read_events(stream_url(stack.url, job_id), stop_after=3)
    stack.stop_api()
    time.sleep(0.5)
    stack.start_api()
    rest = read_events(
        stream_url(stack.url, job_id), headers={"Last-Event-ID": str(first[-1].id)}, timeout=40
    )
    ids = [e.id for e in first + rest]
    assert ids == list(range(1, len(ids) + 1)), "gap or duplicate across the restart"
    assert rest[-1].event == "task_completed"


def test_retention_purges_old_jobs_and_their_files(tmp_path):
    from tests.support.stack import Stack

    stack = Stack(
        tmp_path / "data",
        retention_seconds="12",
        retention_interval_seconds="1",
        webhook_allow_hosts="127.0.0.1",
    ).start(workers=1)
    try:
        job = upload(stack.url, [("old.jpg", photo())], webhook_url="http://127.0.0.1:9/nobody-listens")
        wait_status(stack.url, job["job_id"], {"completed"}, timeout=20)
        assert (stack.data_dir / "blobs" / job["job_id"]).is_dir()
        assert webhook_records(stack) == (1, 0)  # the job's webhook (no deliverer runs here)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if httpx.get(f"{stack.url}/api/v1/status/tasks/{job['job_id']}").status_code == 404:
                break
            time.sleep(0.2)
        assert (
            httpx.get(f"{stack.url}/api/v1/status/tasks/{job['job_id']}").json()["error_code"]
            == "JOB_NOT_FOUND"
        )
        assert not (stack.data_dir / "blobs" / job["job_id"]).exists()
        assert webhook_records(stack) == (0, 0)
    finally:
        stack.stop()
