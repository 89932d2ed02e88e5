"""What every local model ends with, whichever path built it: the stage timer, the quality gates, the download
formats and the previews (PNG still, turntable as WebP and GIF)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from image2model.core.generators.base import Landed, OutputFile, ProgressCallback
from image2model.core.images import mask_bounds
from image2model.core.mesh import export, preview, quality
from image2model.core.mesh.model import TexturedMesh

PREVIEW_FACES = 20000
"""Previews of bigger models are rendered from a copy decimated to this many faces (same look, 10× faster)."""
TURNTABLE_FACES = 3000
"""The turntable's 256 px frames gain nothing from more faces; its per-face rasterising is the preview's cost."""


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


def gate_problems(
    topology: quality.Topology,
    volume: float,
    faces: int,
    face_limit: int,
    iou: float,
    threshold: float | None,
    outline_of: str,
    slack: float = 0.0,
) -> list[str]:
    """Why a model may not be offered, in words (empty when it passes): closed, oriented, enclosing volume,
    within the budget, and its outline matching `outline_of` ("the cut-out", "the views") to `threshold` (less
    `slack`, what a best rebuild may still miss it by)."""
    problems = []
    if not topology.watertight:
        problems.append("the mesh is not closed")
    elif not topology.winding_consistent:
        problems.append("the mesh's faces are not consistently oriented")
    if volume <= 0:
        problems.append("the mesh encloses no volume")
    if faces > face_limit:
        problems.append(f"it has {faces} faces, more than face_limit {face_limit}")
    if threshold is not None and iou < threshold - slack:
        problems.append(f"its outline matches {outline_of} only to IoU {iou:.3f} (needs {threshold})")
    return problems


def write_outputs(
    mesh: TexturedMesh,
    reduced: Callable[[int], TexturedMesh],
    cuts: Sequence[tuple[np.ndarray, np.ndarray]],
    formats: list[str],
    out_dir: Path,
    stem: str,
    timer: Timer,
    progress: ProgressCallback,
    landed: Landed | None = None,
) -> list[OutputFile]:
    """Write `{stem}.<format>` for each requested format (the GLB first: it is what a viewer shows), then
    `{stem}.preview.png` and the turntable (rendered from `reduced(PREVIEW_FACES)` and `reduced(TURNTABLE_FACES)`,
    made only once the model files are out) and `{stem}.cutout.png` (the cut-out `cuts`, see `write_cutout`),
    calling `landed` with each file once written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[OutputFile] = []

    def add(out: OutputFile) -> None:
        files.append(out)
        if landed is not None:
            landed(out)

    progress(0.6, "exporting")
    for fmt in sorted(formats, key=lambda f: f != "glb"):
        with timer.stage(fmt):
            path = export.write(fmt, mesh, out_dir / f"{stem}{export.SUFFIXES[fmt]}")
        add(OutputFile(path, fmt, "model"))
    progress(0.7, "rendering previews")
    with timer.stage("preview_meshes"):
        preview_mesh, turntable_mesh = reduced(PREVIEW_FACES), reduced(TURNTABLE_FACES)
    with timer.stage("preview_png"):
        thumb = preview.write_thumbnail(preview_mesh, out_dir / f"{stem}.preview.png")
    add(OutputFile(thumb, "png", "preview"))
    progress(0.8, "rendering turntable")
    with timer.stage("turntable"):
        frames = preview.turntable_frames(turntable_mesh)
        webp, gif = out_dir / f"{stem}.turntable.webp", out_dir / f"{stem}.turntable.gif"
        preview.write_turntable(frames, webp, gif)
    add(OutputFile(webp, "webp", "preview"))
    add(OutputFile(gif, "gif", "preview"))
    with timer.stage("cutout_png"):
        cut_png = write_cutout(cuts, out_dir / f"{stem}.cutout.png")
    add(OutputFile(cut_png, "png", "cutout"))
    return files


CUTOUT_GAP = 16
"""Transparent pixels between the views of a multi-view cut-out sheet."""


def _cutout_rgba(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The working image cropped to the object with a small margin, alpha = the mask (colour cleared where fully
    transparent, which also keeps the file small)."""
    visible = mask >= 0.5 / 255.0  # alpha rounds to at least 1 (cropped first: the full frame costs 4×)
    top, bottom, left, right = mask_bounds(visible) or (0, mask.shape[0] - 1, 0, mask.shape[1] - 1)
    m = max(2, round(0.01 * max(mask.shape)))
    y0, y1 = max(top - m, 0), min(bottom + m + 1, mask.shape[0])
    x0, x1 = max(left - m, 0), min(right + m + 1, mask.shape[1])
    a = np.clip(mask[y0:y1, x0:x1] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.dstack([rgb[y0:y1, x0:x1] * (a > 0)[..., None], a])


def write_cutout(cuts: Sequence[tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """The cut-outs the model was made from, as one RGBA PNG: each (working image, mask) cropped to its object;
    several views stand side by side in their order, scaled to the first one's height."""
    crops = [_cutout_rgba(rgb, mask) for rgb, mask in cuts]
    height = crops[0].shape[0]
    tiles = [Image.fromarray(crops[0], "RGBA")]
    for crop in crops[1:]:
        width = max(1, round(crop.shape[1] * height / crop.shape[0]))
        tiles.append(Image.fromarray(crop, "RGBA").resize((width, height), Image.Resampling.BILINEAR))
    sheet = Image.new("RGBA", (sum(t.width for t in tiles) + CUTOUT_GAP * (len(tiles) - 1), height))
    x = 0
    for tile in tiles:
        sheet.paste(tile, (x, 0))
        x += tile.width + CUTOUT_GAP
    sheet.save(path, format="PNG", compress_level=1)
    return path
