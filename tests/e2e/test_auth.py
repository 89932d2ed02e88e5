"""API keys, job ownership and signed links against the real service."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from tests.support.images import photo
from tests.support.sse import read_events
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

KEY_A = {"Authorization": "Bearer key-a"}
KEY_B = {"Authorization": "Bearer key-b"}
TERMINAL = ("completed", "failed", "cancelled")


def upload(base: str, headers: dict[str, str], name: str = "mug.jpg", **fields: str) -> httpx.Response:
    return httpx.post(
        f"{base}/api/v1/upload/",
        files=[("files", (name, photo(), "image/jpeg"))],
        data=fields,
        headers=headers,
        timeout=30,
    )


def wait_terminal(base: str, job_id: str, headers: dict[str, str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    for _ in range(2000):
        response = httpx.get(f"{base}/api/v1/status/tasks/{job_id}", headers=headers, timeout=5)
        assert response.status_code == 200, response.text
        snap = response.json()
        if snap["status"] in TERMINAL or time.monotonic() > deadline:
            return snap
        time.sleep(0.05)
    return snap


def assert_error(response: httpx.Response, status: int, code: str, *phrases: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] is True and body["error_code"] == code and body["status_code"] == status, body
    assert set(body) == {"error", "error_code", "message", "status_code", "details"}
    for phrase in phrases:
        assert phrase.lower() in body["message"].lower(), body["message"]
    return body


def assert_unauthorized(response: httpx.Response, *phrases: str) -> dict:
    body = assert_error(response, 401, "UNAUTHORIZED", *phrases)
    assert response.headers["www-authenticate"] == "Bearer"
    return body


def with_token(url: str, token: str | None) -> str:
    """`url` with its `token` query parameter replaced (or removed when None)."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items() if k != "token"}
    if token is not None:
        query["token"] = token
    return urlunsplit(parts._replace(query=urlencode(query)))


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][-1]


def job_paths(job_id: str) -> dict[str, tuple[str, str]]:
    return {
        "status": ("GET", f"/api/v1/status/tasks/{job_id}"),
        "stream": ("GET", f"/api/v1/status/tasks/{job_id}/stream"),
        "progress": ("GET", f"/api/v1/status/jobs/{job_id}/progress"),
        "listing": ("GET", f"/api/v1/download/{job_id}/all"),
        "download": ("GET", f"/api/v1/download/{job_id}/mug.glb"),
        "cancel": ("POST", f"/api/v1/jobs/{job_id}/cancel"),
    }


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("keyed") / "data", api_keys="key-a,key-b").start()
    yield s
    s.stop()
    assert "Traceback" not in s.log("api")


@pytest.fixture(scope="module")
def job_a(keyed: Stack) -> dict:
    """A completed job of key-a (created with the X-API-Key header)."""
    response = upload(keyed.url, {"X-API-Key": "key-a"})
    assert response.status_code == 200, response.text
    job = response.json()
    assert wait_terminal(keyed.url, job["job_id"], KEY_A)["status"] == "completed"
    return job


@pytest.fixture(scope="module")
def job_b(keyed: Stack) -> dict:
    """A completed job of key-b."""
    response = upload(keyed.url, KEY_B, name="vase.jpg")
    assert response.status_code == 200, response.text
    job = response.json()
    assert wait_terminal(keyed.url, job["job_id"], KEY_B)["status"] == "completed"
    return job


# ---- keys ---------------------------------------------------------------------------------------------


def test_upload_without_a_key_is_401_with_bearer_challenge_and_stores_nothing(keyed):
    before = keyed.stored_jobs()
    assert_unauthorized(upload(keyed.url, {}), "API key is required")
    assert keyed.stored_jobs() == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer key-c"},
        {"Authorization": "Bearer key-ab"},
        {"Authorization": "Bearer KEY-A"},
        {"X-API-Key": "key-"},
        {"Authorization": "Basic a2V5LWE6"},
        {"Authorization": "key-a"},
    ],
)
def test_wrong_key_is_401_on_upload_and_reads(keyed, job_a, headers):
    before = keyed.stored_jobs()
    assert_unauthorized(upload(keyed.url, headers))
    assert keyed.stored_jobs() == before
    response = httpx.get(f"{keyed.url}/api/v1/status/tasks/{job_a['job_id']}", headers=headers)
    assert_unauthorized(response)


def test_wrong_key_is_401_even_with_a_valid_signed_link(keyed, job_a):
    response = httpx.get(job_a["links"]["status"], headers={"X-API-Key": "nope"})
    assert_unauthorized(response, "not valid")


def test_reading_someone_elses_job_without_any_key_is_401(keyed, job_a):
    for name, (method, path) in job_paths(job_a["job_id"]).items():
        response = httpx.request(method, keyed.url + path, timeout=10)
        assert response.status_code == 401, (name, response.text)
        assert_unauthorized(response)


