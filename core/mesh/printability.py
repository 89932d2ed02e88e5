"""What a 3D printer needs to know about a model: closed, manifold, its volume and bounding box."""

from __future__ import annotations

from typing import Any

import numpy as np

from image2model.core.mesh import quality
from image2model.core.mesh.model import TexturedMesh, Welded, weld


def print_report(mesh: TexturedMesh, height_mm: float | None = None, up_axis: int = 1) -> dict[str, Any]:
    """`metadata.print`: measured on the welded mesh (as STL, PLY and 3MF store it). `watertight`: every edge
    has exactly two faces; `manifold`: and the faces agree on orientation; `volume` and `bbox` in the mesh's
    units (cubic millimetres and millimetres when `height_mm` is given, model units otherwise);
    `height_mm`: the measured height along the up axis, None for unitless models."""
    return _report(mesh.welded, height_mm, up_axis)


def geometry_report(
    vertices: np.ndarray, faces: np.ndarray, height_mm: float | None = None, up_axis: int = 1
) -> dict[str, Any]:
    """`print_report` of bare geometry (vertices at equal positions are welded first), for models that were
    never turned into a TexturedMesh."""
    return _report(weld(vertices, faces), height_mm, up_axis)


def _report(welded: Welded, height_mm: float | None, up_axis: int) -> dict[str, Any]:
    topology = quality.topology(welded.faces, len(welded.vertices))
    lo, hi = welded.vertices.min(axis=0), welded.vertices.max(axis=0)
    return {
        "watertight": topology.watertight,
        "manifold": topology.winding_consistent,
        "volume": round(abs(quality.signed_volume(welded.vertices, welded.faces)), 6),
        "bbox": {"min": _rounded(lo), "max": _rounded(hi), "size": _rounded(hi - lo)},
        "height_mm": None if height_mm is None else round(float(hi[up_axis] - lo[up_axis]), 4),
        "units": "mm" if height_mm is not None else None,
        "faces": int(len(welded.faces)),
    }


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]
