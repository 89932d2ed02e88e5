"""The web UI's pure parts: which progress updates reach the page, and the viewer's empty scene."""

from __future__ import annotations

import json
import struct

import numpy as np

from image2model.core.mesh import export
from image2model.core.mesh.model import TexturedMesh
from image2model.core.models import Event, EventType, UploadResponse
from image2model.ui_gradio.view import ProgressGate, ProgressTracker, empty_scene_glb


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_gate_sends_every_stage_change_and_drops_repeats() -> None:
    clock = _Clock()
    gate = ProgressGate(0.25, clock)
    assert gate.changes("reading image", "t0") == {"stage", "table"}
    clock.now = 0.01
    assert gate.changes("reading image", "t0") == set()
    clock.now = 0.02
    assert gate.changes("shaping", "t1") == {"stage", "table"}
    clock.now = 0.03
    assert gate.changes("texturing", "t1") == {"stage"}


def test_gate_holds_back_table_only_changes_for_the_interval() -> None:
    clock = _Clock()
    gate = ProgressGate(0.25, clock)
    gate.changes("shaping", "10%")
    clock.now = 0.1
    assert gate.changes("shaping", "20%") == set()
    clock.now = 0.3
    assert gate.changes("shaping", "30%") == {"table"}


def test_gate_forced_updates_carry_both_parts() -> None:
    clock = _Clock()
    gate = ProgressGate(0.25, clock)
    gate.changes("done", "t")
    assert gate.changes("done", "t", force=True) == {"stage", "table"}


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


def test_tracker_shows_the_place_in_the_queue_until_the_job_runs() -> None:
    upload = UploadResponse.model_validate(
        {
            "job_id": "j",
            "task_id": "j",
            "batch_id": "j",
            "status": "queued",
            "total_files": 1,
            "generator": "local",
            "message": "1 file(s) queued",
            "uploaded_files": [
                {
                    "file_id": "f",
                    "filename": "mug.jpg",
                    "file_size": 1,
                    "content_type": "image/jpeg",
                    "status": "queued",
                }
            ],
        }
    )
    tracker = ProgressTracker(upload)
    tracker.feed(Event(seq=1, type=EventType.TASK_QUEUED, data={"status": "queued", "progress": 0}))
    assert tracker.stage == "Queued: waiting for a worker"
    for position in (3, 2):
        notice = {"status": "queued", "progress": 0, "queue_position": position}
        tracker.feed(Event(seq=1, type=EventType.QUEUE_POSITION, data=notice))
        assert tracker.stage == f"Queued: #{position} in line"
    tracker.feed(
        Event(
            seq=2,
            type=EventType.FILE_UPDATE,
            data={"index": 0, "status": "processing", "message": "cutting out"},
        )
    )
    running = tracker.stage
    tracker.feed(Event(seq=2, type=EventType.QUEUE_POSITION, data={"status": "queued", "queue_position": 1}))
    assert tracker.stage == running and "Queued" not in running
