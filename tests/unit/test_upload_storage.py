"""`JobService.submit` on both blob stores (a directory, and S3 on a real moto server process): a job's photos
land in the store and the staging directory goes; a submit that fails after storing them leaves no blob, no job."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from image2model.api.context import Services, build_services
from image2model.api.security import Caller, LinkSigner
from image2model.api.service import JobService
from image2model.api.uploads import StagedFile, StagedUpload
from image2model.core.errors import NotReady
from image2model.core.settings import Settings
from tests.support.images import photo
from tests.support.s3_server import REGION, S3Server


@dataclass
class Deployment:
    services: Services
    stored: Callable[[], list[str]]
    """Every blob the store holds: keys in the bucket, or paths under the blob directory."""


@pytest.fixture(params=["local", "s3"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    if request.param == "local":
        services = build_services(Settings(data_dir=tmp_path / "data"))
        root = services.settings.blobs_dir
        return Deployment(services, lambda: sorted(str(p) for p in root.rglob("*") if p.is_file()))
    server: S3Server = request.getfixturevalue("s3_server")
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    bucket = server.create_bucket()
    settings = Settings(
        data_dir=tmp_path / "data",
        blob_url=f"s3://{bucket}/jobs",
        s3_endpoint_url=server.endpoint_url,
        s3_region=REGION,
    )
    return Deployment(build_services(settings), lambda: server.keys(bucket))


def _staged(settings: Settings, images: list[bytes]) -> StagedUpload:
    upload = StagedUpload(staging=settings.staging_dir / uuid.uuid4().hex)
    upload.staging.mkdir(parents=True)
    for n, data in enumerate(images):
        path = upload.staging / str(n)
        path.write_bytes(data)
        upload.files.append(StagedFile(filename=f"shot{n}.jpg", path=path, size=len(data)))
    return upload


def _service(services: Services, enqueue: Callable[[str, int, str], None]) -> JobService:
    return JobService(services, LinkSigner(b"test-secret", 60), enqueue, lambda job_id, index: None)


def test_submit_stores_the_photos_and_removes_the_staging_dir(deployment: Deployment, tmp_path: Path) -> None:
    services = deployment.services
    images = [photo(), photo(200, 300)]
    upload = _staged(services.settings, images)
    enqueued: list[tuple[str, int]] = []
    response = _service(services, lambda job_id, index, queue: enqueued.append((job_id, index))).submit(
        Caller("owner"), upload, "http://testserver"
    )
    job_id = response.job_id
    assert enqueued == [(job_id, 0), (job_id, 1)]
    assert not upload.staging.exists()
    state = services.store.load(job_id)
    assert state is not None and [i.inputs for i in state.items] == [
        [f"{job_id}/in/0.jpg"],
        [f"{job_id}/in/1.jpg"],
    ]
    for n, data in enumerate(images):
        assert services.blobs.local_path(f"{job_id}/in/{n}.jpg", tmp_path / "scratch").read_bytes() == data
    assert len(deployment.stored()) == 2


def test_a_submit_the_queue_refuses_leaves_no_blob_and_no_job(deployment: Deployment) -> None:
    services = deployment.services

    def queue_down(job_id: str, index: int, queue: str) -> None:
        raise ConnectionError("the queue is down")

    upload = _staged(services.settings, [photo(), photo()])
    with pytest.raises(NotReady):
        _service(services, queue_down).submit(Caller("owner"), upload, "http://testserver")
    assert deployment.stored() == []
    assert not upload.staging.exists()
    assert sum(services.store.counts()["jobs"].values()) == 0
