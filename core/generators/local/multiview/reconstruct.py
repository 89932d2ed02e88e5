"""2–4 photos of one object → one textured, watertight model: decode → cut out and align every view → check they
belong together → carve the rounded visual hull → marching cubes → decimate → texture atlas → checks → export →
previews, with per-stage timings."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from image2model.core.generators.local import finishing
from image2model.core.generators.local import pipeline as single
from image2model.core.generators.local.multiview import atlas as _atlas
from image2model.core.generators.local.multiview import carving, perspective, views
from image2model.core.generators.local.multiview.marching import case_table, marching_cubes
from image2model.core.images import load_image
from image2model.core.mesh import quality
from image2model.core.mesh.model import TexturedMesh

DEFAULTS: dict[str, Any] = {"face_limit": 10000, "texture_size": 1024, "background_removal": "auto"}
DENSE_FACTOR = 3.0
"""Marching cubes is run at the resolution that gives about this many times `face_limit` faces."""
MIN_RESOLUTION, MAX_RESOLUTION, PROBE_RESOLUTION = 64, 192, 40
DECIMATION_SCALE = 8.0
"""The decimator's thresholds are absolute: it keeps meshes closed when run at a scale of hundreds of units."""
MIN_PIECE = 0.004
"""Pieces of the carved solid holding less than this share of its volume are dropped (cut-out crumbs)."""
LIMITATION = (
    "The shape is carved from the outlines: hollows and dents that no outline shows (the inside of a cup, a "
    "bowl's basin, a notch facing a corner) are filled."
)


def iou_threshold(face_limit: int) -> float | None:
    """The outline gate for a face budget: the carved outline against the views' combined cut-outs (thin parts
    a grid cell wide lose relatively more of their outline than the single-photo mesh does)."""
    if face_limit >= 5000:
        return 0.9
    if face_limit >= 1000:
        return 0.85
    return None


@dataclass
class Model:
    """What the geometry and texture stages produce, before any file is written."""

    mesh: TexturedMesh
    reduced: Callable[[int], TexturedMesh]
    """The model decimated to at most that many faces (the model itself when it has no more)."""
    views: list[views.View]
    figures: dict[str, Any]
    timings: finishing.Timer


def _resolution(x: views.Canvas, z: views.Canvas, face_limit: int) -> int:
    """Grid resolution giving about DENSE_FACTOR × face_limit faces, from a quick coarse carve."""
    probe = carving.carve(x, z, PROBE_RESOLUTION, judge=False)
    inside = probe.field < 0
    # Faces of marching cubes ≈ 2 per grid face between inside and outside; they scale with resolution².
    boundary = sum(int(np.count_nonzero(np.diff(inside, axis=a))) for a in range(3))
    wanted = min(DENSE_FACTOR * face_limit, face_limit + 60_000)  # big budgets: bound the decimator's work
    n = PROBE_RESOLUTION * math.sqrt(wanted / max(2.0 * boundary, 1.0))
    return int(np.clip(round(n), MIN_RESOLUTION, MAX_RESOLUTION))


def _drop_crumbs(field: np.ndarray) -> int:
    """Make small separate pieces of the solid outside; returns how many were dropped."""
    from scipy import ndimage

    labels, count = ndimage.label(field < 0)
    if count <= 1:
        return 0
    sizes = np.bincount(labels.ravel())[1:]
    small = np.nonzero(sizes < MIN_PIECE * sizes.sum())[0] + 1
    if len(small):
        field[np.isin(labels, small)] = np.abs(field[np.isin(labels, small)]) + 1e-3
    return int(len(small))


def _decimate(v: np.ndarray, f: np.ndarray, target: int, agg: float) -> tuple[np.ndarray, np.ndarray]:
    import fast_simplification

    if len(f) <= target:
        return v, f
    vd, fd = fast_simplification.simplify(
        v * DECIMATION_SCALE, f.astype(np.int32), target_count=target, agg=agg
    )
    used = np.unique(fd)
    remap = np.full(len(vd), -1, np.int64)
    remap[used] = np.arange(len(used))
    return np.asarray(vd, np.float64)[used] / DECIMATION_SCALE, remap[np.asarray(fd, np.int64)]


def _closed(v: np.ndarray, f: np.ndarray) -> bool:
    topo = quality.topology(f, len(v))
    return topo.watertight and topo.winding_consistent


