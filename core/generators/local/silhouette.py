"""Reading the silhouette before shaping it: mirror symmetry, rows with several runs, flat sides, and the plan that
follows (surface of revolution, revolved body with an inflated attachment, or Poisson inflation; which sides are
flat caps; how the back is textured).

The revolution detector is strict on purpose (applied loosely, a teddy becomes a chess piece): the silhouette must
be mirror-symmetric about a vertical axis (IoU with its mirror image ≥ `LATHE_MIRROR_IOU`), have one run per row
(at most `MAX_MULTI_RUN_ROWS` of its rows with more) and lie wholly inside the frame. A mug is the same test on the
silhouette's symmetric core, with the rest (the handle) on one side only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from image2model.core.images import mask_bounds

LATHE_MIRROR_IOU = 0.95
MAX_MULTI_RUN_ROWS = 0.03
MIN_BODY_SHARE = 0.7
"""A revolved body with an attachment: the symmetric core holds at least this share of the silhouette..."""
MIN_ATTACHMENT_SHARE = 0.03
"""...and the attachment (a mug's handle) at least this share, on one side of the axis."""
SIDE_ON_MIRROR_IOU = 0.9
"""Below this mirror IoU, a silhouette wider than tall is a side-on shot (a shoe, an animal in profile): its back is
the other side, so the mirrored front is a fair guess for it."""
SIDE_ON_ASPECT = 1.15
FLAT_TOLERANCE = 0.003
"""Bottom-outline points within this share of the object's height (at least 1 px) of the lowest one are on the
base line."""
MIN_BASE_WIDTH = 0.08
"""A base line covers at least this share of the object's width..."""
MAX_BASE_GROWTH = 1.5
"""...and widens by less than this when the tolerance triples (a round bottom widens by √3)."""
ANALYSIS_ROWS = 256
"""Symmetry is measured on a copy of the silhouette this many rows high."""


@dataclass
class Plan:
    """How to shape one silhouette."""

    kind: str
    """"inflate", "revolve" or "revolve+inflate" (a revolved body with an inflated attachment)."""
    back: str
    """"mirrored" (the front's texture seen from behind), "smooth" (no copied detail) or "wrapped" (revolved:
    each row's colour continues round)."""
    body: np.ndarray | None = None
    """bool, the mask's size: the revolved region (for "revolve+inflate" the symmetric core), else None."""
    flat: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """Sides cut flat ("bottom", "top", "left", "right") → intervals along that side (pixel coordinates) where the
    outline is a straight line: a base to stand on, or where the frame cuts the object."""
    figures: dict[str, Any] = field(default_factory=dict)
    axis: float | None = None
    """Column (working-image pixels) of the silhouette's mirror axis."""


def plan(soft: np.ndarray, shape: str) -> Plan:
    """The shaping plan for the soft mask `soft` (0..1, working-image size); `shape` is auto, inflate or revolve."""
    figures: dict[str, Any] = {}
    mask = soft > 0.5
    h, w = mask.shape
    bounds = mask_bounds(mask)
    if bounds is None:
        return Plan("inflate", "smooth", figures=figures)
    top, bottom, left, right = bounds
    touches = {"top": top == 0, "bottom": bottom == h - 1, "left": left == 0, "right": right == w - 1}
    small, scale = _analysis_copy(mask[top : bottom + 1, left : right + 1])
    axis2, mirror_iou = mirror_axis(small)
    multi = multi_run_share(small)
    figures.update(mirror_iou=round(mirror_iou, 4), multi_run_rows=round(multi, 4))
    in_frame = not any(touches.values())
    flat = flat_sides(soft, touches)
    body: np.ndarray | None = None
    kind = "inflate"
    if shape == "revolve":
        kind = "revolve"
    elif shape == "auto" and in_frame:
        if mirror_iou >= LATHE_MIRROR_IOU and multi <= MAX_MULTI_RUN_ROWS:
            kind = "revolve"
        else:
            core = _attachment_core(small, axis2)
            if core is not None:
                kind = "revolve+inflate"
                # The body at full resolution: the silhouette and its mirror image about the axis, overlapping.
                body = mask & mirrored(mask, round(2 * (left + (axis2 / 2.0 + 0.5) / scale - 0.5)))
                figures["attachment_share"] = round(1.0 - float(body.sum()) / float(mask.sum()), 4)
    if kind != "inflate" and "top" not in flat:
        top_line = _flat_line(soft, "top")
        if top_line:
            flat["top"] = top_line
    height, width = bottom - top + 1, right - left + 1
    if kind != "inflate":
        back = "wrapped"
    elif mirror_iou < SIDE_ON_MIRROR_IOU and width >= SIDE_ON_ASPECT * height and in_frame:
        back = "mirrored"
    else:
        back = "smooth"
    axis_px = left + (axis2 / 2.0 + 0.5) / scale - 0.5
    figures["axis_px"] = round(axis_px, 2)
    return Plan(kind, back, body, flat, figures, axis_px)


def _analysis_copy(crop: np.ndarray) -> tuple[np.ndarray, float]:
    """The cropped silhouette scaled to at most `ANALYSIS_ROWS` rows (same scale on both axes)."""
    import cv2

    scale = min(1.0, ANALYSIS_ROWS / crop.shape[0], ANALYSIS_ROWS / crop.shape[1])
    if scale >= 1.0:
        return crop.copy(), 1.0
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = cv2.resize(crop.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5
    return small, size[0] / crop.shape[1]


def mirror_axis(mask: np.ndarray) -> tuple[int, float]:
    """The vertical mirror axis that best maps the silhouette onto itself, as twice its column position (the
    mirror of column x is column `axis2` − x), and the IoU of the silhouette with its mirror image about it.

    Overlaps for every axis come from one FFT: the overlap about `axis2` is the sum over rows of each row's
    self-convolution at `axis2`."""
    m = mask.astype(np.float64)
    area = float(m.sum())
    if area == 0:
        return mask.shape[1] - 1, 0.0
    n = 2 * mask.shape[1]
    spectrum = np.fft.rfft(m, n=n, axis=1)
    overlap = np.fft.irfft((spectrum * spectrum).sum(axis=0), n=n)
    axis2 = int(np.argmax(overlap[: n - 1]))
    best = float(overlap[axis2])
    return axis2, best / max(2.0 * area - best, 1e-9)


def mirrored(mask: np.ndarray, axis2: int) -> np.ndarray:
    """`mask` mirrored about the column `axis2` / 2 (columns mapped outside the image are dropped)."""
    w = mask.shape[1]
    out = np.zeros_like(mask)
    cols = axis2 - np.arange(w)
    ok = (cols >= 0) & (cols < w)
    out[:, ok] = mask[:, cols[ok]]
    return out


def multi_run_share(mask: np.ndarray) -> float:
    """Share of the silhouette's rows that cross it more than once."""
    starts = np.count_nonzero(mask[:, 1:] & ~mask[:, :-1], axis=1) + mask[:, 0]
    rows = starts > 0
    return float(np.count_nonzero(starts > 1) / max(int(rows.sum()), 1))


def _attachment_core(small: np.ndarray, axis2: int) -> np.ndarray | None:
    """The symmetric core of a silhouette whose rest lies on one side of the axis (a mug: body and handle), or
    None when the silhouette is not like that."""
    core = small & mirrored(small, axis2)
    area = float(small.sum())
    core_area = float(core.sum())
    if core_area < MIN_BODY_SHARE * area or core_area > (1.0 - MIN_ATTACHMENT_SHARE) * area:
        return None
    if multi_run_share(core) > MAX_MULTI_RUN_ROWS:
        return None
    rest = small & ~core
    cols = np.nonzero(rest)[1]
    right = np.count_nonzero(cols * 2 > axis2)
    if max(right, len(cols) - right) < 0.97 * len(cols):
        return None
    # The core rows must be one run wide, and the attachment must touch the core (a handle, not a neighbour).
    import cv2

    grown = cv2.dilate(core.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if not (grown & rest).any():
        return None
    return core


def _flat_line(soft: np.ndarray, side: str) -> list[tuple[float, float]]:
    """Intervals (pixel coordinates along the side) where the outline on `side` ("bottom" or "top") is a straight
    horizontal line, or [] when it is not flat. Each column's outline is located to a fraction of a pixel (where
    the soft mask crosses 0.5), so a mask upsampled from a coarser cut-out does not look like a staircase."""
    m = soft if side == "bottom" else soft[::-1]
    inside = m > 0.5
    h = m.shape[0]
    has = inside.any(axis=0)
    if not has.any():
        return []
    cols = np.nonzero(has)[0]
    last = h - 1 - np.argmax(inside[::-1], axis=0)
    below = m[np.clip(last + 1, 0, h - 1), np.arange(m.shape[1])]
    here = m[last, np.arange(m.shape[1])]
    frac = np.where(last + 1 < h, (here - 0.5) / np.maximum(here - below, 1e-6), 0.5)
    lowest = np.where(has, last + np.clip(frac, 0.0, 1.0), -np.inf)
    rows = np.nonzero(inside.any(axis=1))[0]
    height = rows.max() - rows.min() + 1
    width = cols.max() - cols.min() + 1
    tol = max(1.0, FLAT_TOLERANCE * height)
    # The base level is the lowest one that a base's width of columns reaches (a one-column bump does not count).
    reach = max(1, round(MIN_BASE_WIDTH * width))
    y_low = float(np.sort(lowest[has])[::-1][min(reach, len(cols)) - 1])
    near = lowest >= y_low - tol
    wider = lowest >= y_low - 3 * tol
    base = int(near.sum())
    if base < MIN_BASE_WIDTH * width or int(wider.sum()) >= MAX_BASE_GROWTH * base:
        return []
    return _intervals(near)


def _intervals(flags: np.ndarray) -> list[tuple[float, float]]:
    """Runs of True in a 1-D array, as (first − 0.5, last + 0.5) pixel-edge intervals."""
    padded = np.concatenate([[False], flags, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(float(a) - 0.5, float(b) - 0.5) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def flat_sides(soft: np.ndarray, touches: dict[str, bool]) -> dict[str, list[tuple[float, float]]]:
    """Sides to cut flat: the bottom where it is a straight line (a base), and every side the frame cuts."""
    flat: dict[str, list[tuple[float, float]]] = {}
    mask = soft > 0.5
    h, w = mask.shape
    for side, line in (
        ("top", mask[0]),
        ("bottom", mask[h - 1]),
        ("left", mask[:, 0]),
        ("right", mask[:, w - 1]),
    ):
        if touches[side]:
            flat[side] = _intervals(line)
    if "bottom" not in flat:
        base = _flat_line(soft, "bottom")
        if base:
            flat["bottom"] = base
    return flat
