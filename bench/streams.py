"""Many concurrent SSE streams on one API process: connect them all, then let a worker complete their jobs.

Usage: python bench/streams.py [--quick] [--streams 3000] [--per-job 10] [--workers 1] [--clients 2]
Targets (issue 2): 3,000 concurrent streams, delivery p50 <= 100 ms (event `timestamp` -> receipt), API RSS <= 400 MB.
Issue 15, many watchers of one job: `--streams 2000 --per-job 100` delivery p50 <= 50 ms and >= 40,000 deliveries
per second of the API process's CPU; `--streams 10000 --per-job 10` p50 <= 100 ms, API RSS <= 800 MB.

How: the API starts alone; `streams / per-job` jobs are uploaded (queued, nobody works on them); every stream
connects and reads its backlog; then the worker starts, and each job's live events (file_update, task_progress,
task_completed) fan out to its `per-job` streams. Delivery = the time the bytes of an event reach the watcher's
process (its `data_received`) - the event's `timestamp` (stamped in the store transaction that wrote it),
counting only live events (stamped after every stream was open, not replayed).

The watchers run in `--clients` processes of their own (each a uvloop loop of raw `asyncio.Protocol` sockets, the
streams spread over them round robin), so how fast one Python process can read thousands of sockets is not what
is measured: with one process reading 2,000 streams, the reader itself held events up. They share the cores with
the server, so their scheduling delay is inside the figure. Deliveries per second are counted over the delivery
window (the first live event's stamp to the last receipt), and per second of API CPU in the worker phase (until a
second after the last terminal event, so the ends of the responses count): the rate one API process sustains,
whatever else shares the cores. Every process raises its `RLIMIT_NOFILE` (the API inherits the raised limit from
this one)."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import resource
import sys
import threading
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

import httpx
from _common import Verdicts, add_backend_argument, cpu_seconds, pct, rss_kb, running_stack, small_jpeg

TARGET_STREAMS = 3000
TARGET_P50_MS = {"sqlite": 100.0, "redis": 20.0}
TARGET_RSS_MB = 400.0
WIDE_STREAMS, WIDE_RSS_MB = 10_000, 800.0
FANOUT_PER_JOB, FANOUT_P50_MS, FANOUT_RATE = 100, 50.0, 40_000.0
END_SETTLE_S = 1.0
"""Waited after the last stream's terminal event before the API's CPU is read (it ends the responses by then)."""
TERMINAL = frozenset({b"task_completed", b"task_failed", b"task_cancelled"})
FRAME = re.compile(rb"event: (\w+)\r\ndata: ([^\r\n]*)\r\n")
"""An SSE frame's type and data line (the service ends lines with CRLF; chunk-size lines never match)."""


def raise_fd_limit(streams: int) -> int:
    """Raise this process's open-file limit for `streams` sockets (and the API's, which inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 2 * streams + 1000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


# ---- watchers (in the client processes) ----------------------------------------------------------------


@dataclass
class Tally:
    """What one client process saw."""

    opened: int = 0
    failed: int = 0
    terminal: int = 0
    stamps: array = field(default_factory=lambda: array("d"))
    """Each event's `timestamp` (ms), in receipt order..."""
    receipts: array = field(default_factory=lambda: array("d"))
    """...and when its bytes arrived (ms)."""


