"""Bad input against the real service: each case gets the contract's error envelope, the right status and code,
a message a user can act on, never a 500, and leaves nothing behind (no job, no blob, no staging directory)."""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import stored_files
from tests.support.images import photo, png_bomb, rotated_jpeg
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
ENVELOPE_KEYS = {"error", "error_code", "message", "status_code", "details"}


# ---- helpers ------------------------------------------------------------------------------------------


class Recorder:
    """Every status code the server answered in this module (to prove it never said 500)."""

    def __init__(self) -> None:
        self.statuses: list[tuple[str, str, int]] = []

    def hook(self, response: httpx.Response) -> None:
        self.statuses.append((response.request.method, str(response.request.url), response.status_code))


RECORDER = Recorder()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60, event_hooks={"response": [RECORDER.hook]}) as c:
        yield c


@pytest.fixture(scope="module")
def small_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API process with a 100 kB file limit and 3 files per upload (no worker: nothing should run)."""
    s = Stack(tmp_path_factory.mktemp("small") / "data", max_file_size="100000", max_files="3")
    s.start_api()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def _no_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test: no 500 answered, and no traceback in the API logs of the stacks it used."""
    seen = len(RECORDER.statuses)
    yield
    errors = [s for s in RECORDER.statuses[seen:] if s[2] >= 500]
    assert not errors, f"server errors: {errors}"
    for name in ("stack", "small_stack"):
        if name in request.fixturenames:
            log = request.getfixturevalue(name).log("api")
            assert "Traceback" not in log and "unhandled_error" not in log, log[-3000:]


def staging_entries(data_dir: Path) -> list[Path]:
    staging = data_dir / "staging"
    return sorted(staging.iterdir()) if staging.exists() else []


@contextmanager
def nothing_stored(stack: Stack) -> Iterator[None]:
    """Assert the block adds no job, no file under blobs/ or staging/, and no staging directory."""
    data_dir = stack.data_dir
    jobs, files, staging = stack.stored_jobs(), sorted(stored_files(data_dir)), staging_entries(data_dir)
    yield
    assert stack.stored_jobs() == jobs
    assert sorted(stored_files(data_dir)) == files
    assert staging_entries(data_dir) == staging


