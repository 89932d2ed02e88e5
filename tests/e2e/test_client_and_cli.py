"""The Python client and the `image2model generate` CLI against the real service."""

from __future__ import annotations

import subprocess
import sys

import pytest
import trimesh

from image2model.core.client import AsyncClient, Client
from image2model.core.errors import UnsupportedMediaType
from tests.support.images import photo
from tests.support.stack import REPO

pytestmark = pytest.mark.e2e


def test_client_submits_follows_events_and_downloads(stack, tmp_path):
    with Client(stack.url) as client:
        job = client.submit([photo(), photo(200, 300, fmt="PNG")], formats=["glb", "stl"], steps=2)
        events = list(client.events(job.job_id))
        assert events[0].type == "task_queued" and events[-1].type == "task_completed"
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        paths = client.download_all(job.job_id, tmp_path)
    assert sorted(p.suffix for p in paths) == [".glb", ".glb", ".stl", ".stl"]
    mesh = trimesh.load(next(p for p in paths if p.suffix == ".stl"))
    assert mesh.is_watertight


def test_client_raises_the_contract_error_for_bad_files(stack):
    with Client(stack.url) as client, pytest.raises(UnsupportedMediaType) as caught:
        client.submit([b"this is not an image"])
    assert caught.value.error_code == "UNSUPPORTED_MEDIA_TYPE"


async def test_async_client_waits_for_the_result(stack):
    async with AsyncClient(stack.url) as client:
        job = await client.submit([photo()])
        snapshot = await client.wait(job.job_id, timeout=30)
        assert snapshot.status == "completed"
        listing = await client.files(job.job_id)
        assert [f.format for f in listing.files] == ["glb"]


def _cli(*args: str, env_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "image2model.cli", "generate", *args, "--server", env_url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_cli_generate_downloads_models(stack, tmp_path):
    image = tmp_path / "vase.jpg"
    image.write_bytes(photo())
    out = tmp_path / "out"
    result = _cli(str(image), "--format", "glb,stl", "-o", str(out), env_url=stack.url)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["vase.glb", "vase.stl"]
    assert (out / "vase.glb").read_bytes()[:4] == b"glTF"


def test_cli_generate_reports_the_api_message_and_fails(stack, tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("just text")
    result = _cli(str(fake), "-o", str(tmp_path / "out"), env_url=stack.url)
    assert result.returncode == 2
    assert "JPEG, PNG or WebP" in result.stderr


def _command(*args: str, env_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "image2model.cli", *args, "--server", env_url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_cli_jobs_lists_the_newest_first_as_a_table_and_delete_removes_them(stack):
    with Client(stack.url) as client:
        older = client.submit([photo()], face_limit=321)
        newer = client.submit([photo()], face_limit=654)
        client.wait(newer.job_id, timeout=60)
    listed = _command("jobs", "-n", "2", env_url=stack.url)
    assert listed.returncode == 0, listed.stderr
    header, first, second = listed.stdout.splitlines()
    assert header.split() == ["JOB", "STATUS", "CREATED", "FILES", "GENERATOR", "FACES"]
    assert first.split()[0] == newer.job_id and first.split()[-1] == "654" and "instant" in first
    assert second.split()[0] == older.job_id and second.split()[-1] == "321"
    completed = _command("jobs", "--status", "completed", "--all", env_url=stack.url)
    assert newer.job_id in completed.stdout

    deleted = _command("delete", older.job_id, newer.job_id, env_url=stack.url)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.splitlines() == [f"deleted {older.job_id}", f"deleted {newer.job_id}"]
    after = _command("jobs", "--all", env_url=stack.url).stdout
    assert older.job_id not in after and newer.job_id not in after
    again = _command("delete", older.job_id, env_url=stack.url)
    assert again.returncode == 2 and "JOB_NOT_FOUND" in again.stderr
