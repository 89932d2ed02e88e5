"""Reading GLBs back: our own layout directly from the buffer, anything else through trimesh."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from image2model.core.errors import GenerationError
from image2model.core.mesh import export, gltf
from image2model.core.mesh.model import TexturedMesh


def test_our_glb_reads_back_exactly_without_decoding_the_texture(cube: TexturedMesh) -> None:
    data = export.glb_bytes(cube)
    mesh, ours = gltf.model_mesh(data)
    assert ours
    assert np.allclose(mesh.vertices, cube.vertices, atol=1e-6) and np.array_equal(mesh.faces, cube.faces)
    assert np.allclose(mesh.uv, cube.uv, atol=1e-6)
    assert np.allclose(mesh.vertex_normals, cube.vertex_normals, atol=1e-6)
    assert mesh.texture_jpeg == cube.texture_jpeg, "the JPEG is reused, not encoded again"
    difference = mesh.vertex_colors().astype(int) - cube.vertex_colors().astype(int)
    assert np.abs(difference).max() <= 3, "the decoded JPEG samples like the original texture"


def test_a_foreign_glb_is_read_through_trimesh_into_model_space() -> None:
    box = trimesh.creation.box(extents=(4.0, 2.0, 1.0))
    box.apply_translation((10.0, 0.0, 0.0))
    mesh, ours = gltf.model_mesh(box.export(file_type="glb"))
    assert not ours
    lo, hi = mesh.welded.vertices.min(axis=0), mesh.welded.vertices.max(axis=0)
    assert np.allclose(hi - lo, (1.0, 0.5, 0.25)) and np.allclose(lo + hi, 0.0)
    assert len(mesh.welded.vertices) == 8 and len(mesh.faces) == 12


def test_a_file_that_is_not_a_glb_is_refused_with_its_name() -> None:
    with pytest.raises(GenerationError, match="The master is not a GLB"):
        gltf.model_mesh(b"solid cube\nendsolid\n" + b" " * 20, "The master")
