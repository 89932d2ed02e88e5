"""Multi-view local generator figures (issue 13): 4 and 2 views of 1024 px → GLB at 20k faces on one core, peak
RSS of a worker doing it, and the volumetric IoU of the test solids beside the single-photo result.

Usage: python bench/multiview.py [--repeat 5] [--face-limit 20000] [--quick] [--timings-only] [--renders DIR]

The timings run in a fresh process pinned to one core (a worker's equivalent: imports and warm-up first, then
each case once untimed); the photos are the test solids (tests/support/solids.py) rendered at 1024 px and saved
as JPEG q90. The IoU table uses the unit tests' 512 px photos: orthographic on a plain backdrop, and with a
little perspective (camera 12 sizes away) as RGBA. `--renders DIR` writes each 4-view model seen from the front,
the left, the back, the right and above, to look at.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._common import Verdicts  # noqa: E402

TIMED = ("chair", "cup", "box")
TARGETS_S = {4: 1.5, 2: 1.0}
RSS_TARGET_MB = 450
PERSPECTIVE = 12.0


def _pin(cores: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(cores)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))


def _peak_mb() -> int:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it does not carry over the parent's size
    from before the exec)."""
    with open("/proc/self/status") as fh:
        return round(int(next(line for line in fh if line.startswith("VmHWM:")).split()[1]) / 1024)


def time_worker(spec_path: str) -> None:
    """Child process: generate every case `repeat` times, print one JSON line of seconds, stages and peak RSS."""
    spec = json.loads(Path(spec_path).read_text())
    _pin(1)
    import cv2

    cv2.setNumThreads(1)
    start = time.perf_counter()
    from image2model.core.generators.local import LocalGenerator
    from image2model.core.generators.local.multiview import build_model
    from image2model.core.images import load_image
    from image2model.core.mesh import export

    LocalGenerator().warm_up()
    cold_ms = (time.perf_counter() - start) * 1000
    out = Path(spec["out"])
    warm_peak = _peak_mb()
    results: dict = {"cold_ms": round(cold_ms), "warm_peak_rss_mb": round(warm_peak), "cases": {}}
    for name, paths in spec["cases"].items():
        for count in (4, 2):
            seconds, cpu, stages = [], [], []
            for run in range(spec["repeat"] + 1):
                t0, c0 = time.perf_counter(), time.process_time()
                images = [load_image(Path(p)) for p in paths[:count]]
                model = build_model(images, {"face_limit": spec["face_limit"]}, lambda f, s: None)
                export.write_glb(model.mesh, out / f"{name}-{count}.glb")
                if run:  # the first run of a case is untimed
                    seconds.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                    stages.append(model.timings.ms)
            results["cases"][f"{name}/{count}"] = {
                "seconds": seconds,
                "cpu": cpu,
                "stages": {k: statistics.median(s[k] for s in stages) for k in stages[0]},
                "faces": model.figures["faces"],
                "peak_rss_mb": _peak_mb(),
            }
    results["peak_rss_mb"] = _peak_mb()
    print(json.dumps(results))


def _timings(args: argparse.Namespace, tmp: Path, verdicts: Verdicts) -> None:
    from tests.support import solids

    names = TIMED[:1] if args.quick else TIMED
    cases = {}
    for name in names:
        photos = solids.photographs(solids.SOLIDS[name], shots=[solids.Shot((1024, 1024))] * 4)
        cases[name] = []
        for k, photo in enumerate(photos):
            path = tmp / f"{name}-{k}.jpg"
            photo.save(path, quality=90)
            cases[name].append(str(path))
    spec = tmp / "spec.json"
    spec.write_text(
        json.dumps({"cases": cases, "repeat": args.repeat, "face_limit": args.face_limit, "out": str(tmp)})
    )
    done = subprocess.run(
        [sys.executable, __file__, "--time-worker", str(spec)], capture_output=True, text=True, check=True
    )
    results = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"worker cold start (imports + warm-up): {results['cold_ms']} ms; one core; median of {args.repeat}"
    )
    print("(CPU s: the worker's own CPU time per item, which other processes on the machine do not inflate)")
    print(f"\n{'case':<10} {'views':>5} {'faces':>6} {'wall s':>7} {'CPU s':>6}  stages (median ms)")
    medians: dict[int, list[float]] = {4: [], 2: []}
    for key, case in results["cases"].items():
        name, count = key.split("/")
        median = statistics.median(case["seconds"])
        medians[int(count)].append(median)
        stages = "  ".join(f"{k} {v:.0f}" for k, v in case["stages"].items())
        cpu = statistics.median(case["cpu"])
        print(
            f"{name:<10} {count:>5} {case['faces']:>6} {median:>7.3f} {cpu:>6.3f}  {stages}  (peak so far {case['peak_rss_mb']} MB)"
        )
    print()
    for count, target in TARGETS_S.items():
        verdicts.check(
            f"{count} views of 1024 px → GLB (slowest solid's median)", max(medians[count]), target, "s"
        )
    print(
        f"  (peak RSS after the warm-up alone, which loads the single-photo path's segmenter: "
        f"{results['warm_peak_rss_mb']} MB)"
    )
    verdicts.check("peak RSS of the worker", results["peak_rss_mb"], RSS_TARGET_MB, "MB")


