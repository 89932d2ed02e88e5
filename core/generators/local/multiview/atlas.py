"""Texture for the carved model: an atlas of six tiles (the four views' directions, top and bottom), each face
textured from the tile whose direction best faces it, every texel a blend of the photos that see its point.

A texel's surface point comes from the carved field's depth map along its tile's direction. Each photo that sees
the point (its normal turned toward that camera, and not hidden behind another part: the photo's own depth map
says so) contributes its colour, weighted by how squarely it looks at the point; where two tiles meet, both
compute the same blend of the same photos, so the seam does not show. A point that no photo sees (the back with
only front and left photos, a flat top) takes the photo from the opposite side, then the photos of the sides
nearest to it: only what no photo shows is ever mirrored."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from image2model.core.generators.local.multiview.carving import Grid
from image2model.core.generators.local.multiview.perspective import Camera
from image2model.core.generators.local.multiview.views import View
from image2model.core.mesh.model import TexturedMesh, face_normals, weld

TILE_NAMES = ("front", "left", "back", "right", "top", "bottom")
DIRECTIONS = np.array([(0, 0, 1), (1, 0, 0), (0, 0, -1), (-1, 0, 0), (0, 1, 0), (0, -1, 0)], np.float64)
"""Each tile's direction toward its (real or imagined) camera; the first four are the views'."""
RIGHTS = np.array([(1, 0, 0), (0, 0, -1), (-1, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 0)], np.float64)
UPS = np.array([(0, 1, 0), (0, 1, 0), (0, 1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)], np.float64)
"""Each tile's image right and image up (the top is seen from above with the front at the bottom)."""
LAYOUTS = ([[0, 1, 2, 3], [4, 5]], [[0, 1], [2, 3], [4, 5]], [[0, 1, 4], [2, 3, 5]], [[0, 1, 2], [3, 4, 5]])
"""Candidate shelf packings (rows of tiles); the one giving the most texels per unit wins."""
TIER = 0.05
"""Weight sum below which a tier of photos gives way to the next (direct → opposite side → nearest sides)."""
NEAREST_FLOOR = 0.3
"""Where no photo sees a point (a flat top), the photos of the sides it lies toward blend in by angle, with weights
that never fall below this, so the guess is a smooth mix of the rims."""
PAD_TEXELS = 3
"""Texels of padding around each tile, repeating its border (so filtering and mipmaps stay in the tile)."""
CREASE_DEGREES = 35.0
"""Faces meeting at a larger angle keep a sharp edge in the normals (a box's edges); smaller ones are smooth."""
BLEED_PX = 2
"""The photos' cut-outs are eroded by this much before their colours are used (the rim mixes in backdrop)."""


