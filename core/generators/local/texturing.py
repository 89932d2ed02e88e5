"""Texture for the solid: a [front | back] atlas and the UVs that map the two sheets onto it.

Front: the photo cropped to the object and edge-bled (`bleed`: no backdrop halo at the rim), projected straight on. Where the
surface turns away from the camera (the side walls, which a front photo does not show) it fades into the detail-free
colour, so the walls carry colour that fits instead of streaks stretched from the outline's last pixels.

The detail-free tile, by `back`:
- "smooth": the object's locally dominant colour: a wide median (marks smaller than about a third of the object,
  such as eyes, a mouth, print, melt into what surrounds them instead of showing through blurred), then a
  normalised-convolution blur inside the mask: no copied detail, so no mirrored text and no second face.
- "wrapped": the median colour of a band of rows round each row (revolved shapes: bands continue round, text does
  not).
- "mirrored": as "smooth", but the back faces show the photo seen from behind (right for side-on shots of
  mirror-symmetric things: the other side of a shoe, an animal in profile).
It is stored at a quarter of the photo tile's resolution next to it. The side walls and flat caps always use it,
the back faces unless mirrored; vertices on the seams between faces on different tiles are duplicated with their
second UV (same position: the mesh is closed once welded)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from image2model.core.images import mask_bounds
from image2model.core.mesh import quality

BACK_SCALE = 4
"""The detail-free back tile is this many times smaller than the front tile, per side."""
WALL_NZ = (0.2, 0.55)
"""The front fades from the photo (surface normal's z ≥ the upper value) to the detail-free colour (≤ the lower)."""
BAND_SAMPLES = 600
ROW_BAND = 0.08
"""Height of the band of rows whose median colour a revolved shape's row wraps round with (share of the height)."""
SMOOTH_SIGMA = 0.04
"""Blur radius of the detail-free colour, as a share of the object's long side."""
DETAIL_WORK = 64
"""The detail-free colour is worked out on a tile this many pixels across, then interpolated up."""
MEDIAN_SIZE = 0.3
"""Window of the median that removes marks from the detail-free colour, as a share of the object's long side."""


@dataclass(frozen=True)
class TextureBox:
    """The texture's extent in working-image pixel coordinates (pixel k covers [k − 0.5, k + 0.5))."""

    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class Atlas:
    """The texture image and where the front and back tiles lie in it (pixels)."""

    image: Image.Image
    box: TextureBox
    front_size: tuple[int, int]
    """(width, height) of the photo tile at the atlas's left edge."""
    detail_size: tuple[int, int]
    """(width, height) of the detail-free tile right of the photo tile, top-aligned."""
    mirrored: bool
    """The back faces show the photo tile (seen from behind) instead of the detail-free tile."""

    def uv(self, x_px: np.ndarray, y_px_down: np.ndarray, detail: bool) -> np.ndarray:
        """Planar (u, v) into the photo or the detail-free tile, v = 0 at the bottom of the atlas (OBJ
        convention), kept half a texel inside the tile."""
        width, height = self.image.size
        fx = np.clip((x_px - self.box.left) / self.box.width, 0.0, 1.0)
        fy = np.clip((y_px_down - self.box.top) / self.box.height, 0.0, 1.0)
        if detail:
            tw, th = self.detail_size
            offset = self.front_size[0]
        else:
            tw, th = self.front_size
            offset = 0
        col = offset + 0.5 + fx * (tw - 1)
        row = 0.5 + fy * (th - 1)
        return np.column_stack([col / width, 1.0 - row / height])


def make_texture(
    rgb: np.ndarray,
    inside: np.ndarray,
    max_size: int,
    erode_px: int = 2,
    back: str = "mirrored",
    normal_z: tuple[np.ndarray, tuple[float, float, float, float]] | None = None,
) -> Atlas:
    """The atlas for an object `inside` (bool mask) of `rgb`: the front tile's long side is at most `max_size`.

    `normal_z` is the front sheet's n_z on a grid and the pixel box it covers (`shaping.Solid.normal_z_image`);
    without it the front is the plain photo."""
    import cv2

    h, w = inside.shape
    top, bottom, left, right = mask_bounds(inside) or (0, h - 1, 0, w - 1)
    margin = max(2, round(0.01 * max(h, w)))
    x0, y0 = max(left - margin, 0), max(top - margin, 0)
    x1, y1 = min(right + margin + 1, w), min(bottom + margin + 1, h)
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    keep: np.ndarray = inside[y0:y1, x0:x1].astype(np.uint8)
    if erode_px > 0 and min(keep.shape) > 4 * erode_px:
        eroded = cv2.erode(keep, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1,) * 2))
        if eroded.any():
            keep = eroded
    if keep.any() and not keep.all():
        crop = bleed(crop, keep)
    box = TextureBox(x0 - 0.5, y0 - 0.5, float(x1 - x0), float(y1 - y0))
    long_side = max(crop.shape[:2])
    if long_side > max_size:
        scale = max_size / long_side
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        keep = cv2.resize(keep, size, interpolation=cv2.INTER_NEAREST)
    th, tw = crop.shape[:2]
    bw, bh = max(2, -(-tw // BACK_SCALE)), max(2, -(-th // BACK_SCALE))
    small = cv2.resize(crop, (bw, bh), interpolation=cv2.INTER_AREA).astype(np.float32)
    small_keep = cv2.resize(keep.astype(np.float32), (bw, bh), interpolation=cv2.INTER_AREA)
    detail_free = _row_colours(small, small_keep) if back == "wrapped" else _detail_free(small, small_keep)
    front = crop
    if normal_z is not None:
        weight = _photo_weight(normal_z, box, (tw, th))
        wall = cv2.resize(
            np.clip(detail_free, 0, 255).astype(np.uint8), (tw, th), interpolation=cv2.INTER_LINEAR
        )
        front = cv2.blendLinear(crop, wall, weight, 1.0 - weight)
    atlas = np.empty((th, tw + bw, 3), np.uint8)
    atlas[:, :tw] = front
    atlas[:, tw:] = np.clip(detail_free.mean(axis=(0, 1)), 0, 255).astype(np.uint8)
    atlas[:bh, tw:] = np.clip(detail_free, 0, 255).astype(np.uint8)
    return Atlas(Image.fromarray(atlas), box, (tw, th), (bw, bh), back == "mirrored")


def bleed(rgb: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """`rgb` (uint8) with every pixel outside `keep` replaced by the object's own colours spread outward (push-pull:
    each coarser level averages only kept pixels and fills the finer level's gaps), so neither bilinear filtering
    nor mipmaps pull backdrop colour into the rim. Full resolution is touched only by a few uint8 passes."""
    import cv2

    h, w = keep.shape
    k8 = keep.astype(np.uint8)
    half = (max(1, (w + 1) // 2), max(1, (h + 1) // 2))
    colour: np.ndarray = cv2.resize(cv2.bitwise_and(rgb, rgb, mask=k8), half, interpolation=cv2.INTER_AREA)
    colour = colour.astype(np.float32)
    weight: np.ndarray = cv2.resize(k8 * 255, half, interpolation=cv2.INTER_AREA)
    weight = weight.astype(np.float32) / 255.0
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    while True:
        levels.append((colour, weight))
        lh, lw = weight.shape
        if max(lh, lw) <= 4:
            break
        size = (max(1, (lw + 1) // 2), max(1, (lh + 1) // 2))
        colour = cv2.resize(colour, size, interpolation=cv2.INTER_AREA)
        weight = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
    filled: np.ndarray | None = None
    for colour, weight in reversed(levels):
        known = weight[..., None] > 1e-3
        mean = colour / np.maximum(weight, 1e-6)[..., None]
        if filled is None:
            fallback = colour.sum(axis=(0, 1)) / max(float(weight.sum()), 1e-6)
            filled = np.where(known, mean, fallback).astype(np.float32)
            continue
        up = cv2.resize(filled, (weight.shape[1], weight.shape[0]), interpolation=cv2.INTER_LINEAR)
        filled = np.where(known, mean, up).astype(np.float32)
    assert filled is not None
    out: np.ndarray = cv2.resize(
        np.clip(filled + 0.5, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR
    )
    cv2.copyTo(rgb, k8, out)
    return out


def _detail_free(rgb: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The "smooth" tile: `_dominant` then `_smooth`, worked out at most `DETAIL_WORK` pixels across (both are
    wide, smooth filters) and interpolated up to `rgb`'s size."""
    import cv2

    h, w = weight.shape
    scale = min(1.0, DETAIL_WORK / max(h, w))
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    tile = _smooth(
        _dominant(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)),
        cv2.resize(weight, size, interpolation=cv2.INTER_AREA),
    )
    out: np.ndarray = cv2.resize(tile, (w, h), interpolation=cv2.INTER_LINEAR)
    return out


def _dominant(rgb: np.ndarray) -> np.ndarray:
    """Each pixel's median colour over a window `MEDIAN_SIZE` of the long side (the tile is edge-bled, so the
    window's pixels beyond the object carry its rim colours, not the backdrop)."""
    import cv2

    size = max(3, round(MEDIAN_SIZE * max(rgb.shape[:2])) | 1)
    out: np.ndarray = cv2.medianBlur(np.clip(rgb, 0, 255).astype(np.uint8), size).astype(np.float32)
    return out


def _smooth(rgb: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Normalised-convolution blur of the colours where `weight` > 0, extended smoothly beyond them."""
    import cv2

    sigma = max(1.0, SMOOTH_SIGMA * max(rgb.shape[:2]))
    num = cv2.GaussianBlur(rgb * weight[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    mean = rgb[weight > 0.5].mean(axis=0) if (weight > 0.5).any() else rgb.reshape(-1, 3).mean(axis=0)
    out: np.ndarray = np.where(den[..., None] > 1e-3, num / np.maximum(den, 1e-3)[..., None], mean)
    return out.astype(np.float32)


def _row_colours(rgb: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Each row's colour across the whole row: the median object colour over a band of rows around it (printed
    lines of text melt into their label's colour), from at most `BAND_SAMPLES` pixels of the band; rows without
    object take the nearest row's."""
    import cv2

    rows = np.zeros((rgb.shape[0], 3), np.float32)
    has = (weight > 0.5).any(axis=1)
    if not has.any():
        return _smooth(rgb, weight)
    half = max(1, round(ROW_BAND * int(has.sum()) / 2))
    for r in np.flatnonzero(has):
        band = slice(max(0, r - half), r + half + 1)
        pixels = rgb[band][weight[band] > 0.5]
        step = max(1, len(pixels) // BAND_SAMPLES)
        rows[r] = np.median(pixels[::step], axis=0)
    idx = np.arange(len(rows))
    colours: np.ndarray = np.column_stack([np.interp(idx, idx[has], rows[has, k]) for k in range(3)])
    colours = colours.astype(np.float32)
    if len(colours) > 2:
        colours = cv2.GaussianBlur(colours[:, None, :], (0, 0), 1.0)[:, 0, :]
    out: np.ndarray = np.repeat(colours[:, None, :], rgb.shape[1], axis=1)
    return out


def _photo_weight(
    normal_z: tuple[np.ndarray, tuple[float, float, float, float]], box: TextureBox, size: tuple[int, int]
) -> np.ndarray:
    """How much of the photo (vs the detail-free colour) each front texel shows: 1 where the surface faces the
    camera, 0 on the side walls."""
    import cv2

    nz, (left, top, width, height) = normal_z
    tw, th = size
    # Texel (c, r) centre in image pixels, then in the n_z grid's pixels.
    ax = box.width / tw * nz.shape[1] / width
    ay = box.height / th * nz.shape[0] / height
    bx = ((box.left - left) + 0.5 * box.width / tw) * nz.shape[1] / width - 0.5
    by = ((box.top - top) + 0.5 * box.height / th) * nz.shape[0] / height - 0.5
    m = np.array([[ax, 0.0, bx], [0.0, ay, by]], np.float64)
    # The smoothstep on the grid (a few thousand nodes), then interpolated up: the same ramp, not a pass over
    # every texel.
    lo, hi = WALL_NZ
    t = np.clip((nz.astype(np.float32) - lo) * (1.0 / (hi - lo)), 0.0, 1.0)
    ramp = (t * t * (3.0 - 2.0 * t)).astype(np.float32)
    weight: np.ndarray = cv2.warpAffine(
        ramp, m, (tw, th), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0.0
    )
    return weight


def face_tiles(vertices_px: np.ndarray, faces: np.ndarray, mirrored: bool) -> np.ndarray:
    """Which tile each face samples: 0 = the photo (faces turned toward the camera, and the back faces when the
    back mirrors the front), 1 = the detail-free tile (the side walls and flat caps, which the photo does not show,
    and the back faces otherwise)."""
    from image2model.core.mesh.model import face_normals

    n = face_normals(vertices_px, faces)
    nz = n[:, 2] / np.maximum(np.linalg.norm(n, axis=1), 1e-30)
    facing = np.abs(nz) >= WALL_NZ[0] if mirrored else nz >= WALL_NZ[0]
    return np.where(facing, 0, 1).astype(np.int8)


def sheet_uv(
    vertices_px: np.ndarray, faces: np.ndarray, atlas: Atlas
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, faces, uv): planar UVs into the tile `face_tiles` gives each face; vertices shared by faces on
    both tiles are duplicated at the same position (a UV seam). `vertices_px` are pixel units, y up."""
    x, y_down = vertices_px[:, 0], -vertices_px[:, 1]
    tiles = face_tiles(vertices_px, faces, atlas.mirrored)
    on_detail = tiles == 1
    used_detail = quality.used_vertices(faces[on_detail], len(vertices_px))
    remap = np.full(len(vertices_px), -1, np.int64)
    remap[used_detail] = len(vertices_px) + np.arange(len(used_detail))
    out_faces = faces.copy()
    out_faces[on_detail] = remap[faces[on_detail]]
    vertices = np.concatenate([vertices_px, vertices_px[used_detail]])
    uv = np.concatenate(
        [atlas.uv(x, y_down, detail=False), atlas.uv(x[used_detail], y_down[used_detail], detail=True)]
    )
    # Drop vertices no face uses any more (those only detail-tile faces used).
    used = quality.used_vertices(out_faces, len(vertices))
    compact = np.full(len(vertices), -1, np.int64)
    compact[used] = np.arange(len(used))
    return vertices[used], compact[out_faces], uv[used]
