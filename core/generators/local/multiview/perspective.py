"""Perspective in the views: how far the camera stood, estimated from how well the views agree, and the hull
carved along the cameras' real rays.

A photo taken from a few object sizes away shows near parts larger than far ones (a chair's front legs wider
apart than its back legs), so its outline is not the orthographic projection the silhouette canvases assume:
intersecting those canvases fattens thin parts set apart in depth and shifts thin horizontal ones. Each view is
modelled as a pinhole camera on its own direction, level with the object's middle, at distance D from the
turntable axis: a point at image-right coordinate u, height y and depth t toward the camera lands at
    photo x = centre + scale·g·u,   photo y = eye_row − scale·g·(y − EYE),   g = 1 / (1 − t/D).
For a candidate D the cameras are fitted to the outlines' extents (the depth of the extreme points comes from a
coarse hull), and the rays through the pixels just inside each photo's outline are checked against the hull of
the other photos: by how much they miss it is the misfit. A looser hull always explains outlines at least as
well, so the distance is taken only when the outlines pin it down (parallel rays and the strongest perspective
tried both miss clearly), and then it is the least perspective that explains them about as well as the best;
otherwise, and always with two views (two views at right angles always agree), the carving stays orthographic.
The hull along the chosen rays is then projected along the axes into corrected silhouette canvases, so the rest
of the carving (parts, rounding) works as for orthographic photos, and the carving is intersected with it."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from image2model.core.generators.local.multiview import carving
from image2model.core.generators.local.multiview.carving import Grid, make_grid, signed_distance
from image2model.core.generators.local.multiview.views import Canvas, View, view_axes

EYE = 0.5
"""Camera height, in units of the object's height (level with its middle)."""
CANDIDATES = (0.0, 0.04, 0.08, 0.12, 0.16)
"""Inverse camera distances 1/D tried, in units of the object's height (0: orthographic; 0.16: six heights)."""
SEARCH_RESOLUTION = 64
RAY_PIXELS = 800
"""Outline pixels per view whose rays are checked."""
RAY_SAMPLES = 64
"""Samples along each ray across the object's depth."""
MIN_MISFIT = 2e-4
"""Orthographic misfit (mean world units by which the outlines' rays miss the others' hull; 2e-4 is about a
fifteenth of a pixel at 370 px per height) from which perspective is looked for."""
TOLERANCE = 2e-5
"""The least perspective whose misfit is within twice the best, or this much above it, is chosen (a looser hull
always explains outlines at least as well, so the search must not reward it)."""
FAR = 4.0
"""Field value (world units) beyond a photo's border: outside."""
SDF_REACH = 24
"""Pixels around the object within which the photos' signed distances are worked out."""
MIN_VIEWS = 3
"""Two views at right angles always agree (each outline is explained by the other's extrusion), so the
distance is looked for from three views on."""


