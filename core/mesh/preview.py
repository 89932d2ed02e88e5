"""CPU preview rendering with numpy and OpenCV only: a PNG thumbnail and a turntable (animated WebP and GIF).

Per frame: rotate, cull back faces, draw face ids far-to-near with `cv2.fillConvexPoly` (painter's algorithm; a
closed solid rarely needs more), then shade each covered pixel from its face's barycentrics: texture colour × Lambert
with interpolated vertex normals."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from image2model.core.mesh.model import TexturedMesh

BACKGROUND = (238, 240, 243)
_LIGHT = np.array([0.35, 0.55, 0.76]) / np.linalg.norm([0.35, 0.55, 0.76])
_SUB = 4  # fractional bits for fillConvexPoly


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
        self.uv_px = np.column_stack([mesh.uv[:, 0] * (tw - 1), (1.0 - mesh.uv[:, 1]) * (th - 1)])
        self.radius = float(np.linalg.norm(self.vertices, axis=1).max()) or 1.0

    def render(self, size: int, yaw_deg: float = 30.0, pitch_deg: float = 15.0) -> np.ndarray:
        """An RGB uint8 image of `size`² pixels, orthographic, model turned by `yaw` about Y, seen from `pitch` up."""
        import cv2

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
        facing = (ax * by - ay * bx) < 0  # counter-clockwise in view = clockwise once y points down
        visible = np.nonzero(facing)[0]
        depth = view[f[visible], 2].mean(axis=1)
        order = visible[np.argsort(depth)]  # far (small z) first, near overwrites
        pts = np.round(np.stack([sx, sy_], axis=1)[f[order]] * (1 << _SUB)).astype(np.int32)
        ids = np.zeros((size, size), np.int32)
        fill = cv2.fillConvexPoly
        for k in range(len(order)):
            fill(ids, pts[k], k + 1, cv2.LINE_8, _SUB)
        image = np.empty((size, size, 3), np.uint8)
        image[:] = BACKGROUND
        rows, cols = np.nonzero(ids)
        if len(rows) == 0:
            return image
        # Per drawn face: affine maps from pixel to barycentrics, corner UVs and corner light (Gouraud shading).
        tri = f[order]
        x0, y0 = sx[tri[:, 0]], sy_[tri[:, 0]]
        x1, y1 = sx[tri[:, 1]], sy_[tri[:, 1]]
        x2, y2 = sx[tri[:, 2]], sy_[tri[:, 2]]
        det = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
        det = np.where(np.abs(det) < 1e-9, 1e-9, det)
        coef = np.stack(
            [
                (y1 - y2) / det,
                (x2 - x1) / det,
                -((y1 - y2) * x2 + (x2 - x1) * y2) / det,
                (y2 - y0) / det,
                (x0 - x2) / det,
                -((y2 - y0) * x2 + (x0 - x2) * y2) / det,
            ],
            axis=1,
        ).astype(np.float32)
        light_v = (0.45 + 0.6 * np.clip(normals @ _LIGHT, 0.0, 1.0)).astype(np.float32)
        corner_u = self.uv_px[tri, 0].astype(np.float32)
        corner_v = self.uv_px[tri, 1].astype(np.float32)
        corner_l = light_v[tri]
        face_at = ids[rows, cols] - 1
        c = coef[face_at]
        px, py = cols.astype(np.float32), rows.astype(np.float32)
        b0 = c[:, 0] * px + c[:, 1] * py + c[:, 2]
        b1 = c[:, 3] * px + c[:, 4] * py + c[:, 5]
        b2 = 1.0 - b0 - b1
        outside = np.nonzero((b0 < 0) | (b1 < 0) | (b2 < 0))[0]
        if len(outside):
            # Pixels drawn just outside their face: shade the face's closest point, not a clipped extrapolation
            # (which, on a long thin face, lands far along it and smears the texture).
            t = tri[face_at[outside]]
            corners = np.stack([np.stack([sx[t[:, k]], sy_[t[:, k]]], axis=1) for k in range(3)], axis=1)
            bary = _closest_barycentric(np.stack([px[outside], py[outside]], axis=1), corners)
            b0[outside], b1[outside], b2[outside] = bary[:, 0], bary[:, 1], bary[:, 2]
        cu, cv_, cl = corner_u[face_at], corner_v[face_at], corner_l[face_at]
        u = b0 * cu[:, 0] + b1 * cu[:, 1] + b2 * cu[:, 2]
        v = b0 * cv_[:, 0] + b1 * cv_[:, 1] + b2 * cv_[:, 2]
        light = b0 * cl[:, 0] + b1 * cl[:, 1] + b2 * cl[:, 2]
        th, tw = self.texture.shape[:2]
        colour = self.texture[
            np.clip(v + 0.5, 0, th - 1).astype(np.int32), np.clip(u + 0.5, 0, tw - 1).astype(np.int32)
        ]
        image[rows, cols] = np.clip(colour * light[:, None], 0, 255).astype(np.uint8)
        return image


def _closest_barycentric(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Barycentric coordinates of the point of each triangle (corners (n, 3, 2)) closest to each point (n, 2),
    for points outside it: the closest point lies on one of the three edges."""
    best_d = np.full(len(points), np.inf)
    best = np.zeros((len(points), 3))
    for k in range(3):
        a, b = corners[:, k], corners[:, (k + 1) % 3]
        ab = b - a
        t = np.clip(((points - a) * ab).sum(axis=1) / np.maximum((ab * ab).sum(axis=1), 1e-12), 0.0, 1.0)
        d = ((a + t[:, None] * ab - points) ** 2).sum(axis=1)
        closer = d < best_d
        best_d = np.where(closer, d, best_d)
        bary = np.zeros((len(points), 3))
        bary[:, k] = 1.0 - t
        bary[:, (k + 1) % 3] = t
        best[closer] = bary[closer]
    return best


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
