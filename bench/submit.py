"""Submit throughput: POST /api/v1/upload/ with one ~200 KB JPEG, workers stopped (API only), 16 clients.

Usage: python bench/submit.py [--quick] [--duration 10] [--connections 16] [--processes 1,2] [--client wrk|httpx]
       [--idempotency-key without|with|both]
Targets (issue 2): >= 400 uploads/s, p99 <= 50 ms at 16 concurrent clients, on this 2-core machine.
Issue 14: with a fresh `Idempotency-Key` on every request, uploads/s stay within 10 % of the same run without
(`--idempotency-key both`, the default, runs each configuration without, then with, on a fresh stack each).
The load generator runs on the same cores as the server; its CPU time is printed next to the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from _common import (
    Stack,
    Verdicts,
    add_backend_argument,
    children,
    cpu_seconds,
    noisy_jpeg,
    pct,
    running_stack,
)

TARGET_RATE = 400.0
TARGET_P99_MS = 50.0
TARGET_SCALING = 1.5
"""Uploads/s with 2 API processes over 1 process (issue 8, on Redis)."""

TARGET_IDEMPOTENT_RATIO = 0.90
"""Uploads/s with an Idempotency-Key on every request over uploads/s without (issue 14)."""

WRK_SCRIPT = r"""
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CTYPE")
local prefix = os.getenv("BENCH_KEY_PREFIX") or ""
if prefix ~= "" then
  local counter = 0
  request = function()
    counter = counter + 1
    wrk.headers["Idempotency-Key"] = prefix .. counter
    return wrk.format()
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,'
    .. '"p50":%d,"p90":%d,"p99":%d,"max":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def multipart(jpeg: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="photo.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + jpeg
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def api_pids(pid: int) -> list[int]:
    """The API process and (with --processes N) its uvicorn worker processes."""
    return [pid, *children(pid)]


def run_wrk(
    urls: list[str], body_path: Path, ctype: str, script: Path, seconds: float, conns: int, keyed: bool
) -> dict:
    """One wrk per URL at once, `conns` connections split evenly between them (as a balancer would); with
    `keyed`, every request carries an Idempotency-Key of its own."""
    env = {**os.environ, "BENCH_BODY": str(body_path), "BENCH_CTYPE": ctype}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [
        subprocess.Popen(
            ["wrk", "-t1", f"-c{conns // len(urls)}", f"-d{max(1, round(seconds))}s", "--timeout", "5s"]
            + ["-s", str(script), url],
            env={**env, "BENCH_KEY_PREFIX": f"{uuid.uuid4().hex}-" if keyed else ""},
            stdout=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    runs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 30)
        if proc.returncode:
            raise RuntimeError(f"wrk exited with {proc.returncode}")
        runs.append(json.loads(next(x for x in out.splitlines() if x.startswith("BENCH "))[6:]))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "requests": sum(r["requests"] for r in runs),
        "seconds": max(r["duration_us"] for r in runs) / 1e6,
        "errors": sum(r[k] for r in runs for k in ("status", "connect", "read", "write", "timeout")),
        # Percentiles cannot be merged across wrk instances: the slowest instance's are shown.
        **{q: max(r[q] for r in runs) / 1000 for q in ("p50", "p90", "p99", "max")},
        "client_cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    }


async def _httpx_load(
    urls: list[str], body: bytes, ctype: str, seconds: float, conns: int, keyed: bool
) -> dict:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    async with httpx.AsyncClient(limits=limits, timeout=5) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def one_client(url: str) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                headers = {"Content-Type": ctype}
                if keyed:
                    headers["Idempotency-Key"] = uuid.uuid4().hex
                try:
                    r = await client.post(url, content=body, headers=headers)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - t0) * 1000)
                else:
                    errors += 1

        await asyncio.gather(*(one_client(urls[i % len(urls)]) for i in range(conns)))
        elapsed = time.perf_counter() - start
    return {
        "requests": len(latencies) + errors,
        "seconds": elapsed,
        "errors": errors,
        "p50": pct(latencies, 50),
        "p90": pct(latencies, 90),
        "p99": pct(latencies, 99),
        "max": max(latencies, default=float("nan")),
    }


