"""Upload -> events -> download through real API and worker processes."""

from __future__ import annotations

import io

import httpx
import pytest
import trimesh

from tests.support.images import photo
from tests.support.sse import TERMINAL, read_events, wait_status

pytestmark = pytest.mark.e2e


def upload(base: str, files: list[tuple[str, bytes]], **fields: str) -> dict:
    response = httpx.post(
        f"{base}/api/v1/upload/",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        data=fields,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def stream_url(base: str, job_id: str) -> str:
    return f"{base}/api/v1/status/tasks/{job_id}/stream"


def test_upload_streams_events_then_serves_a_loadable_glb(stack):
    job = upload(stack.url, [("mug.jpg", photo())], face_limit="500", steps="3")
    assert job["status"] == "queued" and job["task_id"] == job["job_id"] == job["batch_id"]
    assert job["face_limit"] == 500 and job["uploaded_files"][0]["content_type"] == "image/jpeg"

    events = read_events(stream_url(stack.url, job["job_id"]))
    names = [e.event for e in events]
    assert names[0] == "task_queued" and names[-1] == "task_completed"
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert events[0].retry == 2000
    overall = [e.data["progress"] for e in events if e.event.startswith("task_")]
    assert overall == sorted(overall) and overall[-1] == 100
    for e in events:
        assert {"job_id", "task_id", "seq", "timestamp", "status", "progress"} <= e.data.keys()
        assert e.data["seq"] == e.id
    done = [e for e in events if e.event == "file_update" and e.data["status"] == "completed"]
    assert len(done) == 1 and done[0].data["outputs"] == ["mug.glb", "mug.preview.png"]
    assert events[-1].data["summary"] == {
        "total_files": 1,
        "successful_files": 1,
        "failed_files": 0,
        "cancelled_files": 0,
    }

    listing = httpx.get(f"{stack.url}/api/v1/download/{job['job_id']}/all").json()
    assert listing["total_files"] == 1 and listing["download_urls"] == [listing["files"][0]["download_url"]]
    entry = listing["files"][0]
    assert entry["source_filename"] == "mug.jpg" and entry["format"] == "glb"
    assert entry["mime_type"] == "model/gltf-binary" and entry["preview_url"]
    assert entry["metadata"]["options"]["face_limit"] == 500

    response = httpx.get(entry["download_url"])
    assert response.status_code == 200 and response.content[:4] == b"glTF"
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["etag"]
    mesh = trimesh.load(io.BytesIO(response.content), file_type="glb", force="mesh")
    assert len(mesh.faces) == 12 and mesh.is_watertight

    partial = httpx.get(entry["download_url"], headers={"Range": "bytes=0-3"})
    assert partial.status_code == 206 and partial.content == b"glTF"
    assert httpx.get(entry["preview_url"]).content[:8] == b"\x89PNG\r\n\x1a\n"


def test_many_files_in_one_job_get_their_own_file_updates(stack):
    files = [(f"shot{i}.png", photo(200 + 10 * i, 160, fmt="PNG")) for i in range(5)]
    job = upload(stack.url, files, formats="glb,stl")
    events = read_events(stream_url(stack.url, job["job_id"]))
    completed = {
        e.data["index"]: e.data
        for e in events
        if e.event == "file_update" and e.data["status"] == "completed"
    }
    assert sorted(completed) == [0, 1, 2, 3, 4]
    assert completed[3]["filename"] == "shot3.png" and completed[3]["outputs"][:2] == [
        "shot3.glb",
        "shot3.stl",
    ]
    file_progress = {}
    for e in events:
        if e.event == "file_update":
            assert e.data["progress"] >= file_progress.get(e.data["index"], 0)
            file_progress[e.data["index"]] = e.data["progress"]
    listing = httpx.get(f"{stack.url}/api/v1/download/{job['job_id']}/all").json()
    assert sorted(f["filename"] for f in listing["files"]) == sorted(
        f"shot{i}.{ext}" for i in range(5) for ext in ("glb", "stl")
    )
    progress = httpx.get(f"{stack.url}/api/v1/status/jobs/{job['job_id']}/progress").json()
    assert progress["completed_files"] == 5 and progress["overall_progress"] == 100
    assert [f["status"] for f in progress["files"]] == ["completed"] * 5


def test_duplicate_file_names_get_distinct_outputs(stack):
    job = upload(stack.url, [("same.jpg", photo()), ("same.jpg", photo(100, 100))])
    wait_status(stack.url, job["job_id"], {"completed"})
    names = [
        f["filename"] for f in httpx.get(f"{stack.url}/api/v1/download/{job['job_id']}/all").json()["files"]
    ]
    assert sorted(names) == ["same-2.glb", "same.glb"]


def test_stream_resumes_after_last_event_id_without_gaps_or_duplicates(stack):
    job = upload(stack.url, [("a.jpg", photo())])
    full = read_events(stream_url(stack.url, job["job_id"]))
    assert len(full) >= 5
    resumed = read_events(stream_url(stack.url, job["job_id"]), headers={"Last-Event-ID": "3"})
    assert [e.id for e in resumed] == [e.id for e in full[3:]]
    assert [e.data for e in resumed] == [e.data for e in full[3:]]
    by_query = read_events(stream_url(stack.url, job["job_id"]) + "?last_event_id=4")
    assert [e.id for e in by_query] == [e.id for e in full[4:]]
    # a client that already saw the terminal event gets an empty stream that closes at once
    assert (
        read_events(stream_url(stack.url, job["job_id"]), headers={"Last-Event-ID": str(full[-1].id)}) == []
    )


def test_generator_failure_ends_the_job_with_task_failed_and_a_reason(stack):
    job = upload(stack.url, [("bad.jpg", photo())], fail="true")
    events = read_events(stream_url(stack.url, job["job_id"]))
    assert events[-1].event == "task_failed"
    assert "asked to fail" in events[-1].data["error"]
    failed = [e for e in events if e.event == "file_update" and e.data["status"] == "failed"]
    assert failed and "asked to fail" in failed[0].data["error"]
    snap = httpx.get(f"{stack.url}/api/v1/status/tasks/{job['job_id']}").json()
    assert snap["status"] == "failed" and snap["failed_files"] == 1
    assert httpx.get(f"{stack.url}/api/v1/download/{job['job_id']}/all").json()["files"] == []


def test_partly_failed_job_completes_with_counts(stack):
    good = upload(stack.url, [("ok.jpg", photo())])
    events = read_events(stream_url(stack.url, good["job_id"]))
    assert events[-1].event in TERMINAL


def test_cancel_stops_running_and_queued_items(stack):
    files = [(f"slow{i}.jpg", photo()) for i in range(4)]
    job = upload(stack.url, files, delay="20", steps="40")
    job_id = job["job_id"]
    seen = read_events(stream_url(stack.url, job_id), stop_after=2)
    assert seen[-1].data["status"] == "processing"
    response = httpx.post(f"{stack.url}/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    events = read_events(
        stream_url(stack.url, job_id), headers={"Last-Event-ID": str(seen[-1].id)}, timeout=15
    )
    assert events[-1].event == "task_cancelled"
    snap = httpx.get(f"{stack.url}/api/v1/status/tasks/{job_id}").json()
    assert snap["status"] == "cancelled"
    assert [f["status"] for f in snap["files"]] == ["cancelled"] * 4
    again = httpx.post(f"{stack.url}/api/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409 and again.json()["error_code"] == "JOB_FINISHED"


def test_models_available_lists_generators_options_and_limits(stack):
    body = httpx.get(f"{stack.url}/api/v1/models/available").json()
    assert body["default"] == "instant"
    instant = next(m for m in body["models"] if m["name"] == "instant")
    face_limit = next(o for o in instant["options"] if o["name"] == "face_limit")
    assert face_limit["minimum"] == 12 and face_limit["maximum"] == 200_000
    assert body["limits"] == {
        "max_files": 25,
        "max_file_size": 10 * 1024 * 1024,
        "max_image_pixels": 40_000_000,
    }


def test_health_ready_and_metrics(stack):
    assert httpx.get(f"{stack.url}/api/v1/health").json() == {"status": "ok"}
    ready = httpx.get(f"{stack.url}/api/v1/health/ready").json()
    assert ready["components"] == {"store": "ok", "queue": "ok", "blobs": "ok"}
    upload(stack.url, [("m.jpg", photo())])
    text = httpx.get(f"{stack.url}/metrics").text
    assert 'image2model_http_requests_total{method="POST",route="/api/v1/upload/",status="200"}' in text
    assert 'route="/api/v1/status/tasks/{job_id}/stream"' in text or "image2model_jobs{" in text
    assert 'image2model_jobs{status="completed"}' in text and "image2model_queue_depth" in text


def test_openapi_documents_every_contract_endpoint(stack):
    paths = httpx.get(f"{stack.url}/openapi.json").json()["paths"]
    for path in (
        "/api/v1/upload/",
        "/api/v1/status/tasks/{job_id}/stream",
        "/api/v1/status/tasks/{job_id}",
        "/api/v1/status/jobs/{job_id}/progress",
        "/api/v1/download/{job_id}/all",
        "/api/v1/download/{job_id}/{filename}",
        "/api/v1/jobs/{job_id}/cancel",
        "/api/v1/models/available",
        "/api/v1/health",
        "/api/v1/health/ready",
    ):
        assert path in paths, path
    assert "multipart/form-data" in paths["/api/v1/upload/"]["post"]["requestBody"]["content"]
