"""Exports of stored models through the real API and workers, on both backends: every option measured on the
downloaded file, the formats read back, the listing, the 202 path, bad requests that write nothing, the client
and the CLI, and recipes whose commands, run as given, make the same model again."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import trimesh

from image2model.core.client import AsyncClient, Client
from image2model.core.errors import (
    FileNotFound,
    JobNotFinished,
    NotExportable,
    ValidationFailed,
)
from image2model.core.mesh import gltf
from tests.e2e.test_jobs import upload
from tests.support.fal import KEY, fal_stack, running_fake
from tests.support.images import photo
from tests.support.sse import wait_status
from tests.support.stack import REPO, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SAMPLES = REPO / "core" / "generators" / "local" / "samples"
CHAIR = (SAMPLES / "chair.png").read_bytes()
TOY = (SAMPLES / "toy.png").read_bytes()
MATERIAL = "{http://schemas.microsoft.com/3dmanufacturing/material/2015/02}"


def finished(base: str, files: list[tuple[str, bytes]], **fields: str) -> str:
    job = upload(base, files, **fields)
    assert wait_status(base, job["job_id"], {"completed", "failed"}, timeout=120)["status"] == "completed"
    return job["job_id"]


@pytest.fixture(scope="module")
def local_job(stack: Stack) -> str:
    """A local-generator job of two photos (STL only asked for: the master GLB is kept all the same)."""
    return finished(stack.url, [("chair.png", CHAIR), ("toy.png", TOY)], generator="local", formats="stl")


def post_export(stack: Stack, job_id: str, body: object) -> httpx.Response:
    return httpx.post(f"{stack.url}/api/v1/jobs/{job_id}/exports", json=body, timeout=90)


def listing(stack: Stack, job_id: str) -> dict:
    return httpx.get(f"{stack.url}/api/v1/download/{job_id}/all", timeout=30).json()


def fetch(entry: dict) -> bytes:
    response = httpx.get(entry["download_url"], follow_redirects=True, timeout=30)
    assert response.status_code == 200, response.text
    return response.content


def test_stl_for_a_printer_is_80_mm_tall_along_z_on_the_plate_centred_closed_and_in_budget(stack, local_job):
    response = post_export(
        stack,
        local_job,
        {"formats": ["stl"], "height_mm": 80, "up": "z", "origin": "bottom", "face_limit": 2000},
    )
    assert response.status_code == 201, response.text
    export = response.json()
    assert export["status"] == "completed" and len(export["files"]) == 2
    for entry in export["files"]:
        assert entry["metadata"]["export"] == {
            "height_mm": 80.0,
            "up": "z",
            "origin": "bottom",
            "face_limit": 2000,
        }
        mesh = trimesh.load(io.BytesIO(fetch(entry)), file_type="stl")
        lo, hi = mesh.bounds
        assert abs((hi[2] - lo[2]) - 80.0) < 1e-3 and abs(lo[2]) < 1e-4, mesh.bounds
        assert np.allclose((lo[:2] + hi[:2]) / 2, 0.0, atol=1e-3), "origin at the bottom centre"
        assert hi[2] - lo[2] >= max(hi[:2] - lo[:2]) * 0.99, "the photo's up is now +Z"
        assert len(mesh.faces) <= 2000 and mesh.is_watertight and mesh.is_winding_consistent
        report = entry["metadata"]["print"]
        assert report["watertight"] and report["manifold"] and report["height_mm"] == 80.0
        assert report["units"] == "mm" and abs(report["volume"] - mesh.volume) < 1e-3 * mesh.volume


def test_every_format_reads_back_with_its_units_colours_and_recipe(stack, local_job):
    chair = next(f for f in listing(stack, local_job)["files"] if f["source_filename"] == "chair.png")
    body = {"formats": ["3mf", "glb", "obj", "ply"], "height_mm": 120.5, "files": [chair["file_id"]]}
    export = post_export(stack, local_job, body).json()
    by_format = {e["format"]: e for e in export["files"]}
    assert sorted(by_format) == ["3mf", "glb", "obj", "ply"]
    assert {e["filename"] for e in export["files"]} == {
        "chair.120.5mm.3mf", "chair.120.5mm.glb", "chair.120.5mm.obj.zip", "chair.120.5mm.ply"
    }  # fmt: skip

    data = fetch(by_format["3mf"])
    printed = trimesh.load(io.BytesIO(data), file_type="3mf", force="mesh")
    assert printed.metadata["units"] == "millimeter" and printed.is_watertight
    assert abs(np.ptp(printed.vertices[:, 1]) - 120.5) < 1e-3
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        colours = [
            c.attrib["color"] for c in ET.fromstring(zf.read("3D/3dmodel.model")).iter(f"{MATERIAL}color")
        ]
    glb = fetch(by_format["glb"])
    scene = trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh")
    assert abs(np.ptp(scene.vertices[:, 1]) - 0.1205) < 1e-6, "GLB in metres"
    extras = json.loads(glb[20 : 20 + int.from_bytes(glb[12:16], "little")])["asset"]["extras"]["image2model"]
    assert extras["generator"] == "local" and extras["export"]["height_mm"] == 120.5
    assert extras["source_sha256"] == chair["metadata"]["recipe"]["source_sha256"]
    # The 3MF's colours are the texture's, sampled at the vertices (the GLB of the same export carries it).
    textured = gltf.read_textured(glb)
    sampled = {f"#{r:02X}{g:02X}{b:02X}" for r, g, b, _ in textured.vertex_colors()}
    assert len(colours) > 20 and set(colours) == sampled

    with zipfile.ZipFile(io.BytesIO(fetch(by_format["obj"]))) as zf:
        assert sorted(zf.namelist()) == ["chair.120.5mm.jpg", "chair.120.5mm.mtl", "chair.120.5mm.obj"]
    ply = trimesh.load(io.BytesIO(fetch(by_format["ply"])), file_type="ply")
    assert ply.is_watertight and abs(np.ptp(ply.vertices[:, 1]) - 120.5) < 1e-3


def test_export_files_join_the_listing_once_and_generated_models_carry_recipe_and_print(stack, local_job):
    body = {"formats": ["stl"], "up": "z"}
    first = post_export(stack, local_job, body).json()
    again = post_export(stack, local_job, body).json()
    assert first["export_id"] != again["export_id"]
    assert [f["filename"] for f in first["files"]] == [f["filename"] for f in again["files"]]
    files = listing(stack, local_job)["files"]
    names = [f["filename"] for f in files]
    assert len(names) == len(set(names)), "the same export does not list its files twice"
    assert {"chair.zup.stl", "toy.zup.stl"} <= set(names) and "chair.stl" in names
    assert not any(n.endswith(".master.glb") for n in names), "the kept master is not a listed model"
    original = next(f for f in files if f["filename"] == "chair.stl")
    assert "export" not in original["metadata"]
    recipe = original["metadata"]["recipe"]
    assert recipe["generator"] == "local" and recipe["options"]["face_limit"] == 10000
    assert recipe["generator_version"].startswith("image2model ") and recipe["seed"] is None
    assert len(recipe["source_sha256"]) == 64
    assert set(recipe["commands"]) == {"curl", "python", "discord"}
    assert original["metadata"]["print"]["watertight"] and original["metadata"]["print"]["height_mm"] is None


def test_a_job_that_asked_for_glb_gets_the_recipe_in_its_glb(stack):
    job_id = finished(stack.url, [("chair.png", CHAIR)], generator="local", formats="glb", face_limit="3000")
    entry = listing(stack, job_id)["files"][0]
    glb = fetch(entry)
    asset = json.loads(glb[20 : 20 + int.from_bytes(glb[12:16], "little")])["asset"]
    recipe = {k: v for k, v in entry["metadata"]["recipe"].items() if k != "commands"}
    assert asset["extras"]["image2model"] == recipe and recipe["options"]["face_limit"] == 3000


def stored_exports(stack: Stack, job_id: str) -> int:
    """Export records of the job, read from the stack's job store itself."""
    from image2model.api.store.redis import RedisJobStore
    from image2model.api.store.sqlite import SqliteJobStore

    store = RedisJobStore(stack.redis_url) if stack.redis_url else SqliteJobStore(stack.data_dir / "state.db")
    try:
        return len(store.exports_of(job_id))
    finally:
        store.close()


