"""Job API v1.1 through the real service and client: history pages per API key, delete (also while running),
idempotent uploads (replay, mismatch, in progress, across an API restart) and `Prefer: wait`."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from image2model.core.client import AsyncClient, Client
from image2model.core.errors import IdempotencyInProgress, IdempotencyMismatch, JobNotFound
from image2model.core.models import JobStatus
from tests.conftest import stored_files
from tests.support.images import photo
from tests.support.sse import wait_status
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

KEY_A, KEY_B = "history-a", "history-b"
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"X-API-Key": KEY_B}


def post_upload(
    base: str, headers: dict[str, str | bytes], files: list[tuple[str, bytes]] | None = None, **fields: str
) -> httpx.Response:
    files = files or [("mug.jpg", photo())]
    return httpx.post(
        f"{base}/api/v1/upload/",
        files=[("files", (name, data, "image/jpeg")) for name, data in files],
        data=fields,
        headers=headers,
        timeout=90,
    )


def created(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("jobapi") / "data", api_keys=f"{KEY_A},{KEY_B}").start(workers=1)
    yield s
    s.stop()
    assert "Traceback" not in s.log("api"), s.log("api")[-3000:]


# ---- history ------------------------------------------------------------------------------------------


def test_history_pages_through_one_keys_jobs_newest_first_and_never_shows_anothers(keyed: Stack) -> None:
    mine = [
        created(post_upload(keyed.url, A, [(f"a{n}.jpg", photo(120 + n, 90))]))["job_id"] for n in range(23)
    ]
    theirs = [created(post_upload(keyed.url, B, [(f"b{n}.jpg", photo())]))["job_id"] for n in range(3)]
    for job_id in mine[-3:]:
        wait_status(keyed.url, job_id, {"completed"}, headers=A)

    seen: list[dict] = []
    cursor, pages = None, 0
    for _ in range(10):
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        response = httpx.get(f"{keyed.url}/api/v1/jobs", params=params, headers=A)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += page["jobs"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = [j["job_id"] for j in seen]
    assert pages == 3 and ids[: len(mine)] == list(reversed(mine))  # newest first, nothing twice
    assert not set(ids) & set(theirs)
    created_at = [j["created_at"] for j in seen]
    assert created_at == sorted(created_at, reverse=True)
    newest = seen[0]
    assert set(newest) >= {
        "job_id",
        "status",
        "created_at",
        "total_files",
        "generator",
        "face_limit",
        "links",
    }
    assert newest["status"] == "completed" and newest["total_files"] == 1 and newest["generator"] == "instant"
    assert httpx.get(newest["preview_url"]).content[:8] == b"\x89PNG\r\n\x1a\n"  # signed: no header needed
    assert httpx.get(newest["links"]["status"]).json()["job_id"] == newest["job_id"]

    other = httpx.get(f"{keyed.url}/api/v1/jobs", headers=B).json()
    assert [j["job_id"] for j in other["jobs"]] == list(reversed(theirs)) and other["next_cursor"] is None

    with Client(keyed.url, api_key=KEY_A) as client:
        assert [j.job_id for j in client.iter_jobs(page_size=7)][: len(mine)] == list(reversed(mine))
        done = client.jobs(limit=100, status=JobStatus.COMPLETED).jobs
        assert {j.job_id for j in done} >= set(mine[-3:]) and all(j.status == "completed" for j in done)


async def test_async_client_reads_history_pages(keyed: Stack) -> None:
    async with AsyncClient(keyed.url, api_key=KEY_B) as client:
        job = await client.submit([photo()], face_limit=500)
        first = await client.jobs(limit=1)
        assert first.jobs[0].job_id == job.job_id and first.jobs[0].face_limit == 500
        rest = [j.job_id async for j in client.iter_jobs(page_size=2)]
        assert rest[0] == job.job_id and len(rest) == len(set(rest))


@pytest.mark.parametrize(
    ("query", "status", "code", "phrase"),
    [
        ("limit=0", 422, "VALIDATION_ERROR", "limit"),
        ("limit=101", 422, "VALIDATION_ERROR", "limit"),
        ("status=done", 422, "VALIDATION_ERROR", "status"),
        ("cursor=not-a-cursor", 400, "VALIDATION_ERROR", "cursor"),
    ],
)
def test_bad_history_queries_are_refused_clearly(
    keyed: Stack, query: str, status: int, code: str, phrase: str
):
    response = httpx.get(f"{keyed.url}/api/v1/jobs?{query}", headers=A)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code and phrase in body["message"].lower()


def test_history_needs_a_key(keyed: Stack) -> None:
    response = httpx.get(f"{keyed.url}/api/v1/jobs")
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


# ---- delete -------------------------------------------------------------------------------------------


def test_delete_of_a_running_job_cancels_it_then_removes_its_events_rows_and_files(keyed: Stack) -> None:
    job = created(
        post_upload(keyed.url, A, [("slow.jpg", photo()), ("queued.jpg", photo())], delay="20", steps="40")
    )
    job_id = job["job_id"]
    wait_file_status_keyed(keyed, job_id, 0, "processing")
    jobs_before = keyed.stored_jobs()
    assert (keyed.data_dir / "blobs" / job_id).is_dir()

    started = time.monotonic()
    with Client(keyed.url, api_key=KEY_A) as client:
        client.delete(job_id)
        took = time.monotonic() - started
        with pytest.raises(JobNotFound):
            client.status(job_id)
        with pytest.raises(JobNotFound):
            client.delete(job_id)
    assert took < 10, f"DELETE took {took:.1f} s"
    for path in (f"status/tasks/{job_id}", f"status/tasks/{job_id}/stream", f"download/{job_id}/all"):
        assert httpx.get(f"{keyed.url}/api/v1/{path}", headers=A).json()["error_code"] == "JOB_NOT_FOUND"
    assert httpx.get(job["links"]["status"]).status_code == 404  # its signed links open nothing now
    assert keyed.stored_jobs() == jobs_before - 1
    assert job_id not in [
        j["job_id"] for j in httpx.get(f"{keyed.url}/api/v1/jobs?limit=100", headers=A).json()["jobs"]
    ]
    # the worker stopped the item and wrote nothing afterwards; it goes on serving other jobs
    nxt = created(post_upload(keyed.url, A))
    wait_status(keyed.url, nxt["job_id"], {"completed"}, headers=A)
    assert not [p for p in stored_files(keyed.data_dir) if job_id in str(p)]
    assert "event=item_cancelled" in keyed.log("worker") and "Traceback" not in keyed.log("worker")


def test_delete_needs_the_owners_key(keyed: Stack) -> None:
    job = created(post_upload(keyed.url, A))
    refused = httpx.delete(f"{keyed.url}/api/v1/jobs/{job['job_id']}", headers=B)
    assert refused.status_code == 404 and refused.json()["error_code"] == "JOB_NOT_FOUND"
    link_only = httpx.delete(job["links"]["status"].replace("status/tasks", "jobs"))
    assert link_only.status_code == 401
    assert httpx.get(f"{keyed.url}/api/v1/status/tasks/{job['job_id']}", headers=A).status_code == 200
    assert httpx.delete(f"{keyed.url}/api/v1/jobs/{job['job_id']}", headers=A).status_code == 204


def wait_file_status_keyed(stack: Stack, job_id: str, index: int, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = httpx.get(f"{stack.url}/api/v1/status/jobs/{job_id}/progress", headers=A, timeout=5).json()
        if snap["files"][index]["status"] == status:
            return
        time.sleep(0.05)
    raise TimeoutError(f"file {index} of {job_id} never reached {status}")


# ---- idempotency --------------------------------------------------------------------------------------


def test_same_key_and_request_replays_the_first_answer_and_creates_nothing(keyed: Stack) -> None:
    image = photo(200, 150)
    first = post_upload(keyed.url, {**A, "Idempotency-Key": "order-1"}, [("a.jpg", image)], face_limit="300")
    body = created(first)
    assert "idempotent-replayed" not in first.headers
    jobs = keyed.stored_jobs()
    again = post_upload(keyed.url, {**A, "Idempotency-Key": "order-1"}, [("a.jpg", image)], face_limit="300")
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == body
    assert keyed.stored_jobs() == jobs
    assert not (keyed.data_dir / "staging").exists() or not list((keyed.data_dir / "staging").iterdir())
    # the key is the API key's own: another key's same Idempotency-Key is a new request
    other = created(
        post_upload(keyed.url, {**B, "Idempotency-Key": "order-1"}, [("a.jpg", image)], face_limit="300")
    )
    assert other["job_id"] != body["job_id"] and keyed.stored_jobs() == jobs + 1


@pytest.mark.parametrize(
    ("files", "fields"),
    [
        ([("a.jpg", photo(201, 150))], {"face_limit": "300"}),
        ([("a.jpg", photo(200, 150))], {"face_limit": "301"}),
    ],
    ids=["other-bytes", "other-field"],
)
def test_same_key_with_another_request_is_a_mismatch(keyed: Stack, files, fields, tmp_path: Path) -> None:
    key = f"order-m-{fields['face_limit']}-{len(files[0][1])}"
    created(
        post_upload(keyed.url, {**A, "Idempotency-Key": key}, [("a.jpg", photo(200, 150))], face_limit="300")
    )
    jobs = keyed.stored_jobs()
    response = post_upload(keyed.url, {**A, "Idempotency-Key": key}, files, **fields)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error_code"] == "IDEMPOTENCY_MISMATCH" and "different request" in body["message"]
    assert keyed.stored_jobs() == jobs
    (tmp_path / "a.jpg").write_bytes(files[0][1])
    with Client(keyed.url, api_key=KEY_A) as client, pytest.raises(IdempotencyMismatch):
        client.submit(tmp_path / "a.jpg", idempotency_key=key, **fields)


def test_a_request_still_in_progress_elsewhere_is_409_then_replays_once_done(
    keyed: Stack, tmp_path: Path
) -> None:
    """Another API process of the deployment holds the key's claim (its request is running): this one waits."""
    from image2model.api.idempotency import Idempotency, fingerprint
    from image2model.api.security import owner_of
    from image2model.api.uploads import StagedFile, StagedUpload

    image = photo(210, 150)
    staged = StagedUpload(
        staging=Path("unused"),
        files=[StagedFile("b.jpg", Path("unused"), len(image), hashlib.sha256(image).hexdigest())],
        fields={"face_limit": ["400"]},
    )
    fp = fingerprint("POST /api/v1/upload/", staged.request_parts())
    store = keyed_store(keyed)
    try:
        ledger = Idempotency(store, 3600)
        owner, key = owner_of(KEY_A), "order-busy"
        assert store.idempotency_claim(owner, ledger._stored_key(key), fp, time.time(), 3600, 60) is None
        jobs = keyed.stored_jobs()
        busy = post_upload(keyed.url, {**A, "Idempotency-Key": key}, [("b.jpg", image)], face_limit="400")
        assert busy.status_code == 409, busy.text
        assert busy.json()["error_code"] == "IDEMPOTENCY_IN_PROGRESS" and busy.headers["retry-after"] == "1"
        assert keyed.stored_jobs() == jobs
        (tmp_path / "b.jpg").write_bytes(image)
        with Client(keyed.url, api_key=KEY_A) as client, pytest.raises(IdempotencyInProgress):
            client.submit(tmp_path / "b.jpg", idempotency_key=key, face_limit=400)
        first = {
            "job_id": "00000000-0000-4000-8000-000000000001",
            "status": "queued",
            "by": "the other process",
        }
        store.idempotency_finish(owner, ledger._stored_key(key), fp, 200, first, first["job_id"])
        replay = post_upload(keyed.url, {**A, "Idempotency-Key": key}, [("b.jpg", image)], face_limit="400")
        assert replay.status_code == 200 and replay.json() == first
    finally:
        store.close()


