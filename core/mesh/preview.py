"""CPU preview rendering with numpy and OpenCV only: a PNG thumbnail and a turntable (animated WebP and GIF).

Per frame: rotate, cull back faces, rasterise every face at once with a z-buffer (vectorised over the faces'
bounding-box pixels), then shade each covered pixel from its face's barycentrics: texture colour × Lambert with
interpolated vertex normals."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from image2model.core.mesh.model import TexturedMesh

BACKGROUND = (238, 240, 243)
_LIGHT = np.array([0.35, 0.55, 0.76]) / np.linalg.norm([0.35, 0.55, 0.76])


class Renderer:
    """Renders one mesh from several angles, reusing its texture and normals."""

    def __init__(self, mesh: TexturedMesh, texture_size: int = 512) -> None:
        self.vertices = mesh.vertices
        self.faces = mesh.faces
        self.normals = mesh.vertex_normals
        tex = mesh.texture.convert("RGB")
        if max(tex.size) > texture_size:
            tex.thumbnail((texture_size, texture_size), Image.Resampling.BILINEAR)
        self.texture = np.asarray(tex).astype(np.float32)
        th, tw = self.texture.shape[:2]
        # Texel coordinates of the vertices: a row of x and a row of y.
        self.uv_px = np.array([mesh.uv[:, 0] * (tw - 1), (1.0 - mesh.uv[:, 1]) * (th - 1)], np.float32)
        self.radius = float(np.linalg.norm(self.vertices, axis=1).max()) or 1.0

    def render(self, size: int, yaw_deg: float = 30.0, pitch_deg: float = 15.0) -> np.ndarray:
        """An RGB uint8 image of `size`² pixels, orthographic, model turned by `yaw` about Y, seen from `pitch` up."""
        yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
        cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
        rot = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rot = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]]) @ rot
        view = self.vertices @ rot.T
        normals = self.normals @ rot.T
        scale = 0.46 * size / self.radius
        sx = view[:, 0] * scale + size / 2
        sy_ = size / 2 - view[:, 1] * scale
        f = self.faces
        ax, ay = sx[f[:, 1]] - sx[f[:, 0]], sy_[f[:, 1]] - sy_[f[:, 0]]
        bx, by = sx[f[:, 2]] - sx[f[:, 0]], sy_[f[:, 2]] - sy_[f[:, 0]]
        facing = (ax * by - ay * bx) < -1e-12  # counter-clockwise in view = clockwise once y points down
        tri = f[facing]
        image = np.empty((size, size, 3), np.uint8)
        image[:] = BACKGROUND
        hit = _rasterize(sx, sy_, view[:, 2], tri, size)
        if hit is None:
            return image
        pixel, face_at, bary = hit
        light_v = (0.45 + 0.6 * np.clip(normals @ _LIGHT, 0.0, 1.0)).astype(np.float32)
        # u, v and light of each pixel: its face's three vertices' values weighted by its barycentrics.
        corners = tri.take(face_at, axis=0)
        u = (bary * self.uv_px[0].take(corners)).sum(axis=1)
        v = (bary * self.uv_px[1].take(corners)).sum(axis=1)
        light = (bary * light_v.take(corners)).sum(axis=1)
        th, tw = self.texture.shape[:2]
        texel = np.clip(v + 0.5, 0, th - 1).astype(np.intp) * tw + np.clip(u + 0.5, 0, tw - 1).astype(np.intp)
        colour = self.texture.reshape(-1, 3).take(texel, axis=0)
        image.reshape(-1, 3)[pixel] = np.clip(colour * light[:, None], 0, 255).astype(np.uint8)
        return image


def _rasterize(
    sx: np.ndarray, sy: np.ndarray, depth: np.ndarray, tri: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Z-buffered rasterising of triangles `tri` (vertex ids into screen coordinates `sx`, `sy` and view depth,
    nearer = larger) at pixel centres, all faces at once: every pixel of each face's bounding box is tested with
    the face's barycentrics, and per pixel the nearest face wins. Returns (flat pixel index, face row in `tri`,
    barycentrics (n, 3)) of the covered pixels, or None when nothing is covered. A pixel is always shaded from its
    own face's inside, so thin faces never smear the texture.

    Per face the barycentrics are affine in the pixel's offset from its box's corner; the maps are made in
    float64 and applied in float32 to the offsets, which are small (half the memory traffic of float64, and no
    precision lost to large pixel coordinates)."""
    if not len(tri):
        return None
    x, y, z = sx[tri], sy[tri], depth[tri]
    left = np.clip(np.ceil(x.min(axis=1)), 0, size)
    right = np.clip(np.floor(x.max(axis=1)), -1, size - 1)
    top = np.clip(np.ceil(y.min(axis=1)), 0, size)
    bottom = np.clip(np.floor(y.max(axis=1)), -1, size - 1)
    nx = np.maximum(right - left + 1, 0).astype(np.int64)
    ny = np.maximum(bottom - top + 1, 0).astype(np.int64)
    count = nx * ny
    total = int(count.sum())
    if not total:
        return None
    face = np.repeat(np.arange(len(tri), dtype=np.intp), count)
    # Per face, the affine maps from a pixel's offset (dx, dy) in its box to its barycentrics b1, b2 and depth.
    e1x, e1y = x[:, 1] - x[:, 0], y[:, 1] - y[:, 0]
    e2x, e2y = x[:, 2] - x[:, 0], y[:, 2] - y[:, 0]
    det = e1x * e2y - e1y * e2x
    a1, c1 = e2y / det, -e2x / det
    a2, c2 = -e1y / det, e1x / det
    ox, oy = left - x[:, 0], top - y[:, 0]
    maps = np.array([a1, c1, a1 * ox + c1 * oy, a2, c2, a2 * ox + c2 * oy], np.float32)
    # The pixels of each face's box, row by row (float division: faster than integer division here). Gathers
    # per face use `take` (several times quicker than fancy indexing).
    starts = (np.cumsum(count) - count).astype(np.float32)
    offset = np.arange(total, dtype=np.float32) - np.repeat(starts, count)
    width = nx.astype(np.float32).take(face)
    dy = np.floor((offset + np.float32(0.5)) / width)
    dx = offset - dy * width
    b1 = maps[0].take(face) * dx + maps[1].take(face) * dy + maps[2].take(face)
    b2 = maps[3].take(face) * dx + maps[4].take(face) * dy + maps[5].take(face)
    b0 = np.float32(1.0) - b1 - b2
    eps = np.float32(-1e-5)
    inside = np.flatnonzero((b0 >= eps) & (b1 >= eps) & (b2 >= eps))
    if not len(inside):
        return None
    face, b0, b1, b2 = face.take(inside), b0.take(inside), b1.take(inside), b2.take(inside)
    px = left.take(face) + dx.take(inside)
    py = top.take(face) + dy.take(inside)
    pixel = py.astype(np.int64) * size + px.astype(np.int64)
    z0, dz1, dz2 = z[:, 0], z[:, 1] - z[:, 0], z[:, 2] - z[:, 0]
    near = z0.take(face) + b1 * dz1.take(face) + b2 * dz2.take(face)
    # Per pixel, nearest first: one sort on pixel + a fraction that falls with depth (quicker than a lexsort).
    span = float(near.max() - near.min()) or 1.0
    order = np.argsort(pixel + 0.5 * (near.max() - near) / span)
    pixel = pixel[order]
    first = np.ones(len(order), bool)
    first[1:] = pixel[1:] != pixel[:-1]
    win = order[first]
    bary = np.clip(np.column_stack([b0.take(win), b1.take(win), b2.take(win)]), 0.0, None)
    bary /= bary.sum(axis=1, keepdims=True)
    return pixel[first], face.take(win), bary


