"""Many concurrent SSE streams on one API process: connect them all, then let a worker complete their jobs.

Usage: python bench/streams.py [--quick] [--streams 3000] [--per-job 10] [--workers 1]
Targets (issue 2): 3,000 concurrent streams, delivery p50 <= 100 ms (event `timestamp` -> receipt), API RSS <= 400 MB.
Issue 15, many watchers of one job: `--streams 2000 --per-job 100` delivery p50 <= 50 ms and >= 40,000 deliveries
per second of the API process's CPU; `--streams 10000 --per-job 10` p50 <= 100 ms, API RSS <= 800 MB.

How: the API starts alone; `streams / per-job` jobs are uploaded (queued, nobody works on them); every stream
connects (raw asyncio sockets, a minimal SSE reader so the client costs little CPU) and reads its backlog; then
the worker starts, and each job's live events (file_update, task_progress, task_completed) fan out to its
`per-job` streams. Delivery counts only events stamped after their stream was open (live, not replayed).
The client runs on the same cores as the server, so its scheduling delay is inside the figure. Deliveries per
second are counted over the delivery window (the first live event's stamp to the last receipt), and per second of
API CPU in the worker phase: the rate one API process sustains, whatever else shares the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import threading
import time

import httpx
from _common import Verdicts, add_backend_argument, cpu_seconds, pct, rss_kb, running_stack, small_jpeg

TARGET_STREAMS = 3000
TARGET_P50_MS = {"sqlite": 100.0, "redis": 20.0}
TARGET_RSS_MB = 400.0
WIDE_STREAMS, WIDE_RSS_MB = 10_000, 800.0
FANOUT_PER_JOB, FANOUT_P50_MS, FANOUT_RATE = 100, 50.0, 40_000.0
TERMINAL = (b"task_completed", b"task_failed", b"task_cancelled")


class Stats:
    def __init__(self) -> None:
        self.opened = 0
        self.failed = 0
        self.closed_terminal = 0
        self.delays: list[float] = []
        self.replayed = 0
        self.first_live = float("inf")
        """Stamp (ms) of the earliest live event received."""
        self.last_receipt = 0.0


async def open_stream(
    port: int, job_id: str, stats: Stats, deadline: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """Connect and read the response head; None (counted as failed) when no stream could be opened."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout=max(1, deadline - time.monotonic())
        )
    except (OSError, TimeoutError):
        stats.failed += 1
        return None
    try:
        writer.write(
            f"GET /api/v1/status/tasks/{job_id}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(
            reader.readuntil(b"\r\n\r\n"), timeout=max(1, deadline - time.monotonic())
        )
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        head = b""
    if not head.startswith(b"HTTP/1.1 200"):
        stats.failed += 1
        writer.close()
        return None
    stats.opened += 1
    return reader, writer


async def read_stream(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    stats: Stats,
    all_open: asyncio.Event,
    deadline: float,
) -> None:
    opened_ms = time.time() * 1000
    try:
        buf = b""
        while time.monotonic() < deadline:
            chunk = await asyncio.wait_for(reader.read(65536), timeout=max(0.1, deadline - time.monotonic()))
            if not chunk:
                break
            now = time.time() * 1000
            buf = (buf + chunk).replace(b"\r\n", b"\n")  # the service ends lines with CRLF
            *frames, buf = buf.split(b"\n\n")
            for frame in frames:
                if b"event: queue_position" in frame:
                    continue  # a notice of the job's place in the queue, not a stored event
                # Chunked transfer encoding puts size lines between frames; only `data:` lines matter here.
                for line in frame.split(b"\n"):
                    if line.startswith(b"data:"):
                        ts = json.loads(line[5:])["timestamp"]
                        if ts > opened_ms and all_open.is_set():
                            stats.delays.append(now - ts)
                            stats.first_live = min(stats.first_live, ts)
                            stats.last_receipt = max(stats.last_receipt, now)
                        else:
                            stats.replayed += 1
                if any(b"event: " + t in frame for t in TERMINAL):
                    stats.closed_terminal += 1
                    return
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_kb = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
            except (OSError, KeyError):
                return
            time.sleep(self.every)