def keyed_store(stack: Stack):
    from image2model.api.store.redis import RedisJobStore
    from image2model.api.store.sqlite import SqliteJobStore

    return RedisJobStore(stack.redis_url) if stack.redis_url else SqliteJobStore(stack.data_dir / "state.db")


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "caf\u00e9"])
def test_a_malformed_idempotency_key_is_refused_before_anything_is_stored(keyed: Stack, key: str) -> None:
    jobs = keyed.stored_jobs()
    response = post_upload(keyed.url, {**A, "Idempotency-Key": key.encode()})
    assert response.status_code == 422, response.text
    assert "Idempotency-Key" in response.json()["message"] and keyed.stored_jobs() == jobs


def test_idempotency_keys_survive_an_api_restart(fresh_stack: Stack) -> None:
    stack = fresh_stack
    stack.start_api()
    image = photo(180, 140)
    with Client(stack.url) as client:
        first = client.submit([image], idempotency_key="restart-1")
    stack.stop_api()
    stack.start_api()
    jobs = stack.stored_jobs()
    with Client(stack.url) as client:
        again = client.submit([image], idempotency_key="restart-1")
        with pytest.raises(IdempotencyMismatch):
            client.submit([photo(181, 140)], idempotency_key="restart-1")
    assert again.job_id == first.job_id and again.uploaded_files == first.uploaded_files
    assert stack.stored_jobs() == jobs


