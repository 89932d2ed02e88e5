"""LocalGenerator with several views: the files it writes, the metadata that explains the model, and a texture
that takes every side from its own photo."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from image2model.core.generators.base import GenerationRequest, GenerationResult
from image2model.core.generators.local import SPEC, LocalGenerator
from image2model.core.mesh.model import face_normals
from tests.support import solids

ALL = ("glb", "obj", "stl", "ply")


def _run(
    generator: LocalGenerator, images, out: Path, options: dict | None = None, formats=ALL
) -> tuple[GenerationResult, list[tuple[float, str]]]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, image in enumerate(images):
        paths.append(out / f"{k}.png")
        image.save(paths[-1])
    checked, fmts = SPEC.validate(options or {}, list(formats))
    calls: list[tuple[float, str]] = []
    result = generator.generate(
        GenerationRequest(paths, checked, fmts, out, "item"), lambda f, s: calls.append((f, s))
    )
    return result, calls


@pytest.fixture(scope="module")
def box_photos():
    return solids.photographs(solids.SOLIDS["box"])


@pytest.fixture(scope="module")
def box_run(generator: LocalGenerator, box_photos, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("multiview-box")
    result, calls = _run(generator, box_photos, out, {"face_limit": "6000"})
    return result, calls, out


def _file(result: GenerationResult, fmt: str) -> Path:
    return next(f.path for f in result.files if f.format == fmt)


def test_spec_takes_up_to_four_views() -> None:
    assert SPEC.max_images_per_item == 4
    assert SPEC.describe()["max_images_per_item"] == 4
    assert "multiview=true" in SPEC.description and "stay filled" in SPEC.description


def test_every_format_and_preview_is_written_and_the_model_is_closed(box_run) -> None:
    result, calls, out = box_run
    assert sorted(f.path.name for f in result.files) == sorted(
        [
            "item.glb",
            "item.obj.zip",
            "item.stl",
            "item.ply",
            "item.preview.png",
            "item.turntable.webp",
            "item.turntable.gif",
            "item.cutout.png",
        ]  # fmt: skip
    )
    for fmt in ("glb", "stl", "ply"):
        mesh = trimesh.load(_file(result, fmt), file_type=fmt, force="mesh")
        mesh.merge_vertices(merge_tex=True, merge_norm=True)  # UV seams and sharp edges duplicate vertices
        assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0, fmt
        assert len(mesh.faces) <= 6000, fmt
        assert max(mesh.extents) == pytest.approx(1.0, abs=1e-3), fmt
    with zipfile.ZipFile(_file(result, "obj")) as archive:
        assert sorted(archive.namelist()) == ["item.jpg", "item.mtl", "item.obj"]
    glb = _file(result, "glb").read_bytes()
    assert glb[:4] == b"glTF" and b'"NORMAL"' in glb and b'"TEXCOORD_0"' in glb and b"image/jpeg" in glb
    stages = [s for _, s in calls]
    assert stages[:5] == ["reading images", "cutting out", "aligning views", "carving", "texturing"]
    assert [f for f, _ in calls] == sorted(f for f, _ in calls)


def test_the_cutout_sheet_shows_every_view_side_by_side(box_run) -> None:
    result = box_run[0]
    sheet = next(f for f in result.files if f.role == "cutout")
    alpha = np.asarray(Image.open(sheet.path))[..., 3]
    assert alpha.max() == 255
    columns = alpha.max(axis=0) > 0
    runs = int(columns[0]) + int(np.count_nonzero(columns[1:] & ~columns[:-1]))
    assert runs == 4  # four cut-outs, each separated from the next by transparent gap columns


def test_metadata_says_how_many_views_were_used_and_how_they_were_aligned(box_run) -> None:
    meta = box_run[0].metadata
    assert meta["mode"] == "multiview" and meta["views"] == 4
    assert meta["views_used"] == ["front", "left", "back", "right"]
    assert [v["view"] for v in meta["alignment"]["views"]] == meta["views_used"]
    assert "same height" in meta["alignment"]["method"] and "ground line" in meta["alignment"]["method"]
    assert meta["shape"]["box_parts"] >= 1 and meta["shape"]["parts"][0]["shape"] == "box"
    assert "filled" in meta["limitations"]
    assert meta["watertight"] is True and meta["faces"] <= 6000
    assert meta["silhouette_iou"] >= meta["silhouette_iou_threshold"]
    assert set(meta["cutout"]) == {"front", "left", "back", "right"}
    assert meta["texture"]["from_opposite_side"] == []
    assert {"cutout", "carve", "marching_cubes", "texture", "glb", "turntable"} <= set(meta["timings_ms"])


def _side_colours(mesh: trimesh.Trimesh) -> dict[str, np.ndarray]:
    """Mean texture colour of the faces turned toward each horizontal side."""
    colours = mesh.visual.to_color().vertex_colors[:, :3].astype(float)
    normals = face_normals(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    out = {}
    for name, direction in (
        ("front", (0, 0, 1)),
        ("left", (1, 0, 0)),
        ("back", (0, 0, -1)),
        ("right", (-1, 0, 0)),
    ):
        faces = np.asarray(mesh.faces)[normals @ np.array(direction) > 0.95]
        out[name] = colours[faces].reshape(-1, 3).mean(axis=0)
    return out


def _dominant(colour: np.ndarray) -> str:
    r, g, b = colour
    if r > 1.5 * b and g > 1.5 * b:
        return "yellow"
    return ("red", "green", "blue")[int(np.argmax(colour))]


def test_each_side_takes_its_colour_from_its_own_photo(box_run) -> None:
    mesh = trimesh.load(_file(box_run[0], "glb"), file_type="glb", force="mesh")
    sides = {name: _dominant(c) for name, c in _side_colours(mesh).items()}
    assert sides == {"front": "red", "left": "green", "back": "blue", "right": "yellow"}


def test_with_front_and_left_only_the_unseen_sides_take_the_opposite_photo(
    generator: LocalGenerator, box_photos, tmp_path: Path
) -> None:
    result, _ = _run(generator, box_photos[:2], tmp_path, {"face_limit": "4000"}, ("glb",))
    assert result.metadata["views"] == 2 and result.metadata["views_used"] == ["front", "left"]
    assert result.metadata["texture"]["from_opposite_side"] == ["back", "right"]
    mesh = trimesh.load(_file(result, "glb"), file_type="glb", force="mesh")
    sides = {name: _dominant(c) for name, c in _side_colours(mesh).items()}
    assert sides == {"front": "red", "left": "green", "back": "red", "right": "green"}


def test_small_face_budgets_stay_closed(generator: LocalGenerator, tmp_path: Path) -> None:
    photos = solids.photographs(solids.SOLIDS["chair"], views=(0, 1))
    result, _ = _run(generator, photos, tmp_path, {"face_limit": "300"}, ("stl",))
    mesh = trimesh.load(io.BytesIO(_file(result, "stl").read_bytes()), file_type="stl", force="mesh")
    assert len(mesh.faces) <= 300 and mesh.is_watertight
    assert result.metadata["faces"] <= 300 and result.metadata["watertight"] is True


def test_one_image_still_takes_the_single_photo_path(
    generator: LocalGenerator, box_photos, tmp_path: Path
) -> None:
    result, _ = _run(generator, box_photos[:1], tmp_path, {"face_limit": "2000"}, ("glb",))
    assert result.metadata.get("mode") != "multiview" and "views" not in result.metadata


def test_a_view_warning_reaches_the_item_metadata(
    generator: LocalGenerator, box_photos, tmp_path: Path
) -> None:
    cut_off = solids.photograph(solids.SOLIDS["box"], 1, solids.Shot((512, 512), 0.72, (0, 230)))
    result, _ = _run(generator, [box_photos[0], cut_off], tmp_path, {"face_limit": "2000"}, ("glb",))
    assert "touches the bottom edge of the left view (2nd photo)" in result.metadata["warning"]
