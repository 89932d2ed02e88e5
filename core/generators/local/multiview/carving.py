"""The shape the views allow: the visual hull of the two silhouette canvases, with each horizontal cross-section
rounded where the photos say the part is round.

The hull is the intersection of the front silhouette extruded along Z and the side silhouette extruded along X
(Laurentini's visual hull for views along the axes), as a signed-distance-like field on a voxel grid. Each
horizontal slice of it is a set of rectangles, one per pair of runs (front run × side run). Rectangles are
tracked from slice to slice into parts (a chair: four legs, a seat, a backrest); a part is round when its
photos show shading that falls off toward the outline (a curved surface turning away) or when its front and side
outlines agree and change with height (a body of revolution), and boxy otherwise. A round part's slices become
the ellipses inscribed in their rectangles, which keeps every silhouette as photographed."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from image2model.core.generators.local.multiview.views import VIEW_NAMES, Canvas

PAD = 2
"""Grid cells of empty space around the object (the field is outside on the grid's border)."""
SDF_SMOOTH_PX = 1.2
"""Gaussian smoothing of the silhouettes' signed distance, in canvas pixels."""
SHAPE_MARGIN = 3
"""How far (grid cells) beyond a slice's rectangles their shape field is worked out; farther is outside."""
MERGE_GAP = 2.0
"""Runs of a slice apart by fewer grid cells are one run."""
ROUND_SHADING = 0.1
"""Edge darkening (share of the brightness a flat face would have there) from which a part counts as round."""
MIN_JUDGE_PX = 14
"""Narrowest run, in canvas pixels, whose shading is judged."""
MIN_JUDGE_ROWS = 4
"""Parts of fewer slices follow the part they join rather than their own few rows of evidence."""
REVOLUTION_MATCH, REVOLUTION_VARIATION = 0.06, 0.12
"""A part is revolved when its front and side widths agree within REVOLUTION_MATCH in most slices and its width
changes by REVOLUTION_VARIATION over its height (10th to 90th percentile)."""
BULGE_MIN_ROWS = 12
"""Parts of at least this many slices are their own reference for bulges; shorter ones borrow one."""
BULGE, BULGE_OTHER = 0.08, 0.02
"""A slice's side farther out than BULGE × the reference width, while its opposite side stays within
BULGE_OTHER, is a bulge."""
MAX_PARTS_LISTED = 12
THIN_BESIDE = 3.0
"""A round part at most this many times thinner than the part beside it, and than the run they share, is a
handle-like part of unknown depth."""
INSCRIBE_SPAN = 0.8
"""Share of a boxy part's slice, about its middle, across which its sides are measured on a perspective hull
(the hull's corners are bevelled)."""


@dataclass(frozen=True)
class Grid:
    """Sample points lo + step·(i, j, k) of the field."""

    lo: np.ndarray
    step: float
    shape: tuple[int, int, int]

    def axis(self, a: int) -> np.ndarray:
        return self.lo[a] + self.step * np.arange(self.shape[a])


@dataclass
class Part:
    """Rectangles of consecutive slices that continue one another one to one."""

    cells: list[tuple[int, float, float, float, float]] = field(default_factory=list)
    """(grid row, x0, x1, z0, z1) per slice."""
    round: bool = False
    reason: str = ""
    score: float | None = None
    neighbours: list[Part] = field(default_factory=list, repr=False)
    """Parts this one touches in the slice above or below without continuing them."""

    @property
    def rows(self) -> int:
        """Slices the part spans."""
        return len({c[0] for c in self.cells})


@dataclass
class Carving:
    field: np.ndarray
    """(nx, ny, nz) float32, negative inside, roughly the distance to the surface in world units."""
    grid: Grid
    parts: list[Part]

    def shape_summary(self) -> dict[str, Any]:
        """What the metadata says about the round-versus-boxy decisions."""
        listed = sorted(self.parts, key=lambda p: -p.rows)[:MAX_PARTS_LISTED]
        y = self.grid.axis(1)
        return {
            "method": "visual hull of the silhouettes; slices of round parts are the ellipses inscribed in the hull",
            "round_parts": sum(p.round for p in self.parts),
            "box_parts": sum(not p.round for p in self.parts),
            "parts": [
                {
                    "heights": [round(float(y[p.cells[0][0]]), 3), round(float(y[p.cells[-1][0]]), 3)],
                    "shape": "round" if p.round else "box",
                    "reason": p.reason,
                }
                for p in listed
            ],
        }


def runs(profile: np.ndarray) -> list[list[tuple[float, float]]]:
    """Per row of a (rows, cols) profile, the runs above 0.5 as (start, end) in sub-pixel column units
    (pixel-edge coordinates: a run covering pixels a..b exactly is (a, b + 1))."""
    inside = profile > 0.5
    padded = np.pad(profile, ((0, 0), (1, 1)), constant_values=min(0.0, float(profile.min(initial=0.0))))
    edges = np.diff(np.pad(inside, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    out: list[list[tuple[float, float]]] = [[] for _ in range(len(profile))]
    r_up, c_up = np.nonzero(edges == 1)  # inside starts at column c_up (padded column c_up + 1)
    r_dn, c_dn = np.nonzero(edges == -1)  # inside ends before column c_dn

    def crossing(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        a, b = padded[r, c], padded[r, c + 1]  # the values at pixels c - 1 and c
        t = np.clip((0.5 - a) / np.where(b != a, b - a, 1.0), 0.0, 1.0)
        return c - 0.5 + t  # where the profile crosses 0.5 between their centres, in pixel-edge units

    starts, ends = crossing(r_up, c_up), crossing(r_dn, c_dn)
    for r, s, e in zip(r_up, starts, ends, strict=True):
        out[r].append((float(s), float(e)))
    return out


def signed_distance(mask: np.ndarray, res: float) -> np.ndarray:
    """Signed distance to the outline of a soft mask in world units (negative inside), slightly smoothed: a
    straight edge whose thresholded pixels wobble by one from row to row would otherwise carve steps that the
    decimator keeps as creases."""
    import cv2

    inside = (mask > 0.5).astype(np.uint8)
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    sdf = np.where(inside > 0, 0.5 - d_in, d_out - 0.5).astype(np.float32)
    return cv2.GaussianBlur(sdf, (0, 0), SDF_SMOOTH_PX) / np.float32(res)


def _sample(image: np.ndarray, cols: np.ndarray, rows: np.ndarray, outside: float) -> np.ndarray:
    """Bilinear samples of `image` at (rows × cols) grid positions, `outside` beyond its border."""
    import cv2

    mx = np.broadcast_to(cols[None, :], (len(rows), len(cols))).astype(np.float32)
    my = np.broadcast_to(rows[:, None], (len(rows), len(cols))).astype(np.float32)
    out: np.ndarray = cv2.remap(
        image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=outside
    )
    return out


def make_grid(x: Canvas, z: Canvas, resolution: int) -> Grid:
    """A grid whose largest side spans the object in `resolution` cells, plus padding."""

    def extent(can: Canvas) -> tuple[float, float]:
        cols = np.nonzero((can.mask > 0.5).any(axis=0))[0]
        return can.lo + cols[0] / can.res, can.lo + (cols[-1] + 1) / can.res

    (x0, x1), (z0, z1) = extent(x), extent(z)
    step = max(x1 - x0, 1.0, z1 - z0) / resolution
    lo = np.array([x0 - PAD * step, -PAD * step, z0 - PAD * step])
    shape = tuple(math.ceil(span / step) + 2 * PAD + 1 for span in (x1 - x0, 1.0, z1 - z0))
    return Grid(lo, step, shape)  # type: ignore[arg-type]


def _slice_runs(can: Canvas, sdf: np.ndarray, grid: Grid) -> list[list[tuple[float, float]]]:
    """World-unit runs of the canvas' silhouette at each grid row's height, where its signed distance (the very
    field the hull is made of) is negative."""
    y = grid.axis(1)
    width = sdf.shape[1]
    profile = _sample(sdf, np.arange(width, dtype=np.float64), can.rows(y), 1.0)
    # 0.5 − distance·res crosses 0.5 where the distance crosses 0, and is linear across the outline.
    level = 0.5 - profile * np.float32(can.res)
    out = []
    for row in runs(level):
        merged: list[tuple[float, float]] = []
        for s, e in row:
            a, b = can.lo + s / can.res, can.lo + e / can.res
            # Runs closer than MERGE_GAP cells are one run (a notch in the cut-out, not two parts).
            if merged and a - merged[-1][1] < MERGE_GAP * grid.step:
                merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        out.append(merged)
    return out


def _parts(x_runs: list, z_runs: list) -> list[Part]:
    """Rectangles per slice tracked into parts: a rectangle continues the one below when they overlap and
    neither has another overlapping partner."""
    cells: list[list[tuple[float, float, float, float]]] = [
        [(a, b, c, d) for a, b in xr for c, d in zr] for xr, zr in zip(x_runs, z_runs, strict=True)
    ]
    owner: list[list[Part]] = []
    parts: list[Part] = []
    for j, row in enumerate(cells):
        below = cells[j - 1] if j else []
        links = [
            [n for n, (a, b, c, d) in enumerate(below) if a < cb and ca < b and c < cd and cc < d]
            for ca, cb, cc, cd in row
        ]
        ups = [sum(m in ls for ls in links) for m in range(len(below))]
        mine = []
        for cell, ls in zip(row, links, strict=True):
            if len(ls) == 1 and ups[ls[0]] == 1:
                part = owner[j - 1][ls[0]]
            else:
                part = Part()
                parts.append(part)
                for m in ls:
                    other = owner[j - 1][m]
                    part.neighbours.append(other)
                    other.neighbours.append(part)
            part.cells.append((j, *cell))
            mine.append(part)
        owner.append(mine)
    return parts


def _edge_darkening(lum: np.ndarray, mask: np.ndarray) -> float | None:
    """How much darker than a flat face a (rows, t) luminance profile gets toward both ends of the run (0 for a
    flat face, about 0.2–0.5 for a cylinder); None when the run shows too little to tell."""
    t = np.linspace(-0.92, 0.92, lum.shape[1])
    values = np.sort(np.where(mask > 0.95, lum, np.inf), axis=0)  # the samples outside the object sort last
    counts = np.isfinite(values).sum(axis=0)
    # Per column, the median of its samples inside the object (NaN where it has none).
    median = values[np.maximum(counts - 1, 0) // 2, np.arange(values.shape[1])]
    profile = np.where(counts > 0, median, np.nan)
    centre = (np.abs(t) <= 0.45) & np.isfinite(profile)
    if centre.sum() < 5 or np.nanmean(profile[centre]) < 12:
        return None
    slope, offset = np.polyfit(t[centre], profile[centre], 1)
    sides = []
    for band in ((t >= 0.7), (t <= -0.7)):
        ok = band & np.isfinite(profile)
        if ok.sum() >= 2:
            predicted = slope * t[ok] + offset
            sides.append(float(np.mean((predicted - profile[ok]) / np.maximum(predicted, 1.0))))
    return float(np.mean(sides)) if sides else None


def _judge(part: Part, x: Canvas, z: Canvas, grid: Grid) -> None:
    """Decide round versus box for one part (see the module docstring)."""
    import cv2

    cells = np.array([c[1:] for c in part.cells])
    wx, wz = cells[:, 1] - cells[:, 0], cells[:, 3] - cells[:, 2]
    if part.rows >= 6:
        match = np.abs(wx - wz) / np.maximum(np.maximum(wx, wz), 1e-9)
        low, high = np.percentile(np.concatenate([wx, wz]), [10, 90])
        variation = (high - low) / high
        if np.mean(match <= REVOLUTION_MATCH) >= 0.85 and variation >= REVOLUTION_VARIATION:
            part.round, part.reason = True, "revolved: front and side outlines agree and change with height"
            return
    pick = np.unique(np.linspace(0, part.rows - 1, min(part.rows, 48)).round().astype(int))
    y = grid.axis(1)[[part.cells[i][0] for i in pick]]
    t = np.linspace(-0.92, 0.92, 41)
    scores: dict[str, float] = {}
    for can, lo_col, hi_col in ((x, 0, 1), (z, 2, 3)):
        a, b = cells[pick, lo_col], cells[pick, hi_col]
        if np.median(b - a) * can.res < MIN_JUDGE_PX:
            continue
        w = (a + b)[:, None] / 2 + t[None, :] * (b - a)[:, None] / 2
        mx = can.cols(w).astype(np.float32)
        my = np.broadcast_to(can.rows(y)[:, None], mx.shape).astype(np.float32)
        for k, lum in can.luminance.items():
            sampled = cv2.remap(lum, mx, my, cv2.INTER_LINEAR)
            inside = cv2.remap(can.masks[k], mx, my, cv2.INTER_LINEAR)
            score = _edge_darkening(sampled, inside)
            if score is not None:
                scores[VIEW_NAMES[k]] = score
    if not scores:
        part.reason = "too thin or dark to judge from the photos; kept as the views allow"
        return
    part.score = float(np.median(list(scores.values())))
    part.round = part.score >= ROUND_SHADING
    figures = ", ".join(f"{name} {value:.2f}" for name, value in scores.items())
    part.reason = (
        f"shading falls off toward the outline ({figures})"
        if part.round
        else f"flat shading across the part ({figures})"
    )


def _smooth(part: Part) -> None:
    """Each rectangle's sides as the median of its own and its neighbours' in a round part, so sub-pixel jitter
    of the outlines from slice to slice does not ripple the rounded walls (a median keeps steps)."""
    if part.rows < 3 or not part.round:
        return
    cells = np.array([c[1:] for c in part.cells])
    smooth = cells.copy()
    smooth[1:-1] = np.median(np.stack([cells[:-2], cells[1:-1], cells[2:]]), axis=0)
    # A part's first and last slices cut its flat ends, where the outline's rounded corners make the run look
    # narrower than the wall really is: they take the shape of the slice next to them unless they are wider.
    for end, inner in ((0, 1), (-1, -2)):
        if (np.diff(smooth[end].reshape(2, 2), axis=1) < np.diff(smooth[inner].reshape(2, 2), axis=1)).all():
            smooth[end] = smooth[inner]
    part.cells = [
        (c[0], float(s[0]), float(s[1]), float(s[2]), float(s[3]))
        for c, s in zip(part.cells, smooth, strict=True)
    ]


def _split_bulges(part: Part, depth: float | None = None) -> None:
    """Where a round part's slice sticks out on one side only (a cup's body where the handle joins it), round the
    body as in the slices around it and the bulge as a shape of its own, so the body stays a circle. The slices
    around are the part's own (its median slice: a bulge covers fewer than half of them) or, for a short part such
    as the joint itself, those of the tallest round part it touches."""
    if not part.round:
        return
    cells = np.array([c[1:] for c in part.cells])
    if part.rows >= BULGE_MIN_ROWS:
        reference = np.tile(np.median(cells, axis=0), (len(cells), 1))
    else:
        tall = [p for p in part.neighbours if p.round and p.rows >= BULGE_MIN_ROWS]
        if not tall:
            return
        donor = max(tall, key=lambda p: p.rows)
        mid = part.cells[len(part.cells) // 2][0]
        nearest = min(donor.cells, key=lambda c: abs(c[0] - mid))
        reference = np.tile(np.array(nearest[1:]), (len(cells), 1))
    out: list[tuple[int, float, float, float, float]] = []
    for (j, *_), cell, ref in zip(part.cells, cells, reference, strict=True):
        core, extra = cell.copy(), []
        for lo_i, hi_i in ((0, 1), (2, 3)):
            width = ref[hi_i] - ref[lo_i]
            low, high = ref[lo_i] - cell[lo_i], cell[hi_i] - ref[hi_i]  # how far each side sticks out
            for grow, other, side in ((high, low, hi_i), (low, high, lo_i)):
                if grow > BULGE * width and abs(other) < BULGE_OTHER * width:
                    core[side] = ref[side]
                    bulge = cell.copy()
                    inner = ref[side] - 0.5 * grow if side == hi_i else ref[side] + 0.5 * grow
                    bulge[lo_i if side == hi_i else hi_i] = inner
                    if depth is not None:  # as deep as the handle-like parts it joins are thick
                        o_lo, o_hi = (2, 3) if lo_i == 0 else (0, 1)
                        mid, half = (cell[o_lo] + cell[o_hi]) / 2, min(grow, depth) / 2
                        bulge[o_lo], bulge[o_hi] = mid - half, mid + half
                    extra.append(bulge)
        for rect in [core, *extra]:
            out.append((j, float(rect[0]), float(rect[1]), float(rect[2]), float(rect[3])))
    part.cells = out


def _inherit(parts: list[Part]) -> None:
    """Parts too short or thin to judge take the decision of the tallest part they touch (a rim row of a vase,
    the joint where a handle meets a cup)."""
    for part in sorted(parts, key=lambda p: p.rows):
        if (part.score is not None and part.rows >= MIN_JUDGE_ROWS) or part.reason.startswith("revolved"):
            continue
        judged = [
            p
            for p in part.neighbours
            if p.rows >= MIN_JUDGE_ROWS and p.reason and not p.reason.startswith("too")
        ]
        if judged:
            donor = max(judged, key=lambda p: p.rows)
            part.round = donor.round
            part.reason = f"follows the part it joins ({'round' if donor.round else 'box'})"


def _edges(block: np.ndarray, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of a (n, m) field block (negative inside), where its inside begins and ends along the rows, to a
    fraction of a cell (NaN for columns with no inside)."""
    inside = block < 0
    n = len(coords)
    step = float(coords[1] - coords[0])
    cols = np.arange(block.shape[1])
    first = np.argmax(inside, axis=0)
    last = n - 1 - np.argmax(inside[::-1], axis=0)

    def frac(at: np.ndarray, out: np.ndarray) -> np.ndarray:
        a, b = block[at, cols], block[np.clip(out, 0, n - 1), cols]
        return np.where((b > a) & (out >= 0) & (out < n), a / np.where(b > a, a - b, -1.0), 0.0)

    lo = coords[first] - step * frac(first, first - 1)
    hi = coords[last] + step * frac(last, last + 1)
    none = ~inside.any(axis=0)
    return np.where(none, np.nan, lo), np.where(none, np.nan, hi)


def _inscribe(part: Part, field: np.ndarray, grid: Grid) -> None:
    """A boxy part's slices as the rectangles inscribed in the hull's slices. Along perspective rays the hull of
    a box bulges between its edges (a plate seen edge-on from the side looks as thick as its near end, so its
    hull is thickest in the middle), and parts side by side in depth widen each other's runs: the box's own
    sides are where the hull is narrowest, across the middle INSCRIBE_SPAN of the other side."""
    if part.round:
        return
    gx, gz = grid.axis(0), grid.axis(2)
    step = grid.step
    cells = []
    for j, a, b, c, d in part.cells:
        i0, i1 = np.searchsorted(gx, [a - 2 * step, b + 2 * step])
        k0, k1 = np.searchsorted(gz, [c - 2 * step, d + 2 * step])
        block = field[i0:i1, j, k0:k1]
        if min(block.shape) < 6:
            cells.append((j, a, b, c, d))
            continue
        x_lo, x_hi = _edges(block, gx[i0:i1])  # per z line
        z_lo, z_hi = _edges(block.T, gz[k0:k1])  # per x line
        new: list[tuple[float, float]] = []
        for lo, hi, along, (p, q) in ((x_lo, x_hi, gz[k0:k1], (c, d)), (z_lo, z_hi, gx[i0:i1], (a, b))):
            middle = np.abs(along - (p + q) / 2) <= INSCRIBE_SPAN * (q - p) / 2
            ok = middle & np.isfinite(lo)
            if ok.sum() >= 2:
                new.append((float(np.max(lo[ok])), float(np.min(hi[ok]))))
        if len(new) < 2 or new[0][0] >= new[0][1] or new[1][0] >= new[1][1]:
            cells.append((j, a, b, c, d))
            continue
        (a2, b2), (c2, d2) = new
        cells.append((j, max(a, a2), min(b, b2), max(c, c2), min(d, d2)))
    part.cells = cells


def _thin_beside(parts: list[Part]) -> float | None:
    """A thin round part standing beside a wide one in a slice (a cup's handle beside its body) shares the wide
    part's run in the views that look at it edge-on, so the hull makes it as deep as the body; no view shows its
    depth, and it is taken as deep as it is thick (a handle is a tube), centred on the shared run. Returns the
    median thickness of such parts (None when there are none)."""
    thickness: list[float] = []
    by_row: dict[int, list[tuple[Part, int]]] = {}
    for part in parts:
        for n, cell in enumerate(part.cells):
            by_row.setdefault(cell[0], []).append((part, n))
    for cells in by_row.values():
        for part, n in cells:
            if not part.round:
                continue
            j, a, b, c, d = part.cells[n]
            for own, shared in (((a, b), (c, d)), ((c, d), (a, b))):
                width, run = own[1] - own[0], shared[1] - shared[0]
                beside = any(
                    other is not part
                    and (o[3:5] if own == (a, b) else o[1:3]) == shared
                    and (o[2] - o[1] if own == (a, b) else o[4] - o[3]) >= THIN_BESIDE * width
                    for other, m in cells
                    for o in [other.cells[m]]
                )
                if beside and width * THIN_BESIDE <= run:
                    mid = (shared[0] + shared[1]) / 2
                    lo, hi = mid - width / 2, mid + width / 2
                    part.cells[n] = (j, a, b, lo, hi) if own == (a, b) else (j, lo, hi, c, d)
                    thickness.append(width)
                    break
    return float(np.median(thickness)) if thickness else None


def _shape_slices(field: np.ndarray, grid: Grid, parts: list[Part]) -> None:
    """Intersect every slice that has rectangles with their shapes: the rectangle itself for a boxy part, its
    inscribed ellipse for a round one (distance-like, negative inside). A slice's samples farther than
    `SHAPE_MARGIN` cells from all of its shapes are simply outside."""
    gx, gz = grid.axis(0), grid.axis(2)
    margin = SHAPE_MARGIN * grid.step
    by_row: dict[int, list[tuple[bool, float, float, float, float]]] = {}
    for part in parts:
        for j, a, b, c, d in part.cells:
            by_row.setdefault(j, []).append((part.round, a, b, c, d))
    for j, cells in by_row.items():
        shape = np.full((len(gx), len(gz)), np.float32(margin))
        for is_round, a, b, c, d in cells:
            i0, i1 = np.searchsorted(gx, [a - margin, b + margin])
            k0, k1 = np.searchsorted(gz, [c - margin, d + margin])
            rx, rz = max((b - a) / 2, 1e-6), max((d - c) / 2, 1e-6)
            dx = np.abs(gx[i0:i1] - (a + b) / 2)[:, None]
            dz = np.abs(gz[k0:k1] - (c + d) / 2)[None, :]
            if is_round:
                value = (np.sqrt((dx / rx) ** 2 + (dz / rz) ** 2) - 1.0) * min(rx, rz)
            else:
                value = np.maximum(dx - rx, dz - rz)
            block = shape[i0:i1, k0:k1]
            np.minimum(block, value.astype(np.float32), out=block)
        np.maximum(field[:, j, :], shape, out=field[:, j, :])


def carve(
    x: Canvas,
    z: Canvas,
    resolution: int,
    judge: bool = True,
    hull: Callable[[Grid], np.ndarray] | None = None,
) -> Carving:
    """The rounded visual hull as a field on a grid of `resolution` cells along the object's largest side
    (`judge=False`: the plain hull, without deciding which parts are round), intersected with `hull`'s field on
    the same grid where given (the hull along perspective rays)."""
    grid = make_grid(x, z, resolution)
    gx, gy, gz = (grid.axis(a) for a in range(3))
    big = np.float32(4.0)
    canvas_x, canvas_z = signed_distance(x.mask, x.res), signed_distance(z.mask, z.res)
    sdf_x = _sample(canvas_x, x.cols(gx), x.rows(gy), float(big))  # (ny, nx)
    sdf_z = _sample(canvas_z, z.cols(gz), z.rows(gy), float(big))  # (ny, nz)
    field = np.maximum(sdf_x.T[:, :, None], sdf_z[None, :, :])
    if hull is not None:
        np.maximum(field, hull(grid), out=field)
    parts = _parts(_slice_runs(x, canvas_x, grid), _slice_runs(z, canvas_z, grid)) if judge else []
    for part in parts:
        _judge(part, x, z, grid)
    _inherit(parts)
    handle = _thin_beside(parts)
    for part in parts:
        if hull is not None:
            _inscribe(part, field, grid)
        _smooth(part)
    for part in parts:
        _split_bulges(part, handle)
    _shape_slices(field, grid, parts)
    for index in (0, -1):  # outside on the whole border, so the surface closes
        field[index] = big
        field[:, index] = big
        field[:, :, index] = big
    return Carving(field, grid, parts)
