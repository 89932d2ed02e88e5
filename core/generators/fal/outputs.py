"""What happens to a finished FAL request: pick the mesh out of the result, download it (and FAL's rendered
preview) into our storage, check it, and write the other requested formats (and our own previews, when FAL sent
none) with the same export code as the local generator. Imports numpy: load it only when a result arrives."""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from image2model.core.errors import GenerationError
from image2model.core.generators.base import OutputFile
from image2model.core.generators.fal.connection import TransientError
from image2model.core.mesh import export, preview
from image2model.core.mesh.model import TexturedMesh

PREVIEW_FACES = 20000
"""Previews of bigger models are rendered from a decimated copy (same look, far faster)."""
GLB_MAGIC = b"glTF"


TransientDownloadError = TransientError
"""The file host failed in a way worth retrying (5xx, transport error)."""


def pick_file(result: Any, keys: Sequence[str]) -> tuple[str, dict[str, Any]] | None:
    """The first of `keys` in FAL's result that holds a File (`{"url": ...}`), as (field, file)."""
    if not isinstance(result, Mapping):
        return None
    for key in keys:
        value = result.get(key)
        if isinstance(value, Mapping) and isinstance(value.get("url"), str) and value["url"]:
            return key, dict(value)
    return None


def refuse(status: int, what: str) -> None:
    """Raise for a file host's answer that carries no file: TransientDownloadError (5xx, 408, 429: try again)
    or GenerationError (any other 4xx)."""
    if status >= 500 or status in (408, 429):
        raise TransientDownloadError(f"FAL's file host answered HTTP {status} for the {what}")
    if status >= 400:
        raise GenerationError(
            f"FAL's {what} could not be downloaded (HTTP {status}); the file is gone or was never written. "
            "Try again.",
            {"status_code": status},
        )


def too_large(what: str, limit: int, declared: int | None = None) -> GenerationError:
    if declared is not None:
        return GenerationError(f"FAL's {what} is {declared} bytes, more than our limit of {limit}.")
    return GenerationError(f"FAL's {what} is larger than our limit of {limit} bytes.")


def download(http: Any, url: str, limit: int, what: str) -> bytes:
    """GET `url` with the httpx client `http`, refusing more than `limit` bytes.

    Raises GenerationError for permanent failures and TransientDownloadError for retryable ones."""
    import httpx

    try:
        with http.stream("GET", url) as response:
            refuse(response.status_code, what)
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise too_large(what, limit, int(declared))
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise too_large(what, limit)
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.TransportError as exc:
        raise TransientDownloadError(f"could not download FAL's {what} ({type(exc).__name__})") from exc


@dataclass
class MeshSource:
    """A welded triangle mesh with either a UV texture or vertex colours."""

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray | None
    image: Image.Image | None
    colors: np.ndarray | None
    """(n, 3) uint8 vertex colours (when there is no single texture)."""


def read_glb(data: bytes) -> MeshSource:
    """Check FAL's GLB (magic, trimesh loads it, it has faces) and flatten its scene into one mesh."""
    if data[:4] != GLB_MAGIC:
        head = data[:16]
        raise GenerationError(
            f"FAL's model file is not a GLB (it starts with {head!r}); the model may have returned another "
            "format or a broken file.",
            {"head": head.hex()},
        )
    import trimesh

    try:
        scene: Any = trimesh.load(io.BytesIO(data), file_type="glb", force="scene", process=False)
        meshes = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    except Exception as exc:  # trimesh raises many kinds on corrupt input
        raise GenerationError(f"FAL's GLB could not be read ({type(exc).__name__}: {exc}).") from exc
    if not meshes:
        raise GenerationError("FAL's GLB holds no triangles.")
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
    """A copy with about `target` faces; UVs/colours taken from the nearest original vertex."""
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


_WRITERS = {
    "obj": (".obj.zip", lambda m, p, s: export.write_obj_zip(m, p, s)),
    "stl": (".stl", lambda m, p, s: export.write_stl(m, p)),
    "ply": (".ply", lambda m, p, s: export.write_ply(m, p)),
}