async def run(args: argparse.Namespace, stack) -> int:
    jobs = max(1, args.streams // args.per_job)
    jpeg = small_jpeg(64)
    api_pid = stack.api.pid
    rss0 = rss_kb(api_pid)
    t = time.monotonic()
    job_ids: list[str] = []
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        sem = asyncio.Semaphore(8)

        async def upload() -> None:
            async with sem:
                r = await client.post(
                    "/api/v1/upload/",
                    files=[("files", ("p.jpg", jpeg, "image/jpeg"))],
                    data={"delay": str(args.delay), "steps": str(args.steps)},
                )
                r.raise_for_status()
                job_ids.append(r.json()["job_id"])

        await asyncio.gather(*(upload() for _ in range(jobs)))
    print(f"  {jobs} jobs queued in {time.monotonic() - t:.1f} s")

    stats = Stats()
    all_open = asyncio.Event()
    deadline = time.monotonic() + args.budget
    sampler = RssSampler(api_pid)
    sampler.start()
    t, api0, client0 = time.monotonic(), cpu_seconds(api_pid), time.process_time()
    tasks: list[asyncio.Task] = []
    for first in range(0, args.streams, args.connect_batch):  # `connect_batch` connections opening at a time
        batch = range(first, min(args.streams, first + args.connect_batch))
        opened = await asyncio.gather(
            *(open_stream(stack.port, job_ids[i % jobs], stats, deadline) for i in batch)
        )
        tasks += [
            asyncio.create_task(read_stream(*pair, stats, all_open, deadline)) for pair in opened if pair
        ]
        if time.monotonic() > deadline:
            break
    connect_s = time.monotonic() - t
    connect_cpu = (cpu_seconds(api_pid) - api0, time.process_time() - client0)
    await asyncio.sleep(1.0)  # let every backlog drain
    rss_open = rss_kb(api_pid)
    print(
        f"  {stats.opened} streams open in {connect_s:.1f} s ({stats.failed} failed; API CPU "
        f"{connect_cpu[0] / connect_s * 100:.0f} %, this client's {connect_cpu[1] / connect_s * 100:.0f} %); "
        f"API RSS {rss0 / 1024:.0f} -> {rss_open / 1024:.0f} MB"
    )
    all_open.set()
    cpu0, t, client0 = cpu_seconds(api_pid), time.monotonic(), time.process_time()
    stack.start_worker(args.workers)
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - t
    api_cpu = cpu_seconds(api_pid) - cpu0
    client_cpu = time.process_time() - client0
    sampler.stop_flag.set()
    sampler.join()
    delays = stats.delays
    window = max(1e-3, (stats.last_receipt - stats.first_live) / 1000)
    rate, capacity = len(delays) / window, len(delays) / max(api_cpu, 1e-3)
    print(
        f"  worker phase: {elapsed:.1f} s, {len(delays)} live deliveries, "
        f"{stats.closed_terminal} streams ended on their terminal event; API CPU {api_cpu / elapsed * 100:.0f} %, "
        f"this client's CPU {client_cpu / elapsed * 100:.0f} %"
    )
    print(
        f"  deliveries: {rate:.0f}/s over the {window:.2f} s delivery window; {capacity:.0f} per second of API CPU "
        f"({api_cpu / max(len(delays), 1) * 1e6:.0f} us each)"
    )
    print(
        f"  delivery ms  p50 {pct(delays, 50):.1f}  p90 {pct(delays, 90):.1f}  p99 {pct(delays, 99):.1f}  "
        f"max {max(delays, default=float('nan')):.1f}"
    )
    print(f"  API RSS peak {sampler.peak_kb / 1024:.0f} MB")
    v = Verdicts()
    fanout = args.per_job >= FANOUT_PER_JOB
    p50_target = min(TARGET_P50_MS[args.backend], FANOUT_P50_MS) if fanout else TARGET_P50_MS[args.backend]
    v.check("concurrent streams", stats.opened, args.streams, "", higher_is_better=True)
    v.check("delivery p50", pct(delays, 50), p50_target, "ms")
    if fanout:
        v.check("deliveries per second of API CPU", capacity, FANOUT_RATE, "/s", higher_is_better=True)
    rss_target = WIDE_RSS_MB if args.streams >= WIDE_STREAMS else TARGET_RSS_MB
    v.check("API RSS peak", sampler.peak_kb / 1024, rss_target, "MB")
    if stats.closed_terminal < stats.opened:
        print(f"  FAIL  {stats.opened - stats.closed_terminal} streams did not end on a terminal event")
        v.failed += 1
    return v.exit_code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 streams")
    parser.add_argument("--streams", type=int, default=TARGET_STREAMS)
    parser.add_argument("--per-job", type=int, default=10, help="streams subscribed to each job")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.0, help="generator seconds per item")
    parser.add_argument("--steps", type=int, default=1, help="generator progress steps per item")
    parser.add_argument("--connect-batch", type=int, default=64, help="connections being opened at once")
    parser.add_argument("--budget", type=float, default=240.0, help="whole run, seconds")
    add_backend_argument(parser)
    args = parser.parse_args()
    if args.quick:
        args.streams = 300
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 2 * args.streams + 1000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the API process inherits it
    if want < args.streams + 200:
        print(f"  open-file limit {want} is too low for {args.streams} streams")
        return 1
    print(
        f"streams: {args.streams} SSE streams, {args.per_job} per job, {args.workers} worker(s), "
        f"fd limit {want}, {args.backend}"
    )
    with running_stack("streams", workers=None, backend=args.backend, rate_limit_per_minute="0") as stack:
        return asyncio.run(run(args, stack))


if __name__ == "__main__":
    sys.exit(main())
