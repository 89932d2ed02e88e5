"""Blobs in an S3 bucket on a real S3-compatible server process (moto on loopback), through real API and worker
processes: inputs and outputs live only in the bucket, downloads redirect to presigned URLs after the auth check,
a rejected upload stores nothing, retention empties the job's prefix and readiness checks the bucket."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trimesh

from image2model.core.client import Client
from image2model.core.errors import JobNotFound, UnsupportedMediaType
from tests.support.images import photo
from tests.support.s3_server import REGION, S3Server
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

KEY = "s3-test-key"
PREFIX = "deploy"


def _s3_stack(data_dir: Path, server: S3Server, bucket: str, **settings: str) -> Stack:
    stack = Stack(
        data_dir,
        blob_url=f"s3://{bucket}/{PREFIX}",
        s3_endpoint_url=server.endpoint_url,
        s3_region=REGION,
        **settings,
    )
    stack.env.update(server.env)
    return stack


def _local_files(data_dir: Path) -> list[Path]:
    """Files the service left on its own disk: none may hold a blob when blobs live in the bucket."""
    return [p for d in ("blobs", "staging", "work") for p in (data_dir / d).rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server, backend: str) -> str:
    return s3_server.create_bucket()


@pytest.fixture(scope="module")
def s3_stack(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, bucket: str) -> Iterator[Stack]:
    """API, a CPU worker and an I/O worker on S3 blobs, auth on."""
    stack = _s3_stack(tmp_path_factory.mktemp("s3-stack") / "data", s3_server, bucket, api_keys=KEY)
    stack.start_api()
    stack.start_worker(workers=1)
    stack.start_io_worker(threads=2)
    yield stack
    stack.stop()


def test_a_job_on_s3_is_downloaded_through_a_presigned_redirect(
    s3_stack: Stack, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    with Client(s3_stack.url, api_key=KEY) as client:
        job = client.submit([photo()], face_limit=500)
        assert client.wait(job.job_id, timeout=60).status == "completed"
        entry = client.files(job.job_id).files[0]
        path = client.download(entry, dest_dir=tmp_path)
        preview = client.download(job.job_id, "image1.preview.png", dest_dir=tmp_path)

    job_keys = s3_server.keys(bucket, f"{PREFIX}/{job.job_id}/")
    assert job_keys == [
        f"{PREFIX}/{job.job_id}/in/0.jpg",
        f"{PREFIX}/{job.job_id}/out/image1.glb",
        f"{PREFIX}/{job.job_id}/out/image1.master.glb",  # the full-resolution model kept for exports
        f"{PREFIX}/{job.job_id}/out/image1.preview.png",
    ]
    stored = s3_server.client().get_object(Bucket=bucket, Key=f"{PREFIX}/{job.job_id}/out/image1.glb")
    assert path.read_bytes() == stored["Body"].read() and path.read_bytes()[:4] == b"glTF"
    assert path.stat().st_size == entry.size
    assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    mesh = trimesh.load(path, force="mesh")
    assert mesh.is_watertight
    assert _local_files(s3_stack.data_dir) == []

    # The listing's signed link answers with a redirect to the bucket, and only after the auth check.
    redirect = httpx.get(entry.download_url, timeout=10)
    assert redirect.status_code == 307 and redirect.headers["cache-control"] == "no-store"
    location = redirect.headers["location"]
    assert location.startswith(f"{s3_server.endpoint_url}/{bucket}/{PREFIX}/{job.job_id}/out/")
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=300" in location
    assert httpx.get(location, timeout=10).content == path.read_bytes()
    unsigned = entry.download_url.split("?")[0]
    refused = httpx.get(unsigned, timeout=10)
    assert refused.status_code == 401 and "location" not in refused.headers
    forged = httpx.get(f"{unsigned}?token=not-a-token", timeout=10)
    assert forged.status_code in (401, 403, 404) and "location" not in forged.headers
    missing = httpx.get(
        f"{s3_stack.url}/api/v1/download/{job.job_id}/nothing.glb", headers={"X-API-Key": KEY}, timeout=10
    )
    assert missing.status_code == 404 and "location" not in missing.headers


def test_a_remote_generator_gets_its_views_from_the_bucket(
    s3_stack: Stack, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    with Client(s3_stack.url, api_key=KEY) as client:
        views = [photo(200 + i, 200) for i in range(3)]
        job = client.submit(views, generator="remote-test", seconds=0.2, multiview="true")
        assert client.wait(job.job_id, timeout=60).status == "completed"
        entry = client.files(job.job_id).files[0]
        path = client.download(entry, dest_dir=tmp_path)
    assert entry.metadata["views"] == 3
    assert path.read_bytes()[:4] == b"glTF" and path.stat().st_size == entry.size
    assert s3_server.keys(bucket, f"{PREFIX}/{job.job_id}/in/") == [
        f"{PREFIX}/{job.job_id}/in/{n}.jpg" for n in range(3)
    ]
    assert _local_files(s3_stack.data_dir) == []


def test_a_rejected_upload_leaves_no_objects(s3_stack: Stack, s3_server: S3Server, bucket: str) -> None:
    before = s3_server.keys(bucket)
    with Client(s3_stack.url, api_key=KEY) as client, pytest.raises(UnsupportedMediaType):
        client.submit([photo(), b"this is not an image"])
    assert s3_server.keys(bucket) == before
    assert _local_files(s3_stack.data_dir) == []


def test_deleting_jobs_empties_their_prefixes_in_the_bucket_even_while_running(
    s3_stack: Stack, s3_server: S3Server, bucket: str
) -> None:
    with Client(s3_stack.url, api_key=KEY) as client:
        done = client.submit([photo()])
        assert client.wait(done.job_id, timeout=60).status == "completed"
        running = client.submit([photo(), photo(200, 100)], delay=20, steps=40)
        deadline = time.monotonic() + 30
        while client.progress(running.job_id).files[0].status != "processing":
            assert time.monotonic() < deadline, "the item never started"
            time.sleep(0.05)
        assert s3_server.keys(bucket, f"{PREFIX}/{done.job_id}/out/") and s3_server.keys(
            bucket, f"{PREFIX}/{running.job_id}/in/"
        )
        client.delete(done.job_id)
        client.delete(running.job_id)
        for job_id in (done.job_id, running.job_id):
            assert s3_server.keys(bucket, f"{PREFIX}/{job_id}/") == []
            with pytest.raises(JobNotFound):
                client.status(job_id)
        # the worker stopped the running item and stored nothing for it afterwards
        after = client.submit([photo()])
        assert client.wait(after.job_id, timeout=60).status == "completed"
    assert s3_server.keys(bucket, f"{PREFIX}/{running.job_id}/") == []
    assert _local_files(s3_stack.data_dir) == []


def test_readiness_checks_the_bucket(s3_stack: Stack) -> None:
    ready = httpx.get(f"{s3_stack.url}/api/v1/health/ready", timeout=10)
    assert ready.status_code == 200 and ready.json()["components"]["blobs"] == "ok"


@pytest.mark.slow
def test_retention_empties_the_jobs_prefix_and_readiness_notices_a_lost_bucket(
    tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = s3_server.create_bucket()
    stack = _s3_stack(
        tmp_path / "data", s3_server, bucket, retention_seconds="10", retention_interval_seconds="1"
    )
    stack.start(workers=1)
    try:
        job = httpx.post(
            f"{stack.url}/api/v1/upload/", files=[("files", ("old.jpg", photo(), "image/jpeg"))], timeout=30
        ).json()
        # No wait for completion here: on a loaded machine the job may already be purged by then.
        assert s3_server.keys(bucket, f"{PREFIX}/{job['job_id']}/in/") == [
            f"{PREFIX}/{job['job_id']}/in/0.jpg"
        ]
        deadline = time.monotonic() + 60
        while s3_server.keys(bucket) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert s3_server.keys(bucket) == []
        assert httpx.get(f"{stack.url}/api/v1/status/tasks/{job['job_id']}").status_code == 404

        s3_server.client().delete_bucket(Bucket=bucket)
        ready = httpx.get(f"{stack.url}/api/v1/health/ready", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["details"]["components"]["blobs"].startswith("error:")
    finally:
        stack.stop()