def _shape(
    x: views.Canvas, z: views.Canvas, lens: perspective.Lens, face_limit: int, timer: finishing.Timer
) -> tuple[carving.Carving, views.Canvas, views.Canvas, np.ndarray, np.ndarray, dict[str, Any]]:
    """Carve, mesh and decimate within the budget, keeping the mesh closed (retrying coarser when the decimator
    cannot). With perspective, the carving uses the canvases the perspective hull casts (returned) and is
    intersected with that hull."""
    hull = None if lens.orthographic else lens.hull
    with timer.stage("carve"):
        n = _resolution(x, z, face_limit)
        if hull is not None:
            x, z = perspective.corrected(lens, x, z, n)
        carved = carving.carve(x, z, n, hull=hull)
        dropped = _drop_crumbs(carved.field)
    with timer.stage("marching_cubes"):
        v, f = marching_cubes(carved.field)
    info: dict[str, Any] = {
        "grid_resolution": n,
        "grid_cell": round(carved.grid.step, 5),
        "dense_faces": int(len(f)),
    }
    if dropped:
        info["dropped_pieces"] = dropped
    with timer.stage("decimate"):
        # When the decimator cannot keep the mesh closed at this budget, carve coarser and try again.
        for attempt in range(16):
            if attempt:
                n = max(4, int(n * 0.75))
                carved = carving.carve(x, z, n, hull=hull)
                _drop_crumbs(carved.field)
                v, f = marching_cubes(carved.field)
                info.update(grid_resolution=n, grid_cell=round(carved.grid.step, 5), dense_faces=int(len(f)))
            for agg in (7.0, 5.0):
                vd, fd = _decimate(v, f, face_limit, agg)
                if len(fd) <= face_limit and _closed(vd, fd):
                    info["decimation"] = f"qem agg={agg:g}" if len(fd) < len(f) else "none"
                    if attempt:
                        info["decimation"] += " on a coarser grid"
                    return carved, x, z, carved.grid.lo + vd * carved.grid.step, fd, info
                if len(fd) == len(f):
                    break
    raise GenerationError(
        f"Could not fit this shape into {face_limit} faces; raise face_limit and try again.",
        {"face_limit": face_limit},
    )


def _silhouette_iou(can: views.Canvas, vertices: np.ndarray, faces: np.ndarray) -> float:
    """IoU of the model's outline along the canvas' axis with the views' combined outline."""
    w = vertices[:, 0] if can.axis == "x" else vertices[:, 2]
    pts = np.column_stack([can.cols(w), can.rows(vertices[:, 1])])
    sil = quality.rasterize_silhouette(pts, faces, can.mask.shape)
    return quality.iou(sil, can.mask > 0.5)


