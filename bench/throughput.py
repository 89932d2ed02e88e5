"""Local-generator throughput: N one-photo jobs queued, then W worker processes drain them.

Usage: python bench/throughput.py [--quick] [--jobs 80] [--workers 1,2] [--backend sqlite|redis]
Target (issue 8): with 2 worker processes on this 2-core machine, >= 1.8 x the items/s of one process.

How: the API starts alone and every job is uploaded first (a 1024 px toy photo, GLB only, turntable and previews
as usual), so the queue is full when the workers start. The figure comes from the jobs' own event timestamps: from
the first item leaving `queued` (worker start-up excluded) to the last `task_completed`. While the workers run,
the benchmark only asks for the oldest unfinished job's status every 0.25 s, so it takes next to no CPU from them.
"""

from __future__ import annotations

import argparse
import io
import sys
import time

import httpx
from _common import Verdicts, add_backend_argument, running_stack

from image2model.core.generators.local import studio
from tests.support.sse import read_events

TARGET_SCALING = 1.8


def photo_jpeg() -> bytes:
    out = io.BytesIO()
    studio.toy(1024).image.convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def event_span(base_url: str, job_id: str) -> tuple[float, float]:
    """(first item `processing`, `task_completed`) timestamps of a finished job, in seconds, from its event history."""
    events = read_events(f"{base_url}/api/v1/status/tasks/{job_id}/stream")
    start = next(
        (
            e.data["timestamp"]
            for e in events
            if e.event == "file_update" and e.data["status"] == "processing"
        ),
        None,
    )
    end = next((e.data["timestamp"] for e in events if e.event == "task_completed"), None)
    if start is None or end is None:
        raise RuntimeError(f"job {job_id}: no processing or task_completed event in its history")
    return start / 1000, end / 1000


def drain(args: argparse.Namespace, workers: int, jpeg: bytes) -> float:
    """Items per second with `workers` worker processes."""
    with (
        running_stack(
            "throughput",
            workers=None,
            backend=args.backend,
            default_generator="local",
            rate_limit_per_minute="0",
        ) as stack,
        httpx.Client(base_url=stack.url, timeout=30) as client,
    ):
        job_ids = []
        for i in range(args.jobs):
            response = client.post(
                "/api/v1/upload/",
                files=[("files", (f"toy{i}.jpg", jpeg, "image/jpeg"))],
                data={"formats": "glb"},
            )
            response.raise_for_status()
            job_ids.append(response.json()["job_id"])
        stack.start_worker(workers)
        deadline = time.monotonic() + args.budget
        pending = list(job_ids)
        while pending and time.monotonic() < deadline:
            status = client.get(f"/api/v1/status/tasks/{pending[0]}").json()["status"]
            if status == "failed":
                raise RuntimeError(f"job {pending[0]} failed")
            if status == "completed":
                pending.pop(0)
                continue
            time.sleep(0.25)
        if pending:
            raise RuntimeError(f"{len(pending)} jobs unfinished after {args.budget:g} s")
        spans = [event_span(stack.url, job_id) for job_id in job_ids]
        elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    rate = args.jobs / elapsed
    print(f"  {workers} worker process(es): {args.jobs} items in {elapsed:.1f} s = {rate:.2f} items/s")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 jobs")
    parser.add_argument("--jobs", type=int, default=80)
    parser.add_argument("--workers", default="1,2", help="worker process counts, comma-separated")
    parser.add_argument("--budget", type=float, default=300.0, help="per run, seconds")
    add_backend_argument(parser)
    args = parser.parse_args()
    if args.quick:
        args.jobs = 12
    counts = [int(w) for w in args.workers.split(",")]
    print(f"throughput: {args.jobs} one-photo jobs, local generator, GLB, {args.backend}")
    jpeg = photo_jpeg()
    rates = {w: drain(args, w, jpeg) for w in counts}
    v = Verdicts()
    if 1 in rates and 2 in rates:
        v.check("2 processes over 1", rates[2] / rates[1], TARGET_SCALING, "x", higher_is_better=True)
    return v.exit_code


if __name__ == "__main__":
    sys.exit(main())
