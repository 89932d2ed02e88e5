"""Job history: `GET /api/v1/jobs` pages of 20 out of 10,000 jobs of one API key, API only (no workers).

Usage: python bench/history.py [--quick] [--jobs 10000] [--requests 300] [--backend sqlite|redis]
Target (issue 14): p50 <= 10 ms for a page of 20. The jobs (each completed, with a model and a preview, so every
entry gets its signed links and preview URL) are written straight into the service's job store before the API
starts; another key owns as many again, so the index has to skip them. Timed sequentially over one keep-alive
connection: the first page, a page deep in the history (through its cursor), and the first page of a status filter.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

import httpx
from _common import Verdicts, add_backend_argument, cpu_seconds, pct, running_stack

TARGET_P50_MS = 10.0
KEY, OTHER = "history-bench", "history-other"


def fill(stack, jobs: int, owner: str, start: float) -> None:
    """`jobs` completed one-photo jobs of `owner`, one second apart (a failed one every tenth), in the store."""
    from image2model.api.store import ItemRecord, JobRecord, open_store
    from image2model.core.models import ItemStatus, JobStatus
    from image2model.core.settings import Settings

    store = open_store(Settings(data_dir=stack.data_dir, redis_url=stack.redis_url))
    try:
        for n in range(jobs):
            job_id, t = str(uuid.uuid4()), start + n
            failed = n % 10 == 9
            outputs = [
                {"filename": f"p{n}.glb", "format": "glb", "role": "model", "mime_type": "model/gltf-binary"}
                | {"size": 1000, "key": f"{job_id}/out/p{n}.glb"},
                {
                    "filename": f"p{n}.preview.png",
                    "format": "png",
                    "role": "preview",
                    "mime_type": "image/png",
                }
                | {"size": 100, "key": f"{job_id}/out/p{n}.preview.png"},
            ]
            item = ItemRecord(
                index=0,
                file_id=str(uuid.uuid4()),
                filename=f"p{n}.jpg",
                basename=f"p{n}",
                inputs=[f"{job_id}/in/0.jpg"],
                content_type="image/jpeg",
                size=1000,
                status=ItemStatus.FAILED if failed else ItemStatus.COMPLETED,
                progress=100.0,
                outputs=[] if failed else outputs,
            )
            job = JobRecord(
                job_id=job_id,
                owner=owner,
                generator="instant",
                face_limit=1000,
                formats=["glb"],
                options={},
                total=1,
                created_at=t,
                updated_at=t,
                status=JobStatus.FAILED if failed else JobStatus.COMPLETED,
                progress=100.0,
            )
            store.create_job(job, [item])
    finally:
        store.close()


def timed(client: httpx.Client, url: str, params: dict, n: int) -> tuple[list[float], dict]:
    latencies, body = [], {}
    for _ in range(n):
        t0 = time.perf_counter()
        response = client.get(url, params=params)
        latencies.append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
        body = response.json()
    return latencies, body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 jobs, 100 requests per kind")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    add_backend_argument(parser)
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.requests = 2_000, 100

    from image2model.api.security import owner_of

    print(
        f"history: pages of 20 out of {args.jobs} jobs of one key (+{args.jobs} of another), "
        f"{args.requests} sequential requests per kind, {args.backend}"
    )
    with running_stack(
        "history", workers=None, backend=args.backend, api_keys=f"{KEY},{OTHER}", rate_limit_per_minute="0"
    ) as stack:
        t0 = time.perf_counter()
        base = time.time() - 2 * args.jobs
        fill(stack, args.jobs, owner_of(KEY), base)
        fill(stack, args.jobs, owner_of(OTHER), base + 0.5)
        print(f"  stored {2 * args.jobs} jobs in {time.perf_counter() - t0:.1f} s")
        url = f"{stack.url}/api/v1/jobs"
        with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as client:
            timed(client, url, {"limit": 20}, 20)  # warm-up
            cursor = None
            for _ in range(args.jobs // 40):  # half way down the history
                cursor = client.get(
                    url, params={"limit": 20, **({"cursor": cursor} if cursor else {})}
                ).json()["next_cursor"]
            kinds = {
                "first page": {"limit": 20},
                "page half way down": {"limit": 20, "cursor": cursor},
                "first page of status=failed": {"limit": 20, "status": "failed"},
            }
            cpu0 = cpu_seconds(stack.api.pid if stack.api is not None else 0)
            health, _ = timed(client, f"{stack.url}/api/v1/health", {}, args.requests)
            cpu = (cpu_seconds(stack.api.pid if stack.api is not None else 0) - cpu0) / args.requests * 1000
            print(
                f"  (baseline GET /api/v1/health: p50 {pct(health, 50):.2f} ms, API CPU {cpu:.2f} ms per request: "
                "the machine's HTTP floor now)"
            )
            v = Verdicts()
            api_pid = stack.api.pid if stack.api is not None else 0
            for label, params in kinds.items():
                cpu0 = cpu_seconds(api_pid)
                latencies, body = timed(client, url, params, args.requests)
                cpu = (cpu_seconds(api_pid) - cpu0) / args.requests * 1000
                assert len(body["jobs"]) == 20 and body["next_cursor"], body
                print(
                    f"  {label}: p50 {pct(latencies, 50):.2f} ms  p90 {pct(latencies, 90):.2f} ms  "
                    f"p99 {pct(latencies, 99):.2f} ms  (API CPU {cpu:.2f} ms per request)"
                )
                v.check(f"{label} p50", pct(latencies, 50), TARGET_P50_MS, "ms")
    return v.exit_code


if __name__ == "__main__":
    sys.exit(main())
