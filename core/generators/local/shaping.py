"""Silhouette → closed solid: marching-squares triangulation of the mask, Poisson inflation, QEM decimation.

Poisson inflation (Baran & Lehtinen 2009): solve −Δh = 4 inside the mask with h = 0 on the outline and lift the
front sheet to z = depth·√h and the back sheet to −depth·√h. A disk of radius R becomes a sphere of radius R
(h = R² − r²). The two sheets share the outline vertices, so the mesh is closed by construction and holes in the mask
stay holes. All coordinates here are in working-image pixels with Y up (x, −y, z): the decimator's error threshold is
absolute, so it must run at pixel scale, not on the unit-sized model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from image2model.core.images import mask_bounds
from image2model.core.mesh import quality

_T_MIN = 0.05  # crossings are kept off the grid nodes so no triangle degenerates
EDGE_SMOOTHING = 0.006
"""Revolved outlines are smoothed along y over this share of the object's height (σ)."""


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
    grid: Grid | None = None
    """The triangulation the solid was built on (None for solids not built from a mask)."""
    z_nodes: np.ndarray | None = None
    """Front-sheet depth of each grid node, in pixels."""

    def normal_z_image(self) -> tuple[np.ndarray, tuple[float, float, float, float]] | None:
        """n_z of the front sheet (1 facing the viewer, 0 at the rim) on the grid, and the pixel box it covers as
        (left, top, width, height); None without a grid."""
        if self.grid is None or self.z_nodes is None:
            return None
        g = self.grid
        depth = np.zeros(g.inside.shape)
        depth[g.node_ij[:, 0], g.node_ij[:, 1]] = self.z_nodes
        dz_di, dz_dj = np.gradient(depth, g.sy, g.sx)
        nz = 1.0 / np.sqrt(1.0 + dz_di**2 + dz_dj**2)
        nz[~g.inside] = 0.0
        left = float(g.xy[0, 0] - (g.node_ij[0, 1] + 0.5) * g.sx)
        top = float(g.xy[0, 1] - (g.node_ij[0, 0] + 0.5) * g.sy)
        return nz, (left, top, g.sx * nz.shape[1], g.sy * nz.shape[0])


@dataclass
class Grid:
    """The marching-squares triangulation of a mask: nodes inside it, crossings on its outline, front faces."""

    xy: np.ndarray
    """(n_front, 2) vertex positions in working-image pixels (x right, y down): nodes, then crossings."""
    n_nodes: int
    front: np.ndarray
    """Front-sheet faces (counter-clockwise seen from +Z once y is flipped up)."""
    node_ij: np.ndarray
    """(n_nodes, 2) grid row and column of each node (padded grid)."""
    inside: np.ndarray
    node_id: np.ndarray
    h_id: np.ndarray
    v_id: np.ndarray
    ht: np.ndarray
    vt: np.ndarray
    sx: float
    sy: float

    @property
    def cell(self) -> float:
        return max(self.sx, self.sy)


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


def triangulate(mask: np.ndarray, dense_faces: int, thin_cells: int = 8) -> Grid:
    """Marching-squares triangulation of the region mask > 0.5 with about `dense_faces / 2` front faces. The grid
    puts at least `thin_cells` cells across the mask's narrow side (0: no such floor), so thin shapes keep their
    outline."""
    bounds = mask_bounds(mask > 0.02)
    if bounds is None:
        raise ValueError("empty mask")
    top, bottom, left, right = bounds
    x0, y0 = max(left - 2, 0), max(top - 2, 0)
    x1, y1 = min(right + 3, mask.shape[1]), min(bottom + 3, mask.shape[0])
    crop = mask[y0:y1, x0:x1]
    area = float(np.clip(crop, 0, 1).sum())
    cell = math.sqrt(4.0 * max(area, 1.0) / max(dense_faces, 8))
    cell = min(max(cell, 0.35), max(crop.shape) / 3.0)
    if thin_cells:
        cell = min(cell, max(min(crop.shape) / thin_cells, 0.35))
    field, sx, sy = _grid_field(crop, cell)
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
    xy = np.column_stack([px + x0, py + y0])
    # Front faces counter-clockwise seen from +Z (y up); the table's order depends on the y flip, so check.
    p = xy[front]
    signed = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (
        p[:, 2, 0] - p[:, 0, 0]
    )
    flip = signed > 0  # y down: counter-clockwise with y up is clockwise here
    front[flip] = front[flip][:, ::-1]
    return Grid(xy, n_nodes, front, np.column_stack([ni, nj]), inside, node_id, h_id, v_id, ht, vt, sx, sy)


