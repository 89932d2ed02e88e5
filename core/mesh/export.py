"""Writers for the download formats: GLB (uncompressed glTF 2.0), OBJ zip (OBJ + MTL + JPEG), binary STL, binary PLY.

Written by hand with numpy rather than through trimesh: each is a few dozen lines, needs no heavy import in the
worker, and keeps control of the details viewers care about (vertex normals, JPEG texture, `Kd 1`)."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np

from image2model.core.mesh.model import TexturedMesh, face_normals

_FLOAT = 5126
_UINT = 5125
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963


def _pad4(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


def glb_bytes(mesh: TexturedMesh, generator: str = "image2model") -> bytes:
    """An uncompressed binary glTF 2.0 with POSITION, NORMAL, TEXCOORD_0, uint32 indices and a JPEG PBR texture."""
    positions = np.ascontiguousarray(mesh.vertices, dtype="<f4")
    normals = np.ascontiguousarray(mesh.vertex_normals, dtype="<f4")
    texcoords = np.ascontiguousarray(np.column_stack([mesh.uv[:, 0], 1.0 - mesh.uv[:, 1]]), dtype="<f4")
    indices = np.ascontiguousarray(mesh.faces, dtype="<u4").ravel()
    image = mesh.texture_jpeg
    blobs = [
        (positions.tobytes(), _ARRAY_BUFFER),
        (normals.tobytes(), _ARRAY_BUFFER),
        (texcoords.tobytes(), _ARRAY_BUFFER),
        (indices.tobytes(), _ELEMENT_ARRAY_BUFFER),
        (image, None),
    ]
    views, chunks, offset = [], [], 0
    for data, target in blobs:
        view = {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        views.append(view)
        padded = _pad4(data, b"\x00")
        chunks.append(padded)
        offset += len(padded)
    n = len(positions)
    doc = {
        "asset": {"version": "2.0", "generator": generator},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "model"}],
        "meshes": [
            {
                "name": "model",
                "primitives": [
                    {"attributes": {"POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2}, "indices": 3, "material": 0}
                ],
            }
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": _FLOAT,
                "count": n,
                "type": "VEC3",
                "min": positions.min(axis=0).tolist(),
                "max": positions.max(axis=0).tolist(),
            },
            {"bufferView": 1, "componentType": _FLOAT, "count": n, "type": "VEC3"},
            {"bufferView": 2, "componentType": _FLOAT, "count": n, "type": "VEC2"},
            {"bufferView": 3, "componentType": _UINT, "count": int(indices.size), "type": "SCALAR"},
        ],
        "bufferViews": views,
        "buffers": [{"byteLength": offset}],
        "images": [{"bufferView": 4, "mimeType": "image/jpeg"}],
        "samplers": [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}],
        "textures": [{"sampler": 0, "source": 0}],
        "materials": [
            {
                "name": "photo",
                "pbrMetallicRoughness": {
                    "baseColorTexture": {"index": 0},
                    "baseColorFactor": [1.0, 1.0, 1.0, 1.0],
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.9,
                },
            }
        ],
    }
    json_chunk = _pad4(json.dumps(doc, separators=(",", ":")).encode(), b" ")
    bin_chunk = b"".join(chunks)
    total = 12 + 8 + len(json_chunk) + 8 + len(bin_chunk)
    return b"".join(
        [
            struct.pack("<4sII", b"glTF", 2, total),
            struct.pack("<I4s", len(json_chunk), b"JSON"),
            json_chunk,
            struct.pack("<I4s", len(bin_chunk), b"BIN\x00"),
            bin_chunk,
        ]
    )


def write_glb(mesh: TexturedMesh, path: Path) -> Path:
    path.write_bytes(glb_bytes(mesh))
    return path


def _rows(fmt: str, values: np.ndarray) -> str:
    """Format an (n, k) array as text lines quickly (one %-operation instead of a Python loop)."""
    if len(values) == 0:
        return ""
    return (fmt * len(values)) % tuple(values.ravel().tolist())


def obj_text(mesh: TexturedMesh, mtl_name: str) -> str:
    """OBJ with positions, texture coordinates and normals sharing one index per vertex."""
    v = np.round(mesh.vertices, 6)
    vt = np.round(mesh.uv, 6)
    vn = np.round(mesh.vertex_normals, 4)
    f = mesh.faces.astype(np.int64) + 1
    faces = np.repeat(f, 3, axis=1)  # a/a/a b/b/b c/c/c
    return "".join(
        [
            f"# image2model\nmtllib {mtl_name}\no model\n",
            _rows("v %.6f %.6f %.6f\n", v),
            _rows("vt %.6f %.6f\n", vt),
            _rows("vn %.4f %.4f %.4f\n", vn),
            "usemtl photo\ns 1\n",
            _rows("f %d/%d/%d %d/%d/%d %d/%d/%d\n", faces),
        ]
    )


def write_obj_zip(mesh: TexturedMesh, path: Path, stem: str) -> Path:
    """A zip holding `{stem}.obj`, `{stem}.mtl` and `{stem}.jpg` (the MTL uses `Kd 1 1 1` so the texture is not
    darkened)."""
    mtl = (
        "# image2model\nnewmtl photo\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\n"
        f"Ns 10.0\nd 1.0\nillum 1\nmap_Kd {stem}.jpg\n"
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(f"{stem}.obj", obj_text(mesh, f"{stem}.mtl"))
        zf.writestr(f"{stem}.mtl", mtl)
        zf.writestr(zipfile.ZipInfo(f"{stem}.jpg", date_time=(2026, 1, 1, 0, 0, 0)), mesh.texture_jpeg)
    return path


def write_stl(mesh: TexturedMesh, path: Path) -> Path:
    """Binary STL with per-face unit normals."""
    tri = mesh.vertices[mesh.faces]
    fn = face_normals(mesh.vertices, mesh.faces)
    length = np.linalg.norm(fn, axis=1, keepdims=True)
    fn = np.divide(fn, length, out=np.zeros_like(fn), where=length > 0)
    record = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attr", "<u2")])
    data = np.zeros(len(mesh.faces), record)
    data["normal"] = fn
    data["corners"] = tri
    header = b"image2model binary STL".ljust(80, b" ")
    with open(path, "wb") as fh:
        fh.write(header)
        fh.write(struct.pack("<I", len(data)))
        fh.write(data.tobytes())
    return path


def write_ply(mesh: TexturedMesh, path: Path) -> Path:
    """Binary little-endian PLY with vertex normals and RGBA vertex colours sampled from the texture; vertices at
    equal positions (UV seams) are written once, so the file is as closed as the solid."""
    welded = mesh.welded
    colors = mesh.vertex_colors()[welded.first]
    normals = mesh.vertex_normals[welded.first]
    vertex = np.dtype(
        [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
        + [(c, "u1") for c in ("red", "green", "blue", "alpha")]
    )
    vdata = np.empty(len(welded.vertices), vertex)
    for k, name in enumerate(("x", "y", "z")):
        vdata[name] = welded.vertices[:, k]
    for k, name in enumerate(("nx", "ny", "nz")):
        vdata[name] = normals[:, k]
    for k, name in enumerate(("red", "green", "blue", "alpha")):
        vdata[name] = colors[:, k]
    face = np.dtype([("n", "u1"), ("idx", "<i4", 3)])
    fdata = np.empty(len(welded.faces), face)
    fdata["n"] = 3
    fdata["idx"] = welded.faces
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment image2model\n"
        f"element vertex {len(vdata)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property float nx\nproperty float ny\nproperty float nz\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n"
        f"element face {len(fdata)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    with open(path, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(vdata.tobytes())
        fh.write(fdata.tobytes())
    return path
