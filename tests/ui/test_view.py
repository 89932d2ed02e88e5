"""The web UI's pure parts: a job's view as the status panel, which progress updates reach the page (and when a
held-back one is shown), and the viewer's empty scene."""

from __future__ import annotations

import asyncio
import json
import struct

import numpy as np
import pytest

from image2model.core.mesh import export
from image2model.core.mesh.model import TexturedMesh
from image2model.ui_gradio.view import (
    ProgressGate,
    empty_scene_glb,
    progress_line,
    stage_line,
    status_table,
    with_flushes,
)
from tests.support.recordings import NAMES, load


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_gate_sends_a_change_at_once_after_a_quiet_interval_and_drops_repeats() -> None:
    clock = _Clock()
    gate = ProgressGate(0.25, clock)
    assert gate.changes("reading image", "t0") == {"stage", "table"}
    clock.now = 0.01
    assert gate.changes("reading image", "t0") == set() and gate.due() is None
    clock.now = 0.3
    assert gate.changes("shaping", "t1") == {"stage", "table"}
    clock.now = 0.6
    assert gate.changes("texturing", "t1") == {"stage"}


def test_gate_holds_back_changes_within_the_interval_and_says_when_they_are_due() -> None:
    clock = _Clock()
    gate = ProgressGate(0.25, clock)
    gate.changes("shaping", "10%")
    clock.now = 0.1
    assert gate.changes("texturing", "20%") == set()
    assert gate.due() == pytest.approx(0.15)
    clock.now = 0.2
    assert gate.changes("shaping", "10%") == set() and gate.due() is None  # back to what the page shows
    clock.now = 0.3
    assert gate.changes("texturing", "30%") == {"stage", "table"} and gate.due() is None


def test_gate_forced_updates_carry_both_parts() -> None:
    clock = _Clock()
    gate = ProgressGate(0.25, clock)
    gate.changes("done", "t")
    assert gate.changes("done", "t", force=True) == {"stage", "table"}


async def test_with_flushes_repeats_the_last_update_when_a_held_change_falls_due() -> None:
    out: list[str] = []

    async def source():  # noqa: ANN202
        yield "a"
        await asyncio.sleep(0.3)
        yield "b"

    def due() -> float | None:
        return 0.05 if out == ["a"] else None  # something held after "a", until it was shown

    async for update in with_flushes(source(), due, lambda u: u + " again"):
        out.append(update)
    assert out == ["a", "a again", "b"]


async def test_with_flushes_closes_its_source_when_the_consumer_stops() -> None:
    closed: list[str] = []

    async def source(name: str, pause: float):  # noqa: ANN202
        try:
            yield 1
            await asyncio.sleep(pause)
            yield 2
        finally:
            closed.append(name)

    idle = with_flushes(source("idle", 10), lambda: None, lambda u: u)
    assert await anext(idle) == 1
    await idle.aclose()  # stopped between updates
    waiting = with_flushes(source("waiting", 10), lambda: 0.01, lambda u: u)
    assert await anext(waiting) == 1
    assert await anext(waiting) == 1  # flushed while the source is still waiting
    await waiting.aclose()  # stopped while the source's next update is pending
    await asyncio.sleep(0.01)
    assert closed == ["idle", "waiting"]


def _glb_json(data: bytes) -> dict:
    magic, version, total = struct.unpack_from("<4sII", data)
    assert (magic, version, total) == (b"glTF", 2, len(data))
    length, kind = struct.unpack_from("<I4s", data, 12)
    assert kind == b"JSON"
    return json.loads(data[20 : 20 + length])


def _positions(data: bytes, doc: dict) -> np.ndarray:
    json_len = struct.unpack_from("<I", data, 12)[0]
    bin_start = 20 + json_len + 8
    view = doc["bufferViews"][doc["accessors"][0]["bufferView"]]
    raw = data[bin_start + view["byteOffset"] : bin_start + view["byteOffset"] + view["byteLength"]]
    return np.frombuffer(raw, "<f4").reshape(-1, 3)


