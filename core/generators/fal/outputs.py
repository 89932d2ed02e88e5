"""What happens to a finished FAL request: pick the mesh out of the result, download it (and FAL's rendered
preview) into our storage, check it, and write the requested formats and our own previews with the same
export code as the local generator. Imports numpy/trimesh: load it only when a result arrives."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
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


def download(http: Any, url: str, limit: int, what: str) -> bytes:
    """GET `url` with the httpx client `http`, refusing more than `limit` bytes.

    Raises GenerationError for permanent failures and TransientDownloadError for retryable ones."""
    import httpx

    try:
        with http.stream("GET", url) as response:
            if response.status_code >= 500 or response.status_code in (408, 429):
                raise TransientDownloadError(
                    f"FAL's file host answered HTTP {response.status_code} for the {what}"
                )
            if response.status_code >= 400:
                raise GenerationError(
                    f"FAL's {what} could not be downloaded (HTTP {response.status_code}); "
                    "the file is gone or was never written. Try again.",
                    {"status_code": response.status_code},
                )
            declared = parse_decimal(response.headers.get("content-length"))
            if declared is not None and declared > limit:
                raise GenerationError(f"FAL's {what} is {declared} bytes, more than our limit of {limit}.")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise GenerationError(f"FAL's {what} is larger than our limit of {limit} bytes.")
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


def write_outputs(
    glb: bytes, formats: Sequence[str], out_dir: Path, stem: str
) -> tuple[list[OutputFile], dict[str, Any]]:
    """Write `{stem}.glb` (FAL's own file, materials intact), the other formats from our TexturedMesh, and our
    previews; returns the files and figures about the mesh."""
    source = read_glb(glb)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[OutputFile] = []
    model_space = normalised(source)
    mesh = textured(model_space) if any(f != "glb" for f in formats) else None
    for fmt in formats:
        if fmt == "glb":
            path = out_dir / f"{stem}.glb"
            if not path.exists():
                path.write_bytes(glb)
        else:
            assert mesh is not None
            path = export.write(fmt, mesh, out_dir / f"{stem}{export.SUFFIXES[fmt]}")
        files.append(OutputFile(path, fmt, "model"))
    small = textured(decimated(model_space, PREVIEW_FACES))
    thumb = preview.write_thumbnail(small, out_dir / f"{stem}.preview.png")
    webp, gif = out_dir / f"{stem}.turntable.webp", out_dir / f"{stem}.turntable.gif"
    preview.write_turntable(preview.turntable_frames(small), webp, gif)
    files += [
        OutputFile(thumb, "png", "preview"),
        OutputFile(webp, "webp", "preview"),
        OutputFile(gif, "gif", "preview"),
    ]
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
    """FAL's rendered preview saved as `{stem}.fal_preview.png` (any image format in, PNG out); None if unreadable."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception:
        return None
    path = out_dir / f"{stem}.fal_preview.png"
    image.save(path, format="PNG")
    return OutputFile(path, "png", "preview")