@dataclass(frozen=True)
class DepthMap:
    """First hits of the field seen from a tile's direction, at the grid's resolution: line (i, j) is at tile
    coordinates (a_lo + step·i, b_lo + step·j)."""

    depth: np.ndarray
    """(na, nb) float32 surface position along the direction (missed lines hold their nearest hit)."""
    hit: np.ndarray
    """(na, nb) float32, 1 where the line meets the solid."""
    normal: np.ndarray
    """(na, nb, 3) float32 outward unit normals at the hits."""
    a_lo: float
    b_lo: float
    step: float

    def sample(self, values: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Bilinear samples of one of the per-line arrays at tile coordinates (any matching shapes)."""
        return _remap(values, (b - self.b_lo) / self.step, (a - self.a_lo) / self.step)


def _remap(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples image[y, x] (clamped at the border) for coordinate arrays of any shape."""
    import cv2

    if x.ndim == 2 and max(x.shape) < 32767:
        direct: np.ndarray = cv2.remap(
            image,
            x.astype(np.float32),
            y.astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return direct
    shape = x.shape
    n = x.size
    width = 1024
    rows = max(1, math.ceil(n / width))
    mx = np.zeros(rows * width, np.float32)
    my = np.zeros(rows * width, np.float32)
    mx[:n], my[:n] = x.ravel(), y.ravel()
    out = cv2.remap(image, mx.reshape(rows, width), my.reshape(rows, width), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return np.asarray(out).reshape((rows * width,) + image.shape[2:])[:n].reshape(shape + image.shape[2:])


def _filled(values: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Per-line values with missed lines given their nearest hit's, so interpolation near outlines stays on the
    surface."""
    import cv2

    if hit.all() or not hit.any():
        return values.astype(np.float32)
    _, labels = cv2.distanceTransformWithLabels(
        (~hit).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    inside = values[hit]
    return inside[np.clip(labels - 1, 0, len(inside) - 1)].astype(np.float32)


def depth_maps(field: np.ndarray, grid: Grid) -> list[DepthMap]:
    """The six depth maps of the carved field (negative inside)."""
    inside = field < 0
    maps = []
    for t in range(6):
        axes = [int(np.argmax(np.abs(v))) for v in (RIGHTS[t], UPS[t], DIRECTIONS[t])]
        signs = [float(v[a]) for v, a in zip((RIGHTS[t], UPS[t], DIRECTIONS[t]), axes, strict=True)]
        flip = tuple(slice(None, None, -1) if s < 0 else slice(None) for s in signs)
        occupied = np.transpose(inside, axes)[flip]
        sizes = [grid.shape[a] for a in axes]
        lows = [
            grid.lo[a] if s > 0 else -(grid.lo[a] + grid.step * (n - 1))
            for a, s, n in zip(axes, signs, sizes, strict=True)
        ]
        hit: np.ndarray = np.asarray(occupied.any(axis=2))
        last = sizes[2] - 1 - np.argmax(occupied[:, :, ::-1], axis=2)
        # Back to grid indices (i, j, k) of the last inside sample and the outside one after it.
        ii, jj = np.indices(last.shape)
        local = [ii, jj, last]
        index = [np.zeros_like(last)] * 3
        for n_axis, (a, s, n) in enumerate(zip(axes, signs, sizes, strict=True)):
            index[a] = local[n_axis] if s > 0 else n - 1 - local[n_axis]
        step_vec = np.zeros(3, np.int64)
        step_vec[axes[2]] = int(signs[2])
        i0, j0, k0 = index
        i1 = np.clip(i0 + step_vec[0], 0, grid.shape[0] - 1)
        j1 = np.clip(j0 + step_vec[1], 0, grid.shape[1] - 1)
        k1 = np.clip(k0 + step_vec[2], 0, grid.shape[2] - 1)
        f0, f1 = field[i0, j0, k0].astype(np.float64), field[i1, j1, k1].astype(np.float64)
        frac = np.clip(f0 / np.where(f0 < f1, f0 - f1, -1.0), 0.0, 1.0)
        depth = np.where(hit, lows[2] + grid.step * (last + frac), 0.0)
        normal = np.stack([_central(field, index, a, grid.shape[a]) for a in range(3)], axis=-1)
        length = np.linalg.norm(normal, axis=-1, keepdims=True)
        normal = np.where(length > 1e-9, normal / np.maximum(length, 1e-9), DIRECTIONS[t])
        maps.append(
            DepthMap(
                _filled(depth, hit),
                hit.astype(np.float32),
                _filled(normal, hit),
                lows[0],
                lows[1],
                grid.step,
            )
        )
    return maps


def _central(field: np.ndarray, index: list[np.ndarray], axis: int, size: int) -> np.ndarray:
    up, down = list(index), list(index)
    up[axis] = np.clip(index[axis] + 1, 0, size - 1)
    down[axis] = np.clip(index[axis] - 1, 0, size - 1)
    return (field[tuple(up)].astype(np.float64) - field[tuple(down)]) / 2.0


@dataclass(frozen=True)
class Tile:
    """Where a tile sits: atlas texel (left + c, top + r) is the point at tile coordinates
    a = a0 + (c + 0.5)/res, b = b1 − (r + 0.5)/res."""

    index: int
    a0: float
    b1: float
    width: int
    height: int
    left: int
    top: int


def _spans(lo: np.ndarray, hi: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Each tile's (a0, a1, b0, b1) covering the bounding box [lo, hi]."""
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    out = []
    for t in range(6):
        a, b = corners @ RIGHTS[t], corners @ UPS[t]
        out.append((float(a.min()), float(a.max()), float(b.min()), float(b.max())))
    return out


def layout(
    spans: list[tuple[float, float, float, float]], max_side: int, max_res: float
) -> tuple[list[Tile], float, tuple[int, int]]:
    """Pack the six tiles on shelves into an atlas whose long side is at most `max_side` texels."""
    sizes = [(a1 - a0, b1 - b0) for a0, a1, b0, b1 in spans]
    best: tuple[float, list[list[int]]] | None = None
    for rows in LAYOUTS:
        width = max(sum(sizes[t][0] for t in row) for row in rows)
        height = sum(max(sizes[t][1] for t in row) for row in rows)
        pads = 2 * PAD_TEXELS * max(max(len(r) for r in rows), len(rows)) + 2
        res = (max_side - pads) / max(width, height)
        if best is None or res > best[0]:
            best = (res, [list(r) for r in rows])
    assert best is not None
    res, rows = min(best[0], max_res), best[1]
    tiles: list[Tile | None] = [None] * 6
    top = 0
    atlas_w = 0
    for row in rows:
        left, row_h = 0, 0
        for t in row:
            a0, a1, b0, b1 = spans[t]
            w, h = math.ceil((a1 - a0) * res) + 2, math.ceil((b1 - b0) * res) + 2
            # One texel of margin inside the tile around the span, then padding between tiles.
            tiles[t] = Tile(t, a0 - 1.0 / res, b1 + 1.0 / res, w, h, left + PAD_TEXELS, top + PAD_TEXELS)
            left += w + 2 * PAD_TEXELS
            row_h = max(row_h, h + 2 * PAD_TEXELS)
        atlas_w = max(atlas_w, left)
        top += row_h
    return [t for t in tiles if t is not None], res, (atlas_w, top)


def _bled_photo(view: View) -> np.ndarray:
    """The photo (float32) with everything outside the slightly eroded cut-out filled in from the object's own
    colours, so no backdrop colour is sampled at the rim."""
    import cv2

    inside = (view.mask > 0.5).astype(np.uint8)
    x0, y0, x1, y1 = view.bbox
    margin = 8 + BLEED_PX
    x0, y0 = max(0, x0 - margin), max(0, y0 - margin)
    x1, y1 = min(inside.shape[1], x1 + margin), min(inside.shape[0], y1 + margin)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * BLEED_PX + 1,) * 2)
    keep = cv2.erode(inside[y0:y1, x0:x1], kernel)
    if not keep.any():
        keep = inside[y0:y1, x0:x1]
    out = view.rgb.astype(np.float32)
    out[y0:y1, x0:x1] = fill(out[y0:y1, x0:x1], keep > 0)
    return out


def fill(colour: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Colours (h, w, 3) with the invalid texels filled from the valid ones around them (push-pull: averages
    over a pyramid, composited back from coarse to fine), which also keeps mipmaps free of stray colour."""
    import cv2

    if valid.all() or not valid.any():
        return colour
    weight = valid.astype(np.float32)
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    c: np.ndarray = (colour * weight[..., None]).astype(np.float32)
    w: np.ndarray = weight
    while min(c.shape[:2]) > 1:
        levels.append((c, w))
        size = (max(1, c.shape[1] // 2), max(1, c.shape[0] // 2))
        c = np.asarray(cv2.resize(c, size, interpolation=cv2.INTER_AREA))
        w = np.asarray(cv2.resize(w, size, interpolation=cv2.INTER_AREA))
    filled: np.ndarray = c / np.maximum(w, 1e-6)[..., None]
    for c, w in reversed(levels):
        up = np.asarray(cv2.resize(filled, (c.shape[1], c.shape[0]), interpolation=cv2.INTER_LINEAR))
        # c is premultiplied by its coverage w, so "c over up" is c + (1 − w)·up; where w = 1 c wins.
        filled = c + (1.0 - w)[..., None] * up
    return filled


def _cube(x: np.ndarray) -> np.ndarray:
    """max(x, 0)³ (the blend's sharpness), without a slow general power."""
    c = np.clip(x, 0.0, 1.0)
    return c * c * c


def blend_weights(
    points: np.ndarray,
    normals: np.ndarray,
    views: list[View],
    maps: list[DepthMap],
    centre: np.ndarray,
) -> np.ndarray:
    """(n, views) weights of the photos for surface points (n, 3) with unit normals (see the module docstring),
    summing to 1. They come in tiers: the photos that see a point squarely; where their weights sum to less
    than `TIER`, the photos from the opposite side; where those too are weak, the photos of the nearest sides."""
    n, count = len(points), len(views)
    tolerance = np.float32(1.5 * maps[0].step)
    direct = np.empty((n, count), np.float32)
    facing = np.empty((n, count), np.float32)
    for m, view in enumerate(views):
        k = view.k
        direction = DIRECTIONS[k].astype(np.float32)
        facing[:, m] = normals @ direction
        behind = maps[k].sample(maps[k].depth, points @ RIGHTS[k].astype(np.float32), points[:, 1])
        behind -= points @ direction
        direct[:, m] = np.clip(1.0 - (behind - tolerance) / tolerance, 0.0, 1.0) * _cube(facing[:, m])
    weights = direct
    weak = np.nonzero(direct.sum(axis=1) < TIER)[0]
    if len(weak):
        opposite = _cube(-facing[weak])
        # Toward which side the point lies, seen from above: the photos of the nearest sides, blended by angle.
        offset = points[weak] - centre.astype(np.float32)
        offset[:, 1] = 0.0
        offset /= np.maximum(np.linalg.norm(offset, axis=1, keepdims=True), np.float32(1e-9))
        sides = np.array([DIRECTIONS[v.k] for v in views], np.float32)
        nearest = np.clip(offset @ sides.T, 0.0, 1.0) + np.float32(NEAREST_FLOOR)
        share = np.clip(opposite.sum(axis=1, keepdims=True) / TIER, 0.0, 1.0)
        fallback = opposite + (1.0 - share) * nearest
        share = np.clip(direct[weak].sum(axis=1, keepdims=True) / TIER, 0.0, 1.0)
        weights[weak] = direct[weak] + (1.0 - share) * fallback
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), np.float32(1e-12))
    return weights


def _tile_weights(t: int, maps: list[DepthMap], views: list[View], centre: np.ndarray) -> np.ndarray:
    """The photos' blend weights at every line of tile t's depth map, (na, nb, views): they vary smoothly, so
    the texels interpolate them instead of each working them out."""
    depth_map = maps[t]
    na, nb = depth_map.depth.shape
    a = (depth_map.a_lo + depth_map.step * np.arange(na, dtype=np.float32))[:, None].repeat(nb, 1)
    b = (depth_map.b_lo + depth_map.step * np.arange(nb, dtype=np.float32))[None, :].repeat(na, 0)
    points = (
        a.reshape(-1, 1) * RIGHTS[t].astype(np.float32)
        + b.reshape(-1, 1) * UPS[t].astype(np.float32)
        + depth_map.depth.reshape(-1, 1) * DIRECTIONS[t].astype(np.float32)
    )
    weights = blend_weights(points, depth_map.normal.reshape(-1, 3), views, maps, centre)
    return weights.reshape(na, nb, len(views))


@dataclass
class Atlas:
    """The texture image and how to map any mesh of the carved shape onto it."""

    texture: Image.Image
    tiles: list[Tile]
    res: float
    size: tuple[int, int]
    maps: list[DepthMap]

    def assign(self, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """Each face's tile: the direction it faces most among those that see it."""
        fn = face_normals(vertices, faces)
        fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-12)
        centroid = vertices[faces].mean(axis=1)
        score = fn @ DIRECTIONS.T
        tolerance = 2.0 * self.maps[0].step
        for t, depth_map in enumerate(self.maps):
            surface = depth_map.sample(depth_map.depth, centroid @ RIGHTS[t], centroid @ UPS[t])
            hidden = surface - centroid @ DIRECTIONS[t] > tolerance
            score[hidden, t] -= 2.0
        return np.asarray(np.argmax(score, axis=1))

    def uv(self, vertices: np.ndarray, tile_of_vertex: np.ndarray) -> np.ndarray:
        """Texture coordinates (OBJ convention) of vertices in their tiles."""
        w, h = self.size
        out = np.empty((len(vertices), 2))
        for tile in self.tiles:
            sel = tile_of_vertex == tile.index
            a, b = vertices[sel] @ RIGHTS[tile.index], vertices[sel] @ UPS[tile.index]
            col = tile.left + (a - tile.a0) * self.res
            row = tile.top + (tile.b1 - b) * self.res
            out[sel] = np.column_stack([col / w, 1.0 - row / h])
        return out

    def textured(
        self, vertices: np.ndarray, faces: np.ndarray, centre: np.ndarray, extent: float
    ) -> TexturedMesh:
        """The mesh with UV seams between tiles and sharp edges split for the normals, moved to the model frame
        ((v − centre) / extent)."""
        tile_of_face = self.assign(vertices, faces)
        corner_normals = crease_normals(vertices, faces).reshape(-1, 3)
        corner_vertex = faces.reshape(-1).astype(np.int64)
        corner_tile = np.repeat(tile_of_face, 3).astype(np.int64)
        # One vertex per (position, tile, normal): 3 × 12 bits of normal, 3 bits of tile, the rest position.
        q = np.clip(np.round((corner_normals + 1.0) * 2047.5), 0, 4095).astype(np.int64)
        keys = (((corner_vertex * 8 + corner_tile) * 4096 + q[:, 0]) * 4096 + q[:, 1]) * 4096 + q[:, 2]
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        source = corner_vertex[first]
        out_faces = inverse.reshape(-1, 3).astype(np.int64)
        uv = self.uv(vertices[source], corner_tile[first])
        normals = corner_normals[first]
        return TexturedMesh(
            (vertices[source] - centre) / extent, out_faces, uv, self.texture, normals=normals
        )


def crease_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(faces, 3, 3) unit normal at each face corner: the area-weighted normals of the faces around its vertex
    that meet this face at less than `CREASE_DEGREES`."""
    welded = weld(vertices, faces)
    wf = welded.faces
    fn = face_normals(welded.vertices, wf)
    unit = fn / np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-20)
    corner_vertex = wf.reshape(-1)
    corner_face = np.repeat(np.arange(len(wf)), 3)
    order = np.argsort(corner_vertex, kind="stable")
    counts = np.bincount(corner_vertex, minlength=len(welded.vertices))
    starts = np.cumsum(counts) - counts
    # Every (corner, face sharing its vertex) pair.
    deg = counts[corner_vertex]
    pair_corner = np.repeat(np.arange(len(corner_vertex)), deg)
    offset = np.arange(len(pair_corner)) - np.repeat(np.cumsum(deg) - deg, deg)
    pair_face = corner_face[order[starts[corner_vertex[pair_corner]] + offset]]
    near = np.einsum("ij,ij->i", unit[corner_face[pair_corner]], unit[pair_face]) >= math.cos(
        math.radians(CREASE_DEGREES)
    )
    acc = np.zeros((len(corner_vertex), 3))
    for axis in range(3):
        acc[:, axis] = np.bincount(pair_corner[near], fn[pair_face[near], axis], minlength=len(corner_vertex))
    length = np.linalg.norm(acc, axis=1, keepdims=True)
    acc = np.where(length > 1e-20, acc / np.maximum(length, 1e-20), unit[corner_face])
    return acc.reshape(-1, 3, 3)


def build(
    field: np.ndarray,
    grid: Grid,
    views: list[View],
    lo: np.ndarray,
    hi: np.ndarray,
    max_side: int,
    cameras: list[Camera] | None = None,
) -> Atlas:
    """Depth maps, tile layout and the blended texture of the carved shape whose bounding box is [lo, hi];
    `cameras` (one per view) project points into the photos along perspective rays where given."""
    maps = depth_maps(field, grid)
    tiles, res, size = layout(_spans(lo, hi), max_side, max(v.scale for v in views))
    photos = [_bled_photo(v) for v in views]
    centre = (lo + hi) / 2.0
    atlas = np.zeros((size[1], size[0], 3), np.float32)
    for tile in tiles:
        t = tile.index
        depth_map = maps[t]
        # Tile texel (c, r) looks up depth-map line ((a − a_lo)/step, (b − b_lo)/step): both linear in c, r.
        a = (tile.a0 + (np.arange(tile.width, dtype=np.float32) + 0.5) / res)[None, :]
        b = (tile.b1 - (np.arange(tile.height, dtype=np.float32) + 0.5) / res)[:, None]
        rows = np.broadcast_to((a - depth_map.a_lo) / depth_map.step, (tile.height, tile.width))
        cols = np.broadcast_to((b - depth_map.b_lo) / depth_map.step, (tile.height, tile.width))
        footprint = _remap(depth_map.hit, cols, rows) > 0.25
        if not footprint.any():
            continue
        depth = _remap(depth_map.depth, cols, rows)
        weights = _remap(_tile_weights(t, maps, views, centre), cols, rows)
        weights /= np.maximum(weights.sum(axis=-1, keepdims=True), np.float32(1e-12))
        colour = np.zeros((tile.height, tile.width, 3), np.float32)
        for m, (view, photo) in enumerate(zip(views, photos, strict=True)):
            if weights[..., m].max() <= 1e-3:
                continue
            # The texel's point is a·right_t + b·up_t + depth·direction_t; project it into photo m.
            r_t, u_t, d_t = RIGHTS[t] @ view.right, UPS[t] @ view.right, DIRECTIONS[t] @ view.right
            across = a * np.float32(r_t) + b * np.float32(u_t) + depth * np.float32(d_t)
            height = (
                a * np.float32(RIGHTS[t][1])
                + b * np.float32(UPS[t][1])
                + depth * np.float32(DIRECTIONS[t][1])
            )
            if cameras is None:
                px = view.centre - 0.5 + view.scale * across
                py = view.ground - 0.5 - view.scale * height
            else:
                n_t = [float(v @ view.toward) for v in (RIGHTS[t], UPS[t], DIRECTIONS[t])]
                near = a * np.float32(n_t[0]) + b * np.float32(n_t[1]) + depth * np.float32(n_t[2])
                px, py = cameras[m].photo_xy(across, height, near)
            colour += weights[..., m : m + 1] * _remap(photo, px, py)
        atlas[tile.top : tile.top + tile.height, tile.left : tile.left + tile.width] = fill(colour, footprint)
    _pad_edges(atlas, tiles)
    image = Image.fromarray(np.clip(np.round(atlas), 0, 255).astype(np.uint8), "RGB")
    return Atlas(image, tiles, res, size, maps)


def _pad_edges(atlas: np.ndarray, tiles: list[Tile]) -> None:
    """Repeat each tile's border texels into its padding, so filtering at a tile's edge stays in the tile."""
    for tile in tiles:
        y0, x0 = tile.top, tile.left
        y1, x1 = y0 + tile.height, x0 + tile.width
        p = PAD_TEXELS
        atlas[y0 - p : y0, x0:x1] = atlas[y0, x0:x1]
        atlas[y1 : y1 + p, x0:x1] = atlas[y1 - 1, x0:x1]
        atlas[y0 - p : y1 + p, x0 - p : x0] = atlas[y0 - p : y1 + p, x0 : x0 + 1]
        atlas[y0 - p : y1 + p, x1 : x1 + p] = atlas[y0 - p : y1 + p, x1 - 1 : x1]
