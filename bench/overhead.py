"""Service overhead: upload -> `task_completed` received on the SSE stream, instant generator, sequential jobs.

Usage: python bench/overhead.py [--quick] [--jobs 200] [--workers 1]
Targets (issue 2): p50 <= 60 ms, p99 <= 250 ms. The generator does nothing (delay=0, steps=1) on a 256 px
JPEG, so the figure is queue pickup + store writes + hub tail + SSE delivery + HTTP on both sides.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import httpx
from _common import Verdicts, add_backend_argument, pct, running_stack, small_jpeg

TARGET_P50_MS = 60.0
TARGET_P99_MS = 250.0
TERMINAL = {"task_completed", "task_failed", "task_cancelled"}


def one_job(client: httpx.Client, base: str, jpeg: bytes, timeout: float) -> dict[str, float]:
    """Milliseconds from just before the POST to: upload answered, stream open, each event's receipt."""
    t0 = time.time()
    r = client.post(
        f"{base}/api/v1/upload/",
        files=[("files", ("photo.jpg", jpeg, "image/jpeg"))],
        data={"delay": "0", "steps": "1"},
    )
    r.raise_for_status()
    job_id = r.json()["job_id"]
    marks = {"uploaded": (time.time() - t0) * 1000}
    with client.stream("GET", f"{base}/api/v1/status/tasks/{job_id}/stream", timeout=timeout) as stream:
        marks["stream_open"] = (time.time() - t0) * 1000
        event = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event:
                data = json.loads(line[5:])
                now = (time.time() - t0) * 1000
                marks.setdefault(f"{event}_recv", now)
                marks.setdefault(f"{event}_ts", data["timestamp"] - t0 * 1000)
                if event in TERMINAL:
                    if event != "task_completed":
                        raise RuntimeError(f"job {job_id} ended with {event}: {data}")
                    marks["total"] = now
                    return marks
            if time.time() - t0 > timeout:
                break
    raise TimeoutError(f"job {job_id}: no terminal event within {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 jobs")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--timeout", type=float, default=30.0, help="per job, seconds")
    parser.add_argument("--budget", type=float, default=300.0, help="whole run, seconds")
    add_backend_argument(parser)
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.warmup = 30, 3
    jpeg = small_jpeg()
    print(
        f"overhead: {args.jobs} sequential jobs (+{args.warmup} warm-up), {args.workers} worker process(es), "
        f"{args.backend}"
    )
    rows: list[dict[str, float]] = []
    with running_stack(
        "overhead", workers=args.workers, backend=args.backend, rate_limit_per_minute="0"
    ) as stack:
        deadline = time.monotonic() + args.budget
        with httpx.Client(timeout=args.timeout) as client:
            for i in range(args.warmup + args.jobs):
                if time.monotonic() > deadline:
                    print(f"  stopped at the {args.budget:g} s budget after {len(rows)} jobs")
                    break
                marks = one_job(client, stack.url, jpeg, args.timeout)
                if i >= args.warmup:
                    rows.append(marks)
    if not rows:
        print("  FAIL  no job completed")
        return 1
    totals = [r["total"] for r in rows]
    print(f"\n{len(rows)} jobs; ms from POST (p50 / p90 / p99 / max):")

    def line(label: str, values: list[float]) -> None:
        print(
            f"  {label:38s} {pct(values, 50):7.1f} {pct(values, 90):7.1f} {pct(values, 99):7.1f} {max(values):7.1f}"
        )

    line("upload answered", [r["uploaded"] for r in rows])
    line("stream open (headers)", [r["stream_open"] for r in rows])
    for name in ("task_queued", "file_update", "task_progress", "task_completed"):
        ts = [r[f"{name}_ts"] for r in rows if f"{name}_ts" in r]
        if ts:
            line(f"{name} stamped (server clock)", ts)
    line("task_completed stamp -> receipt", [r["task_completed_recv"] - r["task_completed_ts"] for r in rows])
    line("total (task_completed received)", totals)
    v = Verdicts()
    v.check("p50", pct(totals, 50), TARGET_P50_MS, "ms")
    v.check("p99", pct(totals, 99), TARGET_P99_MS, "ms")
    return v.exit_code


if __name__ == "__main__":
    sys.exit(main())
