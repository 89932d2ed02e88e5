"""Marching cubes on a scalar field (negative inside): a closed, consistently oriented triangle mesh.

The case table is derived, not transcribed: on each cube face the edge crossings are joined into segments (a face
whose corners alternate keeps its inside corners apart, a rule both cubes sharing the face agree on), the
segments are directed so the inside lies on one side, and chained into loops that are fanned into triangles.
Every crossing then has exactly one segment in and one out per cube and every segment is shared by the two cubes
of its face, so the surface of a field padded with outside values is closed and manifold."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

CORNERS = np.array([(i & 1, (i >> 1) & 1, (i >> 2) & 1) for i in range(8)])
"""Corner c of a cube sits at offset (c & 1, c >> 1 & 1, c >> 2 & 1) along (axis 0, axis 1, axis 2)."""


def _edges() -> list[tuple[int, int]]:
    edges = []
    for a in range(8):
        for axis in range(3):
            b = a | (1 << axis)
            if b != a:
                edges.append((a, b))
    return edges


EDGES = _edges()
"""The 12 cube edges as (corner, corner + one step along an axis)."""
_EDGE_OF = {frozenset(e): n for n, e in enumerate(EDGES)}


def _faces() -> list[tuple[list[int], np.ndarray]]:
    """The 6 cube faces: four corners in cyclic order and the outward normal."""
    out = []
    for axis in range(3):
        u, v = [a for a in range(3) if a != axis]
        for side in (0, 1):
            base = side << axis
            ring = [base, base | (1 << u), base | (1 << u) | (1 << v), base | (1 << v)]
            normal = np.zeros(3)
            normal[axis] = 1.0 if side else -1.0
            out.append((ring, normal))
    return out


def _midpoint(edge: int) -> np.ndarray:
    a, b = EDGES[edge]
    return (CORNERS[a] + CORNERS[b]) / 2.0


def _case_triangles(case: int) -> list[tuple[int, int, int]]:
    inside = [bool(case >> c & 1) for c in range(8)]
    following: dict[int, int] = {}
    for ring, normal in _faces():
        crossings = [
            (k, _EDGE_OF[frozenset((ring[k], ring[(k + 1) % 4]))])
            for k in range(4)
            if inside[ring[k]] != inside[ring[(k + 1) % 4]]
        ]
        if not crossings:
            continue
        segments: list[tuple[int, int, int]] = []  # (edge, edge, an inside corner on that side)
        if len(crossings) == 2:
            (k0, e0), (k1, e1) = crossings
            corner = next(ring[k] for k in range(4) if inside[ring[k]])
            segments.append((e0, e1, corner))
        else:  # alternating corners: cut each inside corner off on its own
            for k in range(4):
                if inside[ring[k]]:
                    before = _EDGE_OF[frozenset((ring[k - 1], ring[k]))]
                    after = _EDGE_OF[frozenset((ring[k], ring[(k + 1) % 4]))]
                    segments.append((before, after, ring[k]))
        for e0, e1, corner in segments:
            start, end = _midpoint(e0), _midpoint(e1)
            # Direct the segment so that, seen from outside the cube, the inside corner is on its right.
            if np.dot(np.cross(end - start, CORNERS[corner] - start), normal) > 0:
                e0, e1 = e1, e0
            following[e0] = e1
    triangles = []
    left = dict(following)
    while left:
        first, nxt = left.popitem()
        loop = [first]
        while nxt != first:
            loop.append(nxt)
            nxt = left.pop(nxt)
        triangles += [(loop[0], loop[k], loop[k + 1]) for k in range(1, len(loop) - 1)]
    return triangles


@lru_cache(maxsize=1)
def case_table() -> tuple[np.ndarray, np.ndarray]:
    """(256, 12, 3) cube-edge indices of each case's triangles (−1 padded) and (256,) triangle counts."""
    table = np.full((256, 12, 3), -1, np.int64)
    counts = np.zeros(256, np.int64)
    for case in range(256):
        tris = _case_triangles(case)
        counts[case] = len(tris)
        if tris:
            table[case, : len(tris)] = tris
    return table, counts


def marching_cubes(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (in grid index units, float64) and faces of the surface field = 0, inside where field < 0.
    Faces wind counter-clockwise seen from outside. The field must be outside (≥ 0) on its whole border for
    the surface to be closed."""
    table, counts = case_table()
    f = np.where(field == 0, np.float32(1e-6), field).astype(np.float32, copy=False)
    inside = f < 0
    nx, ny, nz = f.shape
    case = np.zeros((nx - 1, ny - 1, nz - 1), np.uint8)
    for c, (dx, dy, dz) in enumerate(CORNERS):
        case |= inside[dx : nx - 1 + dx, dy : ny - 1 + dy, dz : nz - 1 + dz].astype(np.uint8) << c
    cubes = np.nonzero((case != 0) & (case != 255))
    cube_case = case[cubes]
    n_tris = counts[cube_case]
    which = np.repeat(np.arange(len(cube_case)), n_tris)
    slot = np.arange(len(which)) - np.repeat(np.cumsum(n_tris) - n_tris, n_tris)
    local = table[cube_case[which], slot]  # (t, 3) cube-edge indices
    base = np.stack(cubes, axis=1)[which]  # (t, 3) cube origin
    a = np.array([e[0] for e in EDGES])
    b = np.array([e[1] for e in EDGES])
    axis = np.array([int(np.log2(bb ^ aa)) for aa, bb in zip(a, b, strict=True)])
    start = base[:, None, :] + CORNERS[a][local]  # (t, 3, 3) grid point at the edge's lower end
    edge_axis = axis[local]
    key = ((edge_axis * nx + start[..., 0]) * ny + start[..., 1]) * nz + start[..., 2]
    unique, inverse = np.unique(key.ravel(), return_inverse=True)
    ea = unique // (nx * ny * nz)
    rest = unique % (nx * ny * nz)
    p0 = np.stack([rest // (ny * nz), (rest // nz) % ny, rest % nz], axis=1)
    step = np.eye(3, dtype=np.int64)[ea]
    p1 = p0 + step
    f0 = f[p0[:, 0], p0[:, 1], p0[:, 2]].astype(np.float64)
    f1 = f[p1[:, 0], p1[:, 1], p1[:, 2]].astype(np.float64)
    t = np.clip(f0 / (f0 - f1), 1e-3, 1 - 1e-3)
    vertices = p0 + step * t[:, None]
    faces = inverse.reshape(-1, 3).astype(np.int64)
    return vertices, faces
