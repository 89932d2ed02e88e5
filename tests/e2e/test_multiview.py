"""Multi-view uploads to the offline generator through the whole service (API and worker processes): one item
from four photos with every format, the 400s for the wrong number of views, and a view that names itself when it
shows nothing."""

from __future__ import annotations

import io
import zipfile

import httpx
import pytest
import trimesh
from PIL import Image

from tests.conftest import stored_files
from tests.e2e.test_jobs import stream_url
from tests.support import solids
from tests.support.sse import read_events, wait_status

pytestmark = pytest.mark.e2e

VIEWS = ("front", "left", "back", "right")


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def chair_views() -> list[tuple[str, bytes]]:
    photos = solids.photographs(solids.SOLIDS["chair"], shots=[solids.Shot((384, 384))] * 4, rgba=True)
    return [(f"chair-{name}.png", _png(p)) for name, p in zip(VIEWS, photos, strict=True)]


def _post(url: str, files: list[tuple[str, bytes]], **fields: str) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/upload/",
        files=[("files", (name, data, "image/png")) for name, data in files],
        data={"generator": "local", "multiview": "true", **fields},
        timeout=30,
    )


def test_four_views_become_one_model_in_every_format(stack, chair_views) -> None:
    response = _post(stack.url, chair_views, face_limit="5000", formats="glb,obj,stl,ply")
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["multiview"] is True and job["total_files"] == 1 and len(job["uploaded_files"]) == 4
    events = read_events(stream_url(stack.url, job["job_id"]), timeout=90)
    assert events[-1].event == "task_completed", events[-1].data
    stages = {e.data["message"] for e in events if e.event == "file_update"}
    assert {"cutting out", "aligning views", "carving", "texturing", "exporting"} <= stages

    listing = httpx.get(f"{stack.url}/api/v1/download/{job['job_id']}/all").json()
    by_name = {f["filename"]: f for f in listing["files"]}
    assert sorted(by_name) == sorted(f"chair-front.{e}" for e in ("glb", "obj.zip", "stl", "ply"))
    for name, entry in by_name.items():
        meta = entry["metadata"]
        assert meta["views"] == 4 and meta["views_used"] == list(VIEWS), name
        assert meta["watertight"] is True and meta["faces"] <= 5000
        data = httpx.get(entry["download_url"]).content
        assert len(data) == entry["size"]
        if entry["format"] == "obj":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                assert sorted(archive.namelist()) == ["chair-front.jpg", "chair-front.mtl", "chair-front.obj"]
            continue
        mesh = trimesh.load(io.BytesIO(data), file_type=entry["format"], force="mesh")
        mesh.merge_vertices(merge_tex=True, merge_norm=True)
        assert mesh.is_watertight and len(mesh.faces) <= 5000, name
    glb = by_name["chair-front.glb"]
    assert set(glb["previews"]) == {"png", "webp", "gif", "cutout"}
    assert httpx.get(glb["previews"]["cutout"]).content[:8] == b"\x89PNG\r\n\x1a\n"
    assert httpx.get(glb["preview_url"]).content[:8] == b"\x89PNG\r\n\x1a\n"
    assert httpx.get(glb["previews"]["webp"]).content[8:12] == b"WEBP"
    meta = glb["metadata"]
    assert [a["view"] for a in meta["alignment"]["views"]] == list(VIEWS)
    assert meta["shape"]["box_parts"] >= 5  # seat, backrest and the four legs, each kept straight
    # The model stands like the chair: depth about its width, legs apart in depth as well as in width.
    width, height, depth = meta["extents"]
    assert height == pytest.approx(1.0, abs=1e-3) and depth == pytest.approx(width, rel=0.05)


@pytest.mark.parametrize("count", [1, 5])
def test_the_wrong_number_of_views_is_refused_before_anything_is_stored(stack, chair_views, count) -> None:
    files = (chair_views * 2)[:count]
    before = set(stored_files(stack.data_dir))
    response = _post(stack.url, files)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_code"] == "VALIDATION_ERROR"
    assert body["message"] == f"A multi-view upload needs 2 to 4 views of one object; got {count}."
    assert body["details"]["errors"][0]["field"] == "files"
    assert set(stored_files(stack.data_dir)) == before


def test_an_empty_view_fails_the_item_and_names_the_view(stack, chair_views) -> None:
    blank = ("blank.png", _png(Image.new("RGB", (384, 384), (228, 229, 231))))
    response = _post(stack.url, [chair_views[0], blank], face_limit="2000")
    assert response.status_code == 200, response.text
    job = response.json()
    snap = wait_status(stack.url, job["job_id"], {"failed", "completed"}, timeout=90)
    assert snap["status"] == "failed"
    error = snap["files"][0]["error"]
    assert "No object was found in the left view (2nd photo)" in error
