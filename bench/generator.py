"""Local generator figures: 1024 px photo → GLB at 10k faces (warm, one core), other formats, previews, cut-out PNG,
the whole item as a worker runs it, and the peak RSS of a real worker process (a stack on a temp dir runs every shot
as a job, the learned path included: this process's own peak is printed too, but holds the bench's data).

Shots: the drawn studio shots (the white-on-white shoe takes the learned path, the RGBA bottle is revolved) and a
labelled bottle on a backdrop, shaped both as a revolution (auto) and inflated, so the revolve's cost shows.
Usage: python bench/generator.py [--repeat 7] [--face-limit 10000] [--cores 1]
Prints medians in ms and PASS/FAIL against issue 12's targets. No asserts: this reports, CI tests correctness.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _pin(cores: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(cores)
    if hasattr(os, "sched_setaffinity"):
        available = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(available[:cores]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--face-limit", type=int, default=10000)
    parser.add_argument("--cores", type=int, default=1)
    args = parser.parse_args()
    _pin(args.cores)

    start = time.perf_counter()
    import resource
    import statistics

    import cv2

    cv2.setNumThreads(args.cores)
    from image2model.core.generators.base import GenerationRequest
    from image2model.core.generators.local import LocalGenerator, finishing, pipeline, studio
    from image2model.core.images import load_image
    from image2model.core.mesh import export, preview

    gen = LocalGenerator()
    gen.warm_up()
    print(f"cold start (imports + warm-up): {(time.perf_counter() - start) * 1000:.0f} ms")
    print(f"cores pinned: {args.cores}; face_limit {args.face_limit}; median of {args.repeat}")

    tmp = Path(tempfile.mkdtemp(prefix="bench-generator-"))
    shots = {**studio.SHOTS, "bottle": studio.SCENES["bottle"]}
    cases = []  # (label, path, options)
    for name, draw in shots.items():
        shot = draw(1024)
        path = tmp / (f"{name}.png" if shot.image.mode == "RGBA" else f"{name}.jpg")
        shot.image.save(path, quality=90)
        for shape in ("auto", "inflate") if name == "bottle" else ("auto",):
            label = name if shape == "auto" else f"{name}/{shape}"
            cases.append((label, path, {"face_limit": args.face_limit, "shape": shape}))
    # Repeats outermost, so a change in the machine's load falls on every shot alike (revolve vs inflate).
    times: dict[str, list[list[float]]] = {label: [[] for _ in range(7)] for label, _, _ in cases}
    stages: dict[str, dict[str, list[float]]] = {label: {} for label, _, _ in cases}
    # What the table needs from each shot's last model (the models themselves would inflate this process's RSS).
    last: dict[str, tuple[Any, Any, Any]] = {}
    for k in range(args.repeat):
        for label, path, options in cases:
            t0 = time.perf_counter()
            image = load_image(path)
            model = pipeline.build_model(image, options, lambda f, s: None)
            export.write_glb(model.mesh, tmp / "m.glb")
            t1 = time.perf_counter()
            export.write_obj_zip(model.mesh, tmp / "m.obj.zip", "m")
            export.write_stl(model.mesh, tmp / "m.stl")
            export.write_ply(model.mesh, tmp / "m.ply")
            t2 = time.perf_counter()
            preview.write_thumbnail(model.preview_mesh, tmp / "m.png")
            t3 = time.perf_counter()
            frames = preview.turntable_frames(model.turntable_mesh)
            preview.write_turntable(frames, tmp / "m.webp", None)
            t4 = time.perf_counter()
            preview.write_turntable(frames, None, tmp / "m.gif")
            t5 = time.perf_counter()
            finishing.write_cutout([(model.rgb, model.cutout.mask)], tmp / "m.cutout.png")
            t6 = time.perf_counter()
            request = GenerationRequest(
                [path], options, ["glb"], tmp / f"item-{label.replace('/', '-')}-{k}", "i"
            )
            gen.generate(request, lambda f, s: None)
            t7 = time.perf_counter()
            for bucket, dt in zip(
                times[label], (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6), strict=True
            ):
                bucket.append(dt)
            for key, value in model.timings.ms.items():
                stages[label].setdefault(key, []).append(value)
            last[label] = (model.cutout.method, model.figures["shape"], model.figures["faces"])
            del model, frames
    rows = []
    for label, _, _ in cases:
        method, shape, faces = last[label]
        ms = [statistics.median(t) * 1000 for t in times[label]]
        med = {key: statistics.median(v) for key, v in stages[label].items()}
        rows.append((label, method, shape, faces, *ms, med))
    print()
    print(
        "shot            cutout    shape            faces   →GLB  OBJ+STL+PLY   PNG  turntable   gif  cutout.png"
        "  item(glb+previews+cutout)"
    )
    for label, method, shape, faces, glb, other, png, webp, gif, cut, item, _ in rows:
        print(
            f"{label:<15} {method:<9} {shape:<16} {faces:>5}  {glb:>5.0f}  {other:>11.0f}  {png:>4.0f}  {webp:>9.0f}"
            f"  {gif:>4.0f}  {cut:>10.0f}  {item:>8.0f}"
        )
    print("\nstage medians (ms):")
    for label, *_, med in rows:
        print(f"  {label:<15} " + "  ".join(f"{k} {v:.1f}" for k, v in med.items()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    by = {r[0]: r for r in rows}
    backdrop = [r for r in rows if r[1] == "backdrop" and r[2] == "inflate"]
    learned_rows = [r for r in rows if r[1] == "learned"]
    print()
    _verdict("backdrop path → GLB, worst shot (ms)", max(r[4] for r in backdrop), 100)
    if "bottle" in by and "bottle/inflate" in by:
        _verdict("revolve adds (bottle auto − inflate, ms)", by["bottle"][4] - by["bottle/inflate"][4], 30)
    if learned_rows:
        _verdict("learned path → GLB (ms)", max(r[4] for r in learned_rows), 600)
    _verdict("whole item on the backdrop path, worst shot (ms)", max(r[10] for r in backdrop), 400)
    print(f"      peak RSS of this bench process (its data included): {peak:.0f} MB")
    _verdict("peak worker RSS, learned path included (MB)", _worker_peak_mb([c[1] for c in cases]), 450)


def _worker_peak_mb(paths: list[Path]) -> float:
    """Run each photo as a job on a real worker (3 rounds) and return that worker's peak RSS (MB): the highest
    VmHWM in its process tree."""
    from _common import children, rss_kb, running_stack

    from image2model.core.client import Client

    with running_stack("generator-rss", generator="local") as stack, Client(stack.url, timeout=120) as client:
        for _ in range(3):
            for path in paths:
                job = client.submit(path, generator="local")
                client.wait(job.job_id, timeout=120)
        assert stack.worker is not None
        tree = [stack.worker.pid]
        for pid in tree:
            tree.extend(children(pid))
        return max(rss_kb(pid, "VmHWM") for pid in tree) / 1024


def _verdict(what: str, value: float, target: float) -> None:
    print(f"{'PASS' if value <= target else 'FAIL'}  {what}: {value:.0f} (target ≤ {target})")


if __name__ == "__main__":
    sys.exit(main())
