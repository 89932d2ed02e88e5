"""Writers for the download formats: GLB (uncompressed glTF 2.0), OBJ zip (OBJ + MTL + JPEG), binary STL, binary PLY,
3MF (the printers' format, with the texture's colours as per-vertex colours), and the GLB-JSON rewrite that adds
`asset.extras` to any GLB.

Written by hand with numpy rather than through trimesh: each is a few dozen lines, needs no heavy import in the
worker, and keeps control of the details viewers care about (vertex normals, JPEG texture, `Kd 1`)."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from image2model.core.mesh.gltf import OUR_GENERATOR, split_glb
from image2model.core.mesh.model import TexturedMesh, face_normals

_FLOAT = 5126
_UINT = 5125
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963


def _pad4(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


def glb_bytes(
    mesh: TexturedMesh, generator: str = OUR_GENERATOR, extras: dict[str, Any] | None = None
) -> bytes:
    """An uncompressed binary glTF 2.0 with POSITION, NORMAL, TEXCOORD_0, uint32 indices and a JPEG PBR texture;
    `extras` become `asset.extras`."""
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
    asset: dict[str, Any] = {"version": "2.0", "generator": generator}
    if extras:
        asset["extras"] = extras
    doc = {
        "asset": asset,
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
    return _glb(doc, b"".join(chunks), [])


def _glb(doc: dict[str, Any], binary: bytes, rest: list[tuple[bytes, bytes]]) -> bytes:
    """Assemble a GLB: the JSON document, the binary chunk (when there is one) and any further chunks."""
    chunks = [(b"JSON", _pad4(json.dumps(doc, separators=(",", ":")).encode(), b" "))]
    if binary:
        chunks.append((b"BIN\x00", _pad4(binary, b"\x00")))
    chunks += [(kind, _pad4(data, b"\x00")) for kind, data in rest]
    total = 12 + sum(8 + len(data) for _, data in chunks)
    parts = [struct.pack("<4sII", b"glTF", 2, total)]
    for kind, data in chunks:
        parts += [struct.pack("<I4s", len(data), kind), data]
    return b"".join(parts)


def with_extras(glb: bytes, extras: dict[str, Any]) -> bytes:
    """Any GLB with `extras` merged into its `asset.extras` (an existing non-object value is replaced); the
    binary buffer and every other part of the document are kept as they are."""
    chunks = split_glb(glb)
    doc = chunks.doc
    asset = doc.setdefault("asset", {"version": "2.0"})
    current = asset.get("extras")
    asset["extras"] = {**(current if isinstance(current, dict) else {}), **extras}
    return _glb(doc, chunks.bin, chunks.rest)


def write_glb(mesh: TexturedMesh, path: Path, extras: dict[str, Any] | None = None) -> Path:
    path.write_bytes(glb_bytes(mesh, extras=extras))
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


_3MF_CORE = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
_3MF_MATERIAL = "http://schemas.microsoft.com/3dmanufacturing/material/2015/02"
_3MF_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
    "</Types>"
)
_3MF_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
    'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/>'
    "</Relationships>"
)


def threemf_bytes(mesh: TexturedMesh, unit: str = "millimeter") -> bytes:
    """A 3MF package (core spec plus the Materials extension): the welded, closed mesh in `unit`s, and the
    texture's colours as a `colorgroup` whose entries each triangle corner references (`p1 p2 p3`), so colours
    stay right on both sides of a UV seam. Consumers that ignore the extension read the plain mesh."""
    welded = mesh.welded
    faces = welded.faces
    rgb = mesh.vertex_colors()[:, :3].astype(np.int64)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    palette, color_of_vertex = np.unique(packed, return_inverse=True)
    corners = color_of_vertex.ravel()[mesh.faces]
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    triangles = np.column_stack([faces[keep], corners[keep]])
    colors = "".join(f'<m:color color="#{int(c):06X}"/>' for c in palette)
    model = "".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>\n',
            f'<model unit="{unit}" xml:lang="en-US" xmlns="{_3MF_CORE}" xmlns:m="{_3MF_MATERIAL}">',
            '<metadata name="Application">image2model</metadata>',
            f'<resources><m:colorgroup id="1">{colors}</m:colorgroup>',
            '<object id="2" type="model" name="model" pid="1" pindex="0"><mesh><vertices>',
            _rows('<vertex x="%.6f" y="%.6f" z="%.6f"/>', welded.vertices),
            "</vertices><triangles>",
            _rows('<triangle v1="%d" v2="%d" v3="%d" p1="%d" p2="%d" p3="%d"/>', triangles),
            '</triangles></mesh></object></resources><build><item objectid="2"/></build></model>',
        ]
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("[Content_Types].xml", _3MF_CONTENT_TYPES)
        zf.writestr("_rels/.rels", _3MF_RELS)
        zf.writestr("3D/3dmodel.model", model)
    return out.getvalue()


def write_3mf(mesh: TexturedMesh, path: Path, unit: str = "millimeter") -> Path:
    """`threemf_bytes` written to `path`."""
    path.write_bytes(threemf_bytes(mesh, unit))
    return path


SUFFIXES: dict[str, str] = {"glb": ".glb", "obj": ".obj.zip", "stl": ".stl", "ply": ".ply", "3mf": ".3mf"}
"""File name ending of each format this module writes."""


def write(fmt: str, mesh: TexturedMesh, path: Path, extras: dict[str, Any] | None = None) -> Path:
    """Write `mesh` as `fmt` (a key of `SUFFIXES`) to `path`: the OBJ zip names its members after the file's
    stem; `extras` go into a GLB's `asset.extras`."""
    if fmt == "glb":
        return write_glb(mesh, path, extras)
    if fmt == "obj":
        return write_obj_zip(mesh, path, path.name.removesuffix(SUFFIXES["obj"]))
    if fmt == "stl":
        return write_stl(mesh, path)
    if fmt == "ply":
        return write_ply(mesh, path)
    if fmt == "3mf":
        return write_3mf(mesh, path)
    raise ValueError(f"no writer for format {fmt!r}")
