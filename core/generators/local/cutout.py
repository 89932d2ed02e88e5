"""Cutting the object out of the photo: alpha channel, border-colour backdrop model, learned segmenter, or the
photo-plaque fallback.

The backdrop model learns the colours along the image border (k-means in Lab), scores every pixel by its distance
to the nearest backdrop colour in units of that colour's own spread, and forgives darkening (soft shadows). It is
right for well-lit objects on plain or gradient studio backdrops and takes about 20 ms. `auto` keeps it only when
its cut is beyond doubt; it turns to the learned segmenter (`learned`, the optional `segment` extra, ~0.4 s) when
the backdrop cut fails its gates, comes in several significant pieces, has an ambiguous edge (part of the object
about the backdrop's colour: a white sole on white) or touches the frame (a portrait cut at the chest, a pet filling
the photo). Every mask then goes through `pieces.select_object`: the object and the parts that belong to it are
kept and joined, specks and other objects are dropped, so fragments are never meshed. When nothing trustworthy is
left, the caller gets the photo plaque, with the reason in its warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from image2model.core.generators.local import pieces
from image2model.core.images import mask_bounds

MODES = ("auto", "learned", "alpha", "off")
"""The `background_removal` choices (the generator's spec offers the same)."""
MODEL_SIZE = 512
"""Long side at which the backdrop model runs."""
MIN_FOREGROUND = 0.001
MAX_FOREGROUND = 0.9
MAX_LEARNED_FOREGROUND = 0.97
"""A learned mask may fill almost the whole frame (a pet close up); beyond this it found no object."""
MIN_LARGEST_SHARE = 0.6
MAX_BORDER_TOUCH = 0.25
"""The backdrop model refuses a foreground covering more of the border than this (it took backdrop as object)."""
TOUCH_DOUBT = 0.005
"""A backdrop cut touching more of the image border than this is doubtful: the object runs off the frame."""
MAX_FAINT_SHARE = 0.2
"""Above this `faint_share` (faint regions touching the object, as a share of its area), part of the object is
probably about the backdrop's colour and the backdrop cut is doubtful. Drawn white-on-white shots measure 0.4–0.6,
clean shots (JPEG q60–q90 included) 0–0.11."""
FAINT_REACH = 0.08
"""A faint region counts when it comes within half this share of the object's diagonal (a white midsole line
between the upper and the outsole is such a gap)."""
FAINT_SCORE = 1.6
"""Smoothed backdrop score above which a region is a little off the backdrop's colour (the backdrop's median is
about 0.5; its noise, smoothed, stays below 1)."""
OPENING_SCORE = 0.8
"""A hole whose median backdrop score is below this shows the backdrop itself (the backdrop's own median is about
0.5); above it, it is part of the object about the backdrop's colour."""
MIN_LEARNED_SHARE = 0.5
"""A learned mask whose largest piece holds less than this of its foreground is fragments, not an object."""
LOST_SHARE = 0.15
"""When the pieces left out hold more than this share of the foreground, the photo shows several objects."""


@dataclass
class Cutout:
    """A soft object mask (float32, 0..1, the working image's size) and how it was obtained."""

    mask: np.ndarray
    method: str
    """"alpha", "backdrop", "learned" or "plaque"."""
    figures: dict[str, Any] = field(default_factory=dict)
    warning: str | None = None
    score: np.ndarray | None = field(default=None, repr=False)
    """The backdrop model's per-pixel score at its own resolution (about 1 on the backdrop), when it ran on a
    plain backdrop: an independent check of the final model against the photo (`photo_check`)."""

    @property
    def is_plaque(self) -> bool:
        return self.method == "plaque"


def cut_out(rgb: np.ndarray, alpha: np.ndarray | None, mode: str) -> Cutout:
    """Find the object in `rgb` (uint8 HxWx3; `alpha` uint8 HxW or None). `mode` is auto, learned, alpha or off
    (`ValueError` for anything else)."""
    if mode not in MODES:
        raise ValueError(f"background_removal must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off":
        return plaque(rgb.shape[:2], None)
    shape = rgb.shape[:2]
    reasons: list[str] = []
    if alpha is not None and (mode == "alpha" or np.count_nonzero(alpha < 250) >= 0.01 * alpha.size):
        soft = alpha.astype(np.float32) / 255.0
        figures = _gate_figures(soft > 0.5)
        problem = _gate_problem(figures, check_border=False)
        if problem is None:
            return _finish(soft, "alpha", figures)
        reasons.append(f"the transparency mask {problem}")
    elif mode == "alpha":
        reasons.append("the image has no transparency")
    if mode not in ("auto", "learned"):
        return plaque(shape, "; ".join(reasons))
    mask, figures, backdrop_score_map = backdrop_scored(rgb)
    problem = _gate_problem(figures, check_border=True)
    # Not a plain backdrop (its gates failed): its score says nothing about the photo.
    score = backdrop_score_map if problem is None else None
    doubts = _doubts(figures, problem)
    figures["doubts"] = doubts
    if not doubts and mode == "auto":
        return _finish(
            _soften_cut(mask, backdrop_score_map, figures, shape), "backdrop", figures, score=score
        )
    learned_cut = _learned_cut(
        rgb, mask, figures, problem, "; ".join(doubts) or "learned segmenter requested", score
    )
    if learned_cut is not None and learned_cut.method == "learned":
        learned_cut.score = score if problem is None else None
        return learned_cut
    if learned_cut is None:
        unavailable = "the learned segmenter is not installed (pip install 'image2model[segment]')"
    else:
        unavailable = learned_cut.warning or "the learned segmenter refused the photo"
    if problem is None and (mode == "auto" or not doubts):
        # No learned cut: the backdrop cut passed its gates, so it is used, joined into one object, and the doubt
        # that sent it to the learned segmenter is reported. `learned` takes it only when nothing is in doubt.
        figures["learned_unavailable"] = unavailable
        cut = _finish(_soften_cut(mask, backdrop_score_map, figures, shape), "backdrop", figures, score=score)
        hint = f"The cut-out may be imperfect ({'; '.join(doubts) or 'learned segmenter requested'}) and {unavailable}."
        cut.figures["hint"] = hint
        if mode == "learned":
            cut.warning = hint
        return cut
    reasons.extend(doubts or [f"the backdrop model {problem}"])
    reasons.append(unavailable)
    return plaque(shape, "; ".join(reasons))


def _doubts(figures: dict[str, Any], problem: str | None) -> list[str]:
    """Why a backdrop cut that may have passed its gates is still not to be trusted without a second opinion."""
    doubts = []
    if problem is not None:
        doubts.append(f"the backdrop model {problem}")
    if figures.get("pieces", 1) > 1:
        doubts.append(f"the backdrop cut came in {figures['pieces']} pieces")
    if figures.get("faint_share", 0.0) > MAX_FAINT_SHARE:
        doubts.append("part of the object's edge looks like the backdrop")
    if figures.get("border_touch", 0.0) > TOUCH_DOUBT:
        doubts.append("the object touches the frame")
    return doubts


def _finish(
    soft: np.ndarray, method: str, figures: dict[str, Any], score: np.ndarray | None = None
) -> Cutout:
    """Select the object in a soft mask (largest piece plus the parts that belong to it); a plaque when that
    leaves only fragments. Pieces left out are counted in the figures and, when they are more than specks, named in
    the warning."""
    problem = _select(soft, figures)
    if isinstance(problem, str):
        return plaque(soft.shape, problem)
    soft = problem
    warning = None
    if figures["dropped_share"] > LOST_SHARE:
        warning = (
            f"The photo shows several separate objects; only the largest was modelled ({figures['pieces_dropped']} "
            f"other pieces, {figures['dropped_share']:.0%} of what was cut out, were left out)."
        )
    return Cutout(soft, method, figures, warning, score)


def _select(soft: np.ndarray, figures: dict[str, Any]) -> np.ndarray | str:
    """The soft mask reduced to one object (`pieces.select_object`), or why it cannot be."""
    import cv2

    selection = pieces.select_object(soft > 0.5)
    figures.update(selection.figures())
    if selection.largest_share < MIN_LEARNED_SHARE and selection.joined == 0:
        return f"found {selection.pieces} separate pieces and none of them dominates"
    if selection.dropped_share == 0 and not selection.joined:
        return soft
    # Keep the soft edge of what was kept, drop the rest, add the bridges.
    near = cv2.dilate(selection.mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    out = np.where(near, soft, 0.0).astype(np.float32)
    bridges = selection.mask & (out <= 0.5)
    out[bridges] = 1.0
    return out


def _learned_cut(
    rgb: np.ndarray,
    backdrop: np.ndarray,
    backdrop_figures: dict[str, Any],
    backdrop_problem: str | None,
    reason: str,
    score: np.ndarray | None = None,
) -> Cutout | None:
    """The learned segmenter's cut-out; None when the extra is missing. A refused mask comes back as a Cutout with
    method "refused" and the reason in `warning`.

    Openings the backdrop model kept open (big, backdrop-coloured holes such as a chair's backrest) are cut out of
    the learned mask, which tends to fill them."""
    from image2model.core.generators.local import learned

    result = learned.segment(rgb)
    if result is None:
        return None
    prob, model_figures = result
    if backdrop_problem is None and score is not None:
        # The backdrop model is valid here: its real openings stay open, every other hole of the learned mask (a
        # white panel it took for background) is filled.
        openings = _soften(_openings(backdrop, score), rgb.shape[:2]) > 0.5
        filled = _fill_holes_except(prob > 0.5, openings)
        prob = np.where(filled & (prob <= 0.5), 1.0, prob).astype(np.float32)
        if openings.any():
            prob = prob * (1.0 - openings)
    figures = _gate_figures(prob > 0.5)
    figures.update(model_figures)
    figures["backdrop_reason"] = reason
    figures["backdrop_faint_share"] = backdrop_figures.get("faint_share", 0.0)
    figures["backdrop_foreground_fraction"] = backdrop_figures["foreground_fraction"]
    fraction = figures["foreground_fraction"]
    problem = None
    if fraction < MIN_FOREGROUND:
        problem = "found no object" if fraction == 0 else f"found only {fraction:.2%} of the image as object"
    elif fraction > MAX_LEARNED_FOREGROUND:
        problem = f"took {fraction:.0%} of the image as object"
    if problem is not None:
        return Cutout(prob, "refused", figures, f"the learned segmenter {problem}")
    selected = _select(prob, figures)
    if isinstance(selected, str):
        return Cutout(prob, "refused", figures, f"the learned segmenter {selected}")
    return _finish(selected, "learned", figures)


def _openings(fg: np.ndarray, score: np.ndarray | None) -> np.ndarray:
    """Holes of a mask (background regions not touching the image border) that show the backdrop itself: their
    median score is below `OPENING_SCORE` (a chair's backrest opening). A hole a little off the backdrop's colour
    (a white panel on a white-on-white shoe) is not one. Without a score every hole counts."""
    import cv2

    if not fg.any():
        return np.zeros_like(fg, bool)
    n, labels = cv2.connectedComponents((~fg).astype(np.uint8), connectivity=4)
    touches = np.zeros(n, bool)
    touches[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = True
    touches[0] = True  # label 0 is the object itself
    hole = ~touches
    if score is not None and hole.any():
        flat = labels.ravel()
        ids = np.nonzero(hole)[0]
        for i in ids:
            if float(np.median(score.ravel()[flat == i])) >= OPENING_SCORE:
                hole[i] = False
    out: np.ndarray = hole[labels]
    return out


def _fill_holes_except(fg: np.ndarray, openings: np.ndarray) -> np.ndarray:
    """Fill the holes of bool mask `fg`, except where `openings` (same size) marks the backdrop showing through."""
    import cv2

    n, labels = cv2.connectedComponents((~fg).astype(np.uint8), connectivity=4)
    touches = np.zeros(n, bool)
    touches[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = True
    touches[0] = True
    holes = ~touches[labels] & ~fg
    out: np.ndarray = fg | (holes & ~openings)
    return out


def plaque(shape: tuple[int, int], reason: str | None) -> Cutout:
    """The fallback: a rounded slab of the whole frame (the photo becomes a relief-less plaque)."""
    h, w = shape
    inset = max(1.0, 0.02 * min(h, w))
    radius = 0.12 * min(h, w)
    yy, xx = np.ogrid[0:h, 0:w]
    # Signed distance to a rounded rectangle, turned into a soft 0..1 edge.
    qx = np.abs(xx - (w - 1) / 2) - ((w - 1) / 2 - inset - radius)
    qy = np.abs(yy - (h - 1) / 2) - ((h - 1) / 2 - inset - radius)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - radius
    mask = np.clip(0.5 - outside, 0.0, 1.0).astype(np.float32)
    warning = None
    if reason is not None:
        warning = (
            f"Could not separate the object from its background ({reason}), so the whole photo was made into a "
            "flat plaque. For a real 3D shape, upload a photo of a single object on a plain background, or a PNG "
            "with a transparent background."
        )
    return Cutout(mask, "plaque", {"foreground_fraction": float(mask.mean())}, warning)


def _soften(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Upsample a binary model-resolution mask to the working size as a smooth 0..1 field."""
    import cv2

    soft: np.ndarray = mask.astype(np.float32)
    if soft.shape != shape:
        soft = cv2.resize(soft, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return soft


def _soften_cut(
    mask: np.ndarray, score: np.ndarray, figures: dict[str, Any], shape: tuple[int, int]
) -> np.ndarray:
    """The backdrop cut at the working size with a sub-pixel edge: along the outline, where the upsampled score
    crosses the object threshold (a binary mask upsampled would step by whole model pixels, which shows as rings
    on a revolved solid); inside and outside, the binary cut's own answer (filled holes, closed gaps)."""
    import cv2

    binary = _soften(mask, shape)
    if score.shape == shape:
        up = score
    else:
        up = cv2.resize(score, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    threshold = float(figures["threshold"])
    edge = np.clip((up - threshold) * (2.0 / threshold) + 0.5, 0.0, 1.0)
    out: np.ndarray = np.where(binary > 0.99, 1.0, np.where(binary > 0.01, edge, 0.0)).astype(np.float32)
    return out


def _gate_figures(fg: np.ndarray) -> dict[str, Any]:
    import cv2

    total = fg.size
    count = int(np.count_nonzero(fg))
    figures: dict[str, Any] = {"foreground_fraction": round(count / total, 5)}
    if count == 0:
        figures.update(largest_component_share=0.0, border_touch=0.0)
        return figures
    fg8 = fg.astype(np.uint8)
    n = cv2.connectedComponents(fg8, connectivity=8)[0]
    largest = count
    if n > 2:  # several pieces: only then are their areas needed
        largest = int(cv2.connectedComponentsWithStats(fg8, connectivity=8)[2][1:, cv2.CC_STAT_AREA].max())
    border = np.concatenate([fg[0], fg[-1], fg[1:-1, 0], fg[1:-1, -1]])
    figures["largest_component_share"] = round(float(largest / count), 4)
    figures["components"] = int(n - 1)
    figures["border_touch"] = round(float(border.mean()), 4)
    return figures


def _gate_problem(figures: dict[str, Any], check_border: bool) -> str | None:
    """Why a mask is not trustworthy, or None."""
    fraction = figures["foreground_fraction"]
    if fraction < MIN_FOREGROUND:
        return "found no object" if fraction == 0 else f"found only {fraction:.2%} of the image as object"
    if check_border and fraction > MAX_FOREGROUND:
        return f"took {fraction:.0%} of the image as object"
    if figures["largest_component_share"] < MIN_LARGEST_SHARE:
        return "found many separate pieces instead of one object"
    if check_border and figures["border_touch"] > MAX_BORDER_TOUCH:
        return f"found the object covering {figures['border_touch']:.0%} of the image border"
    return None


def _lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb.astype(np.float32) * (1.0 / 255.0), cv2.COLOR_RGB2Lab)


def backdrop_score(rgb: np.ndarray, clusters: int = 3) -> np.ndarray:
    """Per-pixel distance to the nearest border colour, in units of that colour's spread (about 1 on the backdrop).

    Darkening is forgiven (×0.3) so soft shadows on the backdrop stay background."""
    import cv2

    lab = _lab(rgb)
    h, w = lab.shape[:2]
    b = max(2, round(0.02 * min(h, w)))
    border = np.concatenate(
        [
            lab[:b].reshape(-1, 3),
            lab[-b:].reshape(-1, 3),
            lab[b:-b, :b].reshape(-1, 3),
            lab[b:-b, -b:].reshape(-1, 3),
        ]
    )
    step = max(1, len(border) // 3000)
    samples = np.ascontiguousarray(border[::step], dtype=np.float32)
    k = min(clusters, len(samples))
    cv2.setRNGSeed(7)
    _, labels, centres = cv2.kmeans(  # type: ignore[call-overload]
        samples,
        k,
        None,
        (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 15, 0.5),
        2,
        cv2.KMEANS_PP_CENTERS,
    )
    labels = labels.ravel()
    score = np.full((h, w), np.inf, np.float32)
    planes = cv2.split(lab)
    for c in _backdrop_clusters(labels, centres):
        members = samples[labels == c]
        if len(members) == 0:
            continue
        d_members = _weighted_distance(cv2.split(members[:, None, :]), centres[c])
        spread = max(float(np.percentile(d_members, 95)), 2.0)
        np.minimum(score, _weighted_distance(planes, centres[c]) * np.float32(1.0 / spread), out=score)
    return score


def _backdrop_clusters(labels: np.ndarray, centres: np.ndarray) -> list[int]:
    """Border clusters that are backdrop: the biggest, any other holding a quarter of the border, and any close in
    colour to one already kept (a gradient). A small, distinct cluster is an object running off the frame."""
    shares = np.bincount(labels, minlength=len(centres)) / max(len(labels), 1)
    order = [int(c) for c in np.argsort(-shares) if shares[c] > 0]
    kept = order[:1]
    for c in order[1:]:
        near = min(float(np.linalg.norm(centres[c] - centres[k])) for k in kept) < 20.0
        if shares[c] >= 0.25 or near:
            kept.append(c)
    return kept


def _weighted_distance(planes: Sequence[np.ndarray], centre: np.ndarray) -> np.ndarray:
    """Lab distance of each pixel (the L, a, b `planes`, float32) to `centre`, darkening counted 0.3×."""
    import cv2

    c = centre.astype(np.float32)
    dl = planes[0] - c[0]
    np.maximum(dl, dl * np.float32(0.3), out=dl)  # darker than the backdrop (dl < 0) counts 0.3×
    chroma = cv2.magnitude(planes[1] - c[1], planes[2] - c[2])
    out: np.ndarray = cv2.magnitude(dl, chroma)
    return out


def backdrop_mask(rgb: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Object mask from the border-colour model at `MODEL_SIZE`; returns (bool mask at model size, figures)."""
    mask, figures, _ = backdrop_scored(rgb)
    return mask, figures


def backdrop_scored(rgb: np.ndarray) -> tuple[np.ndarray, dict[str, Any], np.ndarray]:
    """`backdrop_mask` and the per-pixel backdrop score it was thresholded from (model size)."""
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, MODEL_SIZE / max(h, w))
    small = rgb
    if scale < 1.0:
        small = cv2.resize(
            rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    score = backdrop_score(small)
    clipped = np.clip(score * 12.0, 0, 255).astype(np.uint8)  # score 0..21 onto 0..255 for Otsu
    otsu, _ = cv2.threshold(clipped, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = max(otsu / 12.0, 2.0)
    fg: np.ndarray = (score > threshold).astype(np.uint8)
    side = min(fg.shape)
    if side >= 16:
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
        # Closing also fills concave corners with backdrop; give back the pixels that clearly are backdrop.
        fg = fg * (score > 0.6 * threshold).astype(np.uint8)
    fg = _keep_main_components(fg)
    fg = _fill_small_holes(fg, score, threshold)
    figures = _gate_figures(fg.astype(bool))
    figures["threshold"] = round(float(threshold), 3)
    figures["contrast"] = round(float(np.median(score[fg > 0])), 3) if fg.any() else 0.0
    figures["faint_share"] = faint_share(fg.astype(bool), score, threshold)
    figures["pieces"] = figures.get("components", 0)
    return fg.astype(bool), figures, score


def faint_share(fg: np.ndarray, score: np.ndarray, threshold: float) -> float:
    """Area of the faint regions touching the object, as a share of the object's area: thick, coherent regions that
    are a little off the backdrop's colour (smoothed score > `FAINT_SCORE`) but below the object threshold. High
    when part of the object is about the backdrop's colour (a white sole on white); the thin soft edge of an
    ordinary photo, JPEG's colour bleed included, is opened away. `fg` and `score` share one resolution."""
    import cv2

    if not fg.any():
        return 0.0
    k = max(3, round(0.018 * min(fg.shape))) | 1
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    smooth = cv2.blur(np.minimum(score, 4.0).astype(np.float32), (5, 5))
    faint = ((smooth > FAINT_SCORE) & (score <= threshold) & ~fg).astype(np.uint8)
    faint = cv2.morphologyEx(faint, cv2.MORPH_OPEN, disk)
    if not faint.any():
        return 0.0
    n, labels = cv2.connectedComponents(faint, connectivity=8)
    top, bottom, left, right = mask_bounds(fg) or (0, 0, 0, 0)
    reach = max(k + 4, round(FAINT_REACH * float(np.hypot(right - left, bottom - top)))) | 1
    # Within a disk of diameter `reach` of the object (a distance transform: 4× faster than dilating by the disk).
    near = cv2.distanceTransform((~fg).astype(np.uint8), cv2.DIST_L2, 5) <= 0.5 * reach
    touching = np.zeros(n, bool)
    touching[np.unique(labels[near & (faint > 0)])] = True
    touching[0] = False
    return round(float(np.count_nonzero(touching[labels]) / np.count_nonzero(fg)), 4)


def _keep_main_components(fg: np.ndarray) -> np.ndarray:
    """Drop specks: keep components with at least `pieces.PART_SHARE` of the largest one's area."""
    import cv2

    if cv2.connectedComponents(fg, connectivity=8)[0] <= 2:
        return fg
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, np.uint8)
    keep[1:] = areas >= pieces.PART_SHARE * areas.max()
    return keep[labels]


def _fill_small_holes(fg: np.ndarray, score: np.ndarray, threshold: float) -> np.ndarray:
    """Fill holes in the object unless they are large and show the backdrop itself (a chair's backrest opening)."""
    import cv2

    background = (fg == 0).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=4)
    if n <= 1:
        return fg
    h, w = fg.shape
    touches = np.zeros(n, bool)
    touches[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = True
    holes = [i for i in range(1, n) if not touches[i]]
    if not holes:
        return fg
    radius = cv2.distanceTransform(background, cv2.DIST_L2, 3)
    min_radius = 0.03 * min(h, w)
    out = fg.copy()
    for i in holes:
        x, y, bw, bh, _area = stats[i]
        region = labels[y : y + bh, x : x + bw] == i
        big = float(radius[y : y + bh, x : x + bw][region].max()) >= min_radius
        bg_like = float(np.median(score[y : y + bh, x : x + bw][region])) < OPENING_SCORE
        if not (big and bg_like):
            out[y : y + bh, x : x + bw][region] = 1
    return out
