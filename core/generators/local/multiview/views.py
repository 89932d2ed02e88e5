"""The photos of a multi-view upload: cut out, aligned by the object's own extent, checked against each other,
and resampled onto two silhouette canvases (front/back along X, left/right along Z).

Frame (before the model is normalised): units of the object's height, Y up from the ground line, the front
toward +Z, X to the object's left (the image right of the front photo). The contract's order is front, left,
back, right: the object turns a quarter turn clockwise seen from above between shots, so view k is seen from
direction (sin 90°k, 0, cos 90°k) with image right (cos 90°k, 0, −sin 90°k)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from image2model.core.errors import GenerationError
from image2model.core.generators.local import cutout as _cutout

VIEW_NAMES = ("front", "left", "back", "right")
ORDINALS = ("1st", "2nd", "3rd", "4th")
MIN_MIRROR_IOU = 0.7
"""Front and back (or left and right) outlines, one mirrored, must overlap at least this much."""
MAX_UNSUPPORTED = 0.08
"""Share of one axis' silhouette lying at heights where the other axis shows nothing, above which the views
cannot be of one object."""
CANVAS_RES = 512
"""Silhouette canvas pixels per unit of object height (fewer when the photos show the object smaller)."""
CANVAS_MARGIN = 0.06


def view_axes(k: int) -> tuple[np.ndarray, np.ndarray]:
    """(direction toward the camera, image right) of view k in the object's frame."""
    theta = math.pi / 2 * k
    return (
        np.array([math.sin(theta), 0.0, math.cos(theta)]),
        np.array([math.cos(theta), 0.0, -math.sin(theta)]),
    )


def describe(k: int) -> str:
    """How a message names view k: 'the left view (2nd photo)'."""
    return f"the {VIEW_NAMES[k]} view ({ORDINALS[k]} photo)"


