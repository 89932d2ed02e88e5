from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from image2model.core.mesh import preview
from image2model.core.mesh.model import TexturedMesh


def _object_pixels(img: np.ndarray) -> np.ndarray:
    return np.any(np.abs(img.astype(int) - preview.BACKGROUND) > 8, axis=2)


def test_front_view_shows_textured_face_where_the_cube_projects(cube: TexturedMesh) -> None:
    img = preview.Renderer(cube).render(200, yaw_deg=0, pitch_deg=0)
    obj = _object_pixels(img)
    fraction = obj.mean()
    assert 0.2 < fraction < 0.6  # a unit square in a frame of radius √3/2
    centre_row = img[100]
    # Texture: left half red, right half blue, seen on the +Z face.
    assert centre_row[70, 0] > centre_row[70, 2] + 50
    assert centre_row[130, 2] > centre_row[130, 0] + 50


def test_back_view_mirrors_texture(cube: TexturedMesh) -> None:
    img = preview.Renderer(cube).render(200, yaw_deg=180, pitch_deg=0)
    assert img[100, 70, 2] > img[100, 70, 0] + 50


def test_thumbnail_and_turntable_files(cube: TexturedMesh, tmp_path: Path) -> None:
    png = preview.write_thumbnail(cube, tmp_path / "p.png", size=128)
    with Image.open(png) as im:
        assert im.size == (128, 128) and im.format == "PNG"
    frames = preview.turntable_frames(cube, size=64, frames=6)
    webp, gif = preview.write_turntable(frames, tmp_path / "t.webp", tmp_path / "t.gif")
    for path, fmt in ((webp, "WEBP"), (gif, "GIF")):
        with Image.open(path) as im:
            assert im.format == fmt and im.n_frames == 6 and im.is_animated


def test_pixels_of_a_thin_face_are_shaded_from_inside_it() -> None:
    # A long, thin triangle: every pixel it covers interpolates a point of the triangle itself (an extrapolation
    # would land far along it and smear the texture).
    sx, sy = np.array([10.0, 10.5, 12.0]), np.array([0.0, 100.0, 100.0])
    hit = preview._rasterize(sx, sy, np.zeros(3), np.array([[0, 1, 2]]), 128)
    assert hit is not None
    pixel, face, bary = hit
    assert len(pixel) > 50 and (face == 0).all() and (bary >= 0).all()
    points = bary @ np.column_stack([sx, sy])
    assert np.allclose(points[:, 0], pixel % 128, atol=1e-6) and np.allclose(
        points[:, 1], pixel // 128, atol=1e-6
    )


def test_the_nearer_face_wins_whatever_the_drawing_order() -> None:
    sx, sy = np.array([0.0, 60.0, 0.0, 0.0, 60.0, 0.0]), np.array([0.0, 0.0, 60.0, 0.0, 0.0, 60.0])
    depth = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    for tri in (np.array([[0, 1, 2], [3, 4, 5]]), np.array([[3, 4, 5], [0, 1, 2]])):
        hit = preview._rasterize(sx, sy, depth, tri, 64)
        assert hit is not None
        near = int(np.nonzero((tri == 3).any(axis=1))[0][0])
        assert (hit[1] == near).all() and len(np.unique(hit[0])) == len(hit[0])
