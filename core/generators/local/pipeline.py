"""The local generator's stages wired together: decode → cut out → inflate → decimate → texture → check → export
→ previews, with per-stage timings and quality gates."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from image2model.core.errors import GenerationError
from image2model.core.generators.base import GenerationRequest, GenerationResult, OutputFile, ProgressCallback
from image2model.core.generators.local import cutout as _cutout
from image2model.core.generators.local import shaping, texturing
from image2model.core.images import load_image
from image2model.core.mesh import export, preview, quality
from image2model.core.mesh.model import TexturedMesh

WORKING_SIZE = 1024
"""Long side the photo is bounded to before anything else."""
MIN_SIDE = 16
DENSE_FACTOR = 3
"""The dense mesh has about this many times `face_limit` faces before decimation."""
IOU_RASTER = 2048
PREVIEW_FACES = 20000
TURNTABLE_FACES = 3000
"""The turntable's 256 px frames gain nothing from more faces; its per-face rasterising is the preview's cost."""
"""Previews of bigger models are rendered from a copy decimated to this many faces (same look, 10× faster)."""
PLAQUE_THICKNESS = 0.06
"""Plaque half-thickness as a fraction of its long side."""

DEFAULTS: dict[str, Any] = {
    "face_limit": 10000,
    "inflation_depth": 0.75,
    "texture_size": 1024,
    "background_removal": "auto",
}


def iou_threshold(face_limit: int) -> float | None:
    """The silhouette gate for a face budget (coarse budgets legitimately round the outline off)."""
    if face_limit >= 5000:
        return 0.97
    if face_limit >= 1000:
        return 0.95
    return None


@dataclass
class Timer:
    ms: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = round(self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1000.0, 2)


@dataclass
class Model:
    """What the geometry stages produce, before any file is written."""

    mesh: TexturedMesh
    preview_mesh: TexturedMesh
    turntable_mesh: TexturedMesh
    cutout: _cutout.Cutout
    figures: dict[str, Any]
    timings: Timer


def working_image(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Bound the long side to `WORKING_SIZE` (tiny images are enlarged) and pad very thin images to `MIN_SIDE`;
    returns (rgb uint8, alpha uint8 or None)."""
    w, h = image.size
    scale = min(1.0, WORKING_SIZE / max(w, h))
    if max(w, h) < 64:
        scale = 64 / max(w, h)
    if scale != 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BILINEAR
        image = image.resize(size, resample, reducing_gap=None if scale > 1 else 2.0)
    arr = np.asarray(image)
    rgb = np.ascontiguousarray(arr[..., :3])
    alpha = np.ascontiguousarray(arr[..., 3]) if arr.shape[-1] == 4 else None
    pad_y, pad_x = max(0, MIN_SIDE - rgb.shape[0]), max(0, MIN_SIDE - rgb.shape[1])
    if pad_y or pad_x:
        pads = ((pad_y // 2, pad_y - pad_y // 2), (pad_x // 2, pad_x - pad_x // 2))
        rgb = np.pad(rgb, pads + ((0, 0),), mode="edge")
        if alpha is not None:
            alpha = np.pad(alpha, pads, mode="constant")
    return rgb, alpha


def _shape(
    mask: np.ndarray, face_limit: int, depth: float, plaque: bool
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Inflate and decimate within the budget, keeping the mesh closed; retries as the decimator needs."""
    h, w = mask.shape
    max_depth = PLAQUE_THICKNESS * max(h, w) if plaque else None
    dense = max(DENSE_FACTOR * face_limit, 4000)
    dense = min(dense, face_limit + 60_000)  # big budgets: bound the solve's time and memory
    solid = shaping.inflate(mask, dense, depth, max_depth)
    info: dict[str, Any] = {"dense_faces": solid.dense_faces, "grid_cell_px": round(solid.grid_cell, 3)}
    for agg in (7.0, 5.0):
        v, f = shaping.decimate(solid, face_limit, agg)
        topo = quality.topology(f, len(v))
        if topo.watertight and topo.winding_consistent and len(f) <= face_limit:
            info["decimation"] = f"qem agg={agg:g}" if len(f) < len(solid.faces) else "none"
            return v, f, info
    # The decimator could not keep the mesh closed: build directly at the budget instead.
    target = face_limit
    for _ in range(12):
        target = max(8, int(target * 0.8))
        solid = shaping.inflate(mask, target, depth, max_depth, thin_cells=0)
        if len(solid.faces) <= face_limit:
            info.update(
                dense_faces=solid.dense_faces, grid_cell_px=round(solid.grid_cell, 3), decimation="rebuild"
            )
            return solid.vertices, solid.faces, info
    raise GenerationError(
        f"Could not fit this shape into {face_limit} faces; raise face_limit and try again.",
        {"face_limit": face_limit},
    )


def silhouette_iou(vertices_px: np.ndarray, faces: np.ndarray, inside: np.ndarray) -> float:
    """IoU of the model's front silhouette and the cut-out mask, on a raster that puts the object at
    `IOU_RASTER` pixels whatever its size in the photo."""
    import cv2

    ys, xs = np.nonzero(inside)
    if len(xs) == 0:
        return 0.0
    pad = 3
    x0, y0 = xs.min() - pad, ys.min() - pad
    span = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1 + 2 * pad
    r = IOU_RASTER / span
    bw = math.ceil((xs.max() - x0 + 1 + pad) * r)
    bh = math.ceil((ys.max() - y0 + 1 + pad) * r)
    # Resample the mask: crop position (x - x0), pixel centres at (k + 0.5)·r − 0.5.
    m = np.array([[r, 0, (0.5 - x0) * r - 0.5], [0, r, (0.5 - y0) * r - 0.5]], np.float64)
    ref = cv2.warpAffine(inside.astype(np.float32), m, (bw, bh), flags=cv2.INTER_LINEAR) > 0.5
    pts = np.column_stack([vertices_px[:, 0], -vertices_px[:, 1]])
    pts = (pts - (x0, y0) + 0.5) * r - 0.5
    sil = quality.rasterize_silhouette(pts, faces, (bh, bw))
    return quality.iou(sil, ref)


def build_model(image: Image.Image, options: dict[str, Any], progress: ProgressCallback) -> Model:
    """Geometry, texture and checks for one photo (no files written)."""
    timer = Timer()
    opts = {**DEFAULTS, **options}
    face_limit = int(opts["face_limit"])
    with timer.stage("decode"):
        rgb, alpha = working_image(image)
    progress(0.1, "cutting out")
    with timer.stage("cutout"):
        cut = _cutout.cut_out(rgb, alpha, str(opts["background_removal"]))
    progress(0.25, "shaping")
    with timer.stage("shape"):
        v_px, faces, shape_info = _shape(cut.mask, face_limit, float(opts["inflation_depth"]), cut.is_plaque)
    progress(0.45, "texturing")
    inside = cut.mask > 0.5
    with timer.stage("texture"):
        texture, box = texturing.make_texture(
            rgb, inside, int(opts["texture_size"]), erode_px=0 if cut.is_plaque else 2
        )
        uv = texturing.planar_uv(v_px[:, 0], -v_px[:, 1], box)
        lo, hi = v_px.min(axis=0), v_px.max(axis=0)
        extent = float((hi - lo).max()) or 1.0
        vertices = (v_px - (lo + hi) / 2.0) / extent
        mesh = TexturedMesh(vertices, faces, uv, texture)

        def reduced(target: int) -> TexturedMesh:
            if len(faces) <= target:
                return mesh
            pv, pf = shaping.decimate(shaping.Solid(v_px, faces, 0.0, len(faces)), target)
            puv = texturing.planar_uv(pv[:, 0], -pv[:, 1], box)
            return TexturedMesh((pv - (lo + hi) / 2.0) / extent, pf, puv, texture)

        preview_mesh = reduced(PREVIEW_FACES)
        turntable_mesh = reduced(TURNTABLE_FACES)
    progress(0.55, "checking")
    with timer.stage("checks"):
        topo = quality.topology(faces, len(vertices))
        volume = quality.signed_volume(vertices, faces)
        iou = silhouette_iou(v_px, faces, inside)
    # The plaque is a fallback whose outline is ours, not the object's: no silhouette gate for it.
    threshold = None if cut.is_plaque else iou_threshold(face_limit)
    figures = {
        "faces": int(len(faces)),
        "vertices": int(len(vertices)),
        "watertight": topo.watertight,
        "winding_consistent": topo.winding_consistent,
        "euler_number": topo.euler_number,
        "volume": round(volume, 6),
        "extents": [round(float(e), 4) for e in (vertices.max(axis=0) - vertices.min(axis=0))],
        "silhouette_iou": round(iou, 4),
        "silhouette_iou_threshold": threshold,
        **shape_info,
    }
    problems = []
    if not topo.watertight:
        problems.append("the mesh is not closed")
    elif not topo.winding_consistent:
        problems.append("the mesh's faces are not consistently oriented")
    if volume <= 0:
        problems.append("the mesh encloses no volume")
    if len(faces) > face_limit:
        problems.append(f"it has {len(faces)} faces, more than face_limit {face_limit}")
    if threshold is not None and iou < threshold:
        problems.append(f"its outline matches the cut-out only to IoU {iou:.3f} (needs {threshold})")
    if problems:
        raise GenerationError(
            "The model failed its quality checks: "
            + "; ".join(problems)
            + ". Try a photo with a plain background "
            "and a clearly separated object, or a higher face_limit.",
            {"quality": figures, "cutout": {"method": cut.method, **cut.figures}},
        )
    return Model(mesh, preview_mesh, turntable_mesh, cut, figures, timer)


_WRITERS: dict[str, tuple[str, Callable[[TexturedMesh, Path, str], Path]]] = {
    "glb": (".glb", lambda m, p, s: export.write_glb(m, p)),
    "obj": (".obj.zip", lambda m, p, s: export.write_obj_zip(m, p, s)),
    "stl": (".stl", lambda m, p, s: export.write_stl(m, p)),
    "ply": (".ply", lambda m, p, s: export.write_ply(m, p)),
}


def run(request: GenerationRequest, progress: ProgressCallback) -> GenerationResult:
    """The Generator.generate body: build the model, write the requested formats and the previews."""
    start = time.perf_counter()
    progress(0.02, "reading image")
    decode_start = time.perf_counter()
    image = load_image(request.images[0])
    read_ms = (time.perf_counter() - decode_start) * 1000.0
    model = build_model(image, request.options, progress)
    timer = model.timings
    timer.ms["read"] = round(read_ms, 2)
    out_dir, stem = Path(request.out_dir), request.basename
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[OutputFile] = []
    progress(0.6, "exporting")
    for fmt in request.formats:
        suffix, writer = _WRITERS[fmt]
        with timer.stage(fmt):
            path = writer(model.mesh, out_dir / f"{stem}{suffix}", stem)
        files.append(OutputFile(path, fmt, "model"))
    progress(0.7, "rendering previews")
    with timer.stage("preview_png"):
        thumb = preview.write_thumbnail(model.preview_mesh, out_dir / f"{stem}.preview.png")
    files.append(OutputFile(thumb, "png", "preview"))
    progress(0.8, "rendering turntable")
    with timer.stage("turntable"):
        frames = preview.turntable_frames(model.turntable_mesh)
        webp, gif = out_dir / f"{stem}.turntable.webp", out_dir / f"{stem}.turntable.gif"
        preview.write_turntable(frames, webp, gif)
    files += [OutputFile(webp, "webp", "preview"), OutputFile(gif, "gif", "preview")]
    timer.ms["total"] = round((time.perf_counter() - start) * 1000.0, 2)
    progress(1.0, "done")
    metadata: dict[str, Any] = {
        "generator": "local",
        **model.figures,
        "cutout": {"method": model.cutout.method, **model.cutout.figures},
        "options": {**DEFAULTS, **request.options},
        "formats": list(request.formats),
        "input": {"width": image.width, "height": image.height, "has_alpha": image.mode == "RGBA"},
        "timings_ms": timer.ms,
    }
    if model.cutout.warning:
        metadata["warning"] = model.cutout.warning
    return GenerationResult(files=files, metadata=metadata)


def warm_up() -> None:
    """Import the heavy libraries and pay first-call costs (OpenCV k-means, SuperLU, the decimator, the learned
    segmenter when its extra is installed) once."""
    yy, xx = np.mgrid[0:96, 0:96]
    rgb = np.full((96, 96, 3), 240, np.uint8)
    rgb[(xx - 48) ** 2 + (yy - 48) ** 2 < 30**2] = (200, 40, 40)
    model = build_model(Image.fromarray(rgb), {"face_limit": 500}, lambda _f, _s: None)
    export.glb_bytes(model.mesh)
    preview.Renderer(model.mesh).render(64)
    from image2model.core.generators.local import learned

    learned.warm_up()  # the optional segmenter (extra `segment`): loaded here once per worker, if installed
