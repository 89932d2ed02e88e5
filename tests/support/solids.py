"""Analytic test solids photographed from the four sides, and volumetric IoU of a model against them.

A solid is a union of primitives (boxes, vertical cylinders, surfaces of revolution, a half torus for handles),
each with an exact inside test (for IoU) and a fine triangle mesh (for the photos). Photos follow the contract's
multi-view order: front (camera on +Z), left (camera on +X: the object's left side, turned a quarter turn
clockwise seen from above), back (−Z), right (−X). They are rendered orthographically or with a little
perspective, lit by a light fixed to the camera (as on a turntable in a studio), on a plain backdrop or as RGBA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from PIL import Image

Colour = tuple[int, int, int]

VIEW_NAMES = ("front", "left", "back", "right")
_LIGHT_CAMERA = np.array([-0.35, 0.45, 0.82]) / np.linalg.norm([-0.35, 0.45, 0.82])
"""Light direction in camera space (x right, y up, z toward the camera)."""
AMBIENT = 0.35
BACKDROP_TOP: Colour = (236, 237, 239)
BACKDROP_BOTTOM: Colour = (214, 216, 220)


def view_axes(k: int) -> tuple[np.ndarray, np.ndarray]:
    """(toward the camera, image right) of view k in the object's frame (Y up, front +Z)."""
    theta = math.pi / 2 * k
    toward = np.array([math.sin(theta), 0.0, math.cos(theta)])
    right = np.array([math.cos(theta), 0.0, -math.sin(theta)])
    return toward, right