def write_thumbnail(mesh: TexturedMesh, path: Path, size: int = 512) -> Path:
    """A PNG still from the front-left."""
    Image.fromarray(Renderer(mesh).render(size)).save(path, format="PNG", compress_level=1)
    return path


def turntable_frames(mesh: TexturedMesh, size: int = 256, frames: int = 24) -> list[Image.Image]:
    renderer = Renderer(mesh, texture_size=256)
    return [Image.fromarray(renderer.render(size, yaw_deg=360.0 * k / frames)) for k in range(frames)]


def write_turntable(
    frames: list[Image.Image], webp_path: Path | None, gif_path: Path | None, frame_ms: int = 80
) -> list[Path]:
    """Encode the frames as a looping animated WebP and/or GIF."""
    written = []
    if webp_path is not None:
        frames[0].save(
            webp_path,
            format="WEBP",
            save_all=True,
            append_images=frames[1:],
            duration=frame_ms,
            loop=0,
            quality=70,
            method=0,
            kmax=0,  # no key-frame search: a third less encoding time for the same size
        )
        written.append(webp_path)
    if gif_path is not None:
        palette = frames[len(frames) // 8].quantize(colors=255, method=Image.Quantize.MEDIANCUT)
        paletted = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
        buf = io.BytesIO()
        paletted[0].save(
            buf,
            format="GIF",
            save_all=True,
            append_images=paletted[1:],
            duration=frame_ms,
            loop=0,
            optimize=False,
        )
        gif_path.write_bytes(buf.getvalue())
        written.append(gif_path)
    return written
