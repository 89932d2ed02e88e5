"""What happens to a finished FAL request: pick the mesh out of the result, download it (and FAL's rendered
preview) into our storage, check it, and write the requested formats and our own previews with the same
export code as the local generator. Imports numpy/trimesh: load it only when a result arrives."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from image2model.core.errors import GenerationError
from image2model.core.generators.base import OutputFile
from image2model.core.generators.fal.connection import TransientError
from image2model.core.mesh import export, gltf, preview
from image2model.core.mesh.gltf import MeshSource, decimated, normalised, textured
from image2model.core.numbers import parse_decimal

PREVIEW_FACES = 20000
"""Previews of bigger models are rendered from a decimated copy (same look, far faster)."""


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
            declared = parse_decimal(response.headers.get("content-length"))
            if declared is not None and declared > limit:
                raise too_large(what, limit, declared)
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise too_large(what, limit)
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.TransportError as exc:
        raise TransientDownloadError(f"could not download FAL's {what} ({type(exc).__name__})") from exc


def read_glb(data: bytes) -> MeshSource:
    """Check FAL's GLB (magic, trimesh loads it, it has faces) and flatten its scene into one mesh."""
    return gltf.read_glb(data, "FAL's model file")


def check_glb(data: bytes) -> None:
    """Cheap check of a downloaded mesh before it is stored: glTF binary magic and a consistent length."""
    if len(data) < 20 or data[:4] != b"glTF" or int.from_bytes(data[8:12], "little") != len(data):
        raise GenerationError("FAL's model file is not a GLB (wrong magic bytes or length); try again.")


def glb_figures(data: bytes) -> dict[str, Any]:
    """Faces, vertices, whether it is textured and its size, read from a checked GLB's JSON chunk alone (no mesh
    is loaded, so a fetched model can be listed at once). Raises GenerationError when the chunk is unreadable or
    describes no triangles."""
    doc = gltf.split_glb(data, "FAL's model file").doc
    try:
        accessors = doc.get("accessors", [])
        faces = vertices = 0
        for mesh in doc.get("meshes", []):
            for primitive in mesh.get("primitives", []):
                if primitive.get("mode", 4) != 4:  # triangles only
                    continue
                count = int(accessors[primitive["attributes"]["POSITION"]]["count"])
                vertices += count
                indices = primitive.get("indices")
                faces += (int(accessors[indices]["count"]) if indices is not None else count) // 3
        textured = any(
            "baseColorTexture" in (material.get("pbrMetallicRoughness") or {})
            for material in doc.get("materials", [])
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
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
        assert mesh is not None
        add(OutputFile(export.write(fmt, mesh, out_dir / f"{stem}{export.SUFFIXES[fmt]}"), fmt, "model"))
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