def check_glb(data: bytes) -> None:
    """Cheap check of a downloaded mesh before it is stored: glTF binary magic and a consistent length."""
    if len(data) < 20 or data[:4] != b"glTF" or int.from_bytes(data[8:12], "little") != len(data):
        raise GenerationError("FAL's model file is not a GLB (wrong magic bytes or length); try again.")


def glb_figures(data: bytes) -> dict[str, Any]:
    """Faces, vertices, whether it is textured and its size, read from a checked GLB's JSON chunk alone (no mesh
    is loaded, so a fetched model can be listed at once). Raises GenerationError when the chunk is unreadable or
    describes no triangles."""
    try:
        length, kind = struct.unpack_from("<I4s", data, 12)
        if kind != b"JSON":
            raise ValueError("the first chunk is not JSON")
        gltf = json.loads(data[20 : 20 + length])
        accessors = gltf.get("accessors", [])
        faces = vertices = 0
        for mesh in gltf.get("meshes", []):
            for primitive in mesh.get("primitives", []):
                if primitive.get("mode", 4) != 4:  # triangles only
                    continue
                count = int(accessors[primitive["attributes"]["POSITION"]]["count"])
                vertices += count
                indices = primitive.get("indices")
                faces += (int(accessors[indices]["count"]) if indices is not None else count) // 3
        textured = any(
            "baseColorTexture" in (material.get("pbrMetallicRoughness") or {})
            for material in gltf.get("materials", [])
        )
    except (struct.error, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise GenerationError(f"FAL's GLB could not be read ({type(exc).__name__}: {exc}).") from exc
    if not faces:
        raise GenerationError("FAL's GLB holds no triangles.")
    return {"faces": faces, "vertices": vertices, "textured": textured, "mesh_bytes": len(data)}


def write_outputs(
    glb: bytes,
    formats: Sequence[str],
    out_dir: Path,
    stem: str,
    previews: bool = True,
    landed: Callable[[OutputFile], None] | None = None,
) -> tuple[list[OutputFile], dict[str, Any]]:
    """Write the other `formats` (not glb: FAL's own file is kept as it came) from our TexturedMesh, then our
    previews unless told not to, calling `landed` with each file once written; returns the files and figures
    about the mesh."""
    source = read_glb(glb)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[OutputFile] = []

    def add(out: OutputFile) -> None:
        files.append(out)
        if landed is not None:
            landed(out)

    model_space = normalised(source)
    mesh = textured(model_space) if formats else None
    for fmt in formats:
        suffix, writer = _WRITERS[fmt]
        assert mesh is not None
        add(OutputFile(writer(mesh, out_dir / f"{stem}{suffix}", stem), fmt, "model"))
    if previews:
        small = textured(decimated(model_space, PREVIEW_FACES))
        add(OutputFile(preview.write_thumbnail(small, out_dir / f"{stem}.preview.png"), "png", "preview"))
        webp, gif = out_dir / f"{stem}.turntable.webp", out_dir / f"{stem}.turntable.gif"
        preview.write_turntable(preview.turntable_frames(small), webp, gif)
        add(OutputFile(webp, "webp", "preview"))
        add(OutputFile(gif, "gif", "preview"))
    lo, hi = source.vertices.min(axis=0), source.vertices.max(axis=0)
    figures = {
        "faces": int(len(source.faces)),
        "vertices": int(len(source.vertices)),
        "textured": source.image is not None,
        "extents": [round(float(e), 4) for e in hi - lo],
        "mesh_bytes": len(glb),
    }
    return files, figures


def write_fal_preview(data: bytes, out_dir: Path, stem: str) -> OutputFile | None:
    """FAL's rendered preview saved as our preview, `{stem}.preview.png` (any image format in, PNG out: a PNG is
    kept as it came): it stands in for the previews we would render. None if unreadable."""
    path = out_dir / f"{stem}.preview.png"
    try:
        image = Image.open(io.BytesIO(data))
        if image.format == "PNG":  # a well-formed header is enough to keep it as it came
            path.write_bytes(data)
            return OutputFile(path, "png", "preview")
        image.load()
    except Exception:
        return None
    image.save(path, format="PNG", compress_level=1)
    return OutputFile(path, "png", "preview")