@dataclass(frozen=True)
class Surface:
    """A triangle mesh with per-vertex normals and colours."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    colours: np.ndarray


def _grid_faces(rows: int, cols: int, offset: int = 0, wrap: bool = False) -> np.ndarray:
    """Two triangles per cell of a (rows+1) × (cols [+1]) vertex grid, counter-clockwise for row-major (u, v)."""
    width = cols if wrap else cols + 1
    r, c = np.mgrid[0:rows, 0:cols]
    a = r * width + c
    b = r * width + (c + 1) % width if wrap else a + 1
    d = a + width
    e = b + width
    tris = np.concatenate([np.stack([a, d, b], -1).reshape(-1, 3), np.stack([b, d, e], -1).reshape(-1, 3)])
    return tris + offset


class Primitive:
    colour: Colour

    def inside(self, p: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def surface(self) -> Surface:
        raise NotImplementedError


@dataclass(frozen=True)
class Box(Primitive):
    """An axis-aligned box; `sides` colours its faces by the direction they face (front, left, back, right,
    top, bottom) where given."""

    centre: tuple[float, float, float]
    size: tuple[float, float, float]
    colour: Colour = (170, 120, 80)
    sides: dict[str, Colour] = field(default_factory=dict)

    def inside(self, p: np.ndarray) -> np.ndarray:
        return np.all(np.abs(p - np.array(self.centre)) <= np.array(self.size) / 2, axis=-1)

    def surface(self) -> Surface:
        c, h = np.array(self.centre), np.array(self.size) / 2
        verts, faces, normals, colours = [], [], [], []
        # (normal axis, sign, side name): each face is a grid so painter's sorting stays local.
        for axis, sign, name in ((2, 1, "front"), (0, 1, "left"), (2, -1, "back"), (0, -1, "right"),
                                 (1, 1, "top"), (1, -1, "bottom")):  # fmt: skip
            u_axis, v_axis = [a for a in range(3) if a != axis]
            n = max(2, math.ceil(max(h[u_axis], h[v_axis]) * 2 / 0.04))
            uu, vv = np.meshgrid(np.linspace(-1, 1, n + 1), np.linspace(-1, 1, n + 1))
            pts = np.zeros((uu.size, 3))
            pts[:, axis] = sign * h[axis]
            pts[:, u_axis] = uu.ravel() * h[u_axis]
            pts[:, v_axis] = vv.ravel() * h[v_axis]
            tris = _grid_faces(n, n, sum(len(v) for v in verts))
            normal = np.zeros(3)
            normal[axis] = sign
            tri = pts[tris[0] - tris.min()]
            if np.dot(np.cross(tri[1] - tri[0], tri[2] - tri[0]), normal) < 0:
                tris = tris[:, ::-1]
            verts.append(pts + c)
            faces.append(tris)
            normals.append(np.tile(normal, (len(pts), 1)))
            colours.append(np.tile(self.sides.get(name, self.colour), (len(pts), 1)))
        return Surface(np.concatenate(verts), np.concatenate(faces), np.concatenate(normals),
                       np.concatenate(colours).astype(np.float64))  # fmt: skip


@dataclass(frozen=True)
class Revolution(Primitive):
    """A solid of revolution about a vertical axis through (x, z): `profile` is (y, radius) from bottom to top,
    flat-capped at both ends. `bands` alternates two colours with height (a painted vase)."""

    profile: tuple[tuple[float, float], ...]
    axis: tuple[float, float] = (0.0, 0.0)
    colour: Colour = (60, 110, 190)
    bands: Colour | None = None
    band_height: float = 0.1

    def _radius(self, y: np.ndarray) -> np.ndarray:
        ys, rs = np.array(self.profile).T
        r = np.interp(y, ys, rs)
        return np.where((y >= ys[0]) & (y <= ys[-1]), r, -1.0)

    def inside(self, p: np.ndarray) -> np.ndarray:
        rr = np.hypot(p[..., 0] - self.axis[0], p[..., 2] - self.axis[1])
        return rr <= self._radius(p[..., 1])

    def _colour_at(self, y: np.ndarray) -> np.ndarray:
        base = np.tile(np.array(self.colour, np.float64), (len(y), 1))
        if self.bands is not None:
            odd = (np.floor(y / self.band_height) % 2).astype(bool)
            base[odd] = self.bands
        return base

    def surface(self) -> Surface:
        ys, rs = np.array(self.profile).T
        rows = max(8, math.ceil((ys[-1] - ys[0]) / 0.01))
        y = np.linspace(ys[0], ys[-1], rows + 1)
        r = np.interp(y, ys, rs)
        segs = 128
        phi = np.linspace(0, 2 * np.pi, segs, endpoint=False)
        ax, az = self.axis
        side = np.stack(
            [ax + r[:, None] * np.sin(phi), np.repeat(y[:, None], segs, 1), az + r[:, None] * np.cos(phi)], -1
        ).reshape(-1, 3)
        slope = np.gradient(r, y)
        n_side = np.stack([np.sin(phi)[None].repeat(rows + 1, 0), -slope[:, None].repeat(segs, 1),
                           np.cos(phi)[None].repeat(rows + 1, 0)], -1).reshape(-1, 3)  # fmt: skip
        n_side /= np.linalg.norm(n_side, axis=1, keepdims=True)
        faces = [_grid_faces(rows, segs, 0, wrap=True)[:, ::-1]]
        verts, normals = [side], [n_side]
        colours = [self._colour_at(side[:, 1])]
        for yc, rc, sign in ((y[0], r[0], -1.0), (y[-1], r[-1], 1.0)):
            rings = max(2, math.ceil(rc / 0.02))
            rad = np.linspace(rc, 0, rings + 1)[:-1]
            cap = np.stack([ax + rad[:, None] * np.sin(phi), np.full((rings, segs), yc),
                            az + rad[:, None] * np.cos(phi)], -1).reshape(-1, 3)  # fmt: skip
            start = sum(len(v) for v in verts)
            centre = start + len(cap)
            cap_faces = [_grid_faces(rings - 1, segs, start, wrap=True)] if rings > 1 else []
            last = start + (rings - 1) * segs
            k = np.arange(segs)
            cap_faces.append(np.stack([last + k, np.full(segs, centre), last + (k + 1) % segs], -1))
            cf = np.concatenate(cap_faces)
            pts = np.concatenate([cap, [[ax, yc, az]]])
            tri = np.concatenate(verts + [pts])[cf[0]]
            if np.cross(tri[1] - tri[0], tri[2] - tri[0])[1] * sign < 0:
                cf = cf[:, ::-1]
            verts.append(pts)
            faces.append(cf)
            normals.append(np.tile([0.0, sign, 0.0], (len(pts), 1)))
            colours.append(self._colour_at(pts[:, 1]))
        return Surface(np.concatenate(verts), np.concatenate(faces), np.concatenate(normals),
                       np.concatenate(colours))  # fmt: skip


def cylinder(x: float, z: float, y0: float, height: float, radius: float, colour: Colour) -> Revolution:
    return Revolution(((y0, radius), (y0 + height, radius)), (x, z), colour)


@dataclass(frozen=True)
class Handle(Primitive):
    """Half a torus in the XY plane, bulging toward +X from its centre (a cup's handle)."""

    centre: tuple[float, float, float]
    ring: float
    tube: float
    colour: Colour = (60, 110, 190)

    def inside(self, p: np.ndarray) -> np.ndarray:
        cx, cy, cz = self.centre
        q = np.hypot(p[..., 0] - cx, p[..., 1] - cy) - self.ring
        return (q**2 + (p[..., 2] - cz) ** 2 <= self.tube**2) & (p[..., 0] >= cx)

    def surface(self) -> Surface:
        rows, segs = 64, 32
        theta = np.linspace(-np.pi / 2, np.pi / 2, rows + 1)
        phi = np.linspace(0, 2 * np.pi, segs, endpoint=False)
        t, f = np.meshgrid(theta, phi, indexing="ij")
        normal = np.stack([np.cos(f) * np.cos(t), np.cos(f) * np.sin(t), np.sin(f)], -1).reshape(-1, 3)
        ring = np.stack([np.cos(t), np.sin(t), np.zeros_like(t)], -1).reshape(-1, 3)
        verts = np.array(self.centre) + self.ring * ring + self.tube * normal
        faces = _grid_faces(rows, segs, 0, wrap=True)
        tri = verts[faces[0]]
        if np.dot(np.cross(tri[1] - tri[0], tri[2] - tri[0]), normal[faces[0, 0]]) < 0:
            faces = faces[:, ::-1]
        colours = np.tile(np.array(self.colour, np.float64), (len(verts), 1))
        return Surface(verts, faces, normal, colours)


@dataclass(frozen=True, eq=False)
class Solid:
    """A named union of primitives; `kind` is "box" or "round" (which IoU target applies)."""

    name: str
    kind: str
    parts: tuple[Primitive, ...]

    def inside(self, p: np.ndarray) -> np.ndarray:
        out = np.zeros(p.shape[:-1], bool)
        for part in self.parts:
            out |= part.inside(p)
        return out

    @cached_property
    def mesh(self) -> Surface:
        """The fine triangle mesh the photos are rendered from (built once)."""
        pieces = [part.surface() for part in self.parts]
        offsets = np.cumsum([0] + [len(s.vertices) for s in pieces[:-1]])
        return Surface(
            np.concatenate([s.vertices for s in pieces]),
            np.concatenate([s.faces + o for s, o in zip(pieces, offsets, strict=True)]),
            np.concatenate([s.normals for s in pieces]),
            np.concatenate([s.colours for s in pieces]),
        )

    def surface(self) -> Surface:
        return self.mesh

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        v = self.mesh.vertices
        return v.min(axis=0), v.max(axis=0)

    def mirrored_z(self) -> Solid:
        """The same solid mirrored front to back (what swapping the left and right photos describes)."""
        return Solid(self.name + "-mirrored", self.kind, (_MirrorZ(self),))


@dataclass(frozen=True)
class _MirrorZ(Primitive):
    solid: Solid
    colour: Colour = (0, 0, 0)

    def inside(self, p: np.ndarray) -> np.ndarray:
        return self.solid.inside(p * np.array([1.0, 1.0, -1.0]))

    def surface(self) -> Surface:
        s = self.solid.surface()
        flip = np.array([1.0, 1.0, -1.0])
        return Surface(s.vertices * flip, s.faces[:, ::-1], s.normals * flip, s.colours)


SIDE_COLOURS: dict[str, Colour] = {
    "front": (200, 50, 45),
    "left": (60, 160, 70),
    "back": (50, 80, 190),
    "right": (225, 190, 40),
    "top": (235, 235, 230),
    "bottom": (90, 90, 90),
}


def _solids() -> dict[str, Solid]:
    wood, blue = (165, 110, 70), (60, 110, 190)
    chair_parts: list[Primitive] = [Box((0.0, 0.47, 0.0), (0.5, 0.06, 0.5), wood)]
    for x in (-0.215, 0.215):
        for z in (-0.215, 0.215):
            chair_parts.append(Box((x, 0.22, z), (0.06, 0.44, 0.06), wood))
    chair_parts.append(Box((0.0, 0.75, -0.225), (0.5, 0.5, 0.05), wood))
    vase = tuple(
        (y, 0.13 + 0.11 * math.sin(math.pi * y / 0.9) ** 2 * (1.2 - y)) for y in np.linspace(0, 0.9, 19)
    )
    return {
        "box": Solid("box", "box", (Box((0.0, 0.25, 0.0), (0.8, 0.5, 0.6), sides=SIDE_COLOURS),)),
        "tall-box": Solid("tall-box", "box", (Box((0.0, 0.45, 0.0), (0.35, 0.9, 0.5), (120, 140, 170)),)),
        "l-block": Solid(
            "l-block",
            "box",
            (
                Box((0.0, 0.1, 0.0), (0.9, 0.2, 0.6), (180, 150, 110)),
                Box((0.0, 0.4, -0.175), (0.9, 0.4, 0.25), (180, 150, 110)),
                Box((0.35, 0.7, -0.225), (0.14, 0.2, 0.14), (150, 70, 60)),
            ),
        ),
        "chair": Solid("chair", "box", tuple(chair_parts)),
        "cylinder": Solid("cylinder", "round", (cylinder(0.0, 0.0, 0.0, 0.8, 0.3, (200, 80, 60)),)),
        "vase": Solid("vase", "round", (Revolution(vase, colour=blue, bands=(225, 160, 50)),)),
        "cup": Solid(
            "cup",
            "round",
            (
                cylinder(0.0, 0.0, 0.0, 0.55, 0.27, (235, 235, 225)),
                Handle((0.255, 0.29, 0.0), 0.14, 0.035, (235, 235, 225)),
            ),
        ),
    }


SOLIDS: dict[str, Solid] = _solids()
PLAN_L = Solid(
    "l-plan",
    "box",
    (
        Box((-0.2, 0.2, 0.0), (0.4, 0.4, 0.8), (150, 150, 150)),
        Box((0.2, 0.2, -0.2), (0.4, 0.4, 0.4), (150, 150, 150)),
    ),
)
"""An L in plan: its notch faces a diagonal, so no horizontal view shows it (the visual hull fills it)."""


@dataclass(frozen=True)
class Shot:
    """How one view is photographed: image size, the object's size in the frame (fraction of the short side for
    the largest extent) and its offset from the centre in pixels."""

    size: tuple[int, int] = (512, 512)
    fill: float = 0.72
    offset: tuple[float, float] = (0.0, 0.0)


def _rasterize(
    surface: Surface,
    k: int,
    shot: Shot,
    perspective: float | None,
    centre: np.ndarray,
    extent: float,
    ss: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Colour (h, w, 3 float) and coverage (h, w float) of view k at `ss`× supersampling (painter's algorithm
    on small faces, per-pixel normals and colours)."""
    import cv2

    w, h = shot.size[0] * ss, shot.size[1] * ss
    toward, right = view_axes(k)
    up = np.array([0.0, 1.0, 0.0])
    rel = surface.vertices - centre
    xv, yv, zv = rel @ right, rel @ up, rel @ toward
    scale = shot.fill * min(w, h) / extent
    if perspective is not None:
        distance = perspective * extent
        factor = distance / (distance - zv)
        xv, yv = xv * factor, yv * factor
    sx = w / 2 + shot.offset[0] * ss + xv * scale
    sy = h / 2 + shot.offset[1] * ss - yv * scale
    f = surface.faces
    ax, ay = sx[f[:, 1]] - sx[f[:, 0]], sy[f[:, 1]] - sy[f[:, 0]]
    bx, by = sx[f[:, 2]] - sx[f[:, 0]], sy[f[:, 2]] - sy[f[:, 0]]
    visible = np.nonzero((ax * by - ay * bx) < 0)[0]
    order = visible[np.argsort(zv[f[visible]].mean(axis=1))]
    pts = np.round(np.stack([sx, sy], 1)[f[order]] * 16).astype(np.int32)
    ids = np.zeros((h, w), np.int32)
    for n, tri in enumerate(pts):
        cv2.fillConvexPoly(ids, tri, n + 1, cv2.LINE_8, 4)
    rows, cols = np.nonzero(ids)
    tri = f[order][ids[rows, cols] - 1]
    x0, y0, x1, y1, x2, y2 = (a[tri[:, i]] for i in range(3) for a in (sx, sy))
    det = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    b0 = np.clip(((y1 - y2) * (cols - x2) + (x2 - x1) * (rows - y2)) / det, 0, 1)
    b1 = np.clip(((y2 - y0) * (cols - x2) + (x0 - x2) * (rows - y2)) / det, 0, 1)
    b2 = np.clip(1 - b0 - b1, 0, 1)
    total = np.maximum(b0 + b1 + b2, 1e-9)
    bary = np.stack([b0, b1, b2], 1) / total[:, None]
    normal = np.einsum("ni,nij->nj", bary, surface.normals[tri])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
    albedo = np.einsum("ni,nij->nj", bary, surface.colours[tri])
    light = _LIGHT_CAMERA[0] * right + _LIGHT_CAMERA[1] * up + _LIGHT_CAMERA[2] * toward
    shade = AMBIENT + (1 - AMBIENT) * np.clip(normal @ light, 0, 1)
    colour = np.zeros((h, w, 3))
    colour[rows, cols] = albedo * shade[:, None]
    cover = (ids > 0).astype(np.float64)
    return colour, cover


def photograph(
    solid: Solid,
    k: int,
    shot: Shot | None = None,
    perspective: float | None = None,
    rgba: bool = False,
    supersample: int = 2,
) -> Image.Image:
    """View k (0 front, 1 left, 2 back, 3 right) of `solid`: RGB on a plain gradient backdrop, or RGBA.
    `perspective` is the camera distance in units of the solid's largest extent (None: orthographic); the
    camera is level with the solid's middle."""
    import cv2

    shot = shot or Shot()
    lo, hi = solid.bounds()
    centre, extent = (lo + hi) / 2, float((hi - lo).max())
    colour, cover = _rasterize(solid.surface(), k, shot, perspective, centre, extent, supersample)
    w, h = shot.size
    colour = cv2.resize(colour, (w, h), interpolation=cv2.INTER_AREA)
    cover = cv2.resize(cover, (w, h), interpolation=cv2.INTER_AREA)
    safe = np.maximum(cover, 1e-6)[..., None]
    colour = colour / safe  # un-premultiply: the object's own colour at the rim
    if rgba:
        rgb = np.where(cover[..., None] > 0, colour, 0)
        arr = np.concatenate([rgb, cover[..., None] * 255], axis=-1)
        return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "RGBA")
    t = np.linspace(0, 1, h)[:, None, None]
    backdrop = (1 - t) * np.array(BACKDROP_TOP) + t * np.array(BACKDROP_BOTTOM)
    out = cover[..., None] * colour + (1 - cover[..., None]) * backdrop
    return Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8), "RGB")


