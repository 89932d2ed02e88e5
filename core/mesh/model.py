"""The textured triangle mesh every exporter and the preview renderer take."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image


@dataclass
class TexturedMesh:
    """A closed triangle mesh in model space (Y up, front toward +Z, centred, largest extent 1).

    `uv` follows the OBJ convention (v = 0 at the bottom of the texture); the glTF writer flips it. A UV seam is
    made by giving two vertices the same position and different UVs: the mesh is closed once vertices at equal
    positions are welded (`welded`), which is what the topology checks and the STL/PLY/3MF writers use."""

    vertices: np.ndarray
    """(n, 3) float64 positions."""
    faces: np.ndarray
    """(m, 3) int64 vertex indices, counter-clockwise seen from outside."""
    uv: np.ndarray
    """(n, 2) float64 texture coordinates."""
    texture: Image.Image
    """RGB texture image."""
    jpeg_quality: int = 90
    normals: np.ndarray | None = field(default=None, repr=False)
    """(n, 3) unit vertex normals; when None, area-weighted normals over the welded mesh (smooth across UV seams)
    are computed once. A generator that wants creases passes its own (with vertices split along them)."""
    _welded: Welded | None = field(default=None, repr=False)
    _jpeg: bytes | None = field(default=None, repr=False)

    @property
    def vertex_normals(self) -> np.ndarray:
        """Unit vertex normals: the given ones, or smooth area-weighted ones (computed once)."""
        if self.normals is None:
            welded = self.welded
            self.normals = vertex_normals(welded.vertices, welded.faces)[welded.inverse]
        return self.normals

    @property
    def welded(self) -> Welded:
        """The mesh with vertices at equal positions merged (computed once)."""
        if self._welded is None:
            self._welded = weld(self.vertices, self.faces)
        return self._welded

    @property
    def texture_jpeg(self) -> bytes:
        """The texture encoded once as JPEG, shared by every exporter."""
        if self._jpeg is None:
            buf = io.BytesIO()
            self.texture.convert("RGB").save(buf, format="JPEG", quality=self.jpeg_quality)
            self._jpeg = buf.getvalue()
        return self._jpeg

    def with_geometry(
        self,
        vertices: np.ndarray,
        faces: np.ndarray | None = None,
        uv: np.ndarray | None = None,
        normals: np.ndarray | None = None,
    ) -> TexturedMesh:
        """The same texture (and its encoded JPEG, not encoded again) on new geometry; faces and UVs default to
        this mesh's, normals to recomputed ones."""
        return TexturedMesh(
            vertices,
            self.faces if faces is None else faces,
            self.uv if uv is None else uv,
            self.texture,
            self.jpeg_quality,
            normals=normals,
            _jpeg=self._jpeg,
        )

    def vertex_colors(self) -> np.ndarray:
        """(n, 4) uint8 colours sampled from the texture at each vertex (nearest texel)."""
        tex = np.asarray(self.texture.convert("RGB"))
        h, w = tex.shape[:2]
        col = np.clip((self.uv[:, 0] * w).astype(np.int64), 0, w - 1)
        row = np.clip(((1.0 - self.uv[:, 1]) * h).astype(np.int64), 0, h - 1)
        rgb = tex[row, col]
        return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)


@dataclass(frozen=True)
class Welded:
    """A mesh whose vertices at exactly equal positions are merged into one."""

    vertices: np.ndarray
    """(k, 3) distinct positions."""
    faces: np.ndarray
    """(m, 3) faces indexing `vertices`."""
    first: np.ndarray
    """(k,) for each distinct position, the index of one original vertex there (to sample its UV or colour)."""
    inverse: np.ndarray
    """(n,) for each original vertex, its index in `vertices`."""


def weld(vertices: np.ndarray, faces: np.ndarray) -> Welded:
    """Merge vertices at exactly equal positions (UV seams duplicate them bit for bit)."""
    v = np.ascontiguousarray(vertices, dtype=np.float64)
    if len(v) == 0:
        empty = np.zeros(0, np.int64)
        return Welded(v.reshape(0, 3), np.asarray(faces, np.int64).reshape(-1, 3), empty, empty)
    rows = v.view(np.dtype((np.void, v.dtype.itemsize * 3))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    # Number the distinct positions in order of first occurrence, so a mesh without seams comes back unchanged.
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    inverse = rank[inverse.ravel()].astype(np.int64)
    first = first[order].astype(np.int64)
    return Welded(v[first], inverse[np.asarray(faces, np.int64)], first, inverse)


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
