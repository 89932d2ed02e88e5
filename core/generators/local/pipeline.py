"""The local generator's stages wired together: decode → cut out → inflate → decimate → texture → check → export
→ previews, with per-stage timings and quality gates."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from image2model.core.errors import GenerationError
from image2model.core.generators.base import (
    GenerationRequest,
    GenerationResult,
    Landed,
    ProgressCallback,
)
from image2model.core.generators.local import cutout as _cutout
from image2model.core.generators.local import finishing, shaping, silhouette, texturing
from image2model.core.images import load_image, mask_bounds
from image2model.core.mesh import export, preview, quality
from image2model.core.mesh.model import TexturedMesh

WORKING_SIZE = 1024
"""Long side the photo is bounded to before anything else."""
MIN_SIDE = 16
DENSE_FACTOR = 1.5
"""The dense mesh has about this many times `face_limit` faces before decimation, and at least `DENSE_MIN`."""
DENSE_MIN = 15000
"""Enough faces to trace thin parts (a chair's legs) before a small budget is decimated into."""
IOU_RASTER = 1024
"""The outline check rasterises the object at this many pixels across: the working image's own resolution (a
finer raster cost 4× and moved no gate's verdict)."""
PLAQUE_THICKNESS = 0.06
"""Plaque half-thickness as a fraction of its long side."""

DEFAULTS: dict[str, Any] = {
    "face_limit": 10000,
    "inflation_depth": 0.75,
    "texture_size": 1024,
    "background_removal": "auto",
    "shape": "auto",
}
GATE_SLACK = 0.03
"""An outline this far below the gate after every rebuild is still offered (a hard shape at a small budget); below
that, the input is broken and the item fails."""


def iou_threshold(face_limit: int) -> float | None:
    """The silhouette gate for a face budget (coarse budgets legitimately round the outline off)."""
    if face_limit >= 5000:
        return 0.97
    if face_limit >= 1000:
        return 0.95
    return None


@dataclass
class Model:
    """What the geometry stages produce, before any file is written."""

    mesh: TexturedMesh
    reduced: Callable[[int], TexturedMesh]
    """The model decimated to at most that many faces (the model itself when it has no more)."""
    cutout: _cutout.Cutout
    rgb: np.ndarray
    """The working image the cut-out belongs to."""
    closed: tuple[np.ndarray, np.ndarray]
    """The model before its UV seams, in working-image pixels (y up): vertices and faces."""
    figures: dict[str, Any]
    timings: finishing.Timer

    @cached_property
    def preview_mesh(self) -> TexturedMesh:
        """What the PNG preview is rendered from (made when first asked for: a GLB alone does not need it)."""
        return self.reduced(finishing.PREVIEW_FACES)

    @cached_property
    def turntable_mesh(self) -> TexturedMesh:
        """What the turntable is rendered from (made when first asked for)."""
        return self.reduced(finishing.TURNTABLE_FACES)


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


@dataclass
class Shaped:
    """The closed solid at the budget (pixel units, y up) and how it was reached."""

    vertices: np.ndarray
    faces: np.ndarray
    solid: shaping.Solid
    """The dense solid it was decimated from."""
    outline: Outline
    info: dict[str, Any]

    @property
    def iou(self) -> float:
        return self.outline.iou


def _shape(mask: np.ndarray, plan: silhouette.Plan, face_limit: int, depth: float, plaque: bool) -> Shaped:
    """Shape and decimate within the budget, keeping the mesh closed and its outline on the cut-out.

    When the outline misses the silhouette gate, the solid is rebuilt rather than the item failed: a
    boundary-preserving decimation (on a copy flattened in depth), then a grid twice as fine; the best attempt
    wins. Only an outline far below the gate (a broken input) fails."""
    h, w = mask.shape
    inside = mask > 0.5
    threshold = None if plaque else iou_threshold(face_limit)
    max_depth = PLAQUE_THICKNESS * max(h, w) if plaque else None
    best: Shaped | None = None
    for factor in (DENSE_FACTOR, 2 * DENSE_FACTOR):
        # `factor` × the budget, at least DENSE_MIN (twice that on the finer pass), and for big budgets at most
        # `factor` × 20k more than the budget (the solve's time and memory).
        dense = round(
            min(max(factor * face_limit, factor * DENSE_MIN / DENSE_FACTOR), face_limit + factor * 20_000)
        )
        if plaque:
            solid = shaping.inflate(mask, dense, depth, max_depth)
        else:
            solid = shaping.shape_solid(mask, plan.kind, plan.flat, dense, depth, plan.body, axis=plan.axis)
        for agg, z_scale in ((7.0, 1.0), (5.0, 1.0), (7.0, 0.2)):
            v, f = shaping.decimate(solid, face_limit, agg, z_scale)
            topo = quality.topology(f, len(v))
            if not (topo.watertight and topo.winding_consistent and len(f) <= face_limit):
                continue
            drawn = outline(v, f, inside)
            iou = drawn.iou
            decimation = "none" if len(f) == len(solid.faces) else f"qem agg={agg:g}"
            if z_scale != 1.0:
                decimation += f" z×{z_scale:g}"
            info = {
                "dense_faces": solid.dense_faces,
                "grid_cell_px": round(solid.grid_cell, 3),
                "decimation": decimation,
            }
            if best is None or iou > best.iou:
                best = Shaped(v, f, solid, drawn, info)
            if threshold is None or iou >= threshold:
                return best
            if len(f) == len(solid.faces):
                break  # not decimated: another decimation cannot help, a finer grid might
    if best is not None and (threshold is None or best.iou >= threshold - GATE_SLACK):
        best.info["silhouette_gate"] = "best attempt"
        return best
    # The decimator could not keep the mesh closed: build directly at the budget instead.
    target = face_limit
    for _ in range(12):
        target = max(8, int(target * 0.8))
        if plaque:
            solid = shaping.inflate(mask, target, depth, max_depth, thin_cells=0)
        else:
            solid = shaping.shape_solid(
                mask, plan.kind, plan.flat, target, depth, plan.body, thin_cells=0, axis=plan.axis
            )
        if len(solid.faces) <= face_limit:
            info = {
                "dense_faces": solid.dense_faces,
                "grid_cell_px": round(solid.grid_cell, 3),
                "decimation": "rebuild",
            }
            drawn = outline(solid.vertices, solid.faces, inside)
            if best is None or drawn.iou > best.iou:
                best = Shaped(solid.vertices, solid.faces, solid, drawn, info)
            return best
    raise GenerationError(
        f"Could not fit this shape into {face_limit} faces; raise face_limit and try again.",
        {"face_limit": face_limit},
    )


@dataclass(frozen=True)
class Outline:
    """The model's front silhouette rasterised with the object at `IOU_RASTER` pixels, and where that raster lies:
    working-image pixel (x, y) is raster pixel ((x − x0 + 0.5)·scale − 0.5, (y − y0 + 0.5)·scale − 0.5)."""

    raster: np.ndarray
    reference: np.ndarray
    """The mask it is compared with, on the same raster."""
    x0: float
    y0: float
    scale: float

    @property
    def iou(self) -> float:
        return quality.iou(self.raster, self.reference)

    def resampled(self, shape: tuple[int, int], pixel: float) -> np.ndarray:
        """The silhouette on a grid of `shape` whose pixels are `pixel` working-image pixels wide (bool)."""
        import cv2

        r = self.scale
        m = np.array(
            [
                [r * pixel, 0, r * (0.5 * pixel - self.x0) - 0.5],
                [0, r * pixel, r * (0.5 * pixel - self.y0) - 0.5],
            ]
        )
        out = cv2.warpAffine(
            self.raster.astype(np.uint8) * 255,
            m,
            (shape[1], shape[0]),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        )
        resampled: np.ndarray = out > 127
        return resampled


def outline(vertices_px: np.ndarray, faces: np.ndarray, inside: np.ndarray) -> Outline:
    """The model's front silhouette and the mask `inside`, on a raster that puts the object at `IOU_RASTER` pixels
    whatever its size in the photo."""
    import cv2

    top, bottom, left, right = mask_bounds(inside) or (0, 0, 0, 0)
    pad = 3
    x0, y0 = left - pad, top - pad
    span = max(right - left, bottom - top) + 1 + 2 * pad
    r = IOU_RASTER / span
    bw = math.ceil((right - x0 + 1 + pad) * r)
    bh = math.ceil((bottom - y0 + 1 + pad) * r)
    # Resample the mask: crop position (x - x0), pixel centres at (k + 0.5)·r − 0.5.
    m = np.array([[r, 0, (0.5 - x0) * r - 0.5], [0, r, (0.5 - y0) * r - 0.5]], np.float64)
    ref = cv2.warpAffine(inside.astype(np.uint8) * 255, m, (bw, bh), flags=cv2.INTER_LINEAR) > 127
    pts = np.column_stack([vertices_px[:, 0], -vertices_px[:, 1]])
    pts = (pts - (x0, y0) + 0.5) * r - 0.5
    sil = quality.rasterize_silhouette(pts, faces, (bh, bw))
    return Outline(sil, ref, float(x0), float(y0), r)


def silhouette_iou(vertices_px: np.ndarray, faces: np.ndarray, inside: np.ndarray) -> float:
    """IoU of the model's front silhouette and the mask `inside` (see `outline`)."""
    if not inside.any():
        return 0.0
    return outline(vertices_px, faces, inside).iou


def build_model(image: Image.Image, options: dict[str, Any], progress: ProgressCallback) -> Model:
    """Geometry, texture and checks for one photo (no files written)."""
    timer = finishing.Timer()
    opts = {**DEFAULTS, **options}
    face_limit = int(opts["face_limit"])
    mode = str(opts["background_removal"])
    with timer.stage("decode"):
        rgb, alpha = working_image(image)
    progress(0.1, "cutting out")
    with timer.stage("cutout"):
        cut = _cutout.cut_out(rgb, alpha, mode)
    progress(0.25, "shaping")
    shaped, plan, photo = _shape_and_check(rgb, cut, opts, timer)
    if photo is not None and not photo["passed"] and cut.method == "backdrop" and mode == "auto":
        # The model's outline leaves object-looking regions outside: the backdrop cut missed part of the object.
        with timer.stage("cutout"):
            second = _cutout.cut_out(rgb, alpha, "learned")
        if second.method == "learned":
            cut = second
            cut.figures["backdrop_reason"] = "the model failed its photo check"
            shaped, plan, photo = _shape_and_check(rgb, cut, opts, timer)
    progress(0.45, "texturing")
    inside = cut.mask > 0.5
    v_px, faces = shaped.vertices, shaped.faces
    with timer.stage("texture"):
        atlas = texturing.make_texture(
            rgb,
            inside,
            int(opts["texture_size"]),
            erode_px=0 if cut.is_plaque else 2,
            back=plan.back,
            normal_z=shaped.solid.normal_z_image(),
        )
        lo, hi = v_px.min(axis=0), v_px.max(axis=0)
        extent = float((hi - lo).max()) or 1.0

        def textured(vp: np.ndarray, fp: np.ndarray) -> TexturedMesh:
            sv, sf, uv = texturing.sheet_uv(vp, fp, atlas)
            return TexturedMesh((sv - (lo + hi) / 2.0) / extent, sf, uv, atlas.image)

        mesh = textured(v_px, faces)

        def reduced(target: int) -> TexturedMesh:
            if len(faces) <= target:
                return mesh
            pv, pf = shaping.decimate(shaping.Solid(v_px, faces, 0.0, len(faces)), target)
            return textured(pv, pf)

    progress(0.55, "checking")
    with timer.stage("checks"):
        welded = mesh.welded
        topo = quality.topology(welded.faces, len(welded.vertices))
        volume = quality.signed_volume(welded.vertices, welded.faces)
        stance = quality.stance(welded.vertices, welded.faces)
    threshold = None if cut.is_plaque else iou_threshold(face_limit)
    iou = shaped.iou
    figures = {
        "faces": int(len(mesh.faces)),
        "vertices": int(len(mesh.vertices)),
        "watertight": topo.watertight,
        "winding_consistent": topo.winding_consistent,
        "euler_number": topo.euler_number,
        "pieces": quality.pieces(welded.faces, len(welded.vertices)),
        "volume": round(volume, 6),
        "extents": [round(float(e), 4) for e in (mesh.vertices.max(axis=0) - mesh.vertices.min(axis=0))],
        "silhouette_iou": round(iou, 4),
        "silhouette_iou_threshold": threshold,
        "shape": plan.kind,
        "back": plan.back,
        "flat_sides": sorted(plan.flat),
        **{k: round(v, 4) for k, v in stance.items()},
        **plan.figures,
        **shaped.info,
    }
    if photo is not None:
        figures["photo_check"] = photo
    problems = finishing.gate_problems(
        topo, volume, len(mesh.faces), face_limit, iou, threshold, "the cut-out", slack=GATE_SLACK
    )
    if problems:
        raise GenerationError(
            "The model failed its quality checks: "
            + "; ".join(problems)
            + ". Try a photo with a plain background "
            "and a clearly separated object, or a higher face_limit.",
            {"quality": figures, "cutout": {"method": cut.method, **cut.figures}},
        )
    if photo is not None and not photo["passed"] and cut.warning is None:
        cut.warning = (
            "Part of the object may be missing from the model: regions next to it look like neither the backdrop "
            "nor the object. background_removal=learned (the `segment` extra) may cut it out better."
        )
    return Model(mesh, reduced, cut, rgb, (v_px, faces), figures, timer)


def _shape_and_check(
    rgb: np.ndarray, cut: _cutout.Cutout, opts: dict[str, Any], timer: finishing.Timer
) -> tuple[Shaped, silhouette.Plan, dict[str, Any] | None]:
    """Plan and shape the cut-out, then check the model's outline against the photo itself (not only against
    the cut-out it came from, which would hide a wrong cut-out)."""
    inside = cut.mask > 0.5
    with timer.stage("plan"):
        if cut.is_plaque:
            plan = silhouette.Plan("inflate", "smooth")
        else:
            plan = silhouette.plan(cut.mask, str(opts["shape"]))
    with timer.stage("shape"):
        shaped = _shape(
            cut.mask, plan, int(opts["face_limit"]), float(opts["inflation_depth"]), cut.is_plaque
        )
    with timer.stage("photo_check"):
        photo = photo_check(shaped.outline, cut, inside.shape)
    return shaped, plan, photo


def photo_check(drawn: Outline, cut: _cutout.Cutout, shape: tuple[int, int]) -> dict[str, Any] | None:
    """The model's front silhouette against the photo's own evidence: the backdrop model's score around it. Faint,
    thick regions touching the outline (a little off the backdrop's colour) are parts of the object the model
    left out. None when the photo has no plain backdrop to judge by."""
    if cut.score is None or cut.is_plaque or "threshold" not in cut.figures:
        return None
    sil = drawn.resampled(cut.score.shape, shape[1] / cut.score.shape[1])
    share = _cutout.faint_share(sil, cut.score, float(cut.figures["threshold"]))
    return {"faint_share": share, "passed": share <= _cutout.MAX_FAINT_SHARE}


def run(
    request: GenerationRequest, progress: ProgressCallback, landed: Landed | None = None
) -> GenerationResult:
    """The Generator.generate body: build the model, write the requested formats and the previews (each
    announced through `landed` once written)."""
    start = time.perf_counter()
    progress(0.02, "reading image")
    decode_start = time.perf_counter()
    image = load_image(request.images[0])
    read_ms = (time.perf_counter() - decode_start) * 1000.0
    model = build_model(image, request.options, progress)
    timer = model.timings
    timer.ms["read"] = round(read_ms, 2)
    out_dir, stem = Path(request.out_dir), request.basename
    files = finishing.write_outputs(
        model.mesh,
        model.reduced,
        [(model.rgb, model.cutout.mask)],
        list(request.formats),
        out_dir,
        stem,
        timer,
        progress,
        landed,
    )
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