def assert_error(response: httpx.Response, status: int, code: str, *phrases: str) -> dict:
    """The contract's envelope with this status and code, and a message containing each phrase."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == ENVELOPE_KEYS, body
    assert body["error"] is True and body["error_code"] == code and body["status_code"] == status, body
    assert isinstance(body["details"], dict) and isinstance(body["message"], str), body
    for phrase in phrases:
        assert phrase.lower() in body["message"].lower(), body["message"]
    return body


def error_fields(body: dict) -> list[str]:
    return [e["field"] for e in body["details"]["errors"]]


def upload(client: httpx.Client, base: str, files: list[tuple[str, bytes]], **fields: str) -> httpx.Response:
    return client.post(
        f"{base}/api/v1/upload/",
        files=[("files", (name, data, "image/jpeg")) for name, data in files],
        data=fields,
    )


def raw_multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    """A multipart body written byte by byte: (field name, filename or None, content). Filenames go out verbatim."""
    boundary = uuid.uuid4().hex
    out = bytearray()
    for name, filename, content in parts:
        out += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"Content-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def post_raw(client: httpx.Client, base: str, parts: list[tuple[str, str | None, bytes]]) -> httpx.Response:
    body, ctype = raw_multipart(parts)
    return client.post(f"{base}/api/v1/upload/", content=body, headers={"Content-Type": ctype})


def wait_terminal(client: httpx.Client, base: str, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    for _ in range(2000):
        snap = client.get(f"{base}/api/v1/status/tasks/{job_id}").json()
        if snap["status"] in ("completed", "failed", "cancelled"):
            return snap
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {snap['status']} after {timeout} s")


@pytest.fixture(scope="module")
def finished_job(stack: Stack, client: httpx.Client) -> dict:
    """A job that completed, to poke at with wrong file names and a late cancel."""
    response = upload(client, stack.url, [("cup.jpg", photo())])
    assert response.status_code == 200, response.text
    job = response.json()
    assert wait_terminal(client, stack.url, job["job_id"])["status"] == "completed"
    return job


# ---- damaged and wrong content ------------------------------------------------------------------------


def test_empty_file_is_rejected_and_nothing_is_stored(stack, client):
    with nothing_stored(stack):
        body = assert_error(upload(client, stack.url, [("empty.jpg", b"")]), 400, "VALIDATION_ERROR", "empty")
    assert error_fields(body) == ["empty.jpg"]


def test_truncated_jpeg_is_rejected_and_nothing_is_stored(stack, client):
    whole = photo(640, 480)
    with nothing_stored(stack):
        response = upload(client, stack.url, [("half.jpg", whole[: len(whole) // 2])])
        body = assert_error(response, 400, "VALIDATION_ERROR", "half.jpg", "truncated")
    assert error_fields(body) == ["half.jpg"]


def test_text_file_renamed_jpg_is_unsupported_media_and_nothing_is_stored(stack, client):
    text = b"Dear diary, today I uploaded a text file pretending to be a photo.\n" * 20
    with nothing_stored(stack):
        response = upload(client, stack.url, [("notes.jpg", text)])
        body = assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE", "notes.jpg", "JPEG, PNG or WebP")
    assert error_fields(body) == ["notes.jpg"]


def test_gif_is_unsupported_media_and_nothing_is_stored(stack, client):
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 10)).save(buf, format="GIF")
    with nothing_stored(stack):
        response = upload(client, stack.url, [("anim.png", buf.getvalue())])
        assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE", "anim.png", "GIF")


@pytest.mark.parametrize(
    ("width", "height", "phrase"),
    [(30000, 30000, "too many pixels"), (8000, 6000, "8000x6000 pixels")],  # past Pillow's own alarm; ours
)
def test_decompression_bomb_is_too_large_and_nothing_is_stored(stack, client, width, height, phrase):
    bomb = png_bomb(width, height)
    assert len(bomb) < 200_000  # small on the wire, tens of megapixels or more when decoded
    with nothing_stored(stack):
        response = upload(client, stack.url, [("bomb.png", bomb)])
        body = assert_error(response, 413, "FILE_TOO_LARGE", "bomb.png", phrase, "40 megapixels")
    assert body["details"]["max_pixels"] == 40_000_000
    assert error_fields(body) == ["bomb.png"]


def test_mixed_upload_with_one_text_file_stores_nothing(stack, client):
    with nothing_stored(stack):
        response = upload(client, stack.url, [("good.jpg", photo()), ("readme.jpg", b"just text\n" * 50)])
        body = assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE", "readme.jpg")
    assert error_fields(body) == ["readme.jpg"]


def test_several_bad_files_are_all_named_in_one_answer(stack, client):
    with nothing_stored(stack):
        response = upload(client, stack.url, [("a.jpg", b""), ("b.jpg", b"text"), ("c.jpg", photo())])
        body = assert_error(response, 400, "VALIDATION_ERROR", "a.jpg")
    assert error_fields(body) == ["a.jpg", "b.jpg"]


# ---- counts and sizes ---------------------------------------------------------------------------------


def test_twenty_six_files_are_too_many_and_nothing_is_stored(stack, client):
    small = photo(32, 32)
    with nothing_stored(stack):
        response = upload(client, stack.url, [(f"p{i}.jpg", small) for i in range(26)])
        body = assert_error(response, 413, "TOO_MANY_FILES", "25")
    assert body["details"]["max_files"] == 25


def test_more_files_than_a_configured_limit_are_too_many(small_stack, client):
    small = photo(32, 32)
    with nothing_stored(small_stack):
        response = upload(client, small_stack.url, [(f"p{i}.jpg", small) for i in range(4)])
        body = assert_error(response, 413, "TOO_MANY_FILES", "at most 3")
    assert body["details"]["max_files"] == 3


def test_file_over_configured_size_limit_is_too_large_and_nothing_is_stored(small_stack, client):
    big = b"\xff\xd8\xff\xe0" + os.urandom(150_000)
    with nothing_stored(small_stack):
        response = upload(client, small_stack.url, [("ok.jpg", photo(32, 32)), ("big.jpg", big)])
        body = assert_error(response, 413, "FILE_TOO_LARGE", "big.jpg", "larger than")
    assert body["details"] == {"filename": "big.jpg", "max_file_size": 100_000}


def test_file_exactly_at_configured_size_limit_gets_past_the_size_check(small_stack, client):
    # 100,000 bytes exactly is allowed by size; it is then judged by content (text: 415), not 413.
    with nothing_stored(small_stack):
        response = upload(client, small_stack.url, [("edge.jpg", b"x" * 100_000)])
        assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE", "edge.jpg")


def test_file_one_byte_over_ten_mib_is_too_large_and_nothing_is_stored(stack, client):
    big = b"\xff\xd8\xff\xe0" + os.urandom(10 * MiB - 3)
    assert len(big) == 10 * MiB + 1
    with nothing_stored(stack):
        response = upload(client, stack.url, [("huge.jpg", big)])
        body = assert_error(response, 413, "FILE_TOO_LARGE", "huge.jpg", "10 MiB")
    assert body["details"]["max_file_size"] == 10 * MiB


def test_declared_body_far_over_the_limits_is_refused_up_front(small_stack, client):
    body, ctype = raw_multipart([("files", "x.jpg", b"tiny")])
    with nothing_stored(small_stack):
        response = client.post(
            f"{small_stack.url}/api/v1/upload/",
            content=body + b" " * 8_000_000,  # over 3 x 100 kB plus the 6.5 MB form-field allowance
            headers={"Content-Type": ctype},
        )
        assert_error(response, 413, "FILE_TOO_LARGE", "MiB")


# ---- options --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "phrase"),
    [("lots", "whole number"), ("11", "at least 12"), ("200001", "at most 200000"), ("1e3", "whole number")],
)
def test_bad_face_limit_is_a_validation_error_naming_face_limit(stack, client, value, phrase):
    with nothing_stored(stack):
        response = upload(client, stack.url, [("mug.jpg", photo())], face_limit=value)
        body = assert_error(response, 400, "VALIDATION_ERROR", "face_limit", phrase)
    assert error_fields(body) == ["face_limit"]


def test_unknown_generator_is_a_validation_error_listing_the_offered_ones(stack, client):
    with nothing_stored(stack):
        response = upload(client, stack.url, [("mug.jpg", photo())], generator="dream-machine")
        body = assert_error(response, 400, "VALIDATION_ERROR", "dream-machine", "instant")
    assert error_fields(body) == ["generator"]


def test_unknown_option_is_a_validation_error_naming_it(stack, client):
    with nothing_stored(stack):
        response = upload(client, stack.url, [("mug.jpg", photo())], colour="red")
        body = assert_error(response, 400, "VALIDATION_ERROR", "unknown option")
    assert error_fields(body) == ["colour"]


def test_unsupported_output_format_is_a_validation_error(stack, client):
    with nothing_stored(stack):
        response = upload(client, stack.url, [("mug.jpg", photo())], formats="glb,fbx")
        body = assert_error(response, 400, "VALIDATION_ERROR", "fbx", "glb, stl")
    assert error_fields(body) == ["formats"]


def test_every_bad_option_is_reported_at_once(stack, client):
    with nothing_stored(stack):
        response = upload(
            client, stack.url, [("mug.jpg", photo())], face_limit="3", delay="soon", formats="xyz"
        )
        body = assert_error(response, 400, "VALIDATION_ERROR")
    assert sorted(error_fields(body)) == ["delay", "face_limit", "formats"]


# ---- names and shapes of the request -----------------------------------------------------------------


@pytest.mark.parametrize("filename", ["../../etc/passwd.png", "a/b.png", "..\\x.png", "..", "/abs.png"])
def test_path_like_filename_is_rejected_and_nothing_is_stored(stack, client, filename):
    with nothing_stored(stack):
        response = post_raw(client, stack.url, [("files", filename, photo())])
        body = assert_error(response, 400, "VALIDATION_ERROR", "path")
    assert error_fields(body) == [filename]
    assert not (stack.data_dir.parent / "etc").exists()


def test_upload_with_no_files_is_a_validation_error(stack, client):
    with nothing_stored(stack):
        response = post_raw(client, stack.url, [("face_limit", None, b"500")])
        body = assert_error(response, 400, "VALIDATION_ERROR", "no images")
    assert error_fields(body) == ["files"]


def test_file_in_an_unexpected_field_is_a_validation_error(stack, client):
    with nothing_stored(stack):
        response = post_raw(client, stack.url, [("image", "mug.jpg", photo())])
        body = assert_error(response, 400, "VALIDATION_ERROR", "'files'")
    assert error_fields(body) == ["image"]


@pytest.mark.parametrize(
    ("content", "ctype"),
    [
        (b'{"files": []}', "application/json"),
        (b"face_limit=500", "application/x-www-form-urlencoded"),
        (b"", None),
        (b"--x\r\nContent-Disposition: form-data", "multipart/form-data"),  # no boundary parameter
    ],
)
def test_body_that_is_not_multipart_is_malformed_422(stack, client, content, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    with nothing_stored(stack):
        response = client.post(f"{stack.url}/api/v1/upload/", content=content, headers=headers)
        body = assert_error(response, 422, "VALIDATION_ERROR", "multipart/form-data")
    assert error_fields(body) == ["content-type"]


def test_garbled_multipart_body_is_malformed_and_nothing_is_stored(stack, client):
    body, ctype = raw_multipart([("files", "mug.jpg", photo())])
    with nothing_stored(stack):
        response = client.post(
            f"{stack.url}/api/v1/upload/",
            content=b"garbage before any boundary\r\n" + body.replace(b"\r\n\r\n", b"\n", 1),
            headers={"Content-Type": ctype},
        )
        assert response.status_code in (400, 422), response.text
        assert_error(response, response.status_code, "VALIDATION_ERROR")


# ---- unknown jobs and files ------------------------------------------------------------------------------

UNKNOWN_IDS = [str(uuid.uuid4()), "not-a-uuid", "0" * 300, str(uuid.uuid4()).upper(), "%20"]


def job_urls(job_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/api/v1/status/tasks/{job_id}"),
        ("GET", f"/api/v1/status/tasks/{job_id}/status"),
        ("GET", f"/api/v1/status/jobs/{job_id}/progress"),
        ("GET", f"/api/v1/download/{job_id}/all"),
        ("GET", f"/api/v1/download/{job_id}/model.glb"),
        ("POST", f"/api/v1/jobs/{job_id}/cancel"),
    ]


@pytest.mark.parametrize("job_id", UNKNOWN_IDS)
def test_unknown_job_id_is_job_not_found_everywhere(stack, client, job_id):
    with nothing_stored(stack):
        for method, path in job_urls(job_id):
            response = client.request(method, f"{stack.url}{path}")
            assert_error(response, 404, "JOB_NOT_FOUND", "not found")


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_job_stream_is_a_json_404_before_streaming(stack, client, job_id):
    with client.stream("GET", f"{stack.url}/api/v1/status/tasks/{job_id}/stream") as response:
        response.read()
    assert "text/event-stream" not in response.headers["content-type"]
    assert_error(response, 404, "JOB_NOT_FOUND", job_id)


def test_unknown_file_of_a_real_job_is_file_not_found(stack, client, finished_job):
    job_id = finished_job["job_id"]
    listing = client.get(f"{stack.url}/api/v1/download/{job_id}/all").json()
    assert [f["filename"] for f in listing["files"]] == ["cup.glb"]
    for name in ("nope.glb", "cup.stl", "cup.GLB", "cup.preview.jpg", "state.db", "%2E%2E"):
        response = client.get(f"{stack.url}/api/v1/download/{job_id}/{name}")
        assert_error(response, 404, "FILE_NOT_FOUND", job_id)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/download/{job}/..%2F..%2Fstate.db",
        "/api/v1/download/{job}/%2E%2E%2F%2E%2E%2Fsigning.key",
        "/api/v1/download/..%2F..%2F/state.db",
        "/api/v1/status/tasks/%2E%2E%2Fstate.db",
    ],
)
def test_path_traversal_in_urls_is_a_json_404_and_serves_nothing(stack, client, finished_job, path):
    response = client.get(stack.url + path.format(job=finished_job["job_id"]))
    body = assert_error(response, 404, response.json()["error_code"])
    assert body["error_code"] in ("JOB_NOT_FOUND", "FILE_NOT_FOUND", "NOT_FOUND")
    assert b"SQLite" not in response.content


def test_cancelling_a_finished_job_is_job_finished(stack, client, finished_job):
    job_id = finished_job["job_id"]
    response = client.post(f"{stack.url}/api/v1/jobs/{job_id}/cancel")
    body = assert_error(response, 409, "JOB_FINISHED", "completed")
    assert body["details"] == {"status": "completed"}
    assert client.get(f"{stack.url}/api/v1/status/tasks/{job_id}").json()["status"] == "completed"


# ---- good input that looks odd ----------------------------------------------------------------------


def test_exif_rotated_jpeg_is_accepted_and_the_generator_sees_it_upright(stack, client):
    response = upload(client, stack.url, [("sideways.jpg", rotated_jpeg(300, 200))])
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["uploaded_files"][0]["content_type"] == "image/jpeg"
    snap = wait_terminal(client, stack.url, job["job_id"])
    assert snap["status"] == "completed", snap
    listing = client.get(f"{stack.url}/api/v1/download/{job['job_id']}/all").json()
    assert [f["metadata"]["input_size"] for f in listing["files"]] == [[200, 300]]


def test_server_answered_no_500_in_this_module(stack, small_stack):
    assert len(RECORDER.statuses) > 50
    assert [s for s in RECORDER.statuses if s[2] >= 500] == []
    for s in (stack, small_stack):
        assert "Traceback" not in s.log("api")