class Watcher(asyncio.Protocol):
    """One SSE stream: sends the request, checks the response head, records each event's stamp and receipt
    time, and hangs up after the terminal event."""

    def __init__(self, request: bytes, tally: Tally, head: asyncio.Future, done: asyncio.Future) -> None:
        self.request, self.tally, self.head, self.done = request, tally, head, done
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.in_head = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]  # uvloop's are not asyncio's classes
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.time() * 1000
        buf = self.buf + data if self.buf else data
        if self.in_head:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            self.in_head = False
            ok = buf.startswith(b"HTTP/1.1 200")
            self.head.set_result(ok)
            if not ok:
                self._hang_up()
                return
            buf = buf[end + 4 :]
        end = buf.rfind(b"\r\n\r\n")
        if end < 0:
            self.buf = buf
            return
        self.buf = buf[end + 4 :]
        tally = self.tally
        for match in FRAME.finditer(buf, 0, end + 4):
            kind = match[1]
            if kind == b"queue_position":
                continue  # a notice of the job's place in the queue, not a stored event
            tally.stamps.append(json.loads(match[2])["timestamp"])
            tally.receipts.append(now)
            if kind in TERMINAL:
                tally.terminal += 1
                self._hang_up()
                return

    def _hang_up(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_result(False)
        if not self.done.done():
            self.done.set_result(None)


async def watch(port: int, job_ids: list[str], batch: int, budget: float, conn: Connection) -> None:
    """Open a stream per job id (`batch` connecting at once), report, then read until every stream ended."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + budget
    tally = Tally()
    done: list[asyncio.Future] = []

    async def open_one(job_id: str) -> None:
        request = (
            f"GET /api/v1/status/tasks/{job_id}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
        head, ended = loop.create_future(), loop.create_future()
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(lambda: Watcher(request, tally, head, ended), "127.0.0.1", port),
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except (OSError, TimeoutError):
            tally.failed += 1
            return
        try:
            ok = await asyncio.wait_for(head, timeout=max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            ok = False
        if ok:
            tally.opened += 1
            done.append(ended)
        else:
            tally.failed += 1
            transport.close()

    for first in range(0, len(job_ids), batch):
        await asyncio.gather(*(open_one(job_id) for job_id in job_ids[first : first + batch]))
        if time.monotonic() > deadline:
            break
    conn.send(("open", tally.opened, tally.failed))
    go = loop.create_future()

    def heard() -> None:
        if not go.done():
            go.set_result(conn.recv())

    loop.add_reader(conn.fileno(), heard)
    await asyncio.wait_for(go, timeout=max(1.0, deadline - time.monotonic()))
    cpu0 = time.process_time()
    if done:
        await asyncio.wait(done, timeout=max(1.0, deadline - time.monotonic()))
    loop.remove_reader(conn.fileno())
    os.set_blocking(
        conn.fileno(), True
    )  # the loop made it non-blocking; the results are larger than a pipe holds
    conn.send(
        (
            "done",
            tally.terminal,
            time.process_time() - cpu0,
            tally.stamps.tobytes(),
            tally.receipts.tobytes(),
        )
    )


def client_main(port: int, job_ids: list[str], batch: int, budget: float, conn: Connection) -> None:
    """A client process: its share of the streams on a uvloop loop (asyncio's own where uvloop is missing)."""
    raise_fd_limit(len(job_ids))
    try:
        import uvloop
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run
    run(watch(port, job_ids, batch, budget, conn))


# ---- the run (this process) ----------------------------------------------------------------------------


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


async def queue_jobs(url: str, jobs: int, delay: float, steps: int) -> list[str]:
    jpeg = small_jpeg(64)
    job_ids: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        sem = asyncio.Semaphore(8)

        async def upload() -> None:
            async with sem:
                r = await client.post(
                    "/api/v1/upload/",
                    files=[("files", ("p.jpg", jpeg, "image/jpeg"))],
                    data={"delay": str(delay), "steps": str(steps)},
                )
                r.raise_for_status()
                job_ids.append(r.json()["job_id"])

        await asyncio.gather(*(upload() for _ in range(jobs)))
    return job_ids


def gather(conns: list[Connection], kind: str, deadline: float) -> list[tuple]:
    """One `kind` message from every client process, waiting until `deadline` (monotonic) at most."""
    got: dict[Connection, tuple] = {}
    waiting = list(conns)
    while waiting and time.monotonic() < deadline:
        for conn in wait(waiting, timeout=max(0.1, deadline - time.monotonic())):
            assert isinstance(conn, Connection)
            try:
                message = conn.recv()
            except EOFError:  # the process died (its traceback is on stderr)
                waiting.remove(conn)
                continue
            if message[0] == kind:
                got[conn] = message
                waiting.remove(conn)
    return list(got.values())


def run(args: argparse.Namespace, stack) -> int:
    jobs = max(1, args.streams // args.per_job)
    api_pid = stack.api.pid
    rss0 = rss_kb(api_pid)
    t = time.monotonic()
    job_ids = asyncio.run(queue_jobs(stack.url, jobs, args.delay, args.steps))
    print(f"  {jobs} jobs queued in {time.monotonic() - t:.1f} s")

    streams = [job_ids[i % jobs] for i in range(args.streams)]
    context = mp.get_context("fork")
    deadline = time.monotonic() + args.budget
    sampler = RssSampler(api_pid)
    sampler.start()
    t, api0 = time.monotonic(), cpu_seconds(api_pid)
    conns, procs = [], []
    for n in range(args.clients):
        ours, theirs = context.Pipe()
        share = streams[n :: args.clients]
        batch = max(1, args.connect_batch // args.clients)
        proc = context.Process(
            target=client_main, args=(stack.port, share, batch, args.budget, theirs), daemon=True
        )
        proc.start()
        theirs.close()
        conns.append(ours)
        procs.append(proc)
    try:
        opened = gather(conns, "open", deadline)
        connect_s = time.monotonic() - t
        opened_n, failed_n = sum(m[1] for m in opened), sum(m[2] for m in opened)
        connect_cpu = cpu_seconds(api_pid) - api0
        time.sleep(1.0)  # let every backlog drain
        rss_open = rss_kb(api_pid)
        print(
            f"  {opened_n} streams open in {connect_s:.1f} s ({failed_n} failed; API CPU "
            f"{connect_cpu / connect_s * 100:.0f} %) from {args.clients} client process(es); "
            f"API RSS {rss0 / 1024:.0f} -> {rss_open / 1024:.0f} MB"
        )
        go_ms = time.time() * 1000
        for conn in conns:
            conn.send("go")
        cpu0, t = cpu_seconds(api_pid), time.monotonic()
        stack.start_worker(args.workers)
        finished = gather(conns, "done", deadline + 5)
        # The API ends the delivered streams' responses once live events pause: that work is counted too.
        time.sleep(END_SETTLE_S)
        elapsed = time.monotonic() - t
        api_cpu = cpu_seconds(api_pid) - cpu0
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        sampler.stop_flag.set()
        sampler.join()
    terminal = sum(m[1] for m in finished)
    client_cpu = sum(m[2] for m in finished)
    delays: list[float] = []
    first_live, last_receipt, replayed = float("inf"), 0.0, 0
    for message in finished:
        stamps, receipts = array("d"), array("d")
        stamps.frombytes(message[3])
        receipts.frombytes(message[4])
        for stamp, receipt in zip(stamps, receipts, strict=True):
            if stamp >= go_ms:
                delays.append(receipt - stamp)
                first_live = min(first_live, stamp)
                last_receipt = max(last_receipt, receipt)
            else:
                replayed += 1
    window = max(1e-3, (last_receipt - first_live) / 1000)
    rate, capacity = len(delays) / window, len(delays) / max(api_cpu, 1e-3)
    print(
        f"  worker phase: {elapsed:.1f} s, {len(delays)} live deliveries ({replayed} replayed), "
        f"{terminal} streams ended on their terminal event; API CPU {api_cpu / elapsed * 100:.0f} %, "
        f"the client processes' CPU {client_cpu / elapsed * 100:.0f} %"
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
    v.check("concurrent streams", opened_n, args.streams, "", higher_is_better=True)
    v.check("delivery p50", pct(delays, 50), p50_target, "ms")
    if fanout:
        v.check("deliveries per second of API CPU", capacity, FANOUT_RATE, "/s", higher_is_better=True)
    rss_target = WIDE_RSS_MB if args.streams >= WIDE_STREAMS else TARGET_RSS_MB
    v.check("API RSS peak", sampler.peak_kb / 1024, rss_target, "MB")
    if terminal < opened_n:
        print(f"  FAIL  {opened_n - terminal} streams did not end on a terminal event")
        v.failed += 1
    return v.exit_code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 streams")
    parser.add_argument("--streams", type=int, default=TARGET_STREAMS)
    parser.add_argument("--per-job", type=int, default=10, help="streams subscribed to each job")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--clients", type=int, default=2, help="processes reading the streams")
    parser.add_argument("--delay", type=float, default=0.0, help="generator seconds per item")
    parser.add_argument("--steps", type=int, default=1, help="generator progress steps per item")
    parser.add_argument("--connect-batch", type=int, default=64, help="connections being opened at once")
    parser.add_argument("--budget", type=float, default=240.0, help="whole run, seconds")
    add_backend_argument(parser)
    args = parser.parse_args()
    if args.quick:
        args.streams = 300
    args.clients = max(1, min(args.clients, args.streams))
    want = raise_fd_limit(args.streams)
    if want < args.streams + 200:
        print(f"  open-file limit {want} is too low for {args.streams} streams")
        return 1
    print(
        f"streams: {args.streams} SSE streams, {args.per_job} per job, {args.workers} worker(s), "
        f"{args.clients} client process(es), fd limit {want}, {args.backend}"
    )
    # Above the default cap of connections per API process the run raises it, as a deployment this wide would.
    limits = {"http_max_connections": str(args.streams + 100)} if args.streams + 100 > 4096 else {}
    with running_stack(
        "streams", workers=None, backend=args.backend, rate_limit_per_minute="0", **limits
    ) as stack:
        return run(args, stack)


if __name__ == "__main__":
    sys.exit(main())
