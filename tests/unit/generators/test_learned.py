"""The learned segmenter (extra `segment`, installed by `.[all]`) and when `auto` turns to it."""

from __future__ import annotations

import hashlib
import importlib.metadata

import numpy as np
import pytest

from image2model.core.generators.local import cutout, learned, pieces, studio
from image2model.core.mesh.quality import iou

from .conftest import jpeg, run_generator


def _rgb(shot: studio.Shot) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(shot.image)[..., :3])


def _pieces(mask: np.ndarray) -> int:
    return pieces.select_object(mask).pieces


def test_weights_ship_in_the_wheel_and_match_the_pinned_hash() -> None:
    path = importlib.metadata.distribution(learned.DISTRIBUTION).locate_file(learned.MODEL_FILE)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == learned.MODEL_SHA256
    assert learned.available() and learned.problem() is None


@pytest.mark.parametrize("size", [512, 1024])
def test_auto_sends_a_white_on_white_shoe_to_the_learned_segmenter(size: int) -> None:
    shot = studio.shoe(size)
    rgb = _rgb(shot)
    backdrop, figures = cutout.backdrop_mask(rgb)
    backdrop_iou = iou(cutout._soften(backdrop, rgb.shape[:2]) > 0.5, shot.truth)
    assert figures["faint_share"] > cutout.MAX_FAINT_SHARE  # the backdrop model knows it is unsure

    cut = cutout.cut_out(rgb, None, "auto")
    assert cut.method == "learned" and cut.warning is None
    learned_iou = iou(cut.mask > 0.5, shot.truth)
    assert learned_iou >= 0.97 and learned_iou > backdrop_iou + 0.15
    assert cut.figures["model"] == "u2netp" and cut.figures["seconds"] > 0
    assert "looks like the backdrop" in cut.figures["backdrop_reason"]
    assert _pieces(cut.mask > 0.5) == 1


@pytest.mark.parametrize("name", ["sneaker_white", "sneaker_offwhite"])
def test_white_panelled_sneaker_is_cut_out_whole_on_white_and_off_white(scenes: dict, name: str) -> None:
    shot = scenes[name]
    backdrop_cut = iou(
        cutout._soften(cutout.backdrop_mask(_rgb(shot))[0], shot.truth.shape) > 0.5, shot.truth
    )
    cut = cutout.cut_out(np.asarray(jpeg(shot.image)), None, "auto")
    assert cut.method == "learned"
    assert _pieces(cut.mask > 0.5) == 1
    # The backdrop model sees only the red leather (IoU ≈ 0.45); the learned cut, holes filled where they are not
    # the backdrop, keeps the white panels except where one merges with the outline.
    assert backdrop_cut < 0.6 and iou(cut.mask > 0.5, shot.truth) >= 0.87


@pytest.mark.parametrize("name", ["portrait", "pet"])
def test_objects_cut_by_the_frame_are_cut_out_not_refused(scenes: dict, name: str) -> None:
    shot = scenes[name]
    cut = cutout.cut_out(np.asarray(jpeg(shot.image)), None, "auto")
    assert cut.method == "learned" and cut.warning is None
    assert iou(cut.mask > 0.5, shot.truth) >= 0.97 and _pieces(cut.mask > 0.5) == 1


@pytest.mark.parametrize("name", ["chair", "toy", "cutout", "bottle", "vase", "glass", "mug", "table_cup"])
@pytest.mark.parametrize("jpeg_quality", [None, 80])
def test_auto_keeps_the_fast_path_for_clean_shots(
    shots: dict, scenes: dict, name: str, jpeg_quality: int | None, monkeypatch
) -> None:
    def fail(rgb: np.ndarray) -> None:
        raise AssertionError("the learned segmenter ran although the backdrop cut-out was beyond doubt")

    monkeypatch.setattr(learned, "segment", fail)
    shot = {**shots, **scenes}[name]
    image = jpeg(shot.image, jpeg_quality) if jpeg_quality else shot.image.convert("RGB")
    cut = cutout.cut_out(np.asarray(image), None, "auto")
    assert cut.method == "backdrop" and cut.figures["doubts"] == []
    assert iou(cut.mask > 0.5, shot.truth) >= 0.97 and _pieces(cut.mask > 0.5) == 1


def test_refused_scenes_still_end_as_a_reported_plaque() -> None:
    blank = cutout.cut_out(np.full((300, 400, 3), 250, np.uint8), None, "auto")
    assert blank.is_plaque and "learned segmenter" in blank.warning


def test_learned_mode_never_falls_back_to_a_fragmented_mask(scenes: dict, monkeypatch) -> None:
    def fragments(rgb: np.ndarray) -> tuple[np.ndarray, dict]:
        prob = np.zeros(rgb.shape[:2], np.float32)
        h, w = prob.shape
        prob[h // 4 : h // 2, w // 8 : w // 3] = 1.0
        prob[h // 2 : 3 * h // 4, 2 * w // 3 : 7 * w // 8] = 1.0
        prob[h // 8 : h // 4, w // 2 : 2 * w // 3] = 1.0
        return prob, {"model": "fake", "seconds": 0.0}

    monkeypatch.setattr(learned, "segment", fragments)
    cut = cutout.cut_out(_rgb(scenes["sneaker_white"]), None, "learned")
    # The backdrop cut is doubtful (the white panels are missing) and the learned one is fragments: no guess.
    assert cut.is_plaque and "separate pieces" in cut.warning


def test_openings_the_backdrop_model_kept_are_cut_from_the_learned_mask(shots: dict) -> None:
    rgb = _rgb(shots["chair"])
    backdrop, figures, score = cutout.backdrop_scored(rgb)
    cut = cutout._learned_cut(rgb, backdrop, figures, None, "test", score)
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
    assert meta["cutout"]["model"] == "u2netp" and meta["watertight"] and meta["pieces"] == 1