@dataclass
class Caps:
    """Flat sides of the solid: vertices moved onto a line, and nodes whose outer neighbour is a mirror (Neumann)
    rather than the outline, so the solid keeps its thickness up to the flat side."""

    snaps: list[tuple[np.ndarray, int, float]] = field(default_factory=list)
    """(vertex ids, axis 0 = x or 1 = y down, coordinate) per flat side."""
    neumann: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    """(axis 0 = rows or 1 = columns, direction ±1) → node ids whose neighbour that way is mirrored."""

    def snapped(self) -> np.ndarray:
        ids = [ids for ids, _, _ in self.snaps]
        return np.unique(np.concatenate(ids)) if ids else np.zeros(0, np.int64)


_SIDES = {"bottom": (0, 1), "top": (0, -1), "right": (1, 1), "left": (1, -1)}


def caps(grid: Grid, flat: dict[str, list[tuple[float, float]]]) -> Caps:
    """Find, for every flat side and interval, the outermost node of each grid line crossing it and the outline
    crossing beyond that node; they are snapped onto the side's line (its median crossing position)."""
    out = Caps()
    inside, node_id = grid.inside, grid.node_id
    for side, intervals in flat.items():
        if not intervals:
            continue
        axis, direction = _SIDES[side]
        # Lines across the side: grid columns for top/bottom, rows for left/right.
        lines = np.arange(inside.shape[1 - axis])
        step = grid.sx if axis == 0 else grid.sy
        along = (lines - 0.5) * step - 0.5 + _origin(grid, 1 - axis)
        within = np.zeros(len(lines), bool)
        for lo, hi in intervals:
            within |= (along >= lo - 0.5 * step) & (along <= hi + 0.5 * step)
        occupied = inside if axis == 0 else inside.T  # rows = position across the side
        present = occupied.any(axis=0) & within
        if not present.any():
            continue
        cols = np.nonzero(present)[0]
        col_in = occupied[:, cols]
        if direction > 0:
            outer = occupied.shape[0] - 1 - np.argmax(col_in[::-1], axis=0)
        else:
            outer = np.argmax(col_in, axis=0)
        beyond = outer + direction
        ok = (beyond >= 0) & (beyond < occupied.shape[0]) & ~occupied[np.clip(beyond, 0, None), cols]
        cols, outer = cols[ok], outer[ok]
        if not len(cols):
            continue
        if axis == 0:
            nodes = node_id[outer, cols]
            edge_row = outer if direction > 0 else outer - 1
            crossings = grid.v_id[edge_row, cols]
        else:
            nodes = node_id[cols, outer]
            edge_col = outer if direction > 0 else outer - 1
            crossings = grid.h_id[cols, edge_col]
        coord = 1 if axis == 0 else 0
        line = float(np.median(grid.xy[crossings, coord]))
        # Lines whose outermost node is not at the side (a seat above the gap between two legs) stay as they are.
        cross_step = grid.sy if axis == 0 else grid.sx
        near = np.abs(grid.xy[crossings, coord] - line) <= 1.5 * cross_step
        nodes, crossings = nodes[near], crossings[near]
        if not len(nodes):
            continue
        # The outline crossings beside the outermost nodes (the corners of the flat side) join the side too.
        corners = _side_corners(grid, nodes, axis)
        out.snaps.append((np.unique(np.concatenate([nodes, crossings, corners])), coord, line))
        key = (axis, direction)
        out.neumann[key] = np.union1d(out.neumann.get(key, np.zeros(0, np.int64)), nodes)
    return out


def _origin(grid: Grid, axis: int) -> float:
    """Pixel coordinate offset of the padded grid along `axis` (0 = rows/y, 1 = columns/x)."""
    ij = grid.node_ij[0]
    if axis == 1:
        return float(grid.xy[0, 0] - ((ij[1] - 0.5) * grid.sx - 0.5))
    return float(grid.xy[0, 1] - ((ij[0] - 0.5) * grid.sy - 0.5))