def test_empty_scene_draws_nothing_but_can_be_framed() -> None:
    data = empty_scene_glb()
    doc = _glb_json(data)
    corners = _positions(data, doc)
    assert np.linalg.norm(np.cross(corners[1] - corners[0], corners[2] - corners[0])) == 0.0
    assert np.ptp(corners, axis=0).max() > 0
    assert doc["accessors"][0]["min"] == corners.min(axis=0).tolist()
    assert doc["accessors"][0]["max"] == corners.max(axis=0).tolist()


def test_empty_scene_has_the_models_attributes_and_material() -> None:
    """The viewer compiles its shaders for the empty scene; they must be the ones a model needs."""
    from PIL import Image

    tetra = TexturedMesh(
        vertices=np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float),
        faces=np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]),
        uv=np.zeros((4, 2)),
        texture=Image.new("RGB", (4, 4)),
    )
    model = _glb_json(export.glb_bytes(tetra))
    empty = _glb_json(empty_scene_glb())
    primitive, model_primitive = empty["meshes"][0]["primitives"][0], model["meshes"][0]["primitives"][0]
    assert primitive["attributes"].keys() == model_primitive["attributes"].keys()
    pbr, model_pbr = (
        empty["materials"][0]["pbrMetallicRoughness"],
        model["materials"][0]["pbrMetallicRoughness"],
    )
    assert pbr.keys() <= model_pbr.keys()
    assert {k: pbr[k] for k in ("metallicFactor", "roughnessFactor")} == {
        k: model_pbr[k] for k in ("metallicFactor", "roughnessFactor")
    }
    assert empty["samplers"] == model["samplers"]
    assert [i["mimeType"] for i in empty["images"]] == [i["mimeType"] for i in model["images"]]


@pytest.mark.parametrize("name", NAMES)
def test_the_status_panel_renders_each_recorded_stream(name: str) -> None:
    """The same recorded streams every client renders: the stage line from the queue to how the job ended, and
    the per-file table."""
    rec = load(name)
    views = rec.views()
    lines = [progress_line(v) for v in views]
    assert lines[0].startswith("Queued: waiting for a worker")
    status = rec.events[-1].data["status"]
    assert lines[-1].startswith({"completed": "Done", "failed": "Failed: ", "cancelled": "Cancelled"}[status])
    rows = status_table(views[-1]).splitlines()[2:]
    assert len(rows) == len(views[-1].files)
    for row, f in zip(rows, views[-1].files, strict=True):
        assert row.startswith(f"| {f.filename} | {f.status.value} |")
    positions = [v.queue_position for v in views if v.queue_position is not None]
    assert [line for line in dict.fromkeys(lines) if "in line" in line] == [
        f"Queued: #{p} in line" for p in dict.fromkeys(positions)
    ]


def test_several_photos_show_which_one_runs_and_how_many_are_done() -> None:
    views = load("three_photos_one_fails").views()
    lines = list(dict.fromkeys(progress_line(v) for v in views))
    assert "1/3 red.jpg: cutting out · 0 of 3 done" in lines
    assert "2/3 broken.jpg: shaping · 1 of 3 done" in lines
    assert lines[-1] == "Done (1 of 3 photo(s) failed)"
    broken = status_table(views[-1]).splitlines()[3]
    assert broken.startswith("| broken.jpg | failed |") and "asked to fail" in broken


def test_a_retry_shows_the_services_words_while_the_photo_waits_again() -> None:
    lines = [stage_line(v) for v in load("retried_after_a_worker_crash").views()]
    retry = next(line for line in lines if "retrying" in line)
    assert retry.startswith("Queued: retrying: the worker stopped")
    assert lines[lines.index(retry) + 1] == "vase.jpg: processing (attempt 2)"
