"""LocalGenerator end to end on drawn shots: files, metadata, conventions of every export, budgets, awkward inputs."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from image2model.core.errors import Cancelled, GenerationError, ValidationFailed
from image2model.core.generators import GenerationRequest
from image2model.core.generators.local import LocalGenerator, cutout, finishing, pipeline
from tests.unit.generators.conftest import jpeg, run_generator

ALL = ("glb", "obj", "stl", "ply")


@pytest.fixture(scope="module")
def toy_run(generator: LocalGenerator, shots: dict, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("toy")
    result, calls = run_generator(generator, shots["toy"].image, out, {"face_limit": 5000})
    return result, calls, out


def _file(result, fmt: str) -> Path:
    return next(f.path for f in result.files if f.format == fmt)


def test_importing_the_generator_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; import image2model.core.generators.local as m; "
        "print(m.LocalGenerator.spec.name, [x for x in ('numpy','scipy','cv2','trimesh','fast_simplification') "
        "if x in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "local []"


def test_spec_declares_options_and_formats() -> None:
    spec = LocalGenerator.spec
    assert spec.default_formats == ALL
    options, formats = spec.validate({}, None)
    assert options == {
        "face_limit": 10000,
        "inflation_depth": 0.75,
        "texture_size": 1024,
        "background_removal": "auto",
        "shape": "auto",
    }
    assert formats == list(ALL)
    assert spec.validate({"face_limit": "48"}, ["glb"])[0]["face_limit"] == 48
    assert spec.validate({"shape": "revolve"}, None)[0]["shape"] == "revolve"
    for bad in (
        {"face_limit": "47"},
        {"face_limit": "200001"},
        {"background_removal": "magic"},
        {"shape": "cube"},
    ):
        with pytest.raises(ValidationFailed):
            spec.validate(bad, None)


def test_files_are_named_from_basename_with_roles(toy_run) -> None:
    result, _, out = toy_run
    names = {(f.path.name, f.format, f.role) for f in result.files}
    assert names == {
        ("item.glb", "glb", "model"),
        ("item.obj.zip", "obj", "model"),
        ("item.stl", "stl", "model"),
        ("item.ply", "ply", "model"),
        ("item.preview.png", "png", "preview"),
        ("item.turntable.webp", "webp", "preview"),
        ("item.turntable.gif", "gif", "preview"),
        ("item.cutout.png", "png", "cutout"),
    }
    assert all(f.path.parent == out and f.path.stat().st_size > 0 for f in result.files)


def test_cutout_png_is_the_object_with_its_mask_as_alpha(toy_run, shots) -> None:
    result, _, out = toy_run
    with Image.open(out / "item.cutout.png") as im:
        assert im.mode == "RGBA"
        rgba = np.asarray(im)
    alpha = rgba[..., 3] > 127
    truth = shots["toy"].truth
    ys, xs = np.nonzero(truth)
    assert abs(alpha.sum() - truth.sum()) < 0.03 * truth.sum()  # cropped to the object, the same area
    assert alpha.shape[0] < truth.shape[0] and (ys.max() - ys.min()) <= alpha.shape[0]
    assert np.all(rgba[~(rgba[..., 3] > 0)][:, :3] == 0)  # no backdrop colour hidden under the transparency
    yellow = rgba[alpha][:, :3].astype(int)
    assert np.median(yellow[:, 0]) > 150 and np.median(yellow[:, 2]) < 120


def test_metadata_reports_mesh_gates_timings_options_and_cutout(toy_run) -> None:
    meta = toy_run[0].metadata
    assert meta["faces"] <= 5000 and meta["faces"] >= 4500
    assert meta["watertight"] is True and meta["winding_consistent"] is True and meta["volume"] > 0
    assert meta["silhouette_iou"] >= meta["silhouette_iou_threshold"] == 0.97
    assert meta["cutout"]["method"] == "backdrop" and "warning" not in meta
    assert meta["pieces"] == 1 and meta["shape"] == "inflate" and meta["back"] == "smooth"
    assert meta["photo_check"] == {"faint_share": 0.0, "passed": True}
    assert meta["options"]["face_limit"] == 5000
    for stage in (
        "decode",
        "cutout",
        "plan",
        "shape",
        "photo_check",
        "texture",
        "checks",
        "glb",
        "obj",
        "preview_png",
        "turntable",
        "cutout_png",
    ):
        assert meta["timings_ms"][stage] >= 0
    json.dumps(meta)  # stored as JSON by the service


def test_progress_is_monotonic_and_names_stages(toy_run) -> None:
    calls = toy_run[1]
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    stages = [s for _, s in calls]
    for stage in ("cutting out", "shaping", "texturing", "exporting"):
        assert stage in stages


def test_glb_conventions_y_up_front_plus_z_unit_extent_centred(toy_run) -> None:
    path = _file(toy_run[0], "glb")
    data = path.read_bytes()
    doc = json.loads(data[20 : 20 + struct.unpack_from("<I", data, 12)[0]])
    assert "extensionsUsed" not in doc and "NORMAL" in doc["meshes"][0]["primitives"][0]["attributes"]
    mesh = trimesh.load(path, force="mesh", process=False)
    lo, hi = mesh.bounds
    assert max(hi - lo) == pytest.approx(1.0, abs=1e-6)
    assert np.allclose((lo + hi) / 2, 0.0, atol=1e-6)
    assert not mesh.is_watertight  # UV seams: front, back and side tiles meet at duplicated vertices...
    mesh.merge_vertices(merge_tex=True, merge_norm=True)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0  # ...at equal positions
    # The teddy is taller than wide (Y up) and its ears, at the top of the photo, are at +Y.
    assert (hi - lo)[1] == pytest.approx(1.0) and (hi - lo)[0] < 0.9
    top = mesh.vertices[np.argmax(mesh.vertices[:, 1])]
    assert top[1] == pytest.approx(0.5) and abs(top[0]) > 0.1  # the highest point is an ear, not the head
    # Front toward +Z: the faces at the front-most point face +Z.
    assert mesh.face_normals[np.argmax(mesh.triangles_center[:, 2])][2] > 0.9
    assert mesh.face_normals[np.argmin(mesh.triangles_center[:, 2])][2] < -0.9
    material = mesh.visual.material
    assert isinstance(material, trimesh.visual.material.PBRMaterial)
    assert material.roughnessFactor == pytest.approx(0.9) and material.metallicFactor == 0.0
    # Texture: a yellow bear, no blue backdrop on the model.
    colours = mesh.visual.to_color().vertex_colors[:, :3].astype(int)
    assert np.mean(colours[:, 2] > colours[:, 0]) < 0.02


def test_other_formats_reload_with_the_same_mesh(toy_run) -> None:
    result = toy_run[0]
    faces = result.metadata["faces"]
    with zipfile.ZipFile(_file(result, "obj")) as zf:
        assert sorted(zf.namelist()) == ["item.jpg", "item.mtl", "item.obj"]
        zf.extractall(toy_run[2] / "obj")
    obj = trimesh.load(toy_run[2] / "obj" / "item.obj", force="mesh")
    stl = trimesh.load(_file(result, "stl"))
    ply = trimesh.load(_file(result, "ply"), process=False)
    for mesh in (obj, stl, ply):
        assert len(mesh.faces) == faces
    assert stl.is_watertight and stl.volume == pytest.approx(result.metadata["volume"], rel=1e-3)
    assert obj.visual.uv is not None
    yellow = ply.visual.vertex_colors[:, :3].astype(int)
    assert np.median(yellow[:, 0]) > 150 and np.median(yellow[:, 2]) < 120


def test_previews_show_the_object_in_frame(toy_run) -> None:
    result = toy_run[0]
    with Image.open(_file(result, "png")) as im:
        img = np.asarray(im.convert("RGB")).astype(int)
    obj = np.any(np.abs(img - (238, 240, 243)) > 10, axis=2)
    assert 0.05 < obj.mean() < 0.8
    assert not obj[0].any() and not obj[-1].any() and not obj[:, 0].any() and not obj[:, -1].any()
    for fmt in ("webp", "gif"):
        with Image.open(_file(result, fmt)) as im:
            assert im.is_animated and im.n_frames == 24


def test_only_requested_model_formats_are_written(generator, shots, tmp_path) -> None:
    result, _ = run_generator(
        generator, shots["cutout"].image, tmp_path, {"face_limit": 2000}, formats=("stl",)
    )
    assert sorted(f.format for f in result.files) == ["gif", "png", "png", "stl", "webp"]
    assert not (tmp_path / "item.glb").exists()
    assert result.metadata["cutout"]["method"] == "alpha"


def test_each_file_is_announced_as_it_is_written_the_glb_first(generator, shots, tmp_path) -> None:
    shots["toy"].image.save(tmp_path / "toy.png")
    options = generator.spec.validate({"face_limit": 2000}, None)[0]
    request = GenerationRequest([tmp_path / "toy.png"], options, ["stl", "glb"], tmp_path, "item")
    landed: list[tuple[str, bool]] = []
    result = generator.generate(
        request, lambda f, s: None, lambda out: landed.append((out.path.name, out.path.exists()))
    )
    assert [name for name, _ in landed] == [f.path.name for f in result.files]
    assert all(written for _, written in landed)
    assert [name for name, _ in landed][:2] == ["item.glb", "item.stl"]  # what a viewer shows comes first
    assert landed[-1][0] == "item.cutout.png"


def test_an_unknown_background_removal_is_refused_not_turned_into_a_plaque(shots) -> None:
    assert LocalGenerator.spec.option("background_removal").choices == cutout.MODES
    with pytest.raises(ValueError, match="background_removal must be one of auto, learned, alpha, off"):
        pipeline.build_model(shots["toy"].image, {"background_removal": "magic"}, lambda f, s: None)


def test_cancellation_from_progress_propagates(generator, shots, tmp_path) -> None:
    path = tmp_path / "in.png"
    shots["toy"].image.save(path)
    seen = []

    def progress(fraction: float, stage: str) -> None:
        seen.append(stage)
        if stage == "shaping":
            raise Cancelled("cancelled")

    from image2model.core.generators.base import GenerationRequest

    with pytest.raises(Cancelled):
        generator.generate(GenerationRequest([path], {}, ["glb"], tmp_path, "item"), progress)
    assert seen[-1] == "shaping" and not (tmp_path / "item.glb").exists()


@pytest.mark.parametrize("limit", [48, 200, 1000, 5000, 20000, 200000])
def test_face_limit_sweep_stays_closed_and_within_budget(shots, limit: int) -> None:
    model = pipeline.build_model(shots["chair"].image, {"face_limit": limit}, lambda f, s: None)
    fig = model.figures
    assert fig["faces"] <= limit and fig["watertight"] and fig["winding_consistent"] and fig["volume"] > 0
    if fig["dense_faces"] > limit:
        assert fig["faces"] >= 0.9 * limit
    if limit >= 1000:
        assert fig["silhouette_iou"] >= pipeline.iou_threshold(limit)
    if limit >= 5000:
        assert fig["euler_number"] == 2 - 2 * 5  # two backrest openings and three between the legs
    assert len(model.preview_mesh.faces) <= min(limit, finishing.PREVIEW_FACES)


def _blank() -> Image.Image:
    return Image.new("RGB", (640, 480), (250, 250, 250))


def _touching() -> Image.Image:
    img = Image.new("RGB", (400, 300), (230, 230, 235))
    from PIL import ImageDraw

    ImageDraw.Draw(img).ellipse([60, 120, 340, 420], fill=(30, 110, 200))  # runs off the bottom edge
    return img


def _tiny() -> Image.Image:
    img = Image.new("RGB", (1024, 1024), (240, 240, 240))
    from PIL import ImageDraw

    ImageDraw.Draw(img).ellipse([500, 500, 536, 536], fill=(200, 30, 30))
    return img


@pytest.mark.parametrize(
    ("name", "make", "plaque"),
    [
        ("blank", _blank, True),
        ("one_pixel", lambda: Image.new("RGB", (1, 1), (10, 200, 10)), True),
        ("extreme_aspect", lambda: Image.new("RGB", (3000, 20), (120, 60, 20)), True),
        ("transparent", lambda: Image.new("RGBA", (300, 200), (0, 0, 0, 0)), True),
        ("touching_border", _touching, False),
        ("tiny_object", _tiny, False),
    ],
)
def test_awkward_inputs_give_a_closed_model_or_a_reported_plaque(
    generator, tmp_path, name, make, plaque
) -> None:
    result, _ = run_generator(generator, make(), tmp_path, {"face_limit": 2000}, formats=("glb",))
    meta = result.metadata
    assert meta["faces"] > 0 and meta["watertight"] and meta["volume"] > 0
    assert (meta["cutout"]["method"] == "plaque") == plaque
    assert ("warning" in meta) == plaque
    mesh = trimesh.load(_file(result, "glb"), force="mesh")
    assert len(mesh.faces) == meta["faces"]


def test_failed_quality_gate_raises_an_actionable_error_with_figures(monkeypatch, shots) -> None:
    monkeypatch.setattr(
        pipeline, "iou_threshold", lambda limit: 1.5
    )  # no outline can reach it: a broken input
    with pytest.raises(GenerationError) as info:
        pipeline.build_model(shots["toy"].image, {"face_limit": 3000}, lambda f, s: None)
    assert "IoU" in info.value.message
    assert info.value.details["quality"]["silhouette_iou"] < 1.5


def test_a_missed_outline_gate_rebuilds_instead_of_failing(monkeypatch, shots) -> None:
    first = pipeline.build_model(shots["chair"].image, {"face_limit": 2000}, lambda f, s: None).figures
    # A gate just above what the first decimation reaches: the generator must try harder, not give up.
    monkeypatch.setattr(pipeline, "iou_threshold", lambda limit: first["silhouette_iou"] + 0.002)
    model = pipeline.build_model(shots["chair"].image, {"face_limit": 2000}, lambda f, s: None)
    fig = model.figures
    assert fig["decimation"] != first["decimation"] or fig["dense_faces"] > first["dense_faces"]
    assert fig["silhouette_iou"] >= first["silhouette_iou"] and fig["faces"] <= 2000 and fig["watertight"]


@pytest.mark.parametrize("limit", [1000, 5000])
def test_white_sneaker_on_off_white_never_fails_its_own_gate(generator, scenes, tmp_path, limit: int) -> None:
    result, _ = run_generator(
        generator, jpeg(scenes["sneaker_offwhite"].image), tmp_path, {"face_limit": limit}, ("glb",), "s.jpg"
    )
    meta = result.metadata
    assert meta["silhouette_iou"] >= meta["silhouette_iou_threshold"] - pipeline.GATE_SLACK
    assert meta["pieces"] == 1 and meta["watertight"] and "warning" not in meta


def test_a_backdrop_cut_that_misses_part_of_the_object_fails_its_photo_check(monkeypatch, shots) -> None:
    from image2model.core.generators.local import cutout, learned

    monkeypatch.setattr(learned, "segment", lambda rgb: None)  # without the extra: no second opinion
    monkeypatch.setattr(cutout, "MAX_FAINT_SHARE", 10.0)  # the cut-out's own doubt silenced...
    model = pipeline.build_model(shots["shoe"].image, {"face_limit": 3000}, lambda f, s: None)
    # ...the model is still checked against the photo, which shows the white sole outside its outline.
    assert model.figures["photo_check"]["faint_share"] > 0.2