def _side_corners(grid: Grid, nodes: np.ndarray, axis: int) -> np.ndarray:
    """Crossings on the grid line of `nodes` next to them (along the side), where the side's outline turns."""
    ij = grid.node_ij[nodes]
    found = []
    if axis == 0:  # top/bottom: horizontal edges in the node's row
        i, j = ij[:, 0], ij[:, 1]
        for edge_j in (j - 1, j):
            ids = grid.h_id[i, np.clip(edge_j, 0, grid.h_id.shape[1] - 1)]
            found.append(ids[(edge_j >= 0) & (edge_j < grid.h_id.shape[1]) & (ids >= 0)])
    else:
        i, j = ij[:, 0], ij[:, 1]
        for edge_i in (i - 1, i):
            ids = grid.v_id[np.clip(edge_i, 0, grid.v_id.shape[0] - 1), j]
            found.append(ids[(edge_i >= 0) & (edge_i < grid.v_id.shape[0]) & (ids >= 0)])
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def poisson_height(grid: Grid, neumann: dict[tuple[int, int], np.ndarray] | None = None) -> np.ndarray:
    """h at every node for −Δh = 4 with h = 0 on the outline (Shortley–Weller weights where an arm reaches the
    outline at fraction θ of a cell); nodes listed in `neumann` mirror their outer neighbour instead."""
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import spsolve

    n_nodes = grid.n_nodes
    inside, node_id, ht, vt = grid.inside, grid.node_id, grid.ht, grid.vt
    ii, jj = grid.node_ij[:, 0], grid.node_ij[:, 1]
    rows_, cols_, vals_ = [], [], []
    diag = np.zeros(n_nodes)
    own = np.arange(n_nodes)
    for axis, spacing in ((1, grid.sx), (0, grid.sy)):
        if axis == 1:
            plus_in, minus_in = inside[ii, jj + 1], inside[ii, jj - 1]
            th_plus = np.where(plus_in, 1.0, ht[ii, jj])
            th_minus = np.where(minus_in, 1.0, 1.0 - ht[ii, jj - 1])
            plus_id, minus_id = node_id[ii, jj + 1], node_id[ii, jj - 1]
        else:
            plus_in, minus_in = inside[ii + 1, jj], inside[ii - 1, jj]
            th_plus = np.where(plus_in, 1.0, vt[ii, jj])
            th_minus = np.where(minus_in, 1.0, 1.0 - vt[ii - 1, jj])
            plus_id, minus_id = node_id[ii + 1, jj], node_id[ii - 1, jj]
        s2 = spacing * spacing
        mirror_plus = np.zeros(n_nodes, bool)
        mirror_minus = np.zeros(n_nodes, bool)
        if neumann:
            mirror_plus[neumann.get((axis, 1), np.zeros(0, np.int64))] = True
            mirror_minus[neumann.get((axis, -1), np.zeros(0, np.int64))] = True
        # A mirrored neighbour: the outer ghost equals the inner neighbour (needs that neighbour inside).
        mirror_plus &= ~plus_in & minus_in
        mirror_minus &= ~minus_in & plus_in
        th_plus = np.where(mirror_plus | mirror_minus, 1.0, th_plus)
        th_minus = np.where(mirror_plus | mirror_minus, 1.0, th_minus)
        a_plus = 2.0 / (th_plus * (th_plus + th_minus) * s2)
        a_minus = 2.0 / (th_minus * (th_plus + th_minus) * s2)
        diag += 2.0 / (th_plus * th_minus * s2)
        a_minus = np.where(mirror_plus, a_minus + a_plus, a_minus)
        a_plus = np.where(mirror_minus, a_plus + a_minus, a_plus)
        for ok, other, weight in ((plus_in, plus_id, a_plus), (minus_in, minus_id, a_minus)):
            rows_.append(own[ok])
            cols_.append(other[ok])
            vals_.append(-weight[ok])
    rows_.append(own)
    cols_.append(own)
    vals_.append(diag)
    matrix = csc_matrix(
        (np.concatenate(vals_), (np.concatenate(rows_), np.concatenate(cols_))), shape=(n_nodes, n_nodes)
    )
    return np.maximum(np.atleast_1d(spsolve(matrix, np.full(n_nodes, 4.0), permc_spec="MMD_AT_PLUS_A")), 0.0)