def test_missing_key_is_401_even_for_a_job_that_does_not_exist(keyed):
    # Otherwise a caller without a key can tell existing job ids (401) from made-up ones (404).
    response = httpx.get(f"{keyed.url}/api/v1/status/tasks/00000000-0000-4000-8000-000000000000")
    assert_unauthorized(response)


def test_bearer_and_x_api_key_headers_both_work(keyed, job_a):
    job_id = job_a["job_id"]
    for headers in (KEY_A, {"X-API-Key": "key-a"}, {"authorization": "bearer key-a"}):
        response = httpx.get(f"{keyed.url}/api/v1/status/tasks/{job_id}", headers=headers)
        assert response.status_code == 200, (headers, response.text)
        assert response.json()["job_id"] == job_id
    response = upload(keyed.url, KEY_A, name="second.jpg")
    assert response.status_code == 200, response.text
    assert (
        wait_terminal(keyed.url, response.json()["job_id"], {"X-API-Key": "key-a"})["status"] == "completed"
    )


def test_open_endpoints_need_no_key(keyed):
    assert httpx.get(f"{keyed.url}/api/v1/health").status_code == 200
    models = httpx.get(f"{keyed.url}/api/v1/models/available")
    assert models.status_code == 200 and "instant" in [m["name"] for m in models.json()["models"]]


# ---- ownership ----------------------------------------------------------------------------------------


def test_another_keys_job_is_not_found_everywhere(keyed, job_a):
    job_id = job_a["job_id"]
    for name, (method, path) in job_paths(job_id).items():
        response = httpx.request(method, keyed.url + path, headers=KEY_B, timeout=10)
        assert response.status_code == 404, (name, response.text)
        assert response.headers["content-type"].startswith("application/json"), name
        assert_error(response, 404, "JOB_NOT_FOUND", job_id)
    # and it is exactly what a job that never existed looks like
    ghost = httpx.get(f"{keyed.url}/api/v1/status/tasks/{job_id[:-4]}ffff", headers=KEY_B).json()
    mine = httpx.get(f"{keyed.url}/api/v1/status/tasks/{job_id}", headers=KEY_B).json()
    assert {k: v for k, v in ghost.items() if k != "message"} == {
        k: v for k, v in mine.items() if k != "message"
    }
    # the owner still has it, untouched by the other key's cancel
    snap = httpx.get(f"{keyed.url}/api/v1/status/tasks/{job_id}", headers=KEY_A).json()
    assert snap["status"] == "completed"


def test_another_key_cannot_cancel_a_running_job(keyed):
    response = upload(keyed.url, KEY_A, name="slow.jpg", delay="3", steps="30")
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]
    refused = httpx.post(f"{keyed.url}/api/v1/jobs/{job_id}/cancel", headers=KEY_B)
    assert_error(refused, 404, "JOB_NOT_FOUND")
    snap = httpx.get(f"{keyed.url}/api/v1/status/tasks/{job_id}", headers=KEY_A).json()
    assert snap["status"] in ("queued", "processing") and snap["message"] != "cancelling", snap
    own = httpx.post(f"{keyed.url}/api/v1/jobs/{job_id}/cancel", headers=KEY_A)
    assert own.status_code == 200, own.text
    assert wait_terminal(keyed.url, job_id, KEY_A)["status"] == "cancelled"


# ---- signed links -------------------------------------------------------------------------------------


def test_upload_links_work_without_any_header(keyed, job_a):
    links = job_a["links"]
    assert {"status", "stream", "files"} <= links.keys()
    status = httpx.get(links["status"])
    assert status.status_code == 200 and status.json()["job_id"] == job_a["job_id"]
    if "progress" in links:
        progress = httpx.get(links["progress"])
        assert progress.status_code == 200 and progress.json()["completed_files"] == 1
    events = read_events(links["stream"], timeout=15)
    assert events[0].event == "task_queued" and events[-1].event == "task_completed"
    listing = httpx.get(links["files"])
    assert listing.status_code == 200 and listing.json()["total_files"] == 1


def test_listing_download_and_preview_links_work_without_any_header(keyed, job_a):
    listing = httpx.get(f"{keyed.url}/api/v1/download/{job_a['job_id']}/all", headers=KEY_A).json()
    entry = listing["files"][0]
    assert listing["download_urls"] == [entry["download_url"]]
    model = httpx.get(entry["download_url"])
    assert model.status_code == 200 and model.content[:4] == b"glTF"
    preview = httpx.get(entry["preview_url"])
    assert preview.status_code == 200 and preview.content[:8] == b"\x89PNG\r\n\x1a\n"
    # the same URL without its token is refused
    assert_unauthorized(httpx.get(with_token(entry["download_url"], None)))


