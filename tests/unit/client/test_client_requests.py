"""Requests the client sends and how it reads answers, over real HTTP: uploads, errors, downloads."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakeapi import JOB, FakeAPI, envelope, listing_entry, upload_body

from image2model.core.client import AsyncClient, Client
from image2model.core.errors import (
    FileNotFound,
    FileTooLarge,
    ServerError,
    ServerUnavailable,
    Unauthorized,
    ValidationFailed,
)
from image2model.core.models import JobStatus

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 32


def test_submit_sends_each_image_as_a_files_part_with_form_fields(
    fake: FakeAPI, url: str, tmp_path: Path
) -> None:
    from PIL import Image

    photo = tmp_path / "chair.jpg"
    photo.write_bytes(JPEG)
    pil = Image.new("RGB", (3, 2), "red")
    fake.upload_answer = (200, upload_body(4))
    with Client(url, api_key="k-123") as client:
        resp = client.submit(
            [photo, PNG, io.BytesIO(JPEG), pil],
            face_limit=5000,
            generator="test",
            formats=["glb", "obj"],
            seed=7,
            texture=True,
            extra={"a": 1},
            skipped=None,
        )
    assert resp.job_id == JOB and resp.total_files == 4
    (got,) = fake.uploads
    names = [f["filename"] for f in got["files"]]
    assert names == ["chair.jpg", "image2.png", "image3.jpg", "image4.png"]
    assert [f["content_type"] for f in got["files"]] == ["image/jpeg", "image/png", "image/jpeg", "image/png"]
    assert (
        got["files"][0]["data"] == JPEG and got["files"][1]["data"] == PNG and got["files"][2]["data"] == JPEG
    )
    decoded = Image.open(io.BytesIO(got["files"][3]["data"]))
    assert decoded.format == "PNG" and decoded.size == (3, 2)
    assert got["fields"] == {
        "face_limit": "5000",
        "generator": "test",
        "formats": "glb,obj",
        "seed": "7",
        "texture": "true",
        "extra": '{"a": 1}',
    }
    assert got["headers"]["authorization"] == "Bearer k-123"


async def test_submit_sends_the_webhook_fields_sync_and_async(fake: FakeAPI, url: str) -> None:
    with Client(url) as client:
        client.submit(
            PNG, webhook_url="https://hooks.example.com/in", webhook_events=["task_queued", "task_failed"]
        )
    async with AsyncClient(url) as client:
        await client.submit(PNG, webhook_url="https://hooks.example.com/in", webhook_events="task_completed")
        await client.submit(PNG)
    assert [u["fields"] for u in fake.uploads] == [
        {"webhook_url": "https://hooks.example.com/in", "webhook_events": "task_queued,task_failed"},
        {"webhook_url": "https://hooks.example.com/in", "webhook_events": "task_completed"},
        {},
    ]


async def test_async_submit_streams_a_single_path(fake: FakeAPI, url: str, tmp_path: Path) -> None:
    photo = tmp_path / "a.png"
    photo.write_bytes(PNG * 1000)
    async with AsyncClient(url) as client:
        resp = await client.submit(photo, formats="glb")
    assert resp.status == "queued"
    (got,) = fake.uploads
    assert [f["data"] for f in got["files"]] == [PNG * 1000]
    assert got["fields"] == {"formats": "glb"}
    assert "authorization" not in got["headers"]  # no key configured: no header


def test_missing_image_file_fails_before_any_request(fake: FakeAPI, url: str, tmp_path: Path) -> None:
    with Client(url) as client, pytest.raises(FileNotFoundError):
        client.submit([tmp_path / "nope.jpg"])
    assert fake.uploads == []


def test_settings_come_from_the_environment(fake: FakeAPI, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGE2MODEL_SERVER_URL", url + "/")
    monkeypatch.setenv("IMAGE2MODEL_API_KEY", "env-key")
    with Client() as client:
        assert client.health() == {"status": "ok"}
    assert fake.requests[-1][2]["authorization"] == "Bearer env-key"


@pytest.mark.parametrize(
    ("answer", "exc_type", "code"),
    [
        (
            envelope(413, "FILE_TOO_LARGE", "big.jpg is 12 MiB; the limit is 10 MiB", limit=10),
            FileTooLarge,
            "FILE_TOO_LARGE",
        ),
        (envelope(401, "UNAUTHORIZED", "Missing or invalid API key"), Unauthorized, "UNAUTHORIZED"),
        (
            envelope(
                400,
                "VALIDATION_ERROR",
                "1 file rejected",
                errors=[{"filename": "x.jpg", "message": "not an image"}],
            ),
            ValidationFailed,
            "VALIDATION_ERROR",
        ),
        ((502, "Bad Gateway"), ServerError, "INTERNAL_ERROR"),
    ],
)
def test_error_envelopes_become_typed_exceptions(
    fake: FakeAPI, url: str, answer: tuple[int, object], exc_type: type, code: str
) -> None:
    fake.upload_answer = answer
    with Client(url) as client, pytest.raises(exc_type) as info:
        client.submit(PNG)
    err = info.value
    assert err.error_code == code and err.status_code == answer[0]
    if isinstance(answer[1], dict):
        assert err.message == answer[1]["message"]
        assert err.details == answer[1]["details"]
    else:
        assert "Bad Gateway" in err.message


def test_unreachable_server_names_the_url_and_how_to_start_one(dead_url: str) -> None:
    with Client(dead_url) as client, pytest.raises(ServerUnavailable) as info:
        client.status(JOB)
    assert info.value.error_code == "SERVER_UNAVAILABLE"
    assert dead_url in info.value.message and "image2model serve" in info.value.message


async def test_async_unreachable_server(dead_url: str) -> None:
    async with AsyncClient(dead_url) as client:
        with pytest.raises(ServerUnavailable):
            await client.models()


def test_status_progress_models_cancel_parse_and_hit_the_contract_paths(fake: FakeAPI, url: str) -> None:
    with Client(url) as client:
        assert client.status(JOB).status == JobStatus.COMPLETED
        assert client.progress(JOB).completed_files == 1
        assert client.models().models[0].supported_formats == ["glb", "obj"]
        assert client.cancel(JOB).status == JobStatus.CANCELLED
    paths = [(m, p) for m, p, _ in fake.requests]
    assert paths == [
        ("GET", f"/api/v1/status/tasks/{JOB}"),
        ("GET", f"/api/v1/status/jobs/{JOB}/progress"),
        ("GET", "/api/v1/models/available"),
        ("POST", f"/api/v1/jobs/{JOB}/cancel"),
    ]
    assert fake.cancelled == [JOB]


def test_download_writes_the_file(fake: FakeAPI, url: str, tmp_path: Path) -> None:
    fake.blobs["m.glb"] = b"glTF" + bytes(range(256)) * 1000
    with Client(url) as client:
        saved = client.download(JOB, "m.glb", dest_dir=tmp_path / "new")
    assert saved == tmp_path / "new" / "m.glb"
    assert saved.read_bytes() == fake.blobs["m.glb"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_downloads_get_the_users_normal_permissions(
    fake: FakeAPI, url: str, tmp_path: Path, umask: int
) -> None:
    fake.blobs = {"chair.glb": b"GLB"}
    previous = os.umask(umask)
    try:
        with Client(url) as client:
            saved = client.download("job-1", "chair.glb", tmp_path)
    finally:
        os.umask(previous)
    assert saved.stat().st_mode & 0o777 == 0o666 & ~umask


def test_interrupted_download_leaves_nothing_and_keeps_the_old_file(
    fake: FakeAPI, url: str, tmp_path: Path
) -> None:
    fake.blobs["m.glb"] = b"x" * 200_000
    fake.truncate["m.glb"] = 50_000
    (tmp_path / "m.glb").write_bytes(b"previous")
    with Client(url) as client, pytest.raises(ServerUnavailable):
        client.download(JOB, "m.glb", dest_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.glb"]
    assert (tmp_path / "m.glb").read_bytes() == b"previous"


async def test_async_interrupted_download_leaves_nothing(fake: FakeAPI, url: str, tmp_path: Path) -> None:
    fake.blobs["m.glb"] = b"x" * 200_000
    fake.truncate["m.glb"] = 50_000
    async with AsyncClient(url) as client:
        with pytest.raises(ServerUnavailable):
            await client.download(JOB, "m.glb", dest_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_download_missing_file_raises_and_writes_nothing(fake: FakeAPI, url: str, tmp_path: Path) -> None:
    with Client(url) as client, pytest.raises(FileNotFound):
        client.download(JOB, "absent.glb", dest_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_download_all_filters_formats_and_never_escapes_dest_dir(
    fake: FakeAPI, url: str, tmp_path: Path
) -> None:
    fake.blobs = {"a.glb": b"A", "a.obj": b"O"}
    fake.listing = [
        listing_entry("a.glb"),
        listing_entry("a.obj", fmt="obj"),
        listing_entry("../../evil.glb", url=f"/api/v1/download/{JOB}/a.glb"),
    ]
    dest = tmp_path / "out"
    with Client(url) as client:
        saved = client.download_all(JOB, dest, formats=["glb"])
    assert saved == [dest / "a.glb", dest / "evil.glb"]
    assert sorted(p.name for p in dest.iterdir()) == ["a.glb", "evil.glb"]
    assert not (tmp_path / "evil.glb").exists()


def test_api_key_is_not_sent_to_another_origin(fake: FakeAPI, url: str, tmp_path: Path) -> None:
    fake.blobs["a.glb"] = b"A"
    other = url.replace("127.0.0.1", "localhost")
    fake.listing = [
        listing_entry("a.glb"),
        listing_entry("a.glb", url=f"{other}/api/v1/download/{JOB}/a.glb"),
    ]
    with Client(url, api_key="secret") as client:
        client.download_all(JOB, tmp_path)
    downloads = [h for m, p, h in fake.requests if p.endswith("/a.glb")]
    assert len(downloads) == 2
    assert downloads[0].get("authorization") == "Bearer secret"
    assert "authorization" not in downloads[1]


def test_download_follows_a_redirect_to_object_storage_without_the_key(
    fake: FakeAPI, url: str, tmp_path: Path
) -> None:
    fake.blobs["stored.glb"] = b"glTF from the bucket"
    other = url.replace("127.0.0.1", "localhost")
    fake.redirects["m.glb"] = f"{other}/api/v1/download/{JOB}/stored.glb?X-Amz-Signature=abc"
    with Client(url, api_key="secret") as client:
        saved = client.download(JOB, "m.glb", dest_dir=tmp_path)
    assert saved == tmp_path / "m.glb" and saved.read_bytes() == b"glTF from the bucket"
    hops = [(p, h.get("authorization")) for m, p, h in fake.requests if "/download/" in p]
    assert hops == [
        (f"/api/v1/download/{JOB}/m.glb", "Bearer secret"),
        (f"/api/v1/download/{JOB}/stored.glb", None),
    ]


async def test_async_download_follows_a_redirect(fake: FakeAPI, url: str, tmp_path: Path) -> None:
    fake.blobs["stored.glb"] = b"glTF from the bucket"
    fake.redirects["m.glb"] = f"{url}/api/v1/download/{JOB}/stored.glb"
    async with AsyncClient(url) as client:
        saved = await client.download(JOB, "m.glb", dest_dir=tmp_path)
    assert saved.read_bytes() == b"glTF from the bucket"


def test_generate_submits_follows_and_downloads(fake: FakeAPI, url: str, tmp_path: Path) -> None:
    from fakeapi import frame

    fake.streams = [[frame(1, "task_queued"), frame(2, "task_completed", status="completed", progress=100)]]
    fake.blobs["a.glb"] = b"GLB"
    fake.listing = [listing_entry("a.glb")]
    events: list[int] = []
    with Client(url) as client:
        result = client.generate(
            PNG, dest_dir=tmp_path, on_event=lambda e: events.append(e.seq), face_limit=100
        )
    assert result.ok and result.job_id == JOB
    assert events == [1, 2]
    assert result.paths == [tmp_path / "a.glb"] and result.paths[0].read_bytes() == b"GLB"
    assert fake.uploads[0]["fields"] == {"face_limit": "100"}


def test_importing_the_client_loads_no_server_or_heavy_modules() -> None:
    code = (
        "import sys\n"
        "import image2model.core.client as c\n"
        "c.Client, c.AsyncClient, c.JobResult\n"
        "import image2model.core.client.cli, image2model.core.client.open_cli, image2model.core.client.links\n"
        "heavy = ('fastapi', 'huey', 'numpy', 'PIL', 'trimesh', 'starlette', 'uvicorn',"
        " 'image2model.core.generators', 'image2model.api')\n"
        "print(','.join(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""


def test_cli_module_import_is_light() -> None:
    code = "import sys, image2model.core.client.cli, image2model.core.client.open_cli\nprint('httpx' in sys.modules, 'tqdm' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "False"]