def build_model(images: list[Image.Image], options: dict[str, Any], progress: ProgressCallback) -> Model:
    """Geometry, texture and checks for 2–4 views in the contract's order (no files written)."""
    timer = finishing.Timer()
    opts = {**DEFAULTS, **options}
    face_limit = int(opts["face_limit"])
    if not 2 <= len(images) <= 4:
        raise GenerationError(f"A multi-view model needs 2 to 4 views; got {len(images)}.")
    progress(0.08, "cutting out")
    prepared = []
    for k, image in enumerate(images):
        with timer.stage("decode"):
            rgb, alpha = single.working_image(image)
        with timer.stage("cutout"):
            prepared.append(views.prepare(k, rgb, alpha, str(opts["background_removal"])))
    progress(0.25, "aligning views")
    with timer.stage("align"):
        res = views.canvas_resolution(prepared)
        x, z = views.canvas(prepared, "x", res), views.canvas(prepared, "z", res)
        assert x is not None and z is not None  # the front and left views are always there
        consistency = views.check(x, z)
    with timer.stage("perspective"):
        lens = perspective.choose(prepared, x, z)
    progress(0.35, "carving")
    carved, x, z, vertices, faces, shape_info = _shape(x, z, lens, face_limit, timer)
    progress(0.5, "texturing")
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    centre, extent = (lo + hi) / 2.0, float((hi - lo).max()) or 1.0
    with timer.stage("texture"):
        cameras = None if lens.orthographic else lens.cameras
        atlas = _atlas.build(carved.field, carved.grid, prepared, lo, hi, int(opts["texture_size"]), cameras)
        mesh = atlas.textured(vertices, faces, centre, extent)

        def reduced(target: int) -> TexturedMesh:
            if len(faces) <= target:
                return mesh
            rv, rf = _decimate(vertices, faces, target, 7.0)
            return atlas.textured(rv, rf, centre, extent)

    progress(0.55, "checking")
    with timer.stage("checks"):
        topo = quality.topology(mesh.welded.faces, len(mesh.welded.vertices))
        volume = quality.signed_volume(mesh.vertices, mesh.faces)
        ious = {"front": _silhouette_iou(x, vertices, faces), "side": _silhouette_iou(z, vertices, faces)}
    threshold = iou_threshold(face_limit)
    iou = min(ious.values())
    used = [v.name for v in prepared]
    figures: dict[str, Any] = {
        "faces": int(len(mesh.faces)),
        "vertices": int(len(mesh.welded.vertices)),
        "watertight": topo.watertight,
        "winding_consistent": topo.winding_consistent,
        "euler_number": topo.euler_number,
        "volume": round(volume, 6),
        "extents": [round(float(e), 4) for e in (mesh.vertices.max(axis=0) - mesh.vertices.min(axis=0))],
        "silhouette_iou": round(iou, 4),
        "silhouette_iou_views": {k: round(v, 4) for k, v in ious.items()},
        "silhouette_iou_threshold": threshold,
        "views": len(prepared),
        "views_used": used,
        "alignment": {
            "method": "every view scaled so the object has the same height as in the front view (scale), "
            "standing on the same ground line (ground_row: the object's lowest photo row) and centred on its own "
            "width",
            "views": [v.alignment(prepared[0]) for v in prepared],
        },
        "consistency": consistency,
        "perspective": lens.summary(),
        "shape": carved.shape_summary(),
        "texture": {
            "atlas": list(atlas.size),
            "texels_per_unit_height": round(atlas.res, 1),
            "tiles": list(_atlas.TILE_NAMES),
            "from_opposite_side": [n for k, n in enumerate(views.VIEW_NAMES) if k >= len(prepared)],
        },
        **shape_info,
    }
    problems = finishing.gate_problems(topo, volume, len(mesh.faces), face_limit, iou, threshold, "the views")
    if problems:
        raise GenerationError(
            "The model failed its quality checks: " + "; ".join(problems) + ". Try photos with a plain "
            "background and the whole object in every view, or a higher face_limit.",
            {"quality": figures},
        )
    return Model(mesh, reduced, prepared, figures, timer)


def run(
    request: GenerationRequest, progress: ProgressCallback, landed: Landed | None = None
) -> GenerationResult:
    """The Generator.generate body for several views: build the model, write the formats and the previews
    (each announced through `landed` once written)."""
    start = time.perf_counter()
    progress(0.02, "reading images")
    read_start = time.perf_counter()
    images = [load_image(path) for path in request.images]
    read_ms = (time.perf_counter() - read_start) * 1000.0
    model = build_model(images, request.options, progress)
    timer = model.timings
    timer.ms["read"] = round(read_ms, 2)
    files = finishing.write_outputs(
        model.mesh,
        model.reduced,
        [(v.rgb, v.mask) for v in model.views],
        list(request.formats),
        Path(request.out_dir),
        request.basename,
        timer,
        progress,
        landed,
    )
    timer.ms["total"] = round((time.perf_counter() - start) * 1000.0, 2)
    progress(1.0, "done")
    warnings = [w for v in model.views for w in v.warnings]
    metadata: dict[str, Any] = {
        "generator": "local",
        "mode": "multiview",
        **model.figures,
        "limitations": LIMITATION,
        "cutout": {v.name: {"method": v.cut.method, **v.cut.figures} for v in model.views},
        "options": {**DEFAULTS, **request.options},
        "formats": list(request.formats),
        "input": [
            {"view": v.name, "width": im.width, "height": im.height, "has_alpha": im.mode == "RGBA"}
            for v, im in zip(model.views, images, strict=True)
        ],
        "timings_ms": timer.ms,
    }
    if warnings:
        metadata["warning"] = " ".join(warnings)
    return GenerationResult(files=files, metadata=metadata)


def warm_up() -> None:
    """Pay the first-call costs of this path once per worker (the marching-cubes table, SciPy's labelling)."""
    from scipy import ndimage

    case_table()
    ndimage.label(np.zeros((2, 2, 2), bool))
