from __future__ import annotations

import numpy as np

from image2model.core.mesh import quality
from image2model.core.mesh.model import TexturedMesh


def test_closed_cube_is_watertight_consistent_with_unit_volume(cube: TexturedMesh) -> None:
    topo = quality.topology(cube.faces, len(cube.vertices))
    assert topo.watertight and topo.winding_consistent
    assert topo.euler_number == 2
    assert abs(quality.signed_volume(cube.vertices, cube.faces) - 1.0) < 1e-12


def test_flipped_face_breaks_winding_but_not_closure(cube: TexturedMesh) -> None:
    faces = cube.faces.copy()
    faces[0] = faces[0][::-1]
    topo = quality.topology(faces, len(cube.vertices))
    assert topo.watertight and not topo.winding_consistent


def test_missing_face_is_not_watertight(cube: TexturedMesh) -> None:
    topo = quality.topology(cube.faces[1:], len(cube.vertices))
    assert not topo.watertight


def test_inside_out_mesh_has_negative_volume(cube: TexturedMesh) -> None:
    assert quality.signed_volume(cube.vertices, cube.faces[:, ::-1]) < 0


def test_silhouette_of_front_faces_covers_the_projection(cube: TexturedMesh) -> None:
    # Cube spans x, y in [-0.5, 0.5]; map to a 100 px raster, y down.
    pts = np.column_stack([(cube.vertices[:, 0] + 0.5) * 80 + 10, (0.5 - cube.vertices[:, 1]) * 80 + 10])
    sil = quality.rasterize_silhouette(pts, cube.faces, (100, 100))
    truth = np.zeros((100, 100), bool)
    truth[10:91, 10:91] = True
    assert quality.iou(sil, truth) > 0.97


def test_iou_of_disjoint_masks_is_zero() -> None:
    a = np.zeros((4, 4), bool)
    b = a.copy()
    a[0, 0], b[3, 3] = True, True
    assert quality.iou(a, b) == 0.0
    assert quality.iou(a, a) == 1.0


def test_a_cube_stands_on_its_whole_bottom_and_is_one_piece(cube: TexturedMesh) -> None:
    stance = quality.stance(cube.vertices, cube.faces)
    assert stance["depth_width"] == 1.0 and abs(stance["base_footprint"] - 1.0) < 1e-9
    assert quality.pieces(cube.faces, len(cube.vertices)) == 1
    two = np.concatenate([cube.faces, cube.faces + len(cube.vertices)])
    assert quality.pieces(two, 2 * len(cube.vertices)) == 2


def test_a_tilted_cube_has_no_flat_base(cube: TexturedMesh) -> None:
    c, s = np.cos(0.3), np.sin(0.3)
    tilted = cube.vertices @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T
    assert quality.stance(tilted, cube.faces)["base_footprint"] == 0.0
