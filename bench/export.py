"""Export speed: STL, 80 mm tall, Z up, origin at the bottom, from a stored 20k-face model, through the service.

Usage: python bench/export.py [--quick] [--exports 40] [--backend sqlite|redis]
Targets (issue 14): <= 150 ms in the worker (claim to stored record: master read, transforms, print report, STL
written and stored), <= 300 ms for the whole request (POST until the 201 with the listing entry), p50 of
sequential requests. The model is the local generator's chair at face_limit 20000; one worker process. It also
prints the in-process cost of the same shaping + STL write, without the service around it.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

import httpx
from _common import REPO, Verdicts, add_backend_argument, pct, running_stack

TARGET_WORKER_MS = 150.0
TARGET_REQUEST_MS = 300.0
FACES = 20_000
BODY = {"formats": ["stl"], "height_mm": 80, "up": "z", "origin": "bottom"}
_WORKER_MS = re.compile(r"event=export_completed export_id=(\S+) .* ms=([0-9.]+)")


def stored_model(client: httpx.Client, base: str) -> str:
    """A finished local-generator job of the chair at 20k faces; returns its id."""
    chair = (REPO / "core" / "generators" / "local" / "samples" / "chair.png").read_bytes()
    r = client.post(
        f"{base}/api/v1/upload/",
        files=[("files", ("chair.png", chair, "image/png"))],
        data={"generator": "local", "face_limit": str(FACES), "formats": "glb"},
    )
    r.raise_for_status()
    job_id = r.json()["job_id"]
    for _ in range(600):
        status = client.get(f"{base}/api/v1/status/tasks/{job_id}").json()["status"]
        if status in ("completed", "failed"):
            break
        time.sleep(0.1)
    listing = client.get(f"{base}/api/v1/download/{job_id}/all").json()
    if status != "completed" or listing["files"][0]["metadata"]["faces"] != FACES:
        raise RuntimeError(f"the 20k-face model was not made: {status} {listing}")
    return job_id


def in_process_ms(runs: int) -> float:
    """p50 of shaping + STL writing the same model in this process (no service)."""
    import tempfile
    from pathlib import Path

    from PIL import Image

    from image2model.core.generators.local import pipeline
    from image2model.core.mesh import export, gltf, printability, transform

    image = Image.open(REPO / "core" / "generators" / "local" / "samples" / "chair.png")
    data = export.glb_bytes(pipeline.build_model(image, {"face_limit": FACES}, lambda _f, _s: None).mesh)
    shaping = transform.Shaping(height_mm=80.0, up="z", origin="bottom")
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            t = time.perf_counter()
            mesh = transform.shaped(gltf.model_mesh(data)[0], shaping)
            printability.print_report(mesh, 80.0, 2)
            export.write_stl(mesh, Path(tmp) / "m.stl")
            times.append((time.perf_counter() - t) * 1000)
    return pct(times, 50)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15 exports")
    parser.add_argument("--exports", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    add_backend_argument(parser)
    args = parser.parse_args()
    runs = 15 if args.quick else args.exports
    verdicts = Verdicts()
    with (
        running_stack("export", workers=1, backend=args.backend) as stack,
        httpx.Client(timeout=90) as client,
    ):
        job_id = stored_model(client, stack.url)
        url = f"{stack.url}/api/v1/jobs/{job_id}/exports"
        request_ms: dict[str, float] = {}
        for n in range(args.warmup + runs):
            t = time.perf_counter()
            r = client.post(url, json=BODY)
            elapsed = (time.perf_counter() - t) * 1000
            if r.status_code != 201:
                raise RuntimeError(f"export answered {r.status_code}: {r.text[:300]}")
            if n >= args.warmup:
                request_ms[r.json()["export_id"]] = elapsed
        logged = dict(_WORKER_MS.findall(stack.log("worker")))
        worker_ms = [float(logged[e]) for e in request_ms if e in logged]
    requests = list(request_ms.values())
    print(
        f"export STL 80 mm Z-up bottom from a {FACES}-face model, {runs} sequential requests ({args.backend}):"
    )
    print(
        f"  request p50 {pct(requests, 50):.1f} ms  p90 {pct(requests, 90):.1f} ms  max {max(requests):.1f} ms"
    )
    print(
        f"  worker  p50 {pct(worker_ms, 50):.1f} ms  p90 {pct(worker_ms, 90):.1f} ms  ({len(worker_ms)} logged)"
    )
    print(f"  in-process shaping + print report + STL: p50 {in_process_ms(10):.1f} ms")
    verdicts.check("worker p50", pct(worker_ms, 50), TARGET_WORKER_MS, "ms")
    verdicts.check("request p50", pct(requests, 50), TARGET_REQUEST_MS, "ms")
    return verdicts.exit_code


if __name__ == "__main__":
    sys.exit(main())
