"""Silhouette → closed solid: marching-squares triangulation of the mask, Poisson inflation, QEM decimation.

Poisson inflation (Baran & Lehtinen 2009): solve −Δh = 4 inside the mask with h = 0 on the outline and lift the
front sheet to z = depth·√h and the back sheet to −depth·√h. A disk of radius R becomes a sphere of radius R
(h = R² − r²). The two sheets share the outline vertices, so the mesh is closed by construction and holes in the mask
stay holes. All coordinates here are in working-image pixels with Y up (x, −y, z): the decimator's error threshold is
absolute, so it must run at pixel scale, not on the unit-sized model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_T_MIN = 0.05  # crossings are kept off the grid nodes so no triangle degenerates


def _case_table() -> dict[int, list[tuple[int, int, int]]]:
    """Triangles (as local point ids) for each marching-squares case of one cell.

    Local ids walk round the cell: 0 top-left node, 1 top edge, 2 top-right node, 3 right edge, 4 bottom-right node,
    5 bottom edge, 6 bottom-left node, 7 left edge. Case bit k is set when corner k (ids 0, 2, 4, 6) is inside.
    Keys 16 and 17 are the saddles 5 and 10 with the cell centre inside (corners joined through the middle)."""
    table: dict[int, list[tuple[int, int, int]]] = {}
    for key in range(18):
        case = {16: 5, 17: 10}.get(key, key)
        inside = [(case >> k) & 1 for k in range(4)]
        if case in (5, 10) and key < 16:  # saddle, centre outside: two corner triangles
            tris = []
            for k in range(4):
                if inside[k]:
                    node = 2 * k
                    tris.append((node, (node + 1) % 8, (node + 7) % 8))
            table[key] = tris
            continue
        poly: list[int] = []
        for k in range(4):
            if inside[k]:
                poly.append(2 * k)
            if inside[k] != inside[(k + 1) % 4]:
                poly.append(2 * k + 1)
        if sum(inside) == 0:
            table[key] = []
            continue
        start = next(i for i, p in enumerate(poly) if p % 2 == 0)
        poly = poly[start:] + poly[:start]
        table[key] = [(poly[0], poly[i], poly[i + 1]) for i in range(1, len(poly) - 1)]
    return table


_CASES = _case_table()


@dataclass
class Solid:
    """A closed triangle mesh in pixel units (x right, y up, z toward the viewer)."""

    vertices: np.ndarray
    faces: np.ndarray
    grid_cell: float
    """Grid spacing in pixels used for the dense mesh."""
    dense_faces: int


def _grid_field(mask: np.ndarray, cell: float) -> tuple[np.ndarray, float, float]:
    """Sample the soft mask on a grid of about `cell` pixels; returns (field padded with a zero ring, sx, sy)."""
    import cv2

    h, w = mask.shape
    gw, gh = max(2, math.ceil(w / cell)), max(2, math.ceil(h / cell))
    src: np.ndarray = mask.astype(np.float32)
    if cell < 1.5:
        # Below about a pixel the grid would trace the pixel staircase: smooth it first.
        src = cv2.GaussianBlur(src, (0, 0), 0.8)
    interp = cv2.INTER_AREA if cell >= 1.0 else cv2.INTER_LINEAR
    field = cv2.resize(src, (gw, gh), interpolation=interp)
    return np.pad(field, 1), w / gw, h / gh


def inflate(
    mask: np.ndarray, dense_faces: int, depth: float, max_depth: float | None = None, thin_cells: int = 8
) -> Solid:
    """Triangulate the region mask > 0.5 with about `dense_faces` faces and inflate it into a closed solid.

    `depth` scales z = depth·√h (1.0 makes a disk a sphere). `max_depth`, when given, rescales z so the thickest
    point is that many pixels (used for the flat photo plaque). The grid puts at least `thin_cells` cells across
    the mask's narrow side (0: no such floor), so thin shapes keep their outline."""
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import spsolve

    ys, xs = np.nonzero(mask > 0.02)
    if len(xs) == 0:
        raise ValueError("empty mask")
    x0, y0 = max(int(xs.min()) - 2, 0), max(int(ys.min()) - 2, 0)
    x1, y1 = min(int(xs.max()) + 3, mask.shape[1]), min(int(ys.max()) + 3, mask.shape[0])
    crop = mask[y0:y1, x0:x1]
    area = float(np.clip(crop, 0, 1).sum())
    cell = math.sqrt(4.0 * max(area, 1.0) / max(dense_faces, 8))
    cell = min(max(cell, 0.35), max(crop.shape) / 3.0)
    if thin_cells:
        cell = min(cell, max(min(crop.shape) / thin_cells, 0.35))
    field, sx, sy = _grid_field(crop, cell)
    gh, gw = field.shape
    inside = field > 0.5
    if not inside.any():  # a sliver thinner than a cell: take its densest node
        inside[np.unravel_index(int(np.argmax(field)), field.shape)] = True
        field = np.where(inside, 1.0, field)

    # Vertex ids: inside nodes, then crossings on horizontal edges, then on vertical edges.
    node_id = np.full(field.shape, -1, np.int64)
    n_nodes = int(inside.sum())
    node_id[inside] = np.arange(n_nodes)
    h_cross = inside[:, :-1] != inside[:, 1:]
    v_cross = inside[:-1, :] != inside[1:, :]
    h_id = np.full(h_cross.shape, -1, np.int64)
    v_id = np.full(v_cross.shape, -1, np.int64)
    n_h, n_v = int(h_cross.sum()), int(v_cross.sum())
    h_id[h_cross] = n_nodes + np.arange(n_h)
    v_id[v_cross] = n_nodes + n_h + np.arange(n_v)

    def crossing_t(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        t = (0.5 - a) / np.where(b == a, 1.0, b - a)
        return np.clip(t, _T_MIN, 1.0 - _T_MIN)

    # Fractional position of each crossing measured from the lower-index node of its edge.
    ht = np.zeros(h_cross.shape)
    ht[h_cross] = crossing_t(field[:, :-1][h_cross], field[:, 1:][h_cross])
    vt = np.zeros(v_cross.shape)
    vt[v_cross] = crossing_t(field[:-1, :][v_cross], field[1:, :][v_cross])

    # Pixel position of node (i, j) of the padded grid (pixel-centre convention).
    ni, nj = np.nonzero(inside)
    hi, hj = np.nonzero(h_cross)
    vi, vj = np.nonzero(v_cross)
    px = np.concatenate([(nj - 0.5) * sx - 0.5, (hj + ht[hi, hj] - 0.5) * sx - 0.5, (vj - 0.5) * sx - 0.5])
    py = np.concatenate([(ni - 0.5) * sy - 0.5, (hi - 0.5) * sy - 0.5, (vi + vt[vi, vj] - 0.5) * sy - 0.5])

    # Marching squares over the cells.
    c00, c01, c11, c10 = inside[:-1, :-1], inside[:-1, 1:], inside[1:, 1:], inside[1:, :-1]
    case = c00.astype(np.int8) + 2 * c01 + 4 * c11 + 8 * c10
    centre_in = (field[:-1, :-1] + field[:-1, 1:] + field[1:, 1:] + field[1:, :-1]) > 2.0
    case = np.where((case == 5) & centre_in, 16, case)
    case = np.where((case == 10) & centre_in, 17, case)
    ci, cj = np.nonzero(case)
    local = np.stack(
        [
            node_id[ci, cj],
            h_id[ci, cj],
            node_id[ci, cj + 1],
            v_id[ci, cj + 1],
            node_id[ci + 1, cj + 1],
            h_id[ci + 1, cj],
            node_id[ci + 1, cj],
            v_id[ci, cj],
        ],
        axis=1,
    )
    cell_case = case[ci, cj]
    tris = []
    for key, shapes in _CASES.items():
        if not shapes:
            continue
        rows = local[cell_case == key]
        if len(rows):
            tris.append(rows[:, np.array(shapes).ravel()].reshape(-1, 3))
    front = np.concatenate(tris) if tris else np.zeros((0, 3), np.int64)

    # Poisson: −Δh = 4 with Shortley–Weller weights where an arm reaches the outline at fraction θ of a cell.
    rows_, cols_, vals_ = [], [], []
    diag = np.zeros(n_nodes)
    ii, jj = ni, nj
    for axis, spacing in ((1, sx), (0, sy)):
        if axis == 1:
            plus_in = inside[ii, jj + 1]
            minus_in = inside[ii, jj - 1]
            th_plus = np.where(plus_in, 1.0, ht[ii, jj])
            th_minus = np.where(minus_in, 1.0, 1.0 - ht[ii, jj - 1])
            plus_id, minus_id = node_id[ii, jj + 1], node_id[ii, jj - 1]
        else:
            plus_in = inside[ii + 1, jj]
            minus_in = inside[ii - 1, jj]
            th_plus = np.where(plus_in, 1.0, vt[ii, jj])
            th_minus = np.where(minus_in, 1.0, 1.0 - vt[ii - 1, jj])
            plus_id, minus_id = node_id[ii + 1, jj], node_id[ii - 1, jj]
        s2 = spacing * spacing
        a_plus = 2.0 / (th_plus * (th_plus + th_minus) * s2)
        a_minus = 2.0 / (th_minus * (th_plus + th_minus) * s2)
        diag += 2.0 / (th_plus * th_minus * s2)
        own = np.arange(n_nodes)
        for ok, other, weight in ((plus_in, plus_id, a_plus), (minus_in, minus_id, a_minus)):
            rows_.append(own[ok])
            cols_.append(other[ok])
            vals_.append(-weight[ok])
    rows_.append(np.arange(n_nodes))
    cols_.append(np.arange(n_nodes))
    vals_.append(diag)
    matrix = csc_matrix(
        (np.concatenate(vals_), (np.concatenate(rows_), np.concatenate(cols_))), shape=(n_nodes, n_nodes)
    )
    h = np.maximum(np.atleast_1d(spsolve(matrix, np.full(n_nodes, 4.0), permc_spec="MMD_AT_PLUS_A")), 0.0)
    z_nodes = np.sqrt(h) * depth
    if max_depth is not None and z_nodes.max() > 0:
        z_nodes *= max_depth / z_nodes.max()

    n_front = n_nodes + n_h + n_v
    x = px + x0
    y = -(py + y0)
    z = np.concatenate([z_nodes, np.zeros(n_h + n_v)])
    vertices = np.concatenate(
        [np.column_stack([x, y, z]), np.column_stack([x[:n_nodes], y[:n_nodes], -z_nodes])]
    )
    # Front faces counter-clockwise seen from +Z (outward); the table's order depends on the y flip, so check.
    p = vertices[front]
    signed = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (
        p[:, 2, 0] - p[:, 0, 0]
    )
    flip = signed < 0
    front[flip] = front[flip][:, ::-1]
    # Back sheet: node vertices get their back copy (offset n_front), outline crossings are shared.
    back = np.where(front < n_nodes, front + n_front, front)[:, ::-1]
    faces = np.concatenate([front, back])
    return Solid(vertices, faces, grid_cell=float(max(sx, sy)), dense_faces=len(faces))


def decimate(solid: Solid, face_limit: int, agg: float = 7.0) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation to `face_limit` faces at pixel scale; unused vertices dropped."""
    import fast_simplification

    if len(solid.faces) <= face_limit:
        return solid.vertices, solid.faces
    v, f = fast_simplification.simplify(
        solid.vertices.astype(np.float64), solid.faces.astype(np.int32), target_count=face_limit, agg=agg
    )
    used = np.unique(f)
    remap = np.full(len(v), -1, np.int64)
    remap[used] = np.arange(len(used))
    return np.asarray(v, np.float64)[used], remap[np.asarray(f, np.int64)]
