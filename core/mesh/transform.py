"""Turning a stored model into what an export asks for: fewer faces (still closed), Z up, a real-world height,
the origin at the bottom centre. Each step returns a new TexturedMesh sharing the texture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from image2model.core.errors import ExportFailed
from image2model.core.mesh import quality
from image2model.core.mesh.model import TexturedMesh

Up = Literal["y", "z"]
Origin = Literal["center", "bottom"]

_Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""+90° about X: +Y (up) becomes +Z and the front (+Z) faces -Y, as CAD programs and slicers expect."""
AXIS = {"y": 1, "z": 2}
_AGGRESSIVENESS = (7.0, 5.0, 3.0)
SEAM_JUMP = 0.02
"""A corner whose UV differs from its vertex's by more than this (in texture widths) lies across a seam."""


@dataclass(frozen=True)
class Shaping:
    """What an export does to the geometry (the request's numbers, checked)."""

    face_limit: int | None = None
    height_mm: float | None = None
    up: Up = "y"
    origin: Origin = "center"


def shaped(mesh: TexturedMesh, shaping: Shaping) -> TexturedMesh:
    """The mesh decimated to `face_limit`, turned to `up`, scaled so its height along `up` is `height_mm`
    (coordinates then in millimetres) and moved to `origin`."""
    out = mesh
    if shaping.face_limit is not None:
        out = decimated(out, shaping.face_limit)
    if shaping.up == "z":
        out = rotated(out, _Y_UP_TO_Z_UP)
    axis = AXIS[shaping.up]
    if shaping.height_mm is not None:
        out = scaled_to_height(out, shaping.height_mm, axis)
    return at_origin(out, shaping.origin, axis)


def rotated(mesh: TexturedMesh, matrix: np.ndarray) -> TexturedMesh:
    """The mesh (and its normals, when it has its own) turned by a rotation matrix."""
    normals = None if mesh.normals is None else mesh.normals @ matrix.T
    return mesh.with_geometry(mesh.vertices @ matrix.T, normals=normals)


def scaled_to_height(mesh: TexturedMesh, height: float, axis: int) -> TexturedMesh:
    """Uniformly scaled so its extent along `axis` is `height`."""
    extent = float(np.ptp(mesh.vertices[:, axis]))
    if extent <= 0:
        raise ExportFailed("The model is flat along its up axis, so it cannot be scaled to a height.")
    return mesh.with_geometry(mesh.vertices * (height / extent), normals=mesh.normals)


def scaled(mesh: TexturedMesh, factor: float) -> TexturedMesh:
    """Uniformly scaled by `factor` (e.g. millimetres to metres)."""
    return mesh.with_geometry(mesh.vertices * factor, normals=mesh.normals)


def at_origin(mesh: TexturedMesh, origin: Origin, axis: int) -> TexturedMesh:
    """Moved so the bounding box's centre (`center`), or the centre of its bottom face along `axis`
    (`bottom`), is at the origin."""
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    offset = (lo + hi) / 2.0
    if origin == "bottom":
        offset[axis] = lo[axis]
    return mesh.with_geometry(mesh.vertices - offset, normals=mesh.normals)


def decimated(mesh: TexturedMesh, face_limit: int) -> TexturedMesh:
    """At most `face_limit` faces and still closed and consistently oriented. The welded solid is decimated
    (quadric error), then each new face takes its texture coordinates from the original face nearest to it
    (barycentric, so a face keeps one texture chart and seams stay sharp). Raises ExportFailed when no
    closed mesh that small can be made."""
    if len(mesh.faces) <= face_limit:
        return mesh
    import fast_simplification

    welded = mesh.welded
    for agg in _AGGRESSIVENESS:
        v, f = fast_simplification.simplify(
            welded.vertices, welded.faces.astype(np.int32), target_count=face_limit, agg=agg
        )
        v, f = _compact(np.asarray(v, np.float64), np.asarray(f, np.int64))
        topo = quality.topology(f, len(v))
        if (
            0 < len(f) <= face_limit
            and topo.watertight
            and topo.winding_consistent
            and quality.signed_volume(v, f) > 0
        ):
            return _with_transferred_uv(mesh, v, f)
    raise ExportFailed(
        f"The model cannot be reduced to {face_limit} faces and stay a closed solid; ask for more faces.",
        {"face_limit": face_limit, "faces": int(len(mesh.faces))},
    )


def _compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used = np.flatnonzero(np.bincount(faces.ravel(), minlength=len(vertices)))
    remap = np.full(len(vertices), -1, np.int64)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[faces]


def _with_transferred_uv(mesh: TexturedMesh, vertices: np.ndarray, faces: np.ndarray) -> TexturedMesh:
    """New geometry with UVs from the original surface. Each vertex takes the UV of the original face nearest
    to it; a corner whose own face's nearest original face maps it somewhere else (more than `SEAM_JUMP`
    away: another texture chart) gets its own vertex with that UV, so seams stay sharp."""
    from scipy.spatial import cKDTree

    tri = mesh.vertices[mesh.faces]
    tree = cKDTree(tri.mean(axis=1))
    shared = _uv_on(mesh, tree.query(vertices)[1], vertices)
    corners = vertices[faces].reshape(-1, 3)
    own = _uv_on(mesh, np.repeat(tree.query(vertices[faces].mean(axis=1))[1], 3), corners)
    flat = faces.reshape(-1)
    jump = np.linalg.norm(own - shared[flat], axis=1) > SEAM_JUMP
    if not jump.any():
        return mesh.with_geometry(vertices, faces, shared)
    extra = np.flatnonzero(jump)
    new_faces = flat.copy()
    new_faces[extra] = len(vertices) + np.arange(len(extra))
    return mesh.with_geometry(
        np.concatenate([vertices, corners[extra]]),
        new_faces.reshape(-1, 3),
        np.concatenate([shared, own[extra]]),
    )


def _uv_on(mesh: TexturedMesh, face_index: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The UV of each point on the plane of its original face (barycentric, extrapolated past the edges)."""
    corners = mesh.faces[face_index]
    a, b, c = (mesh.vertices[corners[:, k]] for k in range(3))
    e0, e1, e2 = b - a, c - a, points - a
    d00 = np.einsum("ij,ij->i", e0, e0)
    d01 = np.einsum("ij,ij->i", e0, e1)
    d11 = np.einsum("ij,ij->i", e1, e1)
    d20 = np.einsum("ij,ij->i", e2, e0)
    d21 = np.einsum("ij,ij->i", e2, e1)
    denom = d00 * d11 - d01 * d01
    denom[np.abs(denom) < 1e-30] = 1e-30
    w1 = (d11 * d20 - d01 * d21) / denom
    w2 = (d00 * d21 - d01 * d20) / denom
    uv = mesh.uv[corners]
    return (1.0 - w1 - w2)[:, None] * uv[:, 0] + w1[:, None] * uv[:, 1] + w2[:, None] * uv[:, 2]