def test_bad_export_requests_are_refused_and_write_nothing(stack, local_job):
    before = [(f["filename"], f["size"]) for f in listing(stack, local_job)["files"]]
    records = stored_exports(stack, local_job)
    blobs = sorted(p for p in (stack.data_dir / "blobs").rglob("*") if p.is_file())
    cases = [
        ({"formats": ["pdf"]}, 400, "formats has unknown format(s) pdf"),
        ({"formats": []}, 400, "formats must name at least one format"),
        ({"height_mm": 80}, 400, "formats is required"),
        ({"formats": ["stl"], "height_mm": 0}, 400, "height_mm must be more than 0"),
        ({"formats": ["stl"], "height_mm": "tall"}, 400, "height_mm must be a number"),
        ({"formats": ["stl"], "face_limit": 2.5}, 400, "face_limit must be a whole number"),
        ({"formats": ["stl"], "face_limit": 3}, 400, "face_limit must be between 12"),
        ({"formats": ["stl"], "up": "x"}, 400, "up must be one of y, z"),
        ({"formats": ["stl"], "origin": "top"}, 400, "origin must be one of bottom, center"),
        ({"formats": ["stl"], "hieght_mm": 80}, 400, "hieght_mm is not a field"),
        ({"formats": ["stl"], "files": []}, 400, "files must be a non-empty list"),
        ({"formats": ["stl"], "files": ["nope"]}, 404, "has no file with id nope"),
        (["stl"], 422, "must be a JSON object"),
    ]
    for body, status, message in cases:
        response = post_export(stack, local_job, body)
        assert response.status_code == status, (body, response.text)
        error = response.json()
        assert error["error"] is True and error["status_code"] == status and message in error["message"], (
            error
        )
    not_json = httpx.post(f"{stack.url}/api/v1/jobs/{local_job}/exports", content=b"formats=stl", timeout=30)
    assert not_json.status_code == 422 and not_json.json()["error_code"] == "VALIDATION_ERROR"
    too_big = httpx.post(f"{stack.url}/api/v1/jobs/{local_job}/exports", content=b" " * 70_000, timeout=30)
    assert too_big.status_code == 413
    missing = post_export(stack, "00000000-0000-4000-8000-000000000000", {"formats": ["stl"]})
    assert missing.status_code == 404 and missing.json()["error_code"] == "JOB_NOT_FOUND"
    assert [(f["filename"], f["size"]) for f in listing(stack, local_job)["files"]] == before
    assert stored_exports(stack, local_job) == records
    assert sorted(p for p in (stack.data_dir / "blobs").rglob("*") if p.is_file()) == blobs


