"""Making an export on a worker: each item's master GLB is shaped (face budget, Z up, height, origin), written in
every asked-for format, and stored next to the job's other files; the export record says when it is done."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from image2model.api.context import Services
from image2model.api.store import ExportRecord, ItemRecord
from image2model.api.worker.masters import MASTER_ROLE
from image2model.core.errors import ExportFailed, GenerationError
from image2model.core.generators.base import MIME_TYPES

log = logging.getLogger("image2model.worker")

METRES_PER_MM = 0.001


def export_label(shaping: dict[str, Any]) -> str:
    """The part of an export's file names that says what it is (`80mm-zup-bottom-2000f`); the same request
    gives the same names (and, the work being deterministic, the same bytes)."""
    parts = []
    if shaping.get("height_mm") is not None:
        parts.append(f"{float(shaping['height_mm']):g}mm")
    if shaping.get("up") == "z":
        parts.append("zup")
    if shaping.get("origin") == "bottom":
        parts.append("bottom")
    if shaping.get("face_limit") is not None:
        parts.append(f"{int(shaping['face_limit'])}f")
    return "-".join(parts) or "export"


def master_of(item: ItemRecord) -> dict[str, Any] | None:
    """The stored output an export is made from: the item's master, else its listed GLB (a remote result
    complete as fetched keeps no master: the export derives it from the GLB)."""
    master = next((o for o in item.outputs if o.get("role") == MASTER_ROLE), None)
    if master is not None:
        return master
    return next((o for o in item.outputs if o.get("role") == "model" and o.get("format") == "glb"), None)


def run_export(services: Services, export_id: str) -> None:
    """Execute an export's task. Safe to call twice: the claim is a compare-and-set."""
    store, settings = services.store, services.settings
    record = store.claim_export(export_id, settings.lease_seconds)
    if record is None:
        log.info("event=skip export_id=%s reason=not_queued", export_id)
        return
    started = time.perf_counter()
    work = settings.data_dir / "work" / f"export.{export_id}.{record.attempt}"
    try:
        files = _make(services, record, work)
        for out in files:
            out["size"] = services.blobs.put_file(out["key"], Path(out.pop("path")), move=True)
        if store.complete_export(export_id, record.attempt, files):
            log.info(
                "event=export_completed export_id=%s job_id=%s files=%d ms=%.1f",
                export_id, record.job_id, len(files), (time.perf_counter() - started) * 1000,
            )  # fmt: skip
    except (ExportFailed, GenerationError) as exc:
        store.fail_export(export_id, record.attempt, exc.message)
        log.info("event=export_failed export_id=%s error=%r", export_id, exc.message)
    except Exception as exc:
        log.exception("event=export_crashed export_id=%s", export_id)
        store.fail_export(
            export_id, record.attempt, f"The export failed unexpectedly ({type(exc).__name__}: {exc})."
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _make(services: Services, record: ExportRecord, work: Path) -> list[dict[str, Any]]:
    """Write every file of the export under `work`; returns their outputs (with the local `path`)."""
    from image2model.core.mesh import export, gltf, printability, transform

    state = services.store.load(record.job_id)
    if state is None:
        raise ExportFailed("The job was deleted before its export could be made.")
    shaping = transform.Shaping(**record.shaping)
    label = export_label(record.shaping)
    up_axis = transform.AXIS[shaping.up]
    items = [i for i in state.items if i.file_id in record.file_ids]
    work.mkdir(parents=True, exist_ok=True)
    files: list[dict[str, Any]] = []
    for item in items:
        master = master_of(item)
        if master is None:
            raise ExportFailed(f"{item.filename} has no stored model to export.")
        data = services.blobs.local_path(master["key"], work / "masters").read_bytes()
        mesh = transform.shaped(gltf.model_mesh(data, "The stored model")[0], shaping)
        report = printability.print_report(mesh, shaping.height_mm, up_axis)
        recipe = item.metadata.get("recipe")
        for fmt in record.formats:
            filename = f"{item.basename}.{label}{export.SUFFIXES[fmt]}"
            path = work / filename
            if fmt == "glb" and shaping.height_mm is not None:
                export.write(fmt, transform.scaled(mesh, METRES_PER_MM), path, _extras(recipe, record))
            else:
                export.write(fmt, mesh, path, _extras(recipe, record))
            files.append(
                {
                    "file_id": item.file_id,
                    "source_filename": item.filename,
                    "filename": filename,
                    "format": fmt,
                    "role": "model",
                    "mime_type": MIME_TYPES.get(fmt, "application/octet-stream"),
                    "key": f"{record.job_id}/out/{filename}",
                    "path": str(path),
                    "metadata": {
                        "export": dict(record.shaping),
                        "print": report,
                        "recipe": recipe,
                        "faces": report["faces"],
                        "units": ("m" if fmt == "glb" else "mm") if shaping.height_mm is not None else None,
                    },
                }
            )
        if not services.store.renew_export(record.export_id, record.attempt, services.settings.lease_seconds):
            raise ExportFailed("The export was taken over by another worker.")
    return files


def _extras(recipe: dict[str, Any] | None, record: ExportRecord) -> dict[str, Any]:
    return {"image2model": {**(recipe or {}), "export": dict(record.shaping)}}
