"""Cutting the object out of the photo: alpha channel, border-colour backdrop model, or the photo-plaque fallback.

The backdrop model learns the colours along the image border (k-means in Lab), scores every pixel by its distance
to the nearest backdrop colour in units of that colour's own spread, and forgives darkening (soft shadows). It is
right for plain or gradient studio backdrops of any colour; confidence gates reject what it cannot do (busy
scenes) and an edge-ambiguity figure flags what it is unsure of (a near-white part on a white backdrop). In those
cases the learned segmenter (`learned`, the optional `segment` extra) is tried, and when that is missing or fails
too, the caller gets the photo plaque instead of a meshed guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MODEL_SIZE = 512
"""Long side at which the backdrop model runs."""
MIN_FOREGROUND = 0.001
MAX_FOREGROUND = 0.9
MIN_LARGEST_SHARE = 0.6
MAX_BORDER_TOUCH = 0.25
MAX_EDGE_AMBIGUITY = 0.06
"""Above this share of faint-but-not-backdrop pixels just outside the object, the backdrop model is unsure (part
of the object is about the backdrop's colour) and the learned segmenter, when installed, gets a say."""


@dataclass
class Cutout:
    """A soft object mask (float32, 0..1, the working image's size) and how it was obtained."""

    mask: np.ndarray
    method: str
    """"alpha", "backdrop", "learned" or "plaque"."""
    figures: dict[str, Any] = field(default_factory=dict)
    warning: str | None = None

    @property
    def is_plaque(self) -> bool:
        return self.method == "plaque"


def cut_out(rgb: np.ndarray, alpha: np.ndarray | None, mode: str) -> Cutout:
    """Find the object in `rgb` (uint8 HxWx3; `alpha` uint8 HxW or None). `mode` is auto, alpha or off."""
    if mode == "off":
        return plaque(rgb.shape[:2], None)
    reasons: list[str] = []
    if alpha is not None and (mode == "alpha" or np.count_nonzero(alpha < 250) >= 0.01 * alpha.size):
        soft = alpha.astype(np.float32) / 255.0
        figures = _gate_figures(soft > 0.5)
        problem = _gate_problem(figures, check_border=False)
        if problem is None:
            return Cutout(soft, "alpha", figures)
        reasons.append(f"the transparency mask {problem}")
    elif mode == "alpha":
        reasons.append("the image has no transparency")
    if mode in ("auto", "learned"):
        mask, figures = backdrop_mask(rgb)
        problem = _gate_problem(figures, check_border=True)
        # The edge-ambiguity figure flags white-on-white cases on clean PNGs, but JPEG artefacts raise it on
        # ordinary photos too, so `auto` only turns to the (0.5 s) learned segmenter when the backdrop model
        # fails its gates; `learned` asks for it outright.
        if problem is None and mode == "auto":
            if figures["edge_ambiguity"] > MAX_EDGE_AMBIGUITY:
                figures["hint"] = (
                    "the object's edge is hard to tell from the backdrop; background_removal=learned may cut it "
                    "out better"
                )
            return Cutout(_soften(mask, rgb.shape[:2]), "backdrop", figures)
        learned_cut = _learned_cut(rgb, mask, figures, problem)
        if learned_cut is not None and learned_cut.method == "learned":
            return learned_cut
        if learned_cut is None and mode == "learned":
            reasons.append("the learned segmenter is not installed (pip install 'image2model[segment]')")
        if problem is None:  # the learned segmenter was refused or missing: the backdrop mask is still good
            figures["learned_unavailable"] = learned_cut.warning if learned_cut is not None else reasons[-1]
            return Cutout(_soften(mask, rgb.shape[:2]), "backdrop", figures)
        reasons.append(f"the backdrop model {problem}")
        if learned_cut is not None and learned_cut.warning:
            reasons.append(learned_cut.warning)
    return plaque(rgb.shape[:2], "; ".join(reasons))


def _learned_cut(
    rgb: np.ndarray, backdrop: np.ndarray, backdrop_figures: dict[str, Any], backdrop_problem: str | None
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
    openings = _openings(backdrop) if backdrop_problem is None else None
    if openings is not None and openings.any():
        prob = prob * (1.0 - _soften(openings, rgb.shape[:2]))
    figures = _gate_figures(prob > 0.5)
    figures.update(model_figures)
    figures["backdrop_reason"] = backdrop_problem or "learned segmenter requested"
    figures["backdrop_edge_ambiguity"] = backdrop_figures.get("edge_ambiguity", 0.0)
    figures["backdrop_foreground_fraction"] = backdrop_figures["foreground_fraction"]
    problem = _gate_problem(figures, check_border=True)
    if problem is not None:
        return Cutout(prob, "refused", figures, f"the learned segmenter {problem}")
    return Cutout(prob, "learned", figures)


def _openings(fg: np.ndarray) -> np.ndarray:
    """Background regions of a mask that do not touch the image border (the holes it kept open)."""
    import cv2

    if not fg.any():
        return np.zeros_like(fg, bool)
    n, labels = cv2.connectedComponents((~fg).astype(np.uint8), connectivity=4)
    touches = np.zeros(n, bool)
    touches[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = True
    touches[0] = True  # label 0 is the object itself
    out: np.ndarray = ~touches[labels]
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


def _gate_figures(fg: np.ndarray) -> dict[str, Any]:
    import cv2

    total = fg.size
    count = int(np.count_nonzero(fg))
    figures: dict[str, Any] = {"foreground_fraction": round(count / total, 5)}
    if count == 0:
        figures.update(largest_component_share=0.0, border_touch=0.0)
        return figures
    n, _, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    border = np.concatenate([fg[0], fg[-1], fg[1:-1, 0], fg[1:-1, -1]])
    figures["largest_component_share"] = round(float(areas.max() / count), 4)
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
    for c in _backdrop_clusters(labels, centres):
        members = samples[labels == c]
        if len(members) == 0:
            continue
        d_members = _weighted_distance(members, centres[c])
        spread = max(float(np.percentile(d_members, 95)), 2.0)
        d = _weighted_distance(lab.reshape(-1, 3), centres[c]).reshape(h, w) / spread
        np.minimum(score, d, out=score)
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


def _weighted_distance(lab: np.ndarray, centre: np.ndarray) -> np.ndarray:
    diff = lab - centre
    dl = diff[:, 0]
    dl = np.where(dl < 0, dl * 0.3, dl)
    return np.sqrt(dl * dl + diff[:, 1] ** 2 + diff[:, 2] ** 2)


def backdrop_mask(rgb: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Object mask from the border-colour model at `MODEL_SIZE`; returns (bool mask at model size, figures)."""
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
    figures["edge_ambiguity"] = _edge_ambiguity(fg, score, threshold)
    return fg.astype(bool), figures


def _edge_ambiguity(fg: np.ndarray, score: np.ndarray, threshold: float) -> float:
    """Share of a thin ring just outside the object whose pixels are clearly not backdrop (score > 3) yet were
    left out (below the threshold): high when part of the object is about the backdrop's colour."""
    import cv2

    if not fg.any():
        return 0.0
    width = max(3, round(0.03 * min(fg.shape))) | 1
    grown = cv2.dilate(fg.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width)))
    ring = (grown > 0) & (fg == 0)
    if not ring.any():
        return 0.0
    faint = ring & (score > 3.0) & (score <= threshold)
    return round(float(np.count_nonzero(faint) / np.count_nonzero(ring)), 4)


def _keep_main_components(fg: np.ndarray) -> np.ndarray:
    """Drop specks: keep components with at least 5 % of the largest one's area."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 2:
        return fg
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, np.uint8)
    keep[1:] = areas >= 0.05 * areas.max()
    return keep[labels]


def _fill_small_holes(fg: np.ndarray, score: np.ndarray, threshold: float) -> np.ndarray:
    """Fill holes in the object unless they are large and look like backdrop (a chair's backrest opening)."""
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
        bg_like = float(np.median(score[y : y + bh, x : x + bw][region])) < threshold
        if not (big and bg_like):
            out[y : y + bh, x : x + bw][region] = 1
    return out