def test_an_export_retried_with_its_idempotency_key_makes_nothing_new_and_a_changed_one_is_refused(
    stack, local_job
):
    key = f"export-{time.time_ns()}"
    body = {"formats": ["ply"], "height_mm": 50}
    url = f"{stack.url}/api/v1/jobs/{local_job}/exports"
    first = httpx.post(url, json=body, headers={"Idempotency-Key": key}, timeout=90)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers, first.text
    made = stored_exports(stack, local_job)
    entries = len(listing(stack, local_job)["files"])

    again = httpx.post(url, json=body, headers={"Idempotency-Key": key}, timeout=90)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["export_id"] == first.json()["export_id"]
    assert [f["filename"] for f in again.json()["files"]] == [f["filename"] for f in first.json()["files"]]
    with Client(stack.url) as client:
        replayed = client.export(local_job, ["ply"], height_mm=50, idempotency_key=key)
    assert replayed.export_id == first.json()["export_id"]

    changed = httpx.post(url, json={**body, "height_mm": 60}, headers={"Idempotency-Key": key}, timeout=90)
    assert changed.status_code == 422 and changed.json()["error_code"] == "IDEMPOTENCY_MISMATCH"
    assert stored_exports(stack, local_job) == made
    assert len(listing(stack, local_job)["files"]) == entries


