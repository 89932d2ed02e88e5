"""Export transforms: face budget kept closed with the texture's charts, Z up, real-world height, origin."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from image2model.core.errors import ExportFailed
from image2model.core.mesh import quality, transform
from image2model.core.mesh.model import TexturedMesh
from image2model.core.mesh.transform import Shaping


def sphere_mesh(subdivisions: int = 4) -> TexturedMesh:
    """An icosphere (5120 faces at 4) with a seam: vertices with x < 0 map to the left half of the texture,
    the others to the right half, each half one colour; vertices on the seam are duplicated."""
    import trimesh

    ico = trimesh.creation.icosphere(subdivisions=subdivisions)
    v, f = np.asarray(ico.vertices), np.asarray(ico.faces)
    left = v[f].mean(axis=1)[:, 0] < 0
    vertices, faces, uv = [], [], []
    for side in (True, False):
        chosen = f[left == side]
        used, inverse = np.unique(chosen, return_inverse=True)
        offset = sum(len(x) for x in vertices)
        vertices.append(v[used])
        faces.append(inverse.reshape(-1, 3) + offset)
        u = 0.25 if side else 0.75
        uv.append(np.column_stack([np.full(len(used), u) + 0.2 * v[used, 1], 0.5 + 0.4 * v[used, 2]]))
    tex = np.zeros((64, 64, 3), np.uint8)
    tex[:, :32] = (200, 20, 20)
    tex[:, 32:] = (20, 20, 200)
    return TexturedMesh(
        np.concatenate(vertices), np.concatenate(faces), np.concatenate(uv), Image.fromarray(tex)
    )


def test_decimated_mesh_keeps_the_budget_and_stays_a_closed_oriented_solid() -> None:
    mesh = sphere_mesh()
    small = transform.decimated(mesh, 500)
    welded = small.welded
    topo = quality.topology(welded.faces, len(welded.vertices))
    assert 0 < len(small.faces) <= 500
    assert topo.watertight and topo.winding_consistent
    assert quality.signed_volume(welded.vertices, welded.faces) > 3.5  # a unit sphere holds 4.19


def test_decimated_mesh_keeps_each_side_on_its_own_texture_chart() -> None:
    small = transform.decimated(sphere_mesh(), 500)
    colors = small.vertex_colors()[small.faces]  # (faces, corners, rgba)
    centroid_x = small.vertices[small.faces].mean(axis=1)[:, 0]
    far_left, far_right = centroid_x < -0.2, centroid_x > 0.2
    # A face takes all three corners from one chart: no face of one side samples the other side's colour.
    assert np.all(colors[far_left][..., 0] == 200) and np.all(colors[far_right][..., 2] == 200)
    assert len(small.vertices) > len(small.welded.vertices), "the seam's vertices are split again"


def test_a_budget_above_the_face_count_changes_nothing() -> None:
    mesh = sphere_mesh(2)
    assert transform.decimated(mesh, 10_000) is mesh


def test_a_budget_no_closed_solid_fits_is_refused() -> None:
    with pytest.raises(ExportFailed, match="cannot be reduced to 2 faces"):
        transform.decimated(sphere_mesh(2), 2)


def test_z_up_turns_the_top_to_plus_z_and_the_front_to_minus_y() -> None:
    mesh = sphere_mesh(2)
    top = int(np.argmax(mesh.vertices[:, 1]))
    front = int(np.argmax(mesh.vertices[:, 2]))
    turned = transform.shaped(mesh, Shaping(up="z"))
    assert np.isclose(turned.vertices[top, 2], turned.vertices[:, 2].max())
    assert np.isclose(turned.vertices[front, 1], turned.vertices[:, 1].min())
    welded = turned.welded
    assert quality.signed_volume(welded.vertices, welded.faces) > 0, "a rotation keeps the winding outward"


def test_height_and_bottom_origin_put_the_model_on_the_plate_centred() -> None:
    mesh = sphere_mesh(2).with_geometry(sphere_mesh(2).vertices * [0.5, 1.0, 0.25] + [3.0, 1.0, -2.0])
    out = transform.shaped(mesh, Shaping(height_mm=80.0, up="z", origin="bottom"))
    lo, hi = out.vertices.min(axis=0), out.vertices.max(axis=0)
    assert np.isclose(hi[2] - lo[2], 80.0) and np.isclose(lo[2], 0.0)
    assert np.allclose((lo[:2] + hi[:2]) / 2, 0.0, atol=1e-9)
    # Uniform scaling: the proportions stay (x was half the height, y-depth a quarter before turning).
    assert np.isclose(hi[0] - lo[0], 40.0, rtol=1e-3) and np.isclose(hi[1] - lo[1], 20.0, rtol=1e-3)


def test_center_origin_centres_the_bounding_box_in_model_units() -> None:
    mesh = sphere_mesh(2).with_geometry(sphere_mesh(2).vertices + [5.0, 5.0, 5.0])
    out = transform.shaped(mesh, Shaping())
    lo, hi = out.vertices.min(axis=0), out.vertices.max(axis=0)
    assert np.allclose(lo + hi, 0.0, atol=1e-9) and np.isclose(hi[1] - lo[1], 2.0, rtol=1e-3)
