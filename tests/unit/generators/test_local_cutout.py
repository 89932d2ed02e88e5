"""Cut-out on procedurally drawn product shots and on inputs it must refuse."""

from __future__ import annotations

import numpy as np
import pytest

from image2model.core.generators.local import cutout, learned, pieces, studio
from image2model.core.mesh.quality import iou

from .conftest import jpeg


def _cut(shot: studio.Shot, mode: str = "auto") -> cutout.Cutout:
    arr = np.asarray(shot.image)
    alpha = arr[..., 3] if arr.shape[-1] == 4 else None
    return cutout.cut_out(np.ascontiguousarray(arr[..., :3]), alpha, mode)


@pytest.mark.parametrize("name", ["toy", "chair"])
def test_backdrop_model_finds_objects_on_coloured_and_grey_backdrops(shots: dict, name: str) -> None:
    cut = _cut(shots[name])
    assert cut.method == "backdrop" and cut.warning is None
    assert iou(cut.mask > 0.5, shots[name].truth) >= 0.97


def test_chair_backrest_openings_stay_open(shots: dict) -> None:
    mask = _cut(shots["chair"]).mask > 0.5
    s = mask.shape[0]
    assert not mask[round(0.29 * s), round(0.41 * s)]  # centre of the left opening
    assert not mask[round(0.29 * s), round(0.585 * s)]
    assert mask[round(0.54 * s), round(0.5 * s)]  # seat


def test_rgba_cutout_uses_the_alpha_channel_exactly(shots: dict) -> None:
    cut = _cut(shots["cutout"])
    assert cut.method == "alpha"
    assert iou(cut.mask > 0.5, shots["cutout"].truth) >= 0.999


def test_without_the_extra_a_white_sole_on_white_is_a_partial_cutout_with_a_hint(
    shots: dict, monkeypatch
) -> None:
    # The border model cannot see a near-white sole on a white backdrop; without the learned segmenter it must still
    # give the shoe as one object, not fall back or mesh pieces, and say that its edge is doubtful.
    monkeypatch.setattr(learned, "segment", lambda rgb: None)  # as without the extra
    cut = _cut(shots["shoe"])
    assert cut.method == "backdrop" and cut.warning is None
    score = iou(cut.mask > 0.5, shots["shoe"].truth)
    assert 0.6 <= score < 0.97
    assert cut.figures["faint_share"] > cutout.MAX_FAINT_SHARE
    assert "not installed" in cut.figures["hint"]
    assert pieces.select_object(cut.mask > 0.5).pieces == 1


def test_learned_mode_without_the_extra_refuses_a_doubtful_backdrop_cut(shots: dict, monkeypatch) -> None:
    monkeypatch.setattr(learned, "segment", lambda rgb: None)
    cut = _cut(shots["shoe"], "learned")
    assert cut.is_plaque and "not installed" in cut.warning and "looks like the backdrop" in cut.warning
    clean = _cut(shots["toy"], "learned")
    assert clean.method == "backdrop" and "not installed" in clean.warning


def test_busy_table_keeps_the_cup_and_drops_the_crumbs(scenes: dict) -> None:
    shot = scenes["table_cup"]
    cut = cutout.cut_out(np.asarray(jpeg(shot.image)), None, "auto")
    inside = cut.mask > 0.5
    assert iou(inside, shot.truth) >= 0.97
    assert pieces.select_object(inside).pieces == 1


def _blob(mask: np.ndarray, box: tuple[int, int, int, int]) -> None:
    y0, y1, x0, x1 = box
    mask[y0:y1, x0:x1] = True


def test_a_part_across_a_thin_gap_is_joined_and_crumbs_and_far_objects_are_dropped() -> None:
    fg = np.zeros((400, 600), bool)
    _blob(fg, (100, 240, 100, 500))  # the upper
    _blob(fg, (246, 270, 90, 510))  # the sole, under a 6 px line the backdrop model could not see
    for y, x in ((30, 40), (350, 560), (20, 580)):
        _blob(fg, (y, y + 4, x, x + 4))  # crumbs
    selection = pieces.select_object(fg)
    assert selection.pieces == 2 and selection.joined == 1 and selection.dropped == 0
    assert selection.mask[243, 300]  # the gap is bridged
    assert not selection.mask[30:34, 40:44].any()  # crumbs dropped
    import cv2

    assert (
        cv2.connectedComponents(selection.mask.astype(np.uint8))[0] == 2
    )  # one object (label 0 = background)
    _blob(fg, (300, 390, 540, 598))  # another object, far away
    far = pieces.select_object(fg)
    assert far.dropped == 1 and far.dropped_share > 0.05 and not far.mask[350, 560]


def test_several_separate_objects_keep_the_largest_with_a_warning(monkeypatch) -> None:
    monkeypatch.setattr(learned, "segment", lambda rgb: None)
    rgb = np.full((300, 600, 3), 235, np.uint8)
    rgb[60:240, 40:250] = (200, 40, 40)
    rgb[100:200, 360:500] = (40, 60, 190)
    cut = cutout.cut_out(rgb, None, "auto")
    assert not cut.is_plaque and cut.figures["pieces_dropped"] == 1
    assert "several separate objects" in cut.warning
    assert (cut.mask[150, 100] > 0.5) != (cut.mask[150, 440] > 0.5)


def test_blank_image_falls_back_to_a_reported_plaque() -> None:
    cut = cutout.cut_out(np.full((300, 400, 3), 250, np.uint8), None, "auto")
    assert cut.is_plaque and "no object" in cut.warning
    assert cut.mask.mean() > 0.8


def test_busy_scene_is_refused_not_meshed() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    cut = cutout.cut_out(noise, None, "auto")
    assert cut.is_plaque and cut.warning


def test_fully_transparent_png_falls_back() -> None:
    rgb = np.zeros((200, 200, 3), np.uint8)
    cut = cutout.cut_out(rgb, np.zeros((200, 200), np.uint8), "auto")
    assert cut.is_plaque and "transparency" in cut.warning


def test_alpha_mode_without_transparency_explains_itself() -> None:
    cut = cutout.cut_out(np.full((100, 100, 3), 128, np.uint8), None, "alpha")
    assert cut.is_plaque and "no transparency" in cut.warning


def test_off_mode_makes_a_plaque_without_a_warning() -> None:
    cut = cutout.cut_out(np.full((100, 100, 3), 128, np.uint8), None, "off")
    assert cut.is_plaque and cut.warning is None


@pytest.mark.parametrize("name", ["shoe", "chair", "toy", "cutout"])
def test_shipped_samples_are_packaged_and_cut_out_without_fallback(name: str) -> None:
    from importlib.resources import files

    from PIL import Image

    resource = files("image2model.core.generators.local") / "samples" / f"{name}.png"
    with Image.open(resource) as im:
        arr = np.asarray(im.convert("RGBA" if im.mode == "RGBA" else "RGB"))
    cut = cutout.cut_out(
        np.ascontiguousarray(arr[..., :3]), arr[..., 3] if arr.shape[-1] == 4 else None, "auto"
    )
    assert not cut.is_plaque
