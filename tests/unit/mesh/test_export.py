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


def _3mf_colours(data: bytes) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(welded vertices, per-triangle corner colours as '#RRGGBB', the colour group) read with the stdlib."""
    import io
    import xml.etree.ElementTree as ET

    core = "{http://schemas.microsoft.com/3dmanufacturing/core/2015/02}"
    material = "{http://schemas.microsoft.com/3dmanufacturing/material/2015/02}"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        root = ET.fromstring(zf.read("3D/3dmodel.model"))
    group = [c.attrib["color"] for c in root.iter(f"{material}color")]
    obj = next(root.iter(f"{core}object"))
    assert obj.attrib["pid"] == next(root.iter(f"{material}colorgroup")).attrib["id"]
    vertices = np.array([[float(v.attrib[k]) for k in "xyz"] for v in root.iter(f"{core}vertex")])
    corners = np.array(
        [[group[int(t.attrib[p])] for p in ("p1", "p2", "p3")] for t in root.iter(f"{core}triangle")]
    )
    return vertices, corners, group


def test_3mf_reads_back_as_a_closed_solid_in_millimetres_with_the_texture_colours(
    cube: TexturedMesh, tmp_path: Path
) -> None:
    path = export.write_3mf(cube.with_geometry(cube.vertices * 40.0), tmp_path / "m.3mf")
    loaded = trimesh.load(path, force="mesh")
    assert loaded.metadata["units"] == "millimeter"
    assert len(loaded.faces) == 12 and loaded.is_watertight and np.isclose(loaded.volume, 40.0**3)
    vertices, corners, group = _3mf_colours(path.read_bytes())
    assert sorted(group) == ["#1E1EDC", "#DC1E1E"]
    # Corners at x < 0 sample the texture's red left half, the others its blue right half.
    corner_x = vertices[np.array([[int(i) for i in tri] for tri in _3mf_vertex_ids(path.read_bytes())])][
        ..., 0
    ]
    assert np.all(corners[corner_x < 0] == "#DC1E1E") and np.all(corners[corner_x > 0] == "#1E1EDC")


def _3mf_vertex_ids(data: bytes) -> list[tuple[str, str, str]]:
    import io
    import xml.etree.ElementTree as ET

    core = "{http://schemas.microsoft.com/3dmanufacturing/core/2015/02}"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        root = ET.fromstring(zf.read("3D/3dmodel.model"))
    return [(t.attrib["v1"], t.attrib["v2"], t.attrib["v3"]) for t in root.iter(f"{core}triangle")]


def test_3mf_of_a_mesh_with_uv_seams_is_welded_and_keeps_both_sides_colours(tmp_path: Path) -> None:
    from tests.unit.mesh.test_transform import sphere_mesh

    mesh = sphere_mesh(2)
    assert len(mesh.vertices) > len(mesh.welded.vertices)
    path = export.write_3mf(mesh, tmp_path / "s.3mf")
    loaded = trimesh.load(path, force="mesh")
    assert len(loaded.vertices) == len(mesh.welded.vertices) and loaded.is_watertight
    vertices, corners, _ = _3mf_colours(path.read_bytes())
    ids = np.array([[int(i) for i in tri] for tri in _3mf_vertex_ids(path.read_bytes())])
    centroid_x = vertices[ids].mean(axis=1)[:, 0]
    assert np.all(corners[centroid_x < -0.1] == "#C81414") and np.all(corners[centroid_x > 0.1] == "#1414C8")


def test_glb_extras_are_written_into_the_asset_and_survive_a_rewrite(cube: TexturedMesh) -> None:
    data = export.glb_bytes(cube, extras={"image2model": {"generator": "local"}})
    assert _glb_json(data)["asset"]["extras"] == {"image2model": {"generator": "local"}}
    again = export.with_extras(data, {"image2model": {"generator": "fal", "seed": 7}, "other": 1})
    doc = _glb_json(again)
    assert doc["asset"]["extras"] == {"image2model": {"generator": "fal", "seed": 7}, "other": 1}
    assert doc["asset"]["generator"] == "image2model" and doc["accessors"] == _glb_json(data)["accessors"]
    loaded = trimesh.load(io_bytes(again), file_type="glb", force="mesh", process=False)
    assert np.allclose(loaded.vertices, cube.vertices) and len(loaded.faces) == 12


def test_extras_go_into_a_glb_written_by_another_program() -> None:
    box = trimesh.creation.box()
    data = box.export(file_type="glb")
    rewritten = export.with_extras(data, {"image2model": {"seed": 3}})
    assert _glb_json(rewritten)["asset"]["extras"] == {"image2model": {"seed": 3}}
    loaded = trimesh.load(io_bytes(rewritten), file_type="glb", force="mesh")
    assert len(loaded.faces) == 12 and loaded.is_watertight


def io_bytes(data: bytes):
    import io

    return io.BytesIO(data)
