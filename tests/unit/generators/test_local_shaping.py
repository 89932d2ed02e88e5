"""Poisson inflation on analytic silhouettes, and closure of the marching-squares mesh on awkward masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from image2model.core.generators.local import shaping
from image2model.core.mesh import quality


def _disk(size: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    c = (size - 1) / 2
    return (((xx - c) ** 2 + (yy - c) ** 2) <= radius**2).astype(np.float32)


def _closed(v: np.ndarray, f: np.ndarray) -> bool:
    topo = quality.topology(f, len(v))
    return topo.watertight and topo.winding_consistent and quality.signed_volume(v, f) > 0


def test_disk_becomes_a_sphere_within_two_percent_of_its_volume() -> None:
    r = 300.0
    solid = shaping.inflate(_disk(700, r), 30000, depth=1.0)
    v, f = shaping.decimate(solid, 10000)
    assert len(f) <= 10000 and _closed(v, f)
    assert quality.signed_volume(v, f) == pytest.approx(4 / 3 * math.pi * r**3, rel=0.02)
    depth = v[:, 2].max() - v[:, 2].min()
    width = v[:, 0].max() - v[:, 0].min()
    assert depth / width == pytest.approx(1.0, abs=0.02)


def test_strip_cross_section_is_an_ellipse_of_depth_root_two_half_widths() -> None:
    a = 40.0  # half-width
    mask = np.zeros((200, 1600), np.float32)
    mask[100 - 40 : 100 + 40, 20:1580] = 1.0
    solid = shaping.inflate(mask, 60000, depth=1.0)
    mid = np.abs(solid.vertices[:, 0] - 800) < 30
    assert solid.vertices[mid, 2].max() / a == pytest.approx(math.sqrt(2.0), rel=0.03)


def test_depth_option_scales_thickness_linearly() -> None:
    thick = shaping.inflate(_disk(200, 80), 4000, depth=1.0).vertices[:, 2].max()
    thin = shaping.inflate(_disk(200, 80), 4000, depth=0.5).vertices[:, 2].max()
    assert thin / thick == pytest.approx(0.5, rel=1e-6)


def test_ring_keeps_its_hole() -> None:
    mask = _disk(300, 140) - _disk(300, 60)
    solid = shaping.inflate(mask, 8000, depth=0.75)
    assert _closed(solid.vertices, solid.faces)
    assert quality.topology(solid.faces, len(solid.vertices)).euler_number == 0  # a torus
    near_centre = np.hypot(solid.vertices[:, 0] - 149.5, solid.vertices[:, 1] + 149.5) < 50
    assert not near_centre.any()


@pytest.mark.parametrize("seed", range(6))
def test_noisy_masks_with_saddles_and_specks_always_close(seed: int) -> None:
    import cv2

    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((160, 200)).astype(np.float32), (0, 0), 3)
    mask = (noise > np.median(noise)).astype(np.float32)
    solid = shaping.inflate(mask, int(rng.integers(500, 20000)), depth=0.75)
    assert _closed(solid.vertices, solid.faces)


@pytest.mark.parametrize("limit", [48, 500, 5000])
def test_decimation_meets_the_budget_and_keeps_the_solid_closed(limit: int) -> None:
    solid = shaping.inflate(_disk(400, 150), max(3 * limit, 4000), depth=0.75)
    v, f = shaping.decimate(solid, limit)
    assert len(f) <= limit
    assert len(f) >= 0.9 * limit
    assert _closed(v, f)


def test_plaque_depth_is_capped() -> None:
    mask = np.ones((100, 300), np.float32)
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 0, 0, 0, 0
    solid = shaping.inflate(mask, 4000, depth=0.75, max_depth=12.0)
    assert solid.vertices[:, 2].max() == pytest.approx(12.0)
    assert _closed(solid.vertices, solid.faces)
