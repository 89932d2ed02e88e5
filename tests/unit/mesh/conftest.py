"""A small textured cube shared by the mesh tests."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from image2model.core.mesh.model import TexturedMesh


def cube_mesh() -> TexturedMesh:
    """Unit cube centred at the origin, outward-facing, with a texture whose left half is red, right half blue."""
    v = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)], float)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))], np.int64)
    uv = np.column_stack([v[:, 0] + 0.5, v[:, 1] + 0.5])
    tex = np.zeros((64, 64, 3), np.uint8)
    tex[:, :32] = (220, 30, 30)
    tex[:, 32:] = (30, 30, 220)
    return TexturedMesh(v, faces, uv, Image.fromarray(tex))


@pytest.fixture
def cube() -> TexturedMesh:
    return cube_mesh()
