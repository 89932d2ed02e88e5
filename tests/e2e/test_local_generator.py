"""The offline generator through the whole service: every format downloaded and reloaded, the model listed first."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from importlib import resources

import httpx
import pytest
import trimesh

from tests.support.sse import read_events

pytestmark = pytest.mark.e2e


def sample(name: str) -> bytes:
    return resources.files("image2model.core.generators.local").joinpath("samples", name).read_bytes()


def test_local_generator_makes_every_format_and_previews(stack):
    response = httpx.post(
        f"{stack.url}/api/v1/upload/",
        files=[
            ("files", ("chair.png", sample("chair.png"), "image/png")),
            ("files", ("toy.png", sample("toy.png"), "image/png")),
        ],
        data={"generator": "local", "face_limit": "2000", "formats": "glb,obj,stl,ply"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["generator"] == "local" and job["face_limit"] == 2000
    events = read_events(f"{stack.url}/api/v1/status/tasks/{job['job_id']}/stream", timeout=60)
    assert events[-1].event == "task_completed", events[-1].data
    stages = {e.data["message"] for e in events if e.event == "file_update"}
    assert {"cutting out", "shaping", "texturing", "exporting"} <= stages

    listing = httpx.get(f"{stack.url}/api/v1/download/{job['job_id']}/all").json()
    by_name = {f["filename"]: f for f in listing["files"]}
    assert sorted(by_name) == sorted(
        f"{s}.{e}" for s in ("chair", "toy") for e in ("glb", "obj.zip", "stl", "ply")
    )
    for name, entry in by_name.items():
        data = httpx.get(entry["download_url"]).content
        assert len(data) == entry["size"]
        if entry["format"] == "obj":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                assert any(n.endswith(".mtl") for n in archive.namelist()), name
            continue
        mesh = trimesh.load(io.BytesIO(data), file_type=entry["format"], force="mesh")
        mesh.merge_vertices(merge_tex=True, merge_norm=True)  # the GLB's UV seams duplicate vertices
        assert mesh.is_watertight, name
        assert len(mesh.faces) <= 2000, name
        assert entry["metadata"]["watertight"] is True
        assert entry["metadata"]["faces"] <= 2000
    chair = by_name["chair.glb"]
    assert set(chair["previews"]) == {"png", "webp", "gif", "cutout"}
    assert chair["preview_url"] == chair["previews"]["png"] and chair["preview_url"].split("?")[0].endswith(
        "chair.preview.png"
    )
    assert httpx.get(chair["preview_url"]).content[:8] == b"\x89PNG\r\n\x1a\n"
    cutout = httpx.get(chair["previews"]["cutout"])
    assert cutout.headers["content-type"] == "image/png" and cutout.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert httpx.get(chair["previews"]["webp"]).content[8:12] == b"WEBP"
    assert httpx.get(chair["previews"]["gif"]).content[:4] == b"GIF8"


def test_local_generator_options_are_validated_and_listed(stack):
    models = httpx.get(f"{stack.url}/api/v1/models/available").json()
    local = next(m for m in models["models"] if m["name"] == "local")
    face_limit = next(o for o in local["options"] if o["name"] == "face_limit")
    assert (face_limit["minimum"], face_limit["maximum"], face_limit["default"]) == (48, 200_000, 10_000)
    assert sorted(local["supported_formats"]) == ["glb", "obj", "ply", "stl"]
    refused = httpx.post(
        f"{stack.url}/api/v1/upload/",
        files=[("files", ("toy.png", sample("toy.png"), "image/png"))],
        data={"generator": "local", "face_limit": "47"},
    )
    assert refused.status_code == 400
    assert refused.json()["details"]["errors"][0]["field"] == "face_limit"


def test_local_model_is_listed_as_soon_as_it_is_written_and_its_previews_join_at_completion(stack):
    def run(formats: str) -> tuple[list, dict]:
        response = httpx.post(
            f"{stack.url}/api/v1/upload/",
            files=[("files", ("toy.png", sample("toy.png"), "image/png"))],
            data={"generator": "local", "face_limit": "2000", "formats": formats},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        job_id = response.json()["job_id"]
        events = read_events(f"{stack.url}/api/v1/status/tasks/{job_id}/stream", timeout=60)
        assert events[-1].event == "task_completed", events[-1].data
        return events, httpx.get(f"{stack.url}/api/v1/download/{job_id}/all").json()

    events, listing = run("glb,stl")
    updates = [e for e in events if e.event == "file_update"]
    early = [e for e in updates if e.data["status"] == "processing" and e.data.get("outputs")]
    assert early, "the GLB was not listed before the item completed"
    assert early[0].data["outputs"] == ["toy.glb"]
    later = [e.data["message"] for e in updates if int(e.id) > int(early[0].id)]
    assert "rendering turntable" in later  # listed ahead of the previews, not with them
    done = next(e for e in updates if e.data["status"] == "completed")
    assert {"toy.glb", "toy.stl", "toy.preview.png", "toy.turntable.webp"} <= set(done.data["outputs"])
    glb = next(f for f in listing["files"] if f["format"] == "glb")
    data = httpx.get(glb["download_url"]).content
    assert len(data) == glb["size"]
    doc = json.loads(data[20 : 20 + struct.unpack("<I", data[12:16])[0]])
    assert doc["asset"]["extras"]["image2model"]["generator"] == "local"  # the copy stored at completion

    events, _ = run("stl")  # no GLB asked for: nothing is listed before completion
    assert not [
        e
        for e in events
        if e.event == "file_update" and e.data["status"] == "processing" and e.data.get("outputs")
    ]
