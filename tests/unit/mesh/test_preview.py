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


def test_pixels_just_outside_a_thin_face_take_its_closest_texel() -> None:
    # A long, thin triangle: a clipped extrapolation of barycentrics lands far along it; the closest point does not.
    tri = np.array([[[10.0, 0.0], [10.5, 100.0], [11.0, 100.0]]])
    bary = preview._closest_barycentric(np.array([[9.0, 50.0]]), tri)
    point = (bary[0][:, None] * tri[0]).sum(axis=0)
    assert abs(point[1] - 50.0) < 1.0 and abs(point[0] - 10.25) < 0.5
