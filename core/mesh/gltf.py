"""Reading GLB files into our TexturedMesh: a fast path for the single-primitive layout our own writer makes, and
trimesh for anything else (other generators' scenes, vertex colours, several meshes)."""

from __future__ import annotations

import io
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from image2model.core.errors import GenerationError
from image2model.core.mesh.model import TexturedMesh

GLB_MAGIC = b"glTF"
_JSON_CHUNK = b"JSON"
_BIN_CHUNK = b"BIN\x00"
_COMPONENTS = {5120: "i1", 5121: "u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
OUR_GENERATOR = "image2model"
"""`asset.generator` of the GLBs `export.glb_bytes` writes."""


@dataclass(frozen=True)
class GlbChunks:
    """A GLB split into its JSON document, its binary buffer and any further chunks (kept as they are)."""

    doc: dict[str, Any]
    bin: bytes
    rest: list[tuple[bytes, bytes]]
    """(type, data) of chunks after the first two, in order."""


def split_glb(data: bytes, what: str = "The model file") -> GlbChunks:
    """The chunks of a binary glTF; raises GenerationError (naming `what`) when it is not one."""
    if len(data) < 20 or data[:4] != GLB_MAGIC or struct.unpack_from("<I", data, 8)[0] != len(data):
        raise GenerationError(f"{what} is not a GLB (wrong magic bytes or length).")
    chunks: list[tuple[bytes, bytes]] = []
    offset = 12
    while offset + 8 <= len(data):
        length, kind = struct.unpack_from("<I4s", data, offset)
        chunks.append((kind, data[offset + 8 : offset + 8 + length]))
        offset += 8 + length
    if not chunks or chunks[0][0] != _JSON_CHUNK:
        raise GenerationError(f"{what} has no JSON chunk first.")
    try:
        doc = json.loads(chunks[0][1])
    except ValueError as exc:
        raise GenerationError(f"{what} has a JSON chunk that is not JSON ({exc}).") from exc
    if not isinstance(doc, dict):
        raise GenerationError(f"{what} has a JSON chunk that is not an object.")
    rest = chunks[1:]
    binary = b""
    if rest and rest[0][0] == _BIN_CHUNK:
        binary, rest = rest[0][1], rest[1:]
    return GlbChunks(doc, binary, rest)


def read_textured(data: bytes) -> TexturedMesh | None:
    """The mesh of a GLB in the layout our writer makes (one node without a transform, one triangle primitive
    with float POSITION and TEXCOORD_0, optional NORMAL, indices, a base-colour texture in the buffer); None
    for any other layout. Reads the accessors straight from the buffer; the texture is decoded only when used,
    and its JPEG bytes are reused as they are by writers that embed it."""
    try:
        chunks = split_glb(data)
        return _read_simple(chunks.doc, chunks.bin)
    except (GenerationError, KeyError, IndexError, TypeError, ValueError):
        return None


def _read_simple(doc: dict[str, Any], binary: bytes) -> TexturedMesh | None:
    if doc.get("extensionsRequired") or len(doc.get("meshes", ())) != 1 or len(doc.get("nodes", ())) != 1:
        return None
    node = doc["nodes"][0]
    if any(k in node for k in ("matrix", "rotation", "scale", "translation", "children")):
        return None
    primitives = doc["meshes"][0]["primitives"]
    if len(primitives) != 1 or primitives[0].get("mode", 4) != 4 or "indices" not in primitives[0]:
        return None
    prim = primitives[0]
    attributes = prim["attributes"]
    if "POSITION" not in attributes or "TEXCOORD_0" not in attributes:
        return None
    vertices = _accessor(doc, binary, attributes["POSITION"], "VEC3")
    uv = _accessor(doc, binary, attributes["TEXCOORD_0"], "VEC2")
    normals = _accessor(doc, binary, attributes["NORMAL"], "VEC3") if "NORMAL" in attributes else None
    indices = _accessor(doc, binary, prim["indices"], "SCALAR")
    material = doc["materials"][prim["material"]]
    texture = doc["textures"][material["pbrMetallicRoughness"]["baseColorTexture"]["index"]]
    image = doc["images"][texture["source"]]
    view = doc["bufferViews"][image["bufferView"]]
    start = view.get("byteOffset", 0)
    encoded = binary[start : start + view["byteLength"]]
    if vertices is None or uv is None or indices is None or len(indices) % 3 or len(uv) != len(vertices):
        return None
    faces = indices.astype(np.int64).reshape(-1, 3)
    if len(faces) == 0 or faces.max() >= len(vertices):
        return None
    picture = Image.open(io.BytesIO(encoded))
    jpeg = encoded if picture.format == "JPEG" else None
    v64 = vertices.astype(np.float64)
    uv64 = np.column_stack([uv[:, 0], 1.0 - uv[:, 1]]).astype(np.float64)  # glTF's v runs down; ours up
    normals64 = None if normals is None or len(normals) != len(vertices) else normals.astype(np.float64)
    return TexturedMesh(v64, faces, uv64, picture, normals=normals64, _jpeg=jpeg)


def _accessor(doc: dict[str, Any], binary: bytes, index: int, kind: str) -> np.ndarray | None:
    """A tightly packed accessor as an (count, width) array (a flat one for SCALAR); None when strided,
    sparse or of another type."""
    acc = doc["accessors"][index]
    if acc.get("type") != kind or "sparse" in acc or acc.get("normalized"):
        return None
    dtype = np.dtype(_COMPONENTS[acc["componentType"]])
    view = doc["bufferViews"][acc["bufferView"]]
    width = _WIDTH[kind]
    if view.get("byteStride") not in (None, dtype.itemsize * width):
        return None
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    count = int(acc["count"])
    array = np.frombuffer(binary, dtype, count * width, start)
    return array if kind == "SCALAR" else array.reshape(count, width)


def model_mesh(data: bytes, what: str = "The model file") -> tuple[TexturedMesh, bool]:
    """Any GLB as a TexturedMesh in our model space, and whether it was already one of ours (written by
    `export.glb_bytes`, so its bytes can be kept as they are). Raises GenerationError for unreadable files."""
    chunks = split_glb(data, what)
    if chunks.doc.get("asset", {}).get("generator") == OUR_GENERATOR:
        mesh = read_textured(data)
        if mesh is not None:
            return mesh, True
    return textured(normalised(read_glb(data, what))), False


@dataclass
class MeshSource:
    """A welded triangle mesh with either a UV texture or vertex colours."""

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray | None
    image: Image.Image | None
    colors: np.ndarray | None
    """(n, 3) uint8 vertex colours (when there is no single texture)."""


def read_glb(data: bytes, what: str = "The model file") -> MeshSource:
    """Check a GLB (magic, trimesh loads it, it has faces) and flatten its scene into one mesh."""
    if data[:4] != GLB_MAGIC:
        head = data[:16]
        raise GenerationError(
            f"{what} is not a GLB (it starts with {head!r}); the model may have returned another "
            "format or a broken file.",
            {"head": head.hex()},
        )
    import trimesh

    try:
        scene: Any = trimesh.load(io.BytesIO(data), file_type="glb", force="scene", process=False)
        meshes = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    except Exception as exc:  # trimesh raises many kinds on corrupt input
        raise GenerationError(f"{what} could not be read as a GLB ({type(exc).__name__}: {exc}).") from exc
    if not meshes:
        raise GenerationError(f"{what} holds no triangles.")
    if len(meshes) == 1:
        mesh = meshes[0]
        image = _texture_image(mesh)
        uv = getattr(mesh.visual, "uv", None)
        if image is not None and uv is not None and len(uv) == len(mesh.vertices):
            return MeshSource(
                np.asarray(mesh.vertices, np.float64),
                np.asarray(mesh.faces, np.int64),
                np.asarray(uv, np.float64),
                image.convert("RGB"),
                None,
            )
    vertices, faces, colors = [], [], []
    offset = 0
    for mesh in meshes:
        vertices.append(np.asarray(mesh.vertices, np.float64))
        faces.append(np.asarray(mesh.faces, np.int64) + offset)
        colors.append(_vertex_colors(mesh))
        offset += len(mesh.vertices)
    return MeshSource(np.concatenate(vertices), np.concatenate(faces), None, None, np.concatenate(colors))


def _texture_image(mesh: Any) -> Image.Image | None:
    material = getattr(mesh.visual, "material", None)
    if material is None:
        return None
    image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
    return image if isinstance(image, Image.Image) else None


def _vertex_colors(mesh: Any) -> np.ndarray:
    try:
        colors = np.asarray(mesh.visual.to_color().vertex_colors)
        if colors.ndim == 2 and len(colors) == len(mesh.vertices):
            return colors[:, :3].astype(np.uint8)
    except Exception:  # some visuals cannot be sampled: fall back to grey
        pass
    return np.full((len(mesh.vertices), 3), 180, np.uint8)


def normalised(source: MeshSource) -> MeshSource:
    """Centred on its bounding box, largest extent 1 (our model space; glTF is Y up, +Z front like ours)."""
    lo, hi = source.vertices.min(axis=0), source.vertices.max(axis=0)
    extent = float((hi - lo).max()) or 1.0
    vertices = (source.vertices - (lo + hi) / 2.0) / extent
    return MeshSource(vertices, source.faces, source.uv, source.image, source.colors)


def decimated(source: MeshSource, target: int) -> MeshSource:
    """A copy with about `target` faces; UVs/colours taken from the nearest original vertex (for previews)."""
    if len(source.faces) <= target:
        return source
    import fast_simplification
    from scipy.spatial import cKDTree

    reduction = 1.0 - target / len(source.faces)
    vertices, faces = fast_simplification.simplify(
        source.vertices.astype(np.float32), source.faces.astype(np.int32), target_reduction=reduction
    )
    nearest = cKDTree(source.vertices).query(vertices)[1]
    return MeshSource(
        np.asarray(vertices, np.float64),
        np.asarray(faces, np.int64),
        None if source.uv is None else source.uv[nearest],
        source.image,
        None if source.colors is None else source.colors[nearest],
    )


def textured(source: MeshSource) -> TexturedMesh:
    """Our TexturedMesh. Vertex colours become a small atlas with one texel per face (faces get their own
    corners so the renderer never interpolates between unrelated texels)."""
    if source.uv is not None and source.image is not None:
        return TexturedMesh(source.vertices, source.faces, source.uv, source.image)
    colors = source.colors if source.colors is not None else np.full((len(source.vertices), 3), 180, np.uint8)
    face_colors = colors[source.faces].astype(np.float64).mean(axis=1).round().astype(np.uint8)
    n = len(source.faces)
    side = max(1, math.ceil(math.sqrt(n)))
    atlas = np.zeros((side * side, 3), np.uint8)
    atlas[:n] = face_colors
    k = np.arange(n)
    u = (k % side + 0.5) / side
    v = 1.0 - (k // side + 0.5) / side
    uv = np.repeat(np.column_stack([u, v]), 3, axis=0)
    vertices = source.vertices[source.faces.reshape(-1)]
    faces = np.arange(3 * n, dtype=np.int64).reshape(n, 3)
    return TexturedMesh(vertices, faces, uv, Image.fromarray(atlas.reshape(side, side, 3)))
