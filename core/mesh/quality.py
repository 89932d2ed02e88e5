"""Quality checks run on every result before it is offered: closed, oriented, positive volume, silhouette IoU."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Topology:
    watertight: bool
    """Every undirected edge is shared by exactly two faces."""
    winding_consistent: bool
    """Every directed edge occurs once, so neighbouring faces agree on orientation."""
    euler_number: int


def topology(faces: np.ndarray, n_vertices: int) -> Topology:
    """Edge-manifold and orientation checks by counting edges (no trimesh needed)."""
    if len(faces) == 0:
        return Topology(False, False, 0)
    f = faces.astype(np.int64)
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    n = np.int64(max(n_vertices, int(f.max()) + 1))
    directed_key = directed[:, 0] * n + directed[:, 1]
    undirected_key = np.minimum(directed[:, 0], directed[:, 1]) * n + np.maximum(
        directed[:, 0], directed[:, 1]
    )
    # Sorting, not np.unique: numpy's hash-based unique is ~20× slower on these keys.
    und = np.sort(undirected_key)
    starts = np.flatnonzero(np.concatenate([[True], und[1:] != und[:-1]]))
    und_counts = np.diff(np.append(starts, len(und)))
    watertight = bool(np.all(und_counts == 2)) and not np.any(directed[:, 0] == directed[:, 1])
    dk = np.sort(directed_key)
    winding = bool(np.all(dk[1:] != dk[:-1]))
    used = len(used_vertices(f, int(n)))
    euler = int(used - len(und_counts) + len(f))
    return Topology(watertight, winding and watertight, euler)


def used_vertices(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Sorted indices of the vertices that some face uses."""
    used = np.zeros(max(n_vertices, int(faces.max()) + 1 if len(faces) else 0), bool)
    used[faces.ravel()] = True
    return np.flatnonzero(used)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Volume by the divergence theorem; positive when faces wind counter-clockwise seen from outside."""
    if len(faces) == 0:
        return 0.0
    tri = vertices[faces]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def rasterize_silhouette(
    points_2d: np.ndarray, faces: np.ndarray, shape: tuple[int, int], front_only: bool = True
) -> np.ndarray:
    """Union of the triangles' footprints on a (height, width) raster; `points_2d` are pixel coordinates with y
    down. With `front_only`, only faces counter-clockwise in y-up terms (turned toward the viewer) are drawn."""
    import cv2

    img = np.zeros(shape, np.uint8)
    pts = np.round(points_2d[faces] * 16).astype(np.int32)  # 4 fractional bits
    # Every ray into a closed solid enters through a face turned toward the viewer, so drawing only those (one
    # orientation in raster space) gives the whole silhouette from about half of the faces. A single fillPoly
    # call over many polygons would XOR the overlaps, hence one convex fill per triangle.
    e1 = pts[:, 1] - pts[:, 0]
    e2 = pts[:, 2] - pts[:, 0]
    area = e1[:, 0].astype(np.int64) * e2[:, 1] - e1[:, 1].astype(np.int64) * e2[:, 0]
    keep = pts[area < 0] if front_only else pts[area != 0]
    for tri in keep:
        cv2.fillConvexPoly(img, tri, 1, cv2.LINE_8, 4)
    return img.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else float(np.count_nonzero(a & b) / union)


def pieces(faces: np.ndarray, n_vertices: int) -> int:
    """Connected pieces of a mesh (faces joined through shared vertices); weld UV seams first."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(faces) == 0:
        return 0
    f = faces.astype(np.int64)
    rows = np.concatenate([f[:, 0], f[:, 1]])
    cols = np.concatenate([f[:, 1], f[:, 2]])
    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n_vertices, n_vertices))
    _, labels = connected_components(graph, directed=False)
    return int(len(np.unique(labels[used_vertices(f, n_vertices)])))


def stance(vertices: np.ndarray, faces: np.ndarray, tolerance: float = 5e-3) -> dict[str, float]:
    """How the model stands (Y up): `depth_width` = depth / width of its bounding box, and `base_footprint` = the
    area of its flat bottom (faces facing straight down at its lowest level) as a share of width × depth."""
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    width, depth = float(hi[0] - lo[0]), float(hi[2] - lo[2])
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area2 = np.linalg.norm(normals, axis=1)
    extent = float((hi - lo).max()) or 1.0
    down = (normals[:, 1] < -0.995 * np.maximum(area2, 1e-30)) & (
        tri[:, :, 1].max(axis=1) <= lo[1] + tolerance * extent
    )
    footprint = float(area2[down].sum() / 2.0)
    return {
        "depth_width": depth / width if width > 0 else 0.0,
        "base_footprint": footprint / (width * depth) if width > 0 and depth > 0 else 0.0,
    }
