"""HTTP edges against the real service: what an outside tester's bad-input corpus found (numbers that are not ASCII
digits or are too large, bad link tokens), and the conveniences HEAD, If-None-Match, Range and /health at the root.
Every refusal is the JSON error envelope, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.test_jobs import stream_url, upload
from tests.support.images import photo
from tests.support.sse import read_events, wait_status
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

ENVELOPE = {"error", "error_code", "message", "status_code", "details"}
KEY = {"Authorization": "Bearer edge-key"}


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == ENVELOPE and body["error_code"] == code and body["status_code"] == status, body
    return body


@pytest.fixture(scope="module")
def finished(stack: Stack) -> dict:
    job = upload(stack.url, [("cup.jpg", photo())])
    wait_status(stack.url, job["job_id"], {"completed"}, timeout=90)
    return job


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("edges") / "data", api_keys="edge-key").start(workers=1)
    yield s
    s.stop()
    assert "Traceback" not in s.log("api") and "unhandled_error" not in s.log("api"), s.log("api")[-3000:]


# ---- numbers that are not event ids ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["\u00b2", "\u0663", "1\u00b2", "9" * 5000, str(2**63), str(2**64 + 5), "-1", "3.0", "0x10"],
)
def test_a_last_event_id_that_is_not_an_event_id_is_refused_before_streaming(stack, finished, value) -> None:
    response = httpx.get(stream_url(stack.url, finished["job_id"]), headers={"Last-Event-ID": value.encode()})
    body = assert_envelope(response, 422, "VALIDATION_ERROR")
    assert "Last-Event-ID" in body["message"]
    assert "Traceback" not in stack.log("api")


@pytest.mark.parametrize("value", [str(2**63), "9" * 5000, "%C2%B2", "-1"])
def test_a_last_event_id_query_out_of_range_is_refused(stack, finished, value) -> None:
    response = httpx.get(stream_url(stack.url, finished["job_id"]) + f"?last_event_id={value}")
    assert "last_event_id" in assert_envelope(response, 422, "VALIDATION_ERROR")["message"]


def test_the_largest_event_id_streams_nothing_and_ends_cleanly(stack, finished) -> None:
    url = stream_url(stack.url, finished["job_id"]) + f"?last_event_id={2**63 - 1}"
    assert read_events(url, timeout=10) == []
    assert read_events(stream_url(stack.url, finished["job_id"]), headers={"Last-Event-ID": "9" * 18}) == []


# ---- signed link tokens ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed_job(keyed: Stack) -> dict:
    response = httpx.post(
        f"{keyed.url}/api/v1/upload/", files=[("files", ("a.jpg", photo(), "image/jpeg"))], headers=KEY
    )
    assert response.status_code == 200, response.text
    job = response.json()
    wait_status(keyed.url, job["job_id"], {"completed"}, timeout=90, headers=KEY)
    return job


@pytest.mark.parametrize("token", ["%C2%B2.x", "%D9%A3.abc", "1%C2%B2.x", "9" * 150 + ".x", "1.%C3%A9"])
@pytest.mark.parametrize("path", ["status/tasks/{job}", "download/{job}/all", "status/tasks/{job}/stream"])
def test_a_token_with_odd_digits_is_401_not_500(keyed, keyed_job, token, path) -> None:
    url = f"{keyed.url}/api/v1/{path.format(job=keyed_job['job_id'])}?token={token}"
    assert "not valid" in assert_envelope(httpx.get(url), 401, "UNAUTHORIZED")["message"]


def test_an_oversized_token_is_refused_as_malformed(keyed, keyed_job) -> None:
    url = f"{keyed.url}/api/v1/status/tasks/{keyed_job['job_id']}?token={'9' * 5000}.x"
    assert_envelope(httpx.get(url), 422, "VALIDATION_ERROR")


def test_a_bogus_token_gets_the_same_answer_for_a_real_and_a_made_up_job(keyed, keyed_job) -> None:
    real, ghost = keyed_job["job_id"], "00000000-0000-4000-8000-000000000000"
    for path in ("status/tasks/{}", "download/{}/all", "status/tasks/{}/stream", "download/{}/a.glb"):
        answers = [
            httpx.get(f"{keyed.url}/api/v1/{path.format(job)}?token=1999999999.AAAA") for job in (real, ghost)
        ]
        assert [a.status_code for a in answers] == [401, 401], path
        assert answers[0].json() == answers[1].json(), path
    # a valid token of a job that is gone (or never was this one's) opens nothing either
    token = keyed_job["links"]["status"].rsplit("token=", 1)[1]
    assert httpx.get(f"{keyed.url}/api/v1/status/tasks/{ghost}?token={quote(token)}").status_code == 401
    assert httpx.get(keyed_job["links"]["status"]).status_code == 200


# ---- HEAD, If-None-Match, Range -------------------------------------------------------------------------


def test_head_on_the_listing_and_a_download_answers_headers_without_a_body(stack, finished) -> None:
    listing_url = f"{stack.url}/api/v1/download/{finished['job_id']}/all"
    get = httpx.get(listing_url)
    head = httpx.head(listing_url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == "application/json"
    assert int(head.headers["content-length"]) == len(get.content)
    entry = get.json()["files"][0]
    file_head = httpx.head(entry["download_url"])
    assert file_head.status_code == 200 and file_head.content == b""
    assert file_head.headers["content-type"] == "model/gltf-binary"
    assert int(file_head.headers["content-length"]) == entry["size"] and file_head.headers["etag"]
    assert httpx.head(f"{stack.url}/api/v1/download/{finished['job_id']}/nothing.glb").status_code == 404


def test_if_none_match_with_the_downloads_etag_is_304(stack, finished) -> None:
    url = httpx.get(f"{stack.url}/api/v1/download/{finished['job_id']}/all").json()["files"][0][
        "download_url"
    ]
    first = httpx.get(url)
    etag = first.headers["etag"]
    for match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = httpx.get(url, headers={"If-None-Match": match})
        assert again.status_code == 304 and again.content == b"", match
        assert (
            again.headers["etag"] == etag and again.headers["cache-control"] == first.headers["cache-control"]
        )
    changed = httpx.get(url, headers={"If-None-Match": '"not-this-one"'})
    assert changed.status_code == 200 and changed.content == first.content
    assert httpx.head(url, headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize(
    ("header", "status", "code"),
    [
        ("bytes=999999-", 416, "RANGE_NOT_SATISFIABLE"),
        ("items=0-3", 400, "VALIDATION_ERROR"),
        ("bytes=5-2", 400, "VALIDATION_ERROR"),
        ("bytes", 400, "VALIDATION_ERROR"),
    ],
)
def test_a_bad_range_is_a_json_error(stack, finished, header, status, code) -> None:
    url = httpx.get(f"{stack.url}/api/v1/download/{finished['job_id']}/all").json()["files"][0][
        "download_url"
    ]
    response = httpx.get(url, headers={"Range": header})
    body = assert_envelope(response, status, code)
    if status == 416:
        size = int(httpx.head(url).headers["content-length"])
        assert response.headers["content-range"] == f"bytes */{size}" and body["details"]["size"] == size


def test_good_ranges_and_if_range_still_work(stack, finished) -> None:
    url = httpx.get(f"{stack.url}/api/v1/download/{finished['job_id']}/all").json()["files"][0][
        "download_url"
    ]
    whole = httpx.get(url)
    part = httpx.get(url, headers={"Range": "bytes=0-3"})
    assert part.status_code == 206 and part.content == b"glTF"
    stale = httpx.get(url, headers={"Range": "bytes=0-3", "If-Range": '"an-old-etag"'})
    assert stale.status_code == 200 and stale.content == whole.content
    fresh = httpx.get(url, headers={"Range": "bytes=4-7", "If-Range": whole.headers["etag"]})
    assert fresh.status_code == 206 and fresh.content == whole.content[4:8]


# ---- health and methods ---------------------------------------------------------------------------------


def test_health_answers_at_the_root_too(stack) -> None:
    for url in (f"{stack.url}/health", f"{stack.url}/api/v1/health"):
        assert httpx.get(url).json() == {"status": "ok"}
        head = httpx.head(url)
        assert head.status_code == 200 and head.content == b""


def test_an_unsupported_method_lists_every_allowed_one(stack, finished) -> None:
    response = httpx.put(f"{stack.url}/api/v1/download/{finished['job_id']}/all")
    assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "GET, HEAD"
    assert httpx.post(f"{stack.url}/health").headers["allow"] == "GET, HEAD"


@pytest.fixture(scope="module")
def cors(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("cors") / "data", cors_origins="https://app.example")
    s.start_api()
    yield s
    s.stop()


def test_a_refused_cors_preflight_is_a_json_error_and_an_allowed_one_passes(cors: Stack) -> None:
    url = f"{cors.url}/api/v1/jobs"
    asked = {"Access-Control-Request-Method": "DELETE", "Access-Control-Request-Headers": "idempotency-key"}
    refused = httpx.options(url, headers={"Origin": "https://evil.example", **asked})
    assert "origin" in assert_envelope(refused, 400, "VALIDATION_ERROR")["message"]
    allowed = httpx.options(url, headers={"Origin": "https://app.example", **asked})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "DELETE" in allowed.headers["access-control-allow-methods"]
