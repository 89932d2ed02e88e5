"""One conformance suite for the blob stores: a directory, and an S3 bucket on a real S3-compatible server process
(moto in server mode on loopback). Plus what only one of them does: no copies on a directory, presigned URLs on S3."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from image2model.core.settings import Settings
from image2model.core.storage import BlobStore, LocalBlobStore, open_blob_store
from image2model.core.storage.s3 import S3BlobStore
from tests.support.s3_server import REGION, S3Server

PREFIX = "deploy/one"


def _s3_settings(server: S3Server, bucket: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        blob_url=f"s3://{bucket}/{PREFIX}",
        s3_endpoint_url=server.endpoint_url,
        s3_region=REGION,
    )


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server, with its credentials in this process's environment (boto3's usual chain reads them)."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return open_blob_store(Settings(data_dir=tmp_path / "data"))
    server: S3Server = request.getfixturevalue("s3_env")
    return open_blob_store(_s3_settings(server, server.create_bucket(), tmp_path))


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _read(blobs: BlobStore, key: str, scratch: Path) -> bytes:
    return blobs.local_path(key, scratch).read_bytes()


def test_put_file_stores_the_bytes_and_keeps_or_moves_the_source(blobs: BlobStore, tmp_path: Path) -> None:
    kept = _file(tmp_path, "a.glb", b"glTF" + bytes(range(256)) * 40)
    assert blobs.put_file("job1/out/a.glb", kept) == kept.stat().st_size == 10244
    assert kept.exists()
    moved = _file(tmp_path, "b.png", b"\x89PNG-b")
    assert blobs.put_file("job1/out/b.png", moved, move=True) == 6
    assert not moved.exists()
    assert _read(blobs, "job1/out/a.glb", tmp_path / "scratch") == kept.read_bytes()
    assert _read(blobs, "job1/out/b.png", tmp_path / "scratch") == b"\x89PNG-b"
    assert blobs.exists("job1/out/a.glb") and not blobs.exists("job1/out/a.gl")


def test_a_rerun_overwrites_the_same_key(blobs: BlobStore, tmp_path: Path) -> None:
    blobs.put_file("job1/out/m.glb", _file(tmp_path, "first", b"first attempt, longer"))
    blobs.put_file("job1/out/m.glb", _file(tmp_path, "second", b"second"), move=True)
    assert _read(blobs, "job1/out/m.glb", tmp_path / "scratch") == b"second"


def test_adopt_dir_stores_every_file_under_the_prefix_and_removes_the_source(
    blobs: BlobStore, tmp_path: Path
) -> None:
    staging = tmp_path / "staging" / "abc"
    staging.mkdir(parents=True)
    (staging / "0.jpg").write_bytes(b"jpeg-0")
    (staging / "1.png").write_bytes(b"png-1")
    blobs.adopt_dir("job2/in", staging)
    assert not staging.exists()
    assert _read(blobs, "job2/in/0.jpg", tmp_path / "scratch") == b"jpeg-0"
    assert _read(blobs, "job2/in/1.png", tmp_path / "scratch") == b"png-1"


def test_delete_prefix_removes_one_job_and_nothing_else(blobs: BlobStore, tmp_path: Path) -> None:
    for key in ("job1/in/0.jpg", "job1/out/m.glb", "job10/out/m.glb", "job2/out/m.glb"):
        blobs.put_file(key, _file(tmp_path, "x", key.encode()))
    blobs.delete_prefix("job1")
    assert not blobs.exists("job1/in/0.jpg") and not blobs.exists("job1/out/m.glb")
    assert blobs.exists("job10/out/m.glb") and blobs.exists("job2/out/m.glb")
    blobs.delete_prefix("job-never-stored")


def test_serve_gives_the_bytes_as_a_path_or_a_presigned_url(blobs: BlobStore, tmp_path: Path) -> None:
    data = b"glTF" + os.urandom(3000)
    blobs.put_file("job3/out/shoe.glb", _file(tmp_path, "shoe.glb", data))
    source = blobs.serve("job3/out/shoe.glb", "shoe.glb", "model/gltf-binary", 120)
    if isinstance(source, Path):
        assert source.read_bytes() == data
        return
    assert "X-Amz-Signature=" in source and "X-Amz-Expires=120" in source
    assert "response-content-disposition=attachment%3B%20filename%3D%22shoe.glb%22" in source
    response = httpx.get(source, timeout=10)
    assert response.status_code == 200 and response.content == data


@pytest.mark.parametrize("key", ["", "/abs/x", "../x", "job/../x", "job//x", "job/./x"])
def test_keys_that_are_not_plain_relative_paths_are_refused(
    blobs: BlobStore, tmp_path: Path, key: str
) -> None:
    with pytest.raises(ValueError, match="not a valid blob key"):
        blobs.put_file(key, _file(tmp_path, "x", b"x"))


def test_check_passes_on_a_working_store_and_raises_on_a_broken_one(blobs: BlobStore) -> None:
    blobs.check()
    if isinstance(blobs, LocalBlobStore):
        blobs.root.rmdir()
    else:
        assert isinstance(blobs, S3BlobStore)
        blobs.client.delete_bucket(Bucket=blobs.bucket)
    with pytest.raises(Exception):  # noqa: B017 - whatever the store's own error is
        blobs.check()


# ---- one store only ------------------------------------------------------------------------------------


def test_a_directory_store_hands_out_the_stored_file_without_copying(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    blobs.put_file("job/in/0.jpg", _file(tmp_path, "0.jpg", b"jpeg"))
    scratch = tmp_path / "scratch"
    assert blobs.local_path("job/in/0.jpg", scratch) == tmp_path / "blobs" / "job" / "in" / "0.jpg"
    assert not scratch.exists()


def test_a_directory_store_on_another_file_system_copies_instead_of_renaming(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    real_replace = os.replace
    seen: list[Path] = []

    def cross_device(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        # Only renames out of the source tree cross a device; the store's own temp-file rename does not.
        if Path(src).is_relative_to(tmp_path / "src") or Path(src).is_relative_to(tmp_path / "staging"):
            seen.append(Path(src))
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", cross_device)
    source = _file(tmp_path, "m.glb", b"glTF-moved")
    assert blobs.put_file("job/out/m.glb", source, move=True) == 10
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "0.jpg").write_bytes(b"jpeg")
    blobs.adopt_dir("job/in", staging)
    assert len(seen) == 2 and not source.exists() and not staging.exists()
    assert (tmp_path / "blobs/job/out/m.glb").read_bytes() == b"glTF-moved"
    assert (tmp_path / "blobs/job/in/0.jpg").read_bytes() == b"jpeg"


def test_an_s3_store_keeps_objects_under_its_prefix_and_downloads_into_scratch(
    s3_env: S3Server, tmp_path: Path
) -> None:
    bucket = s3_env.create_bucket()
    blobs = open_blob_store(_s3_settings(s3_env, bucket, tmp_path))
    blobs.put_file("job/in/0.jpg", _file(tmp_path, "0.jpg", b"jpeg"))
    assert s3_env.keys(bucket) == [f"{PREFIX}/job/in/0.jpg"]
    scratch = tmp_path / "scratch"
    assert blobs.local_path("job/in/0.jpg", scratch) == scratch / "0.jpg"
    assert (scratch / "0.jpg").read_bytes() == b"jpeg"


def test_an_s3_store_fails_loudly_on_a_missing_object(s3_env: S3Server, tmp_path: Path) -> None:
    blobs = open_blob_store(_s3_settings(s3_env, s3_env.create_bucket(), tmp_path))
    with pytest.raises(Exception, match="NoSuchKey"):
        blobs.local_path("job/in/0.jpg", tmp_path / "scratch")


@pytest.mark.parametrize(
    ("blob_url", "expected"),
    [("", "data/blobs"), ("shared/blobs", "shared/blobs")],
)
def test_an_empty_blob_url_or_a_directory_selects_a_directory_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blob_url: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    blobs = open_blob_store(Settings(data_dir=Path("data"), blob_url=blob_url))
    assert isinstance(blobs, LocalBlobStore) and blobs.root == Path(expected) and blobs.root.is_dir()


@pytest.mark.parametrize("blob_url", ["s3://", "s3:///prefix", "gs://bucket/x", "http://host/x"])
def test_a_blob_url_of_no_known_kind_is_refused(tmp_path: Path, blob_url: str) -> None:
    with pytest.raises(ValueError, match="IMAGE2MODEL_BLOB_URL"):
        open_blob_store(Settings(data_dir=tmp_path, blob_url=blob_url))


def test_the_default_store_does_not_import_boto3(tmp_path: Path) -> None:
    code = (
        "import sys; from image2model.api.context import build_services; "
        "from image2model.core.settings import Settings; "
        f"s = build_services(Settings(data_dir={str(tmp_path)!r})); "
        "print(type(s.blobs).__name__, 'boto3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["LocalBlobStore", "False"]