def row_ellipse_depth(
    grid: Grid, region: np.ndarray, soft: np.ndarray | None = None, axis: float | None = None
) -> np.ndarray:
    """Depth at every node for a solid whose every horizontal slice through `region` (bool, working-image size)
    is round: across each run of a row, z = √((x − left)(right − x)). A symmetric silhouette with one run per row
    becomes its surface of revolution. Nodes outside `region` get 0.

    With `soft` (the soft mask), rows crossing `region` once take their edges to a fraction of a pixel, smoothed
    over neighbouring rows, so the surface has no ridges from the outline's pixel steps; where the run ends inside
    the mask (a mug's body meeting its handle) that edge is the other one mirrored about `axis`."""
    h, w = region.shape
    x = grid.xy[: grid.n_nodes, 0]
    y = grid.xy[: grid.n_nodes, 1]
    row = np.clip(np.round(y).astype(np.int64), 0, h - 1)
    col = np.clip(np.round(x).astype(np.int64), 0, w - 1)
    # A node just past the pixel rows of its column (the grid's outline is sub-pixel) takes the nearest row's run,
    # so a flat top or bottom keeps the full width of its last row.
    has = region.any(axis=0)
    first = np.where(has, np.argmax(region, axis=0), 0)
    last = np.where(has, h - 1 - np.argmax(region[::-1], axis=0), h - 1)
    row = np.clip(row, first[col], last[col])
    left_edge = np.full(len(x), np.nan)
    right_edge = np.full(len(x), np.nan)
    if soft is not None:
        rows_left, rows_right = _row_edges(soft, region, axis)
        yq = np.clip(y, 0, h - 1)
        r0 = np.clip(np.floor(yq).astype(np.int64), 0, h - 1)
        r1 = np.minimum(r0 + 1, h - 1)
        r0, r1 = np.clip(r0, first[col], last[col]), np.clip(r1, first[col], last[col])
        t = np.clip(yq - r0, 0.0, 1.0)
        smooth_left = rows_left[r0] * (1 - t) + rows_left[r1] * t
        smooth_right = rows_right[r0] * (1 - t) + rows_right[r1] * t
        left_edge, right_edge = smooth_left, smooth_right
    rest = ~(np.isfinite(left_edge) & np.isfinite(right_edge))
    if rest.any():
        left_edge[rest], right_edge[rest] = _run_edges(region, row[rest], col[rest])
    depth = np.sqrt(np.clip((x - left_edge) * (right_edge - x), 0.0, None))
    return np.where(region[row, col], depth, 0.0)


