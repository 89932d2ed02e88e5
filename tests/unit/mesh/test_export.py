from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import trimesh

from image2model.core.mesh import export
from image2model.core.mesh.model import TexturedMesh
from tests.unit.mesh.conftest import cube_mesh


def _glb_json(data: bytes) -> dict:
    magic, version, length = struct.unpack_from("<4sII", data)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    chunk_len, chunk_type = struct.unpack_from("<I4s", data, 12)
    assert chunk_type == b"JSON"
    return json.loads(data[20 : 20 + chunk_len])


def test_glb_is_plain_gltf_with_normals_uv_and_pbr_jpeg(cube: TexturedMesh, tmp_path: Path) -> None:
    path = export.write_glb(cube, tmp_path / "m.glb")
    doc = _glb_json(path.read_bytes())
    assert "extensionsUsed" not in doc and "extensionsRequired" not in doc
    prim = doc["meshes"][0]["primitives"][0]
    assert set(prim["attributes"]) == {"POSITION", "NORMAL", "TEXCOORD_0"}
    assert doc["images"][0]["mimeType"] == "image/jpeg"
    pbr = doc["materials"][0]["pbrMetallicRoughness"]
    assert pbr["metallicFactor"] == 0.0 and pbr["roughnessFactor"] == 0.9

    loaded = trimesh.load(path, force="mesh", process=False)
    assert len(loaded.faces) == 12
    assert np.allclose(np.sort(loaded.vertices, axis=0), np.sort(cube.vertices, axis=0), atol=1e-6)
    assert isinstance(loaded.visual.material, trimesh.visual.material.PBRMaterial)
    assert loaded.visual.uv is not None and loaded.visual.uv.shape == (8, 2)
    # trimesh flips glTF's v back: the UVs must come back as written.
    assert np.allclose(loaded.visual.uv, cube.uv, atol=1e-6)
    # The NORMAL accessor holds our smooth (area-weighted) vertex normals, not recomputed ones.
    data = path.read_bytes()
    bin_start = 20 + struct.unpack_from("<I", data, 12)[0] + 8
    view = doc["bufferViews"][doc["accessors"][prim["attributes"]["NORMAL"]]["bufferView"]]
    raw = data[bin_start + view["byteOffset"] : bin_start + view["byteOffset"] + view["byteLength"]]
    normals = np.frombuffer(raw, "<f4").reshape(-1, 3)
    assert np.allclose(normals, cube.vertex_normals, atol=1e-6)
    assert loaded.is_watertight and loaded.volume > 0


def test_obj_zip_holds_obj_mtl_and_texture_and_reloads(cube: TexturedMesh, tmp_path: Path) -> None:
    path = export.write_obj_zip(cube, tmp_path / "m.obj.zip", "m")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["m.jpg", "m.mtl", "m.obj"]
        mtl = zf.read("m.mtl").decode()
        assert "Kd 1.000 1.000 1.000" in mtl and "map_Kd m.jpg" in mtl
        zf.extractall(tmp_path / "x")
    loaded = trimesh.load(tmp_path / "x" / "m.obj", force="mesh")
    assert len(loaded.faces) == 12
    assert loaded.is_watertight and abs(loaded.volume - 1.0) < 1e-5
    assert loaded.visual.uv is not None


def test_stl_is_binary_with_every_face(cube: TexturedMesh, tmp_path: Path) -> None:
    path = export.write_stl(cube, tmp_path / "m.stl")
    assert path.stat().st_size == 84 + 50 * 12
    loaded = trimesh.load(path)
    assert len(loaded.faces) == 12 and loaded.is_watertight
    assert abs(loaded.volume - 1.0) < 1e-5


def test_ply_has_texture_colours_per_vertex(cube: TexturedMesh, tmp_path: Path) -> None:
    path = export.write_ply(cube, tmp_path / "m.ply")
    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian")
    loaded = trimesh.load(path, process=False)
    assert len(loaded.faces) == 12 and len(loaded.vertices) == 8
    colours = loaded.visual.vertex_colors
    left = cube.vertices[:, 0] < 0
    assert np.all(colours[left, 0] > 150) and np.all(colours[~left, 2] > 150)


def _seamed_cube() -> TexturedMesh:
    """The cube with its top face on a texture island of its own: 4 extra vertices, same positions, other UVs."""
    cube = cube_mesh()
    top = np.nonzero(cube.vertices[:, 1] > 0)[0]
    vertices = np.concatenate([cube.vertices, cube.vertices[top]])
    uv = np.concatenate([cube.uv, np.full((len(top), 2), 0.9)])
    remap = np.arange(len(cube.vertices))
    remap[top] = len(cube.vertices) + np.arange(len(top))
    faces = cube.faces.copy()
    on_top = np.all(np.isin(faces, top), axis=1)
    faces[on_top] = remap[faces[on_top]]
    return TexturedMesh(vertices, faces, uv, cube.texture)


def test_uv_seams_weld_into_a_closed_solid_with_smooth_normals() -> None:
    from image2model.core.mesh import quality

    mesh = _seamed_cube()
    assert not quality.topology(mesh.faces, len(mesh.vertices)).watertight
    welded = mesh.welded
    assert len(welded.vertices) == 8
    assert quality.topology(welded.faces, len(welded.vertices)).watertight
    # Duplicated vertices share one normal, so the seam does not show in shading.
    normals = mesh.vertex_normals
    assert np.allclose(normals[welded.first[welded.inverse]], normals, atol=1e-9)


def test_ply_and_stl_of_a_seamed_mesh_are_closed(tmp_path: Path) -> None:
    mesh = _seamed_cube()
    ply = trimesh.load(export.write_ply(mesh, tmp_path / "m.ply"), process=False)
    assert len(ply.vertices) == 8 and len(ply.faces) == 12 and ply.is_watertight
    stl = trimesh.load(export.write_stl(mesh, tmp_path / "m.stl"))
    assert stl.is_watertight and abs(stl.volume - 1.0) < 1e-5