@dataclass
class View:
    """One photo, cut out and aligned: photo pixel = (centre + scale·u, ground − scale·y) in pixel-edge units,
    where u is the world point's coordinate along the view's image right."""

    k: int
    rgb: np.ndarray
    mask: np.ndarray
    cut: _cutout.Cutout
    scale: float
    centre: float
    ground: float
    bbox: tuple[int, int, int, int]
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return VIEW_NAMES[self.k]

    @property
    def toward(self) -> np.ndarray:
        return view_axes(self.k)[0]

    @property
    def right(self) -> np.ndarray:
        return view_axes(self.k)[1]

    def photo_xy(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Photo pixel coordinates (pixel centres at integers) of world points (..., 3)."""
        u = points @ self.right
        return self.centre + self.scale * u - 0.5, self.ground - self.scale * points[..., 1] - 0.5

    def alignment(self, reference: View) -> dict[str, Any]:
        """What the metadata says about how this view was aligned (zoom relative to `reference`)."""
        h, w = self.mask.shape
        x0, y0, x1, y1 = self.bbox
        return {
            "view": self.name,
            "photo": self.k + 1,
            "size": [int(w), int(h)],
            "object_box": [x0, y0, x1, y1],
            "object_height_px": y1 - y0,
            "object_offset_px": [round(self.centre - w / 2, 1), round((y0 + y1 - h) / 2, 1)],
            "scale": round(reference.scale / self.scale, 4),
            "ground_row": y1,
            "cutout": self.cut.method,
        }


def prepare(k: int, rgb: np.ndarray, alpha: np.ndarray | None, mode: str) -> View:
    """Cut the object out of view k and measure its extent; raises GenerationError naming the view when no
    object is found."""
    if mode == "off":
        raise GenerationError(
            "background_removal=off keeps the whole photo, which cannot be carved from several views; use auto, "
            "learned or alpha with multiview.",
            {"view": VIEW_NAMES[k], "photo": k + 1},
        )
    cut = _cutout.cut_out(rgb, alpha, mode)
    inside = cut.mask > 0.5
    if cut.is_plaque or not inside.any():
        warning = cut.warning or ""
        # The cut-out's warning gives its reason in parentheses; keep just that part when it is there.
        reason = (
            warning.split("(", 1)[1].split(")", 1)[0] if "(" in warning and ")" in warning else "it is empty"
        )
        raise GenerationError(
            f"No object was found in {describe(k)} ({reason}). Every view must show the whole object on a plain "
            "background, or be a PNG with a transparent background.",
            {"view": VIEW_NAMES[k], "photo": k + 1, "cutout": {"method": cut.method, **cut.figures}},
        )
    ys, xs = np.nonzero(inside)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    h, w = inside.shape
    view = View(k, rgb, cut.mask, cut, float(y1 - y0), (x0 + x1) / 2.0, float(y1), (x0, y0, x1, y1))
    touches = [side for side, hit in (("top", y0 == 0), ("bottom", y1 == h)) if hit]
    if touches:
        view.warnings.append(
            f"The object touches the {' and '.join(touches)} edge of {describe(k)}, so its height may be cut off "
            "and the views may not line up; leave a margin around the object."
        )
    return view


@dataclass
class Canvas:
    """Silhouettes of the views along one axis (front/back along X, left/right along Z) resampled to world
    units: column c is at world coordinate lo + (c + 0.5)/res, row r at height top − (r + 0.5)/res."""

    axis: str
    lo: float
    top: float
    res: float
    masks: dict[int, np.ndarray]
    """Per view: the soft cut-out on this canvas (the back and right views mirrored into place)."""
    luminance: dict[int, np.ndarray]
    mask: np.ndarray
    """The combined silhouette (the views of this axis intersected), soft 0..1."""

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape  # type: ignore[return-value]

    def cols(self, w: np.ndarray) -> np.ndarray:
        return (w - self.lo) * self.res - 0.5

    def rows(self, y: np.ndarray) -> np.ndarray:
        return (self.top - y) * self.res - 0.5


def _warp_matrix(view: View, lo: float, top: float, res: float, sign: float) -> np.ndarray:
    """Affine map from canvas pixel (c, r) to photo pixel, for cv2's inverse-map warp."""
    s = view.scale
    return np.array(
        [
            [s * sign / res, 0.0, view.centre + s * sign * (lo + 0.5 / res) - 0.5],
            [0.0, s / res, view.ground - s * (top - 0.5 / res) - 0.5],
        ]
    )


def canvas_resolution(views: list[View]) -> float:
    """Canvas pixels per unit of height shared by both canvases (so their rows line up)."""
    return min(CANVAS_RES, min(v.scale for v in views))


def canvas(views: list[View], axis: str, res: float) -> Canvas | None:
    """The canvas of the views looking along `axis` ("x": front and back, "z": left and right)."""
    import cv2

    members = [v for v in views if (v.k % 2 == 0) == (axis == "x")]
    if not members:
        return None
    half = max((v.bbox[2] - v.bbox[0]) / v.scale for v in members) / 2
    lo, top = -half - CANVAS_MARGIN, 1.0 + CANVAS_MARGIN
    width = math.ceil((2 * half + 2 * CANVAS_MARGIN) * res)
    height = math.ceil((1.0 + 2 * CANVAS_MARGIN) * res)
    masks, luminance = {}, {}
    for v in members:
        # World coordinate w along the canvas is the view's image-right coordinate times this sign.
        sign = float(v.right[0] if axis == "x" else v.right[2])
        m = _warp_matrix(v, lo, top, res, sign)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        masks[v.k] = cv2.warpAffine(v.mask.astype(np.float32), m, (width, height), flags=flags, borderValue=0)
        grey = cv2.cvtColor(v.rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        luminance[v.k] = cv2.warpAffine(grey, m, (width, height), flags=flags, borderValue=0)
    combined = np.minimum.reduce(list(masks.values()))
    return Canvas(axis, lo, top, res, masks, luminance, combined)


def check(x: Canvas, z: Canvas | None) -> dict[str, Any]:
    """Raise GenerationError naming the view when the views cannot show one object; returns the figures."""
    figures: dict[str, Any] = {}
    for can, (first, second) in ((x, (0, 2)), (z, (1, 3))):
        if can is None or second not in can.masks:
            continue
        a, b = can.masks[first] > 0.5, can.masks[second] > 0.5
        union = np.count_nonzero(a | b)
        iou = float(np.count_nonzero(a & b) / union) if union else 1.0
        figures[f"{VIEW_NAMES[first]}_{VIEW_NAMES[second]}_mirror_iou"] = round(iou, 4)
        if iou < MIN_MIRROR_IOU:
            raise GenerationError(
                f"{describe(second).capitalize()} does not match {describe(first)}: seen from opposite sides, one "
                f"object's outlines are mirror images, but these overlap only {iou:.0%} once mirrored. Check that "
                "both photos show the same object and that the photos are in the order front, left, back, right.",
                {"view": VIEW_NAMES[second], "photo": second + 1, "mirror_iou": round(iou, 4)},
            )
    if z is not None:
        rows_x = (x.mask > 0.5).sum(axis=1)
        rows_z = (z.mask > 0.5).any(axis=1)
        unsupported = float(rows_x[~rows_z].sum() / max(rows_x.sum(), 1))
        figures["unsupported_share"] = round(unsupported, 4)
        if unsupported > MAX_UNSUPPORTED:
            raise GenerationError(
                f"{describe(1).capitalize()} does not line up with {describe(0)}: {unsupported:.0%} of the front "
                "outline is at heights where the side shows nothing. Check that both photos show the same object, "
                "whole and upright.",
                {"view": VIEW_NAMES[1], "photo": 2, "unsupported_share": round(unsupported, 4)},
            )
    return figures