def _row_edges(soft: np.ndarray, region: np.ndarray, axis: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the sub-pixel left and right edges of `region`'s single run (NaN where the row crosses it more
    or less than once), where the soft mask crosses 0.5; an edge where the mask goes on is mirrored about `axis`."""
    import cv2

    h, w = region.shape
    runs = np.count_nonzero(region[:, 1:] & ~region[:, :-1], axis=1) + region[:, 0]
    single = runs == 1
    rows = np.arange(h)
    first = np.argmax(region, axis=1)
    last = w - 1 - np.argmax(region[:, ::-1], axis=1)
    before = soft[rows, np.maximum(first - 1, 0)]
    at_first = soft[rows, first]
    left = (first - 1) + (0.5 - before) / np.maximum(at_first - before, 1e-6)
    left = np.where(first == 0, -0.5, np.clip(left, first - 1.0, first + 0.0))
    after = soft[rows, np.minimum(last + 1, w - 1)]
    at_last = soft[rows, last]
    right = last + (at_last - 0.5) / np.maximum(at_last - after, 1e-6)
    right = np.where(last == w - 1, w - 0.5, np.clip(right, last + 0.0, last + 1.0))
    if axis is not None:
        cut_left = (first > 0) & (before > 0.5)
        cut_right = (last < w - 1) & (after > 0.5)
        left = np.where(cut_left & ~cut_right, 2 * axis - right, left)
        right = np.where(cut_right & ~cut_left, 2 * axis - left, right)
    left = np.where(single, left, np.nan)
    right = np.where(single, right, np.nan)
    # Smooth the edges along y: a cut-out upsampled from a coarser mask steps by whole pixels of that mask, which
    # would show as rings round the solid. The blur spans EDGE_SMOOTHING of the object's height.
    sigma = max(1.5, EDGE_SMOOTHING * float(np.count_nonzero(single)))
    size = 2 * int(3 * sigma) + 1
    for edge in (left, right):
        valid = np.isfinite(edge)
        if valid.sum() > 3:
            filled = np.where(valid, edge, 0.0).astype(np.float32)[:, None]
            weight = valid.astype(np.float32)[:, None]
            num = cv2.GaussianBlur(filled, (1, size), 0, sigmaY=sigma)[:, 0]
            den = cv2.GaussianBlur(weight, (1, size), 0, sigmaY=sigma)[:, 0]
            edge[valid] = (num / np.maximum(den, 1e-6))[valid]
    return left, right


def _run_edges(region: np.ndarray, row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right pixel edges of the run of `region` holding each (row, col), for the rows asked only."""
    rows = np.flatnonzero(np.bincount(row, minlength=1))
    sub = region[rows]
    w = sub.shape[1]
    idx = np.arange(w)
    last_out = np.maximum.accumulate(np.where(~sub, idx, -1), axis=1)
    next_out = np.minimum.accumulate(np.where(~sub, idx, w)[:, ::-1], axis=1)[:, ::-1]
    where = np.searchsorted(rows, row)
    return last_out[where, col] + 0.5, next_out[where, col] - 0.5


def assemble(grid: Grid, z_nodes: np.ndarray, cap: Caps | None = None) -> Solid:
    """Front sheet at +z, back sheet at −z (node copies), outline crossings shared: closed by construction. Flat
    sides are snapped onto their lines. Pixel units, y up."""
    n_front = len(grid.xy)
    n_nodes = grid.n_nodes
    xy = grid.xy.copy()
    if cap is not None:
        done = np.zeros(n_front, bool)
        for ids, coord, line in cap.snaps:
            ids = ids[~done[ids]]  # a corner joins one side only
            xy[ids, coord] = line
            done[ids] = True
        # Two outline crossings (z = 0) moved onto one point would weld into one: leave those where they were.
        crossing = xy[n_nodes:]
        _, inverse, count = np.unique(crossing, axis=0, return_inverse=True, return_counts=True)
        clash = np.concatenate([np.zeros(n_nodes, bool), count[inverse.ravel()] > 1]) & done
        xy[clash] = grid.xy[clash]
    x, y = xy[:, 0], -xy[:, 1]
    z = np.concatenate([z_nodes, np.zeros(n_front - n_nodes)])
    vertices = np.concatenate(
        [np.column_stack([x, y, z]), np.column_stack([x[:n_nodes], y[:n_nodes], -z_nodes])]
    )
    front = grid.front
    back = np.where(front < n_nodes, front + n_front, front)[:, ::-1]
    faces = np.concatenate([front, back])
    return Solid(vertices, faces, grid.cell, len(faces), grid, z_nodes)


def inflate(
    mask: np.ndarray, dense_faces: int, depth: float, max_depth: float | None = None, thin_cells: int = 8
) -> Solid:
    """Triangulate the region mask > 0.5 with about `dense_faces` faces and inflate it into a closed solid.

    `depth` scales z = depth·√h (1.0 makes a disk a sphere). `max_depth`, when given, rescales z so the thickest
    point is that many pixels (used for the flat photo plaque)."""
    grid = triangulate(mask, dense_faces, thin_cells)
    z_nodes = np.sqrt(poisson_height(grid)) * depth
    if max_depth is not None and z_nodes.max() > 0:
        z_nodes *= max_depth / z_nodes.max()
    return assemble(grid, z_nodes)


