"""What the worker adds to every generated model: the full-resolution master GLB kept for exports (derived from
the generator's GLB, whichever generator made it), the recipe (also written into every GLB as
`asset.extras.image2model`) and the print report."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from image2model.core.errors import GenerationError
from image2model.core.generators import GenerationResult, GeneratorSpec, OutputFile

log = logging.getLogger("image2model.worker")

MASTER_ROLE = "master"
MASTER_SUFFIX = ".master.glb"


def generated_formats(wanted: Sequence[str], spec: GeneratorSpec) -> list[str]:
    """The formats to ask the generator for: the job's, plus GLB (the master's source) when it can make one."""
    formats = list(wanted)
    if "glb" in spec.formats and "glb" not in formats:
        formats.append("glb")
    return formats


def keep_master(
    result: GenerationResult,
    wanted: Sequence[str],
    out_dir: Path,
    basename: str,
    recipe: dict[str, Any],
    *,
    write_master: bool = True,
) -> GenerationResult:
    """The generator's result with `{basename}.master.glb` (role `master`: our own GLB of the model, in model
    space) added, the generator's GLB dropped unless the job asked for it, the recipe written into every GLB,
    and `recipe`, `print` and the job's `formats` in the metadata. New files go to `out_dir`; the generator's
    files are only read (a fetched one may be the stored blob itself). A result without a readable GLB keeps
    no master (its exports are refused).

    `write_master=False` (the job asked for the GLB): no master is written and the print report is measured
    on the GLB's bare geometry, which is all the io worker does for a remote result complete as fetched
    (exports derive the master from the listed GLB)."""
    from image2model.core.mesh import export, gltf, printability

    metadata = {**result.metadata, "formats": list(wanted), "recipe": recipe}
    glb = next((f for f in result.files if f.role == "model" and f.format == "glb"), None)
    if glb is None:
        return GenerationResult(result.files, metadata)
    path = Path(glb.path)
    data = path.read_bytes()
    try:
        if write_master:
            mesh, ours = gltf.model_mesh(data, "The generated GLB")
            report = printability.print_report(mesh)
        else:
            source = gltf.normalised(gltf.read_glb(data, "The generated GLB"))
            report = printability.geometry_report(source.vertices, source.faces)
    except GenerationError as exc:
        log.warning("event=no_master basename=%s reason=%r", basename, exc.message)
        return GenerationResult(result.files, metadata)
    extras = {"image2model": recipe}
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [f for f in result.files if f is not glb]
    if "glb" in wanted or not write_master:
        listed = out_dir / path.name
        listed.write_bytes(export.with_extras(data, extras))
        files.insert(result.files.index(glb), OutputFile(listed, "glb", "model"))
    if write_master:
        master_path = out_dir / f"{basename}{MASTER_SUFFIX}"
        master_path.write_bytes(export.with_extras(data if ours else export.glb_bytes(mesh), extras))
        files.append(OutputFile(master_path, "glb", MASTER_ROLE))
    metadata["print"] = report
    return GenerationResult(files, metadata)