def run_httpx(urls: list[str], body: bytes, ctype: str, seconds: float, conns: int, keyed: bool) -> dict:
    t0 = time.process_time()
    result = asyncio.run(_httpx_load(urls, body, ctype, seconds, conns, keyed))
    result["client_cpu"] = time.process_time() - t0
    return result


def start_profiler(out: str | None, pid: int, seconds: float, processes: int) -> subprocess.Popen | None:
    """py-spy (collapsed stacks, all threads, sampled without pausing the process) on one API process for the measured run."""
    if not out:
        return None
    path = f"{out}.p{processes}.txt"
    print(f"  profiling pid {pid} into {path}")
    cmd = [
        "py-spy",
        "record",
        "-p",
        str(pid),
        "-d",
        str(round(seconds)),
        "-r",
        "100",
        "--nonblocking",
        "-f",
        "raw",
        "-o",
        path,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(
    args: argparse.Namespace, processes: int, replicas: int, jpeg: bytes, tmp: Path, keyed: bool
) -> dict:
    """One run: `replicas` API servers (each with `processes` uvicorn processes) on one store, loaded evenly;
    with `keyed`, every upload carries an Idempotency-Key of its own."""
    body, ctype = multipart(jpeg)
    body_path = tmp / "body.bin"
    body_path.write_bytes(body)
    script = tmp / "upload.lua"
    script.write_text(WRK_SCRIPT)
    with (
        running_stack(
            "submit", workers=None, processes=processes, backend=args.backend, rate_limit_per_minute="0"
        ) as stack,
        contextlib.ExitStack() as others,
    ):
        apis = [stack]
        for n in range(1, replicas):
            replica = Stack(
                stack.data_dir, name=f"replica{n}", redis_url=stack.redis_url, rate_limit_per_minute="0"
            )
            replica.env["PYTHONPATH"] = stack.env["PYTHONPATH"]
            others.callback(replica.stop)
            replica.start_api(processes)
            apis.append(replica)
        urls = [f"{api.url}/api/v1/upload/" for api in apis]
        check = httpx.post(urls[0], content=body, headers={"Content-Type": ctype}, timeout=10)
        if check.status_code != 200:
            raise RuntimeError(f"upload failed: {check.status_code} {check.text[:500]}")
        pids = [pid for api in apis if api.api is not None for pid in api_pids(api.api.pid)]
        if args.client == "wrk":

            def load(seconds: float) -> dict:
                return run_wrk(urls, body_path, ctype, script, seconds, args.connections, keyed)
        else:

            def load(seconds: float) -> dict:
                return run_httpx(urls, body, ctype, seconds, args.connections, keyed)

        load(args.warmup)
        spy = start_profiler(args.profile, pids[-1], args.duration, processes * replicas)
        redis_pid = stack.redis.proc.pid if stack.redis is not None and stack.redis.proc is not None else None
        cpu0 = sum(cpu_seconds(p) for p in pids)
        redis0 = cpu_seconds(redis_pid) if redis_pid else 0.0
        result = load(args.duration)
        if spy is not None:
            spy.wait(timeout=60)
        result["server_cpu"] = sum(cpu_seconds(p) for p in pids) - cpu0
        result["server_pids"] = len(pids)
        result["redis_cpu"] = cpu_seconds(redis_pid) - redis0 if redis_pid else None
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs, one API process")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--processes", default="1,2", help="API process counts to try, comma-separated")
    parser.add_argument(
        "--replicas",
        type=int,
        default=2,
        help="on Redis, also run this many separate API servers (replicas, one process each) with the load split "
        "evenly between them, as behind a balancer; 1 to skip",
    )
    parser.add_argument("--profile", metavar="PREFIX", help="py-spy the API during the run (PREFIX.pN.txt)")
    parser.add_argument(
        "--client", choices=("wrk", "httpx"), default="wrk" if shutil.which("wrk") else "httpx"
    )
    parser.add_argument(
        "--idempotency-key",
        dest="idempotency",
        choices=("without", "with", "both"),
        default="both",
        help="send a fresh Idempotency-Key with every upload, or not, or run each configuration both ways",
    )
    add_backend_argument(parser)
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.processes, args.replicas = 3.0, 1.0, "1", 1
    shapes = [(int(p), 1) for p in args.processes.split(",")]
    if args.backend == "redis" and args.replicas > 1:
        shapes.append((1, args.replicas))
    keyings = {"without": [False], "with": [True], "both": [False, True]}[args.idempotency]
    runs = [(processes, replicas, keyed) for processes, replicas in shapes for keyed in keyings]

    jpeg = noisy_jpeg(200 * 1024)
    print(
        f"submit: one {len(jpeg) / 1024:.0f} KB JPEG per upload, {args.connections} clients, "
        f"{args.duration:g} s, client {args.client}, workers stopped, {args.backend}; "
        f"{os.cpu_count()} cores shared with the client"
    )
    passed_any = False
    rates: dict[tuple[int, int, bool], float] = {}
    cpu_per_upload: dict[tuple[int, int, bool], float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-submit-client-") as tmp:
        for processes, replicas, keyed in runs:
            os.sync()  # the file system settles what earlier runs wrote and deleted before this run starts
            r = measure(args, processes, replicas, jpeg, Path(tmp), keyed)
            ok = r["requests"] - r["errors"]
            rate = ok / r["seconds"]
            rates[processes, replicas, keyed] = rate
            shape = f"{replicas} API replicas" if replicas > 1 else f"API --processes {processes}"
            shape += ", an Idempotency-Key on every upload" if keyed else ""
            print(f"\n{shape}: {ok} uploads in {r['seconds']:.1f} s, {r['errors']} errors")
            print(
                f"  latency ms  p50 {r['p50']:.1f}  p90 {r['p90']:.1f}  p99 {r['p99']:.1f}  max {r['max']:.1f}"
            )
            cpu_per_upload[processes, replicas, keyed] = r["server_cpu"] / max(ok, 1) * 1000
            print(
                f"  CPU over the run: server {r['server_cpu'] / r['seconds'] * 100:.0f} % of a core "
                f"({r['server_pids']} process(es), {cpu_per_upload[processes, replicas, keyed]:.2f} ms per upload), "
                f"load generator {r['client_cpu'] / r['seconds'] * 100:.0f} %"
                + (
                    f", redis-server {r['redis_cpu'] / r['seconds'] * 100:.0f} %"
                    if r["redis_cpu"] is not None
                    else ""
                )
            )
            v = Verdicts()
            v.check("uploads/s", rate, TARGET_RATE, "/s", higher_is_better=True)
            v.check("p99 latency", r["p99"], TARGET_P99_MS, "ms")
            if r["errors"]:
                print(f"  FAIL  {r['errors']} failed requests")
                v.failed += 1
            passed_any |= v.exit_code == 0
    print()
    v = Verdicts()
    for keyed in (False, True):
        one = rates.get((1, 1, keyed))
        for (processes, replicas, k), rate in rates.items():
            if one and k == keyed and processes * replicas == 2:
                label = "2 replicas over 1" if replicas == 2 else "2 processes over 1"
                v.check(
                    label + (" (with keys)" if keyed else ""),
                    rate / one,
                    TARGET_SCALING,
                    "x",
                    higher_is_better=True,
                )
    for (processes, replicas, keyed), rate in rates.items():
        without = rates.get((processes, replicas, False))
        if keyed and without:
            shape = f"{replicas} replicas" if replicas > 1 else f"--processes {processes}"
            v.check(
                f"with Idempotency-Key over without ({shape})",
                rate / without,
                TARGET_IDEMPOTENT_RATIO,
                "x",
                higher_is_better=True,
            )
            extra = cpu_per_upload[processes, replicas, True] - cpu_per_upload[processes, replicas, False]
            print(
                f"        (server CPU per upload: {extra:+.2f} ms with the key; steadier than uploads/s on a busy machine)"
            )
    passed_any &= v.exit_code == 0
    return 0 if passed_any else 1


if __name__ == "__main__":
    sys.exit(main())
