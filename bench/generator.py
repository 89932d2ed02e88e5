"""Local generator figures: 1024 px photo → GLB at 10k faces (warm, one core), other formats, previews, peak RSS.

Usage: python bench/generator.py [--repeat 7] [--face-limit 10000] [--cores 1]
Prints medians per shot in ms; targets from issue 3 in brackets. No asserts: this reports, CI tests correctness.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


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
    from image2model.core.generators.local import LocalGenerator, pipeline, studio
    from image2model.core.images import load_image
    from image2model.core.mesh import export, preview

    gen = LocalGenerator()
    gen.warm_up()
    print(f"cold start (imports + warm-up): {(time.perf_counter() - start) * 1000:.0f} ms")
    print(f"cores pinned: {args.cores}; face_limit {args.face_limit}; median of {args.repeat}")

    tmp = Path(tempfile.mkdtemp(prefix="bench-generator-"))
    rows = []
    for name, draw in studio.SHOTS.items():
        shot = draw(1024)
        path = tmp / (f"{name}.png" if shot.image.mode == "RGBA" else f"{name}.jpg")
        shot.image.save(path, quality=90)
        t_glb, t_other, t_png, t_webp, t_gif = [], [], [], [], []
        stages: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            image = load_image(path)
            model = pipeline.build_model(image, {"face_limit": args.face_limit}, lambda f, s: None)
            export.write_glb(model.mesh, tmp / "m.glb")
            t1 = time.perf_counter()
            export.write_obj_zip(model.mesh, tmp / "m.obj.zip", "m")
            export.write_stl(model.mesh, tmp / "m.stl")
            export.write_ply(model.mesh, tmp / "m.ply")
            t2 = time.perf_counter()
            preview.write_thumbnail(model.mesh, tmp / "m.png")
            t3 = time.perf_counter()
            frames = preview.turntable_frames(model.mesh)
            preview.write_turntable(frames, tmp / "m.webp", None)
            t4 = time.perf_counter()
            preview.write_turntable(frames, None, tmp / "m.gif")
            t5 = time.perf_counter()
            for key, value in model.timings.ms.items():
                stages.setdefault(key, []).append(value)
            t_glb.append(t1 - t0)
            t_other.append(t2 - t1)
            t_png.append(t3 - t2)
            t_webp.append(t4 - t3)
            t_gif.append(t5 - t4)
        med = {k: statistics.median(v) for k, v in stages.items()}
        rows.append(
            (
                name,
                model.cutout.method,
                model.figures["faces"],
                model.figures["silhouette_iou"],
                *(statistics.median(t) * 1000 for t in (t_glb, t_other, t_png, t_webp, t_gif)),
                med,
            )
        )
    print()
    header = (
        "shot     cutout    faces  IoU    →GLB[150]  OBJ+STL+PLY[150]  PNG[80]  turntable webp[800]  +gif"
    )
    print(header)
    for name, method, faces, iou, glb, other, png, webp, gif, _ in rows:
        print(
            f"{name:<8} {method:<9} {faces:>5}  {iou:.3f}  {glb:>8.1f}  {other:>16.1f}  {png:>7.1f}  "
            f"{webp:>19.1f}  {gif:>5.1f}"
        )
    print("\nstage medians (ms):")
    for name, *_, med in rows:
        print(f"  {name:<8} " + "  ".join(f"{k} {v:.1f}" for k, v in med.items()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process (a worker's equivalent): {peak:.0f} MB [300]")


if __name__ == "__main__":
    sys.exit(main())
