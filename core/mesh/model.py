"""The textured triangle mesh every exporter and the preview renderer take."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image


@dataclass
class TexturedMesh:
    """A closed triangle mesh in model space (Y up, front toward +Z, centred, largest extent 1).

    `uv` follows the OBJ convention (v = 0 at the bottom of the texture); the glTF writer flips it."""

    vertices: np.ndarray
    """(n, 3) float64 positions."""
    faces: np.ndarray
    """(m, 3) int64 vertex indices, counter-clockwise seen from outside."""
    uv: np.ndarray
    """(n, 2) float64 texture coordinates."""
    texture: Image.Image
    """RGB texture image."""
    jpeg_quality: int = 90
    _normals: np.ndarray | None = field(default=None, repr=False)
    _jpeg: bytes | None = field(default=None, repr=False)

    @property
    def vertex_normals(self) -> np.ndarray:
        """Area-weighted unit vertex normals (computed once)."""
        if self._normals is None:
            self._normals = vertex_normals(self.vertices, self.faces)
        return self._normals

    @property
    def texture_jpeg(self) -> bytes:
        """The texture encoded once as JPEG, shared by every exporter."""
        if self._jpeg is None:
            buf = io.BytesIO()
            self.texture.convert("RGB").save(buf, format="JPEG", quality=self.jpeg_quality)
            self._jpeg = buf.getvalue()
        return self._jpeg

    def vertex_colors(self) -> np.ndarray:
        """(n, 4) uint8 colours sampled from the texture at each vertex (nearest texel)."""
        tex = np.asarray(self.texture.convert("RGB"))
        h, w = tex.shape[:2]
        col = np.clip((self.uv[:, 0] * w).astype(np.int64), 0, w - 1)
        row = np.clip(((1.0 - self.uv[:, 1]) * h).astype(np.int64), 0, h - 1)
        rgb = tex[row, col]
        return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Un-normalised face normals (length = twice the triangle area)."""
    tri = vertices[faces]
    return np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals, unit length (an isolated vertex gets +Z)."""
    fn = face_normals(vertices, faces)
    acc = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        acc[:, 0] += np.bincount(faces[:, k], fn[:, 0], minlength=len(vertices))
        acc[:, 1] += np.bincount(faces[:, k], fn[:, 1], minlength=len(vertices))
        acc[:, 2] += np.bincount(faces[:, k], fn[:, 2], minlength=len(vertices))
    norm = np.linalg.norm(acc, axis=1)
    bad = norm < 1e-20
    acc[bad] = (0.0, 0.0, 1.0)
    norm[bad] = 1.0
    return acc / norm[:, None]
