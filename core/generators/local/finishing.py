"""What every local model ends with, whichever path built it: the stage timer, the quality gates, the download
formats and the previews (PNG still, turntable as WebP and GIF)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from image2model.core.generators.base import OutputFile, ProgressCallback
from image2model.core.mesh import export, preview, quality
from image2model.core.mesh.model import TexturedMesh


@dataclass
class Timer:
    """Milliseconds per named stage (a stage entered twice adds up)."""

    ms: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = round(self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1000.0, 2)


WRITERS: dict[str, tuple[str, Callable[[TexturedMesh, Path, str], Path]]] = {
    "glb": (".glb", lambda m, p, s: export.write_glb(m, p)),
    "obj": (".obj.zip", lambda m, p, s: export.write_obj_zip(m, p, s)),
    "stl": (".stl", lambda m, p, s: export.write_stl(m, p)),
    "ply": (".ply", lambda m, p, s: export.write_ply(m, p)),
}
"""Format → (file suffix, writer(mesh, path, stem))."""


def gate_problems(
    topology: quality.Topology,
    volume: float,
    faces: int,
    face_limit: int,
    iou: float,
    threshold: float | None,
    outline_of: str,
) -> list[str]:
    """Why a model may not be offered, in words (empty when it passes): closed, oriented, enclosing volume,
    within the budget, and its outline matching `outline_of` ("the cut-out", "the views") to `threshold`."""
    problems = []
    if not topology.watertight:
        problems.append("the mesh is not closed")
    elif not topology.winding_consistent:
        problems.append("the mesh's faces are not consistently oriented")
    if volume <= 0:
        problems.append("the mesh encloses no volume")
    if faces > face_limit:
        problems.append(f"it has {faces} faces, more than face_limit {face_limit}")
    if threshold is not None and iou < threshold:
        problems.append(f"its outline matches {outline_of} only to IoU {iou:.3f} (needs {threshold})")
    return problems


def write_outputs(
    mesh: TexturedMesh,
    preview_mesh: TexturedMesh,
    turntable_mesh: TexturedMesh,
    formats: list[str],
    out_dir: Path,
    stem: str,
    timer: Timer,
    progress: ProgressCallback,
) -> list[OutputFile]:
    """Write `{stem}.<format>` for each requested format, then `{stem}.preview.png` and the turntable."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[OutputFile] = []
    progress(0.6, "exporting")
    for fmt in formats:
        suffix, writer = WRITERS[fmt]
        with timer.stage(fmt):
            path = writer(mesh, out_dir / f"{stem}{suffix}", stem)
        files.append(OutputFile(path, fmt, "model"))
    progress(0.7, "rendering previews")
    with timer.stage("preview_png"):
        thumb = preview.write_thumbnail(preview_mesh, out_dir / f"{stem}.preview.png")
    files.append(OutputFile(thumb, "png", "preview"))
    progress(0.8, "rendering turntable")
    with timer.stage("turntable"):
        frames = preview.turntable_frames(turntable_mesh)
        webp, gif = out_dir / f"{stem}.turntable.webp", out_dir / f"{stem}.turntable.gif"
        preview.write_turntable(frames, webp, gif)
    files += [OutputFile(webp, "webp", "preview"), OutputFile(gif, "gif", "preview")]
    return files
