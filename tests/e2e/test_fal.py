"""FAL generators through the whole service, against the fake FAL on loopback driven by the real fal-client."""

from __future__ import annotations

import io
import time

import httpx
import pytest
import trimesh

from tests.e2e.test_jobs import stream_url, upload
from tests.support.fal import KEY, fal_stack, running_fake
from tests.support.images import photo
from tests.support.sse import read_events, wait_file_status, wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def fal():
    with running_fake() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_fake(fal):
    fal.reset()
    fal.accept_keys([KEY])


@pytest.fixture(scope="module")
def service(tmp_path_factory, fal):
    stack = fal_stack(tmp_path_factory.mktemp("fal") / "data", fal)
    yield stack
    stack.stop()


def test_fal_job_completes_with_our_own_copies_of_every_format(service, fal):
    job = upload(service.url, [("duck.jpg", photo())], generator="fal", formats="glb,stl,ply", texture="HD")
    events = read_events(stream_url(service.url, job["job_id"]), timeout=60)
    assert events[-1].event == "task_completed", events[-1].data
    messages = [e.data["message"] for e in events if e.event == "file_update"]
    assert any("queued at FAL" in m for m in messages) and any("generating" in m for m in messages)

    jobs = fal.job_list()
    assert len(jobs) == 1 and jobs[0]["app"] == "tripo3d/tripo/v2.5/image-to-3d"
    assert jobs[0]["auth"] == f"Key {KEY}" and jobs[0]["arguments"]["texture"] == "HD"

    listing = httpx.get(f"{service.url}/api/v1/download/{job['job_id']}/all").json()
    assert sorted(f["filename"] for f in listing["files"]) == ["duck.glb", "duck.ply", "duck.stl"]
    for entry in listing["files"]:
        assert entry["download_url"].startswith(service.url), "listing must not point at FAL"
        assert fal.base_url not in str(entry)
    glb = httpx.get(next(f for f in listing["files"] if f["format"] == "glb")["download_url"]).content
    assert glb[:4] == b"glTF"
    assert len(trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh").faces) > 0


def test_fal_multiview_job_sends_the_views_to_multiview_to_3d(service, fal):
    views = [(f"{side}.jpg", photo(220, 200)) for side in ("front", "left", "back")]
    job = upload(service.url, views, generator="fal", multiview="true")
    assert (
        wait_status(service.url, job["job_id"], {"completed", "failed"}, timeout=60)["status"] == "completed"
    )
    (sent,) = fal.job_list()
    assert sent["app"] == "tripo3d/tripo/v2.5/multiview-to-3d"
    assert {"front_image_url", "left_image_url", "back_image_url"} <= set(sent["images"])


def test_fal_rate_limit_then_success_after_retry(service, fal):
    fal.fault("status", "http", code=429, times=2, retry_after=0.2)
    job = upload(service.url, [("r.jpg", photo())], generator="fal")
    assert (
        wait_status(service.url, job["job_id"], {"completed", "failed"}, timeout=60)["status"] == "completed"
    )
    assert len(fal.job_list()) == 1


def test_fal_rejected_input_fails_the_item_with_a_reason(service, fal):
    fal.script(next=[{"outcome": "error", "error_code": 422, "error_detail": [
        {"loc": ["body", "image_url"], "msg": "image too small", "type": "value_error"}
    ]}])  # fmt: skip
    job = upload(service.url, [("tiny.jpg", photo())], generator="fal")
    snap = wait_status(service.url, job["job_id"], {"completed", "failed"}, timeout=60)
    assert snap["status"] == "failed"
    assert "image_url" in snap["files"][0]["error"]


def test_cancel_during_fal_generation_cancels_at_fal(service, fal):
    fal.script(next=[{"stuck": True}])
    job = upload(service.url, [("c.jpg", photo())], generator="fal")
    wait_file_status(service.url, job["job_id"], 0, "processing", timeout=30)
    for _ in range(100):
        if fal.job_list():
            break
        time.sleep(0.05)
    assert httpx.post(f"{service.url}/api/v1/jobs/{job['job_id']}/cancel").status_code == 200
    assert wait_status(service.url, job["job_id"], {"cancelled"}, timeout=20)["status"] == "cancelled"
    assert [j["cancelled"] for j in fal.job_list()] == [True]


def test_worker_killed_while_fal_works_resumes_with_one_submission(tmp_path, fal):
    fal.script(default={"queue_s": 0.5, "run_s": 4})
    stack = fal_stack(tmp_path / "data", fal)
    try:
        job = upload(stack.url, [("k.jpg", photo())], generator="fal")
        wait_file_status(stack.url, job["job_id"], 0, "processing", timeout=30)
        # Kill while the request is in flight: once FAL has been polled, its id was persisted (a crash inside the
        # submit call itself, before FAL's answer is stored, is the one window that can still resubmit).
        deadline = time.monotonic() + 30
        while not any(j["polls"] for j in fal.job_list()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fal.job_list()[0]["phase"] != "COMPLETED"
        stack.kill_io_worker()
        stack.start_io_worker(threads=2)
        snap = wait_status(stack.url, job["job_id"], {"completed", "failed"}, timeout=60)
        assert snap["status"] == "completed", snap
        assert len(fal.job_list()) == 1, "FAL saw a second (paid) submission"
    finally:
        stack.stop()


def test_io_worker_stopped_gracefully_hands_its_checks_back_to_the_next_one(tmp_path, fal):
    fal.script(default={"queue_s": 0.5, "run_s": 6})
    stack = fal_stack(tmp_path / "data", fal, lease_seconds="30")  # no lease lapses while the worker is down
    try:
        job = upload(stack.url, [("g.jpg", photo())], generator="fal")
        deadline = time.monotonic() + 30
        while not any(j["polls"] for j in fal.job_list()) and time.monotonic() < deadline:
            time.sleep(0.02)
        stack._stop(stack.io_worker)  # SIGTERM: the tracked check goes back to the queue
        assert "event=remote_handed_back items=1" in stack.log("io-worker")
        stack.start_io_worker(threads=2)
        snap = wait_status(stack.url, job["job_id"], {"completed", "failed"}, timeout=25)
        assert snap["status"] == "completed", snap  # well before the 30 s lease could have lapsed
        events = read_events(stream_url(stack.url, job["job_id"]), timeout=10)
        assert not any("attempt 2" in e.data.get("message", "") for e in events), "the item was run again"
        assert len(fal.job_list()) == 1
    finally:
        stack.stop()


def test_rejected_fal_key_fails_with_a_clear_message(service, fal):
    fal.accept_keys(["some-other-key"])
    job = upload(service.url, [("k.jpg", photo())], generator="fal")
    snap = wait_status(service.url, job["job_id"], {"completed", "failed"}, timeout=60)
    assert snap["status"] == "failed"
    assert "key" in snap["files"][0]["error"].lower()


def test_fal_generators_are_listed_only_with_a_key(service, stack):
    with_key = {m["name"] for m in httpx.get(f"{service.url}/api/v1/models/available").json()["models"]}
    assert {"fal", "fal:fal-ai/trellis", "local"} <= with_key
    without = {m["name"] for m in httpx.get(f"{stack.url}/api/v1/models/available").json()["models"]}
    assert not any(name.startswith("fal") for name in without)
    refused = httpx.post(
        f"{service.url}/api/v1/upload/",
        files=[("files", ("a.jpg", photo(), "image/jpeg"))],
        data={"generator": "fal:no-such/model"},
    )
    assert refused.status_code == 400 and "fal:no-such/model" in refused.json()["message"]