def test_a_token_for_one_job_does_not_open_another(keyed, job_a, job_b):
    token_a = token_of(job_a["links"]["status"])
    for name, (method, path) in job_paths(job_b["job_id"]).items():
        if method != "GET":
            continue
        path = path.replace("mug.glb", "vase.glb")
        response = httpx.get(f"{keyed.url}{path}?token={token_a}", timeout=10)
        assert response.status_code in (401, 404), (name, response.text)
        assert response.json()["error_code"] in ("UNAUTHORIZED", "JOB_NOT_FOUND"), name
    # and the other way round, with key-a's header added: still not key-b's job
    token_b = token_of(job_b["links"]["status"])
    response = httpx.get(f"{keyed.url}/api/v1/status/tasks/{job_a['job_id']}?token={token_b}", headers=KEY_B)
    assert response.status_code in (401, 404), response.text


def test_a_tampered_token_fails(keyed, job_a):
    url = job_a["links"]["status"]
    expires, _, signature = token_of(url).partition(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for bad in (
        f"{expires}.{flipped}",  # signature changed
        f"{int(expires) + 3600}.{signature}",  # expiry pushed out
        f"{expires}.",  # signature dropped
        signature,  # expiry dropped
        "",
        "9999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ):
        response = httpx.get(with_token(url, bad))
        assert_unauthorized(response)
    assert httpx.get(url).status_code == 200


def test_signed_links_cannot_upload_or_cancel(keyed, job_a):
    token = token_of(job_a["links"]["status"])
    before = keyed.stored_jobs()
    response = httpx.post(
        f"{keyed.url}/api/v1/upload/?token={token}",
        files=[("files", ("mug.jpg", photo(), "image/jpeg"))],
    )
    assert_unauthorized(response, "API key is required")
    assert keyed.stored_jobs() == before
    slow = upload(keyed.url, KEY_A, name="slow.jpg", delay="3", steps="30").json()
    cancel = httpx.post(
        f"{keyed.url}/api/v1/jobs/{slow['job_id']}/cancel?token={token_of(slow['links']['status'])}"
    )
    assert_unauthorized(cancel, "API key is required")
    snap = httpx.get(slow["links"]["status"]).json()
    assert snap["status"] in ("queued", "processing") and snap["message"] != "cancelling", snap
    assert httpx.post(f"{keyed.url}/api/v1/jobs/{slow['job_id']}/cancel", headers=KEY_A).status_code == 200


# ---- link expiry --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_links(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Links live one second; no worker, so jobs stay queued (reads need no finished job)."""
    s = Stack(tmp_path_factory.mktemp("short") / "data", api_keys="key-a", link_ttl_seconds="1")
    s.start_api()
    yield s
    s.stop()


def fresh_links(base: str, job_id: str, at_least: float = 0.4) -> dict[str, str]:
    """Links with at least `at_least` seconds left (tokens carry whole-second expiry times)."""
    for _ in range(40):
        links = httpx.get(f"{base}/api/v1/status/tasks/{job_id}", headers=KEY_A).json()["links"]
        if int(token_of(links["status"]).partition(".")[0]) - time.time() >= at_least:
            return links
        time.sleep(0.1)
    raise AssertionError("never got a link with time left")


def test_signed_links_expire(short_links):
    response = upload(short_links.url, KEY_A)
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]
    links = fresh_links(short_links.url, job_id)
    assert httpx.get(links["status"]).status_code == 200
    assert httpx.get(links["files"]).status_code == 200
    expires = int(token_of(links["status"]).partition(".")[0])
    deadline = time.monotonic() + 5
    while time.time() < expires + 1.1 and time.monotonic() < deadline:
        time.sleep(0.1)
    for name in ("status", "stream", "files"):
        assert_unauthorized(httpx.get(links[name]), "expired")
    # the key still works, and hands out fresh links that work again
    renewed = fresh_links(short_links.url, job_id)
    assert token_of(renewed["status"]) != token_of(links["status"])
    assert httpx.get(renewed["status"]).status_code == 200


# ---- auth off -------------------------------------------------------------------------------------------


def test_with_auth_off_everything_works_without_headers(stack):
    before = stack.stored_jobs()
    response = upload(stack.url, {})
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]
    assert stack.stored_jobs() == before + 1
    events = read_events(f"{stack.url}/api/v1/status/tasks/{job_id}/stream", timeout=20)
    assert events[-1].event == "task_completed"
    for name, (method, path) in job_paths(job_id).items():
        if method == "GET" and name != "stream":
            assert httpx.get(stack.url + path).status_code == 200, name
    assert httpx.get(f"{stack.url}/api/v1/status/tasks/{job_id}").json()["status"] == "completed"
    slow = upload(stack.url, {}, name="slow.jpg", delay="3", steps="30").json()
    assert httpx.post(f"{stack.url}/api/v1/jobs/{slow['job_id']}/cancel").status_code == 200
    assert wait_terminal(stack.url, slow["job_id"], {})["status"] == "cancelled"