def test_unfinished_failed_and_failed_file_jobs_cannot_be_exported(stack):
    with Client(stack.url) as client:
        running = client.submit(photo(), delay=30, steps=30)
        with pytest.raises(JobNotFinished, match="still"):
            client.export(running.job_id, ["stl"])
        client.cancel(running.job_id)
        failed = client.submit(photo(), fail=True)
        client.wait(failed.job_id, timeout=60)
        with pytest.raises(NotExportable, match="no completed model"):
            client.export(failed.job_id, ["stl"])
        mixed = client.submit([photo(), photo()], formats="glb")
        client.wait(mixed.job_id, timeout=60)
        good = client.files(mixed.job_id).files[0]
        with pytest.raises(FileNotFound):
            client.export(mixed.job_id, ["stl"], files=[good.file_id, "not-a-file"])
        with pytest.raises(ValidationFailed, match="face_limit"):
            client.export(mixed.job_id, ["stl"], face_limit=1)


def test_the_instant_generators_box_exports_too(stack):
    """A generator whose GLB is not ours (trimesh's, no texture) still gets a master and exports."""
    with Client(stack.url) as client:
        job = client.submit(photo(300, 200), formats="stl")
        client.wait(job.job_id, timeout=60)
        export = client.export(job.job_id, "3mf,stl", height_mm=50, up="z", origin="bottom")
        assert export.status == "completed" and sorted(e.format for e in export.files) == ["3mf", "stl"]
        stl = next(e for e in export.files if e.format == "stl")
        box = trimesh.load(io.BytesIO(fetch(stl.model_dump())), file_type="stl")
        assert np.allclose(box.bounds[:, 2], [0.0, 50.0], atol=1e-4) and len(box.faces) == 12


