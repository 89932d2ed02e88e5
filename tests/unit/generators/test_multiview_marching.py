"""Marching cubes of the multi-view carving: closed, oriented surfaces whose topology and volume match the field."""

from __future__ import annotations

import numpy as np
import pytest

from image2model.core.generators.local.multiview.marching import EDGES, case_table, marching_cubes
from image2model.core.mesh import quality


def _grid(n: int) -> np.ndarray:
    return np.stack(np.mgrid[0:n, 0:n, 0:n], axis=-1).astype(np.float64) - (n - 1) / 2


def test_every_case_triangulates_exactly_the_edges_it_crosses() -> None:
    table, counts = case_table()
    assert counts[0] == counts[255] == 0
    assert counts[1] == 1 and counts[0b11] == 2  # one corner: a triangle; one edge: a quad
    for case in range(1, 255):
        crossed = {n for n, (a, b) in enumerate(EDGES) if (case >> a & 1) != (case >> b & 1)}
        used = set(table[case, : counts[case]].ravel().tolist())
        assert counts[case] >= 1 and used == crossed, case


def test_a_sphere_is_closed_with_the_right_volume_and_outward_faces() -> None:
    p = _grid(48)
    v, f = marching_cubes(np.linalg.norm(p, axis=-1) - 18.0)
    topo = quality.topology(f, len(v))
    assert topo.watertight and topo.winding_consistent and topo.euler_number == 2
    assert quality.signed_volume(v, f) == pytest.approx(4 / 3 * np.pi * 18.0**3, rel=0.01)


def test_a_torus_keeps_its_hole() -> None:
    p = _grid(56)
    ring = np.hypot(p[..., 0], p[..., 1]) - 16.0
    v, f = marching_cubes(np.hypot(ring, p[..., 2]) - 6.0)
    topo = quality.topology(f, len(v))
    assert topo.watertight and topo.winding_consistent and topo.euler_number == 0


@pytest.mark.parametrize("seed", range(4))
def test_noise_with_every_ambiguous_configuration_still_gives_a_closed_surface(seed: int) -> None:
    field = np.random.default_rng(seed).normal(size=(20, 21, 22)).astype(np.float32)
    for axis in range(3):
        np.moveaxis(field, axis, 0)[[0, -1]] = 1.0
    v, f = marching_cubes(field)
    topo = quality.topology(f, len(v))
    assert topo.watertight and topo.winding_consistent
    assert quality.signed_volume(v, f) > 0
