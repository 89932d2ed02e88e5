"""The Export panel's work, free of Gradio: its controls checked into `Client.export` arguments, the export made
by the job API from the shown model's stored mesh, and its file downloaded for the session."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image2model.core.client import AsyncClient
from image2model.core.errors import ExportFailed
from image2model.core.models import EXPORT_FACE_LIMIT, EXPORT_FORMATS, EXPORT_HEIGHT_MM, FileEntry

FORMATS = EXPORT_FORMATS
"""What the panel offers (glb, obj, stl, ply, 3mf)."""


@dataclass(frozen=True)
class ExportChoice:
    """What the user asked the panel for, checked."""

    format: str
    face_limit: int | None = None
    height_mm: float | None = None
    z_up: bool = False
    bottom: bool = False

    def arguments(self) -> dict[str, Any]:
        """Keyword arguments of `Client.export` (unset options left to the server's defaults)."""
        return {
            "formats": [self.format],
            "face_limit": self.face_limit,
            "height_mm": self.height_mm,
            "up": "z" if self.z_up else None,
            "origin": "bottom" if self.bottom else None,
        }

    def describe(self) -> str:
        """The choice in words, e.g. "STL, 20,000 faces, 80 mm tall, Z up"."""
        parts = [self.format.upper()]
        if self.face_limit is not None:
            parts.append(f"{self.face_limit:,} faces at most")
        if self.height_mm is not None:
            parts.append(f"{self.height_mm:g} mm tall")
        if self.z_up:
            parts.append("Z up")
        if self.bottom:
            parts.append("origin at the bottom")
        return ", ".join(parts)


def export_choice(
    fmt: str | None, faces: float | None, height_mm: float | None, z_up: bool, bottom: bool
) -> ExportChoice:
    """The panel's values checked; ValueError with a sentence the user can act on. An empty (or 0) face count
    keeps the model's faces, an empty (or 0) height its unitless size."""
    if fmt is None or fmt not in FORMATS:
        raise ValueError(f"Pick a format: {', '.join(f.upper() for f in FORMATS)}.")
    face_limit: int | None = None
    if faces:
        low, high = EXPORT_FACE_LIMIT
        if not math.isfinite(faces) or faces != int(faces) or not low <= faces <= high:
            raise ValueError(f"Face count must be a whole number from {low} to {high:,} (0 keeps them all).")
        face_limit = int(faces)
    height: float | None = None
    if height_mm:
        low_mm, high_mm = EXPORT_HEIGHT_MM
        if not math.isfinite(height_mm) or not low_mm < height_mm <= high_mm:
            raise ValueError(
                f"Height must be more than {low_mm:g} and at most {high_mm:,.0f} mm (0 for no units)."
            )
        height = float(height_mm)
    return ExportChoice(fmt, face_limit, height, bool(z_up), bool(bottom))


async def run_export(
    client: AsyncClient, job_id: str, file_id: str, choice: ExportChoice, dest_dir: Path
) -> tuple[Path, FileEntry]:
    """Have the API export the item `file_id` of `job_id` as `choice` says and download the file; returns its path
    and listing entry. Raises the client's typed errors (`ExportFailed`, `JobNotFound`, ...)."""
    export = await client.export(job_id, files=[file_id], **choice.arguments())
    entry = next((e for e in export.files if e.format == choice.format), None)
    if entry is None:
        raise ExportFailed(
            f"The server made no {choice.format.upper()} file.", {"export_id": export.export_id}
        )
    return await client.download(entry, dest_dir=dest_dir), entry