def test_client_and_cli_export_and_download(stack, local_job, tmp_path):
    with Client(stack.url) as client:
        export = client.export(local_job, ["stl"], height_mm=30, face_limit=800)
        paths = client.download_export(export, tmp_path / "sync")
    assert sorted(p.name for p in paths) == ["chair.30mm-800f.stl", "toy.30mm-800f.stl"]
    assert all(len(trimesh.load(p).faces) <= 800 for p in paths)

    async def run_async() -> list[Path]:
        async with AsyncClient(stack.url) as client:
            export = await client.export(local_job, "ply", origin="bottom")
            return await client.download_export(export, tmp_path / "async")

    assert sorted(p.name for p in asyncio.run(run_async())) == ["chair.bottom.ply", "toy.bottom.ply"]

    out = tmp_path / "cli"
    cli = subprocess.run(
        [sys.executable, "-m", "image2model.cli", "export", local_job, "--format", "stl",
         "--height-mm", "80", "--up", "z", "--origin", "bottom", "-o", str(out), "--server", stack.url],
        capture_output=True, text=True, timeout=120, env={**os.environ, "IMAGE2MODEL_API_KEY": ""},
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    saved = [Path(line) for line in cli.stdout.split()]
    assert sorted(p.name for p in saved) == ["chair.80mm-zup-bottom.stl", "toy.80mm-zup-bottom.stl"]
    assert all(abs(trimesh.load(p).bounds[1][2] - 80.0) < 1e-3 for p in saved)
    refused = subprocess.run(
        [sys.executable, "-m", "image2model.cli", "export", local_job, "--format", "stl",
         "--face-limit", "2", "--server", stack.url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2 and "face_limit must be between 12" in refused.stderr


def _geometry(glb: bytes) -> tuple[np.ndarray, np.ndarray]:
    mesh = trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh", process=False)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def test_recipe_commands_run_as_given_make_the_same_model(stack, tmp_path):
    job_id = finished(stack.url, [("chair.png", CHAIR)], generator="local", formats="glb", face_limit="4000")
    entry = listing(stack, job_id)["files"][0]
    vertices, faces = _geometry(fetch(entry))
    commands = entry["metadata"]["recipe"]["commands"]
    assert commands["discord"] == "/model image:chair.png generator:local face_limit:4000 format:glb"
    (tmp_path / "chair.png").write_bytes(CHAIR)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGE2MODEL_")}

    curl = subprocess.run(
        commands["curl"], shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env
    )
    assert curl.returncode == 0, curl.stderr
    again = json.loads(curl.stdout)["job_id"]
    assert wait_status(stack.url, again, {"completed", "failed"}, timeout=120)["status"] == "completed"
    remade = listing(stack, again)["files"][0]
    assert remade["metadata"]["recipe"]["source_sha256"] == entry["metadata"]["recipe"]["source_sha256"]
    v2, f2 = _geometry(fetch(remade))
    assert np.array_equal(f2, faces) and np.allclose(v2, vertices, atol=1e-7), "curl made another model"

    python = subprocess.run(
        [sys.executable, "-c", commands["python"]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert python.returncode == 0, python.stderr
    (saved,) = [Path(tmp_path, line) for line in python.stdout.split()]
    v3, f3 = _geometry(saved.read_bytes())
    assert np.array_equal(f3, faces) and np.allclose(v3, vertices, atol=1e-7), (
        "the snippet made another model"
    )


def test_export_entry_python_command_remakes_the_export(stack, local_job, tmp_path):
    export = post_export(stack, local_job, {"formats": ["stl"], "height_mm": 25, "up": "z"}).json()
    entry = next(e for e in export["files"] if e["source_filename"] == "chair.png")
    snippet = entry["metadata"]["recipe"]["commands"]["python"]
    assert "client.export(result.job_id, ['stl'], height_mm=25.0, up='z', origin='center')" in snippet
    (tmp_path / "chair.png").write_bytes(CHAIR)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGE2MODEL_")}
    run = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env
    )
    assert run.returncode == 0, run.stderr
    made = [Path(tmp_path, line) for line in run.stdout.split()]
    assert [p.name for p in made] == ["chair.25mm-zup.stl"]
    assert made[0].read_bytes() == fetch(entry), "the same export, byte for byte"


def test_a_slow_export_answers_202_and_finishes_once_a_worker_runs_it(tmp_path):
    stack = Stack(tmp_path / "data", export_wait_seconds="0.3")
    try:
        stack.start(workers=1)
        job_id = finished(stack.url, [("box.jpg", photo())], formats="glb")
        stack._stop(stack.worker)
        response = post_export(stack, job_id, {"formats": ["stl"], "height_mm": 10})
        assert response.status_code == 202, response.text
        pending = response.json()
        assert pending["status"] == "queued" and pending["files"] == []
        status_url = f"{stack.url}/api/v1/jobs/{job_id}/exports/{pending['export_id']}"
        assert httpx.get(status_url).json()["status"] == "queued"
        stack.start_worker(workers=1)
        with Client(stack.url) as client:
            done = client.export_status(job_id, pending["export_id"])
            for _ in range(300):
                if done.status.terminal:
                    break
                time.sleep(0.1)
                done = client.export_status(job_id, pending["export_id"])
        assert done.status == "completed" and [e.filename for e in done.files] == ["box.10mm.stl"]
        assert httpx.get(f"{stack.url}/api/v1/jobs/{job_id}/exports/nope").status_code == 404
    finally:
        stack.stop()


def test_exports_with_blobs_in_s3(tmp_path, s3_server):
    stack = Stack(
        tmp_path / "data",
        blob_url=f"s3://{s3_server.create_bucket()}/exports",
        s3_endpoint_url=s3_server.endpoint_url,
        s3_region="us-east-1",
    )
    stack.env.update(s3_server.env)
    try:
        stack.start(workers=1)
        job_id = finished(stack.url, [("chair.png", CHAIR)], generator="local", formats="obj")
        with Client(stack.url) as client:
            export = client.export(job_id, ["stl", "3mf"], height_mm=80, up="z", origin="bottom")
            paths = client.download_export(export, tmp_path / "out")
        stl = trimesh.load(next(p for p in paths if p.suffix == ".stl"))
        assert np.allclose(stl.bounds[:, 2], [0.0, 80.0], atol=1e-3) and stl.is_watertight
        assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file() and "blobs" in p.parts]
    finally:
        stack.stop()


@pytest.fixture
def fal_service(tmp_path):
    with running_fake() as fake:
        stack = fal_stack(tmp_path / "data", fake)
        try:
            yield stack
        finally:
            stack.stop()


def test_a_fal_result_is_exported_from_its_own_glb(fal_service):
    job_id = finished(fal_service.url, [("duck.jpg", photo())], generator="fal", formats="stl", seed="42")
    entry = listing(fal_service, job_id)["files"][0]
    recipe = entry["metadata"]["recipe"]
    assert recipe["generator"] == "fal" and recipe["generator_version"] == "tripo3d/tripo/v2.5/image-to-3d"
    assert recipe["seed"] == 42 and "--form-string seed=42" in recipe["commands"]["curl"]
    export = post_export(
        fal_service,
        job_id,
        {"formats": ["stl", "3mf"], "height_mm": 80, "up": "z", "origin": "bottom", "face_limit": 500},
    ).json()
    assert export["status"] == "completed", export
    stl = trimesh.load(
        io.BytesIO(fetch(next(e for e in export["files"] if e["format"] == "stl"))), file_type="stl"
    )
    assert (
        np.allclose(stl.bounds[:, 2], [0.0, 80.0], atol=1e-3) and len(stl.faces) <= 500 and stl.is_watertight
    )
    printed = trimesh.load(
        io.BytesIO(fetch(next(e for e in export["files"] if e["format"] == "3mf"))),
        file_type="3mf",
        force="mesh",
    )
    assert printed.is_watertight and abs(np.ptp(printed.vertices[:, 2]) - 80.0) < 1e-3


def test_a_fal_glb_complete_as_fetched_completes_on_the_io_worker_and_exports_from_the_listed_glb(tmp_path):
    """GLB only, with FAL's preview: nothing is left for a CPU worker, so the item completes with no CPU worker
    running, its recipe in the GLB and a print report; an export (on a CPU worker) reads the listed GLB."""
    with running_fake() as fake:
        stack = Stack(tmp_path / "data", fal_key=KEY, fal_base_url=fake.base_url, fal_poll_interval="0.2")
        try:
            stack.start_api()
            stack.start_io_worker(threads=2)
            job_id = finished(stack.url, [("duck.jpg", photo())], generator="fal", formats="glb", seed="7")
            files = listing(stack, job_id)["files"]
            assert [f["filename"] for f in files] == ["duck.glb"]
            entry = files[0]
            assert entry["metadata"]["fal"]["preview"] == "fal"
            assert entry["metadata"]["recipe"]["seed"] == 7
            assert entry["metadata"]["print"]["faces"] == entry["metadata"]["faces"] > 0
            extras = gltf.split_glb(fetch(entry)).doc["asset"]["extras"]["image2model"]
            assert extras["generator"] == "fal" and extras["seed"] == 7

            stack.start_worker(workers=1)
            export = post_export(stack, job_id, {"formats": ["stl"], "height_mm": 50, "up": "z"}).json()
            assert export["status"] == "completed", export
            stl = trimesh.load(io.BytesIO(fetch(export["files"][0])), file_type="stl")
            assert np.isclose(np.ptp(stl.vertices[:, 2]), 50.0, atol=1e-3)
        finally:
            stack.stop()


def test_an_export_whose_worker_died_is_made_again_by_the_reaper(stack):
    """A record left `processing` with a lapsed lease (its worker was killed) goes back on the queue."""
    from image2model.api.store import ExportRecord
    from image2model.api.store.redis import RedisJobStore
    from image2model.api.store.sqlite import SqliteJobStore

    job_id = finished(stack.url, [("box.jpg", photo())], formats="glb")
    file_id = listing(stack, job_id)["files"][0]["file_id"]
    store = RedisJobStore(stack.redis_url) if stack.redis_url else SqliteJobStore(stack.data_dir / "state.db")
    try:
        record = store.create_export(
            ExportRecord(
                export_id="00000000-0000-4000-8000-00000000dead",
                job_id=job_id,
                formats=["ply"],
                shaping={"height_mm": 5.0, "up": "y", "origin": "center", "face_limit": None},
                file_ids=[file_id],
                created_at=time.time(),
            )
        )
        assert store.claim_export(record.export_id, 0.0) is not None  # a worker took it, then died
        for _ in range(200):
            current = store.load_export(record.export_id)
            if current.status.terminal:
                break
            time.sleep(0.1)
    finally:
        store.close()
    assert current.status == "completed" and current.attempt == 2, current
    assert "box.5mm.ply" in [f["filename"] for f in listing(stack, job_id)["files"]]