# ---- Prefer: wait -------------------------------------------------------------------------------------


def test_prefer_wait_answers_once_the_job_ended_with_its_files(keyed: Stack) -> None:
    started = time.monotonic()
    response = post_upload(keyed.url, {**A, "Prefer": "respond-async, wait=30"}, steps="2")
    took = time.monotonic() - started
    body = created(response)
    assert response.headers["preference-applied"] == "wait=30"
    assert body["status"] == "completed" and took < 25
    assert [f["filename"] for f in body["files"]] == ["mug.glb"]
    assert httpx.get(body["files"][0]["download_url"]).content[:4] == b"glTF"
    with Client(keyed.url, api_key=KEY_A) as client:
        upload = client.submit([photo()], wait=30)
        assert upload.status == "completed" and upload.files and upload.files[0].format == "glb"


def test_prefer_wait_answers_after_n_seconds_when_the_job_is_still_running(keyed: Stack) -> None:
    started = time.monotonic()
    response = post_upload(keyed.url, {**A, "Prefer": "wait=1"}, delay="20", steps="40")
    took = time.monotonic() - started
    body = created(response)
    assert response.headers["preference-applied"] == "wait=1"
    assert body["status"] in ("queued", "processing") and "files" not in body
    assert 1.0 <= took < 8, took
    httpx.post(f"{keyed.url}/api/v1/jobs/{body['job_id']}/cancel", headers=A)


def test_without_prefer_nothing_changes(keyed: Stack) -> None:
    response = post_upload(keyed.url, A)
    body = created(response)
    assert body["status"] == "queued" and "files" not in body and "preference-applied" not in response.headers


@pytest.mark.parametrize("prefer", ["wait=0", "wait=61", "wait=soon", "wait=\u00b2", "wait=" + "9" * 5000])
def test_a_bad_prefer_wait_is_refused_and_stores_nothing(keyed: Stack, prefer: str) -> None:
    jobs = keyed.stored_jobs()
    response = post_upload(keyed.url, {**A, "Prefer": prefer.encode()})
    assert response.status_code == 422, response.text
    assert response.json()["error_code"] == "VALIDATION_ERROR" and keyed.stored_jobs() == jobs
