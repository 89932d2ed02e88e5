"""One object out of a mask with several pieces: keep the largest piece and the pieces that belong to it.

A piece belongs when it is a real part (at least `PART_SHARE` of the largest piece) lying within a small gap of the
object (a dark sole under a thin white line the backdrop model could not see). Belonging pieces are joined to the
object by filling the gap between them, so the mesh is one solid. Specks (crumbs on a table) and pieces far away
(another object) are dropped and counted, never meshed as fragments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PART_SHARE = 0.01
"""A piece smaller than this share of the largest one is a speck."""
GAP = 0.02
"""Largest gap (share of the object's bounding-box diagonal) between the object and a piece that belongs to it."""


@dataclass
class Selection:
    """The object's mask and what was done to get it."""

    mask: np.ndarray
    """bool, the input's size: the largest piece, the joined parts and the bridges between them."""
    pieces: int
    """Significant pieces in the input (at least `PART_SHARE` of the largest)."""
    joined: int
    """Pieces joined to the largest one."""
    dropped: int
    """Significant pieces left out (far from the object)."""
    dropped_share: float
    """Share of the input's foreground left out, specks included."""
    largest_share: float
    """Share of the input's foreground in the largest piece."""

    def figures(self) -> dict[str, float | int]:
        return {
            "pieces": self.pieces,
            "pieces_joined": self.joined,
            "pieces_dropped": self.dropped,
            "dropped_share": round(self.dropped_share, 4),
        }


def select_object(fg: np.ndarray) -> Selection:
    """The object in bool mask `fg`: its largest 8-connected piece plus the nearby parts, joined into one."""
    import cv2

    total = int(np.count_nonzero(fg))
    if total == 0:
        return Selection(fg.copy(), 0, 0, 0, 0.0, 0.0)
    fg8 = fg.astype(np.uint8)
    if cv2.connectedComponents(fg8, connectivity=8)[0] == 2:  # one piece: no statistics needed (3× faster)
        return Selection(fg.copy(), 1, 0, 0, 0.0, 1.0)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg8, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    main = int(np.argmax(areas)) + 1
    largest = int(areas[main - 1])
    significant = [i + 1 for i in range(n - 1) if areas[i] >= PART_SHARE * largest]
    x, y, w, h = (int(v) for v in stats[main, :4])
    gap = max(2.0, GAP * float(np.hypot(w, h)))
    # Distance of every pixel to the largest piece.
    distance = cv2.distanceTransform((labels != main).astype(np.uint8), cv2.DIST_L2, 3)
    keep = labels == main
    joined = 0
    for i in significant:
        if i == main:
            continue
        x1, y1, w1, h1 = (int(v) for v in stats[i, :4])
        region = labels[y1 : y1 + h1, x1 : x1 + w1] == i
        if float(distance[y1 : y1 + h1, x1 : x1 + w1][region].min()) <= gap:
            keep |= labels == i
            joined += 1
    if joined:
        keep = _bridge(keep, labels == main, gap)
    kept_input = int(np.count_nonzero(fg & keep))
    dropped = len(significant) - 1 - joined
    return Selection(keep, len(significant), joined, dropped, 1.0 - kept_input / total, largest / total)


def _bridge(keep: np.ndarray, main: np.ndarray, gap: float) -> np.ndarray:
    """Fill the gaps between the kept pieces: a closing with a disk as wide as the largest gap, limited to pixels
    near both the largest piece and another kept piece (so concave corners elsewhere stay as they are)."""
    import cv2

    size = 2 * int(np.ceil(gap)) + 3
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    k8 = keep.astype(np.uint8)
    closed = cv2.morphologyEx(k8, cv2.MORPH_CLOSE, disk) > 0
    near_main = cv2.dilate(main.astype(np.uint8), disk) > 0
    near_part = cv2.dilate((keep & ~main).astype(np.uint8), disk) > 0
    out: np.ndarray = keep | (closed & near_main & near_part)
    return out