def shape_solid(
    mask: np.ndarray,
    kind: str,
    flat: dict[str, list[tuple[float, float]]],
    dense_faces: int,
    depth: float,
    body: np.ndarray | None = None,
    thin_cells: int = 8,
    axis: float | None = None,
) -> Solid:
    """The solid for a shaping plan (`silhouette.Plan`): "inflate" (Poisson), "revolve" (every slice round) or
    "revolve+inflate" (a revolved `body`, symmetric about the column `axis`, with the rest of the mask inflated and
    blended into it), with the `flat` sides cut flat. Revolved parts are exactly round (depth = width), whatever
    `depth`."""
    grid = triangulate(mask, dense_faces, thin_cells)
    cap = caps(grid, flat)
    region = mask > 0.5
    if kind == "revolve":
        z_nodes = row_ellipse_depth(grid, region, mask)
    else:
        z_nodes = np.sqrt(poisson_height(grid, cap.neumann)) * depth
        if kind == "revolve+inflate" and body is not None:
            body_depth = row_ellipse_depth(grid, body & region, mask, axis)
            z_nodes = _blend_attachment(grid, z_nodes, body_depth, body, region)
    # Every node is strictly inside: keep its two copies apart (welding merges equal positions).
    z_nodes = np.maximum(z_nodes, 0.02 * grid.cell)
    return drop_slivers(assemble(grid, z_nodes, cap))


def drop_slivers(solid: Solid, share: float = 0.02) -> Solid:
    """Remove closed pieces with less than `share` of the faces: islands the grid cut off a part thinner than a
    cell (a whisker, a strap). Each piece is closed on its own, so what is left stays closed."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = solid.faces
    n = len(solid.vertices)
    graph = coo_matrix(
        (
            np.ones(2 * len(f), np.int8),
            (np.concatenate([f[:, 0], f[:, 1]]), np.concatenate([f[:, 1], f[:, 2]])),
        ),
        shape=(n, n),
    )
    count, labels = connected_components(graph, directed=False)
    if count <= 1:
        return solid
    face_label = labels[f[:, 0]]
    sizes = np.bincount(face_label, minlength=count)
    keep = sizes[face_label] >= share * len(f)
    if keep.all():
        return solid
    solid.faces = f[keep]
    return solid


def _blend_attachment(
    grid: Grid, z_inflated: np.ndarray, z_body: np.ndarray, body: np.ndarray, region: np.ndarray
) -> np.ndarray:
    """Revolved depth on the body, inflated depth on the attachment, and near the attachment the larger of the two
    (fading over the attachment's thickness), so a mug's handle grows out of its round body."""
    import cv2

    attachment = (region & ~body).astype(np.uint8)
    inside_dist = cv2.distanceTransform(attachment, cv2.DIST_L2, 3)
    thickness = max(2.0 * float(inside_dist.max()), 1.0)
    dist = cv2.distanceTransform(1 - attachment, cv2.DIST_L2, 3)
    h, w = region.shape
    col = np.clip(np.round(grid.xy[: grid.n_nodes, 0]).astype(np.int64), 0, w - 1)
    row = np.clip(np.round(grid.xy[: grid.n_nodes, 1]).astype(np.int64), 0, h - 1)
    on_body = body[row, col]
    fade = np.clip(1.0 - dist[row, col] / thickness, 0.0, 1.0)
    out: np.ndarray = np.where(on_body, np.maximum(z_body, z_inflated * fade), z_inflated)
    return out


def decimate(
    solid: Solid, face_limit: int, agg: float = 7.0, z_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation to `face_limit` faces at pixel scale; unused vertices dropped.

    With `z_scale` < 1 the decimator works on a copy flattened in depth, where the outline is a sharp crease
    between two nearly flat sheets: it then spends its error on the surface rather than on the outline (a
    boundary-preserving decimation for budgets where the outline would otherwise round off)."""
    import fast_simplification

    if len(solid.faces) <= face_limit:
        return solid.vertices, solid.faces
    points = solid.vertices.astype(np.float64)
    if z_scale != 1.0:
        points = points * (1.0, 1.0, z_scale)
    v, f = fast_simplification.simplify(
        points, solid.faces.astype(np.int32), target_count=face_limit, agg=agg
    )
    used = quality.used_vertices(np.asarray(f), len(v))
    remap = np.full(len(v), -1, np.int64)
    remap[used] = np.arange(len(used))
    out = np.asarray(v, np.float64)[used]
    if z_scale != 1.0:
        out[:, 2] /= z_scale
    return out, remap[np.asarray(f, np.int64)]