@dataclass(frozen=True)
class Camera:
    """One view's pinhole camera (see the module docstring); `inverse_distance` is 1/D."""

    view: View
    scale: float
    centre: float
    eye_row: float
    inverse_distance: float

    def photo_xy(
        self, across: np.ndarray, height: np.ndarray, near: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Photo pixel coordinates (pixel centres at integers) of points at image-right coordinate `across`,
        height `height` and depth `near` toward the camera."""
        sg = np.float32(self.scale) / (1 - np.float32(self.inverse_distance) * near)
        return np.float32(self.centre - 0.5) + sg * across, np.float32(self.eye_row - 0.5) - sg * (
            height - EYE
        )


@dataclass(frozen=True)
class Lens:
    """The chosen perspective: the cameras, and the misfit of every candidate tried."""

    cameras: list[Camera]
    inverse_distance: float
    misfits: dict[float, float]
    sdfs: list[np.ndarray]
    """The photos' outlines as signed distances in pixels (negative inside), one per camera."""

    @property
    def orthographic(self) -> bool:
        """Parallel rays were chosen (no camera distance)."""
        return self.inverse_distance == 0

    def hull(self, grid: Grid) -> np.ndarray:
        """The hull along the cameras' rays on `grid`."""
        return hull(self.cameras, self.sdfs, grid)

    def summary(self) -> dict[str, object]:
        """What the metadata says about the perspective."""
        p = self.inverse_distance
        if not self.misfits:
            return {
                "method": "orthographic: two views at right angles always agree, so they cannot tell how far the "
                "camera was",
                "camera_distance": None,
            }
        return {
            "method": "pinhole cameras level with the object's middle, at the least distance (in object heights; "
            "null: orthographic) whose hull explains every outline; misfit: by how much the outlines' rays miss "
            "the other views' hull, in 1e-4 object heights, per distance tried",
            "camera_distance": None if self.orthographic else round(1.0 / p, 2),
            "misfit": {
                ("inf" if q == 0 else f"{1 / q:.3g}"): round(m * 1e4, 3) for q, m in self.misfits.items()
            },
        }


def _depth_axes(k: int) -> tuple[int, float, int, float]:
    """(depth axis, its sign toward the camera, image-right axis, its sign) of view k on the grid's (x, y, z)."""
    return ((2, 1.0, 0, 1.0), (0, 1.0, 2, -1.0), (2, -1.0, 0, -1.0), (0, -1.0, 2, 1.0))[k]


def extremes(views: list[View], inside: np.ndarray, grid: Grid) -> list[tuple[float, float, float, float]]:
    """Per view, how near its camera the points that make its outline's top, bottom, right and left edges lie
    (the nearest of a hull's extreme layers; `inside` on `grid`, its height spanning 0..1)."""
    idx = np.nonzero(inside)
    j = idx[1]
    top, bottom = j == j.max(), j == j.min()
    out = []
    for v in views:
        d_axis, d_sign, r_axis, r_sign = _depth_axes(v.k)
        t = d_sign * grid.axis(d_axis)[idx[d_axis]]
        u = r_sign * grid.axis(r_axis)[idx[r_axis]]
        right, left = u >= u.max() - 0.5 * grid.step, u <= u.min() + 0.5 * grid.step
        out.append((float(t[top].max()), float(t[bottom].max()), float(t[right].max()), float(t[left].max())))
    return out


def fit(views: list[View], near: list[tuple[float, float, float, float]], p: float) -> list[Camera]:
    """Cameras at inverse distance p fitted to each outline's extent, given how near the camera its edges lie
    (`extremes`): the object spans heights 0..1 and is centred on the turntable axis."""
    cameras = []
    for v, (n_top, n_bottom, n_right, n_left) in zip(views, near, strict=True):
        g_top, g_bot, g_right, g_left = (1 / (1 - p * n) for n in (n_top, n_bottom, n_right, n_left))
        x0, y0, x1, y1 = extent(v)
        scale = (y1 - y0) / ((1 - EYE) * g_top + EYE * g_bot)
        eye_row = y0 + scale * (1 - EYE) * g_top
        half = (x1 - x0) / (scale * (g_right + g_left))
        cameras.append(Camera(v, scale, x0 + scale * half * g_left, eye_row, p))
    return cameras


def extent(view: View) -> tuple[float, float, float, float]:
    """The object's box in the photo to a fraction of a pixel (x0, y0, x1, y1 in pixel-edge units): the integer
    box moved by the coverage of the partly covered rows and columns at its sides."""
    mask = view.mask
    x0, y0, x1, y1 = view.bbox
    rows, cols = mask.max(axis=1), mask.max(axis=0)

    def at(profile: np.ndarray, i: int) -> float:
        return float(profile[i]) if 0 <= i < len(profile) else 0.0

    return (
        x0 + (1 - at(cols, x0)) - at(cols, x0 - 1),
        y0 + (1 - at(rows, y0)) - at(rows, y0 - 1),
        x1 - (1 - at(cols, x1 - 1)) + at(cols, x1),
        y1 - (1 - at(rows, y1 - 1)) + at(rows, y1),
    )


def _slice_matrix(cam: Camera, grid: Grid, depth: float) -> tuple[np.ndarray, float]:
    """Affine map from a depth slice's (right-axis index, height index) to photo pixels, and the slice's gain
    g."""
    _, d_sign, r_axis, r_sign = _depth_axes(cam.view.k)
    g = 1 / (1 - cam.inverse_distance * d_sign * depth)
    sg = cam.scale * g
    m = np.array(
        [
            [sg * r_sign * grid.step, 0.0, cam.centre + sg * r_sign * grid.lo[r_axis] - 0.5],
            [0.0, -sg * grid.step, cam.eye_row - sg * (grid.lo[1] - EYE) - 0.5],
        ]
    )
    return m, g


def photo_sdf(view: View) -> np.ndarray:
    """The view's outline as a signed distance in photo pixels (negative inside), worked out near the object
    only: farther than SDF_REACH pixels it is SDF_REACH."""
    x0, y0, x1, y1 = view.bbox
    h, w = view.mask.shape
    r0, r1, c0, c1 = (
        max(0, y0 - SDF_REACH),
        min(h, y1 + SDF_REACH),
        max(0, x0 - SDF_REACH),
        min(w, x1 + SDF_REACH),
    )
    out = np.full((h, w), np.float32(SDF_REACH), np.float32)
    out[r0:r1, c0:c1] = np.minimum(signed_distance(view.mask[r0:r1, c0:c1], 1.0), np.float32(SDF_REACH))
    return out


def hull(cameras: list[Camera], sdfs: list[np.ndarray], grid: Grid) -> np.ndarray:
    """The cameras' visual hull on `grid`: (nx, ny, nz) float32, negative inside, about world units."""
    import cv2

    field = np.full(grid.shape, -FAR, np.float32)
    for cam, sdf in zip(cameras, sdfs, strict=True):
        d_axis, _, r_axis, _ = _depth_axes(cam.view.k)
        size = (grid.shape[r_axis], grid.shape[1])
        for i, depth in enumerate(grid.axis(d_axis)):
            m, g = _slice_matrix(cam, grid, float(depth))
            flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
            out = cv2.warpAffine(sdf, m, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=FAR)
            out = (out / np.float32(cam.scale * g)).T  # (right axis, height)
            index: list[slice | int] = [slice(None)] * 3
            index[d_axis] = i
            target = field[tuple(index)]
            # Along x the slice is (y, z); along z it is (x, y): put the right axis where the grid has it.
            np.maximum(target, out if r_axis == 0 else out.T, out=target)
    return field


def _outline_pixels(view: View) -> tuple[np.ndarray, np.ndarray]:
    """A regular sample of the pixels just inside the view's outline, where a wrong camera shows first."""
    import cv2

    x0, y0, x1, y1 = view.bbox
    inside = np.pad((view.mask[y0:y1, x0:x1] > 0.5).astype(np.uint8), 1)
    rim = inside & (1 - cv2.erode(inside, np.ones((5, 5), np.uint8)))
    ys, xs = np.nonzero(rim)
    every = max(1, len(xs) // RAY_PIXELS)
    return (xs[::every] + (x0 - 1)).astype(np.float32), (ys[::every] + (y0 - 1)).astype(np.float32)


def misfit(cameras: list[Camera], sdfs: list[np.ndarray], depth: tuple[float, float]) -> float:
    """Mean, over pixels just inside the photos' outlines, of how far (world units) their rays pass outside the
    hull of the other photos: 0 when every outline is explained by the shape the others allow."""
    import cv2

    total, count = 0.0, 0
    t = np.linspace(depth[0], depth[1], RAY_SAMPLES, dtype=np.float32)[None, :]
    for cam in cameras:
        px, py = _outline_pixels(cam.view)
        toward, right = view_axes(cam.view.k)
        sg = np.float32(cam.scale) / (1 - np.float32(cam.inverse_distance) * t)
        u = (px[:, None] + np.float32(0.5 - cam.centre)) / sg
        height = np.float32(EYE) - (py[:, None] + np.float32(0.5 - cam.eye_row)) / sg
        # The rays' world x and z on an (outline pixel, depth) grid.
        coords = [u * np.float32(right[a]) + t * np.float32(toward[a]) for a in (0, 2)]
        worst = np.full(u.shape, -FAR, np.float32)
        for other, sdf in zip(cameras, sdfs, strict=True):
            if other is cam:
                continue
            o_toward, o_right = view_axes(other.view.k)
            a_d, a_r = (0 if abs(v[0]) > 0.5 else 1 for v in (o_toward, o_right))
            depth_o = coords[a_d] * np.float32(o_toward[2 * a_d])
            across = coords[a_r] * np.float32(o_right[2 * a_r])
            og = np.float32(other.scale) / (1 - np.float32(other.inverse_distance) * depth_o)
            mx = np.float32(other.centre - 0.5) + og * across
            my = np.float32(other.eye_row - 0.5) - og * (height - np.float32(EYE))
            value = cv2.remap(sdf, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=FAR)
            np.maximum(worst, value / og, out=worst)
        total += float(np.clip(worst.min(axis=1), 0.0, None).sum())
        count += len(px)
    return total / max(count, 1)


def choose(views: list[View], x: Canvas, z: Canvas) -> Lens:
    """Fit the cameras for the candidate distances and keep the least perspective whose rays explain the outlines
    about as well as the best; orthographic when parallel rays already explain them."""
    if len(views) < MIN_VIEWS:
        return Lens([], 0.0, {}, [])
    probe = carving.carve(x, z, SEARCH_RESOLUTION, judge=False)
    near = extremes(views, probe.field < 0, probe.grid)
    sdfs = [photo_sdf(v) for v in views]
    reach = float(max(np.abs(probe.grid.axis(a)[[0, -1]]).max() for a in (0, 2)))
    misfits: dict[float, float] = {}
    fitted: dict[float, list[Camera]] = {}
    for p in CANDIDATES:
        fitted[p] = fit(views, near, p)
        misfits[p] = misfit(fitted[p], sdfs, (-reach, reach))
        if misfits[0] <= MIN_MISFIT:
            break
    least = min(misfits.values())
    good = [q for q in sorted(misfits) if misfits[q] <= max(2 * least, least + TOLERANCE)]
    # The outlines pin the distance down only when too little and too much perspective both contradict them.
    pinned = misfits[0] > MIN_MISFIT and misfits[CANDIDATES[-1]] > 10 * least + TOLERANCE
    best = good[0] if pinned else 0.0
    return Lens(fitted[best], best, misfits, sdfs)


def corrected(lens: Lens, x: Canvas, z: Canvas, resolution: int) -> tuple[Canvas, Canvas]:
    """The silhouette canvases the perspective hull (carved at `resolution`) casts along the axes, in the frames
    of `x` and `z`."""
    import cv2

    base = make_grid(x, z, resolution)
    grow = math.ceil(0.04 / base.step)
    grid = Grid(base.lo - grow * base.step, base.step, tuple(n + 2 * grow for n in base.shape))  # type: ignore[arg-type]
    field = lens.hull(grid)
    out = []
    for can, axis in ((x, 2), (z, 0)):
        shadow = field.min(axis=axis)  # (x, y) or (y, z)
        image = shadow.T if axis == 2 else shadow  # (y, w)
        height, width = can.shape
        cols = (can.lo + (np.arange(width) + 0.5) / can.res - grid.lo[0 if axis == 2 else 2]) / grid.step
        rows = (can.top - (np.arange(height) + 0.5) / can.res - grid.lo[1]) / grid.step
        mx = np.broadcast_to(cols[None, :], (height, width)).astype(np.float32)
        my = np.broadcast_to(rows[:, None], (height, width)).astype(np.float32)
        level = cv2.remap(
            np.ascontiguousarray(image, np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
            borderValue=FAR,
        )  # fmt: skip
        mask = np.clip(0.5 - level * can.res, 0.0, 1.0).astype(np.float32)
        out.append(replace(can, mask=mask))
    return out[0], out[1]