def _iou_table(args: argparse.Namespace, verdicts: Verdicts) -> None:
    from image2model.core.generators.local import pipeline
    from image2model.core.generators.local.multiview import build_model
    from tests.support import solids

    def quiet(_f: float, _s: str) -> None:
        return None

    options = {"face_limit": args.face_limit}
    table = dict(solids.SOLIDS)
    table[solids.PLAN_L.name] = solids.PLAN_L
    print(f"\nvolumetric IoU against the solid (both centred, largest extent 1; {solids.GRID}³ samples)")
    print(
        f"{'solid':<10} {'kind':<6} {'1 photo':>8} {'2 views':>8} {'4 views':>8} {'4 persp.':>9}  decisions (4 views)"
    )
    renders = Path(args.renders) if args.renders else None
    for name, solid in table.items():
        photos = solids.photographs(solid)
        single = pipeline.build_model(photos[0], options, quiet)
        row = [solids.model_iou(solid, single.mesh.vertices, single.mesh.faces)]
        four = None
        for views in (photos[:2], photos, solids.photographs(solid, perspective=PERSPECTIVE, rgba=True)):
            model = build_model(views, options, quiet)
            welded = model.mesh.welded
            row.append(solids.model_iou(solid, welded.vertices, welded.faces))
            four = four or (model if len(views) == 4 else None)
        assert four is not None
        shape = four.figures["shape"]
        decisions = f"{shape['round_parts']} round, {shape['box_parts']} box"
        print(f"{name:<10} {solid.kind:<6} " + " ".join(f"{v:>8.3f}" for v in row) + f"   {decisions}")
        if solid is not solids.PLAN_L:
            target = 0.9 if solid.kind == "box" else 0.85
            verdicts.check(f"{name}, 4 orthographic views", row[2], target, "IoU", higher_is_better=True)
        if renders is not None:
            _render(four, renders / f"{name}.png")
    print(
        "(l-plan is an L in plan: its notch faces a corner, no view shows it, and the carving keeps it filled)"
    )


def _render(model, path: Path) -> None:
    import numpy as np
    from PIL import Image

    from image2model.core.mesh import preview

    path.parent.mkdir(parents=True, exist_ok=True)
    renderer = preview.Renderer(model.mesh, texture_size=1024)
    # The renderer turns the model by yaw: 270 brings its left side (+X) to the camera, 90 its right side.
    angles = ((0, 0), (270, 0), (180, 0), (90, 0), (0, 89))  # front, left, back, right, top
    Image.fromarray(np.concatenate([renderer.render(320, yaw, pitch) for yaw, pitch in angles], axis=1)).save(
        path
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--face-limit", type=int, default=20000)
    parser.add_argument("--quick", action="store_true", help="time the chair only, 2 repeats")
    parser.add_argument("--renders", help="write a PNG of each 4-view model from five sides into this folder")
    parser.add_argument("--timings-only", action="store_true", help="skip the IoU table")
    parser.add_argument("--time-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_worker:
        time_worker(args.time_worker)
        return 0
    if args.quick:
        args.repeat = min(args.repeat, 2)
    verdicts = Verdicts()
    with tempfile.TemporaryDirectory(prefix="bench-multiview-") as tmp:
        _timings(args, Path(tmp), verdicts)
    if not args.timings_only:
        _iou_table(args, verdicts)
    return verdicts.exit_code


if __name__ == "__main__":
    sys.exit(main())