def photographs(
    solid: Solid,
    views: Sequence[int] = (0, 1, 2, 3),
    shots: Sequence[Shot] | None = None,
    perspective: float | None = None,
    rgba: bool = False,
) -> list[Image.Image]:
    """The photos of `views` in the given order (the contract's order is 0, 1, 2, 3)."""
    shots = shots or [Shot()] * len(views)
    return [photograph(solid, k, s, perspective, rgba) for k, s in zip(views, shots, strict=True)]


# ---- volumetric IoU --------------------------------------------------------------------------------------


GRID = 128


def _grid(n: int) -> np.ndarray:
    """Sample points of the unit cube [-0.5, 0.5]³ (cell centres, nudged off symmetric positions)."""
    c = (np.arange(n) + 0.5) / n - 0.5 + 1.234e-4
    return c


def solid_occupancy(solid: Solid, n: int = GRID) -> np.ndarray:
    """Occupancy of the solid centred on its bounding box and scaled to a largest extent of 1, (x, y, z)."""
    lo, hi = solid.bounds()
    centre, extent = (lo + hi) / 2, float((hi - lo).max())
    c = _grid(n)
    pts = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1) * extent + centre
    return solid.inside(pts)


def mesh_occupancy(vertices: np.ndarray, faces: np.ndarray, n: int = GRID) -> np.ndarray:
    """Occupancy of a closed mesh centred on its bounding box and scaled to a largest extent of 1, by the parity
    of crossings along z for each (x, y) column of the grid."""
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    v = (vertices - (lo + hi) / 2) / float((hi - lo).max())
    c = _grid(n)
    tri = v[faces]
    # Grid columns each triangle's x-y footprint covers.
    gx = (tri[:, :, 0] - c[0]) * n
    gy = (tri[:, :, 1] - c[0]) * n
    i0, i1 = np.ceil(gx.min(1)).astype(int), np.floor(gx.max(1)).astype(int)
    j0, j1 = np.ceil(gy.min(1)).astype(int), np.floor(gy.max(1)).astype(int)
    counts = np.zeros((n, n, n + 1), np.int32)
    # One (triangle, column) pair per grid column inside each triangle's bounding box.
    size_i, size_j = np.maximum(i1 - i0 + 1, 0), np.maximum(j1 - j0 + 1, 0)
    pairs = size_i * size_j
    which = np.repeat(np.arange(len(tri)), pairs)
    local = np.arange(len(which)) - np.repeat(np.cumsum(pairs) - pairs, pairs)
    ii = i0[which] + local // np.maximum(size_j[which], 1)
    jj = j0[which] + local % np.maximum(size_j[which], 1)
    ok = (ii >= 0) & (jj >= 0) & (ii < n) & (jj < n)
    t, ii, jj = tri[which[ok]], ii[ok], jj[ok]
    px, py = c[ii], c[jj]
    a, b, d = t[:, 0], t[:, 1], t[:, 2]
    det = (b[:, 0] - a[:, 0]) * (d[:, 1] - a[:, 1]) - (d[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    good = np.abs(det) > 1e-15
    det = np.where(good, det, 1.0)
    u = ((px - a[:, 0]) * (d[:, 1] - a[:, 1]) - (d[:, 0] - a[:, 0]) * (py - a[:, 1])) / det
    w = ((b[:, 0] - a[:, 0]) * (py - a[:, 1]) - (px - a[:, 0]) * (b[:, 1] - a[:, 1])) / det
    hit = good & (u >= 0) & (w >= 0) & (u + w <= 1)
    z = a[:, 2] + u * (b[:, 2] - a[:, 2]) + w * (d[:, 2] - a[:, 2])
    np.add.at(counts, (ii[hit], jj[hit], np.searchsorted(c, z[hit])), 1)
    return (np.cumsum(counts, axis=2)[:, :, :n] % 2).astype(bool)


def volumetric_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else float(np.count_nonzero(a & b) / union)


def model_iou(solid: Solid, vertices: np.ndarray, faces: np.ndarray, n: int = GRID) -> float:
    """Volumetric IoU of a closed mesh against the solid, both centred and scaled to a largest extent of 1."""
    return volumetric_iou(solid_occupancy(solid, n), mesh_occupancy(vertices, faces, n))


def glb_mesh(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Positions and faces of a GLB, welded by position (UV seams duplicate vertices)."""
    import io

    import trimesh

    mesh = trimesh.load(io.BytesIO(data), file_type="glb", force="mesh", process=False)
    v, inverse = np.unique(np.asarray(mesh.vertices), axis=0, return_inverse=True)
    return v, inverse.ravel()[np.asarray(mesh.faces)]
