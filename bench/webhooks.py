"""Webhook delivery: event -> receiver latency through the whole service, and the deliveries per second one
webhook worker process sustains.

Usage: python bench/webhooks.py [--quick] [--jobs 100] [--rate 1200] [--seconds 10] [--backlog 20000]
       [--backend sqlite|redis]
Targets (issue 14): event -> receiver p50 <= 50 ms; 1,000 deliveries/s sustained by one worker process.

Latency: sequential jobs uploaded through the API (instant generator, 1 cpu worker) with a webhook for every
event; latency = receipt time at the receiver - the event's own `timestamp` (stamped in the store transaction
that wrote it), so it covers the log tail, the delivery record, signing and the POST.
Throughput: a producer in this process writes jobs straight into the job store (a subscription, then the job:
task_queued, file_update x2, task_progress, task_completed, all five subscribed), so API and generator CPU do
not cap it. Sustained: `--rate` deliveries/s offered for `--seconds` while the worker runs, counted at the
receiver after a 2 s warm-up; the rest must arrive soon after the load stops. Capacity: `--backlog`
deliveries' events written with the worker stopped, then the restarted worker drains them flat out (its
catch-up sweep, then the same record/sign/POST/record path); rate = first to last receipt.
Both receivers are one asyncio process of their own answering 204 on keep-alive connections."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
import time
import uuid
from multiprocessing.connection import Connection

import httpx
from _common import Verdicts, add_backend_argument, cpu_seconds, pct, running_stack, small_jpeg

TARGET_P50_MS = 50.0
TARGET_PER_S = 1000.0
EVENTS = "task_queued,task_progress,file_update,task_completed,task_failed,task_cancelled"


# ---- receiver (its own process) -------------------------------------------------------------------------


class _Receiver(asyncio.Protocol):
    """A minimal HTTP/1.1 server: reads each POST, notes (receipt time, webhook-id, type, event timestamp)."""

    seen: list[tuple[float, str, str, int]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1").lower().split("\r\n")
            headers = dict(line.split(":", 1) for line in head[1:] if ":" in line)
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body, self.buffer = self.buffer[end + 4 : end + 4 + length], self.buffer[end + 4 + length :]
            payload = json.loads(body)
            _Receiver.seen.append(
                (time.time(), headers["webhook-id"].strip(), payload["type"], payload["data"]["timestamp"])
            )
            self.transport.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")  # type: ignore[attr-defined]


def _serve(port_out: Connection, control: Connection) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Receiver, "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        while True:
            ready = await loop.run_in_executor(None, control.poll, 0.05)
            if ready:
                command = control.recv()
                if command == "stop":
                    break
                if command == "count":
                    control.send(len(_Receiver.seen))
                elif command == "take":
                    control.send(_Receiver.seen)
                    _Receiver.seen = []
        server.close()

    asyncio.run(main())


class Receiver:
    """The receiver process and its control pipe."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        port_in, port_out = ctx.Pipe(duplex=False)
        self.control, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(port_out, child), daemon=True)
        self.proc.start()
        self.url = f"http://127.0.0.1:{port_in.recv()}/hook"

    def count(self) -> int:
        self.control.send("count")
        return int(self.control.recv())

    def take(self) -> list[tuple[float, str, str, int]]:
        self.control.send("take")
        return list(self.control.recv())

    def stop(self) -> None:
        self.control.send("stop")
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


# ---- latency --------------------------------------------------------------------------------------------


def latency(stack, receiver: Receiver, jobs: int, budget: float) -> list[tuple[str, float]]:
    """(event type, ms from the event's stamp to its receipt) for every event of `jobs` sequential jobs."""
    jpeg = small_jpeg()
    rows: list[tuple[str, float]] = []
    deadline = time.monotonic() + budget
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        for n in range(jobs + 3):
            if time.monotonic() > deadline:
                print(f"  stopped at the {budget:g} s budget after {n} jobs")
                break
            r = client.post(
                "/api/v1/upload/",
                files=[("files", ("photo.jpg", jpeg, "image/jpeg"))],
                data={"delay": "0", "steps": "1", "webhook_url": receiver.url, "webhook_events": EVENTS},
            )
            r.raise_for_status()
            job_id = r.json()["job_id"]
            done = False
            for _ in range(3000):
                seen = receiver.take()
                if n >= 3:  # the first three are warm-up
                    rows += [(kind, received * 1000 - stamp) for received, _, kind, stamp in seen]
                if any(kind == "task_completed" and wid.startswith(job_id) for _, wid, kind, _ in seen):
                    done = True
                    break
                time.sleep(0.005)
            if not done:
                raise TimeoutError(f"job {job_id}: no task_completed webhook; see {stack.logs}")
    return rows


# ---- throughput -----------------------------------------------------------------------------------------


def _produce_one(jobs, hooks, url: str) -> None:
    from image2model.api.store import ItemRecord, JobRecord
    from image2model.api.webhooks.records import Subscription

    job_id, t = str(uuid.uuid4()), time.time()
    hooks.subscribe(Subscription(job_id, url, EVENTS.split(","), t))
    job = JobRecord(job_id, "bench", "instant", None, ["glb"], {}, 1, t, t)
    item = ItemRecord(0, str(uuid.uuid4()), "p.jpg", "p", [f"{job_id}/in/0.jpg"], "image/jpeg", 1)
    jobs.create_job(job, [item])
    claimed = jobs.claim(job_id, 0, 30)
    jobs.complete(job_id, 0, claimed.attempt, [], {})


class Producer:
    """Writes jobs with a webhook for all five of their events straight into the job store, as the API and a
    worker would (subscription first, then the job and its transitions)."""

    PER_JOB = 5

    def __init__(self, stack, url: str) -> None:
        from image2model.api.store import open_store
        from image2model.api.webhooks import open_webhook_store
        from image2model.core.settings import Settings

        self.jobs = open_store(Settings(data_dir=stack.data_dir, redis_url=stack.redis_url))
        self.hooks = open_webhook_store(self.jobs)
        self.url = url
        self.made = 0

    def one_job(self) -> None:
        from image2model.api.store import ItemRecord, JobRecord
        from image2model.api.webhooks.records import Subscription

        job_id, t = str(uuid.uuid4()), time.time()
        self.hooks.subscribe(Subscription(job_id, self.url, EVENTS.split(","), t))
        job = JobRecord(job_id, "bench", "instant", None, ["glb"], {}, 1, t, t)
        item = ItemRecord(0, str(uuid.uuid4()), "p.jpg", "p", [f"{job_id}/in/0.jpg"], "image/jpeg", 1)
        self.jobs.create_job(job, [item])
        claimed = self.jobs.claim(job_id, 0, 30)
        assert claimed is not None
        self.jobs.complete(job_id, 0, claimed.attempt, [], {})
        self.made += self.PER_JOB

    def close(self) -> None:
        self.jobs.close()


def sustained(stack, receiver: Receiver, rate: float, seconds: float) -> dict[str, float]:
    """Offer `rate` deliveries/s for `seconds` (after a 2 s warm-up) with the webhook worker running."""
    producer = Producer(stack, receiver.url)
    pid = stack.webhook_worker.pid
    warmup, start = 2.0, time.monotonic()
    marks: dict[str, float] = {}
    while (elapsed := time.monotonic() - start) < warmup + seconds:
        if "t0" not in marks and elapsed >= warmup:
            marks.update(t0=time.monotonic(), n0=receiver.count(), c0=cpu_seconds(pid), p0=producer.made)
        due = int(elapsed * rate / Producer.PER_JOB) - producer.made // Producer.PER_JOB
        for _ in range(min(due, 50)):
            producer.one_job()
        if due <= 0:
            time.sleep(0.002)
    t1, n1, c1 = time.monotonic(), receiver.count(), cpu_seconds(pid)
    window = t1 - marks["t0"]
    deadline = time.monotonic() + 60
    while receiver.count() < producer.made and time.monotonic() < deadline:
        time.sleep(0.05)
    drained = time.monotonic() - t1 if receiver.count() >= producer.made else float("inf")
    seen = receiver.take()
    producer.close()
    received = n1 - marks["n0"]
    return {
        "offered": (producer.made - marks["p0"]) / window,
        "received": received / window,
        "cpu_us": (c1 - marks["c0"]) / max(received, 1) * 1e6,
        "made": producer.made,
        "distinct": len({wid for _, wid, _, _ in seen}),
        "drained": drained,
    }


def capacity(stack, receiver: Receiver, backlog: int) -> dict[str, float]:
    """Stop the webhook worker, let `backlog` deliveries' events happen, start it: how fast it drains them
    (first to last receipt, so process start-up does not count)."""
    stack.kill_webhook_worker()
    producer = Producer(stack, receiver.url)
    while producer.made < backlog:
        producer.one_job()
    producer.close()
    stack.start_webhook_worker()
    pid = stack.webhook_worker.pid
    deadline = time.monotonic() + 120
    while receiver.count() < producer.made and time.monotonic() < deadline:
        time.sleep(0.05)
    cpu = cpu_seconds(pid)
    seen = receiver.take()
    times = sorted(t for t, _, _, _ in seen)
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    return {
        "made": producer.made,
        "received": len(seen),
        "distinct": len({wid for _, wid, _, _ in seen}),
        "per_s": (len(times) - 1) / span if span else 0.0,
        "cpu_us": cpu / max(len(seen), 1) * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 jobs, 5 s of load")
    parser.add_argument("--jobs", type=int, default=100, help="sequential jobs for the latency figure")
    parser.add_argument("--rate", type=float, default=1200.0, help="deliveries/s the producer offers")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured load, after a 2 s warm-up")
    parser.add_argument("--backlog", type=int, default=20_000, help="deliveries for the capacity figure")
    parser.add_argument("--budget", type=float, default=300.0, help="latency part, seconds at most")
    add_backend_argument(parser)
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.seconds, args.backlog = 30, 5.0, 5_000
    print(
        f"webhooks: {args.backend}; latency over {args.jobs} jobs, then {args.rate:g}/s offered for {args.seconds:g} s"
    )
    receiver = Receiver()
    try:
        with running_stack(
            "webhooks",
            workers=1,
            backend=args.backend,
            webhook_allow_hosts="127.0.0.1",
            rate_limit_per_minute="0",
            log_level="WARNING",
        ) as stack:
            stack.start_webhook_worker()
            rows = latency(stack, receiver, args.jobs, args.budget)
            steady = sustained(stack, receiver, args.rate, args.seconds)
            drain = capacity(stack, receiver, args.backlog)
    finally:
        receiver.stop()
    v = Verdicts()
    print(f"\nlatency, event stamped -> received, ms ({len(rows)} deliveries; p50 / p90 / p99 / max):")
    for kind in ("task_queued", "file_update", "task_progress", "task_completed", None):
        values = [ms for k, ms in rows if kind is None or k == kind]
        if values:
            label = kind or "all"
            print(
                f"  {label:16s} {pct(values, 50):7.1f} {pct(values, 90):7.1f} {pct(values, 99):7.1f} {max(values):7.1f}"
            )
    print("\nsustained load, one webhook worker process:")
    print(f"  offered   {steady['offered']:7.0f} deliveries/s (the in-process producer's pace)")
    print(f"  received  {steady['received']:7.0f} deliveries/s, {steady['cpu_us']:.0f} us of worker CPU each")
    print(
        f"  {steady['made']:.0f} made, {steady['distinct']:.0f} distinct received, the rest "
        f"{steady['drained']:.1f} s after the load stopped"
    )
    print(f"\ncapacity: a backlog of {drain['made']:.0f} made with the worker stopped, then drained by it:")
    print(
        f"  {drain['per_s']:7.0f} deliveries/s first to last receipt, {drain['cpu_us']:.0f} us of worker CPU each "
        f"(start-up and catch-up sweep included), {drain['distinct']:.0f} distinct received"
    )
    v.check("event -> receiver p50", pct([ms for _, ms in rows], 50), TARGET_P50_MS, "ms")
    v.check("deliveries/s, one worker (capacity)", drain["per_s"], TARGET_PER_S, "/s", higher_is_better=True)
    v.check("sustained load delivered within", steady["drained"], 5.0, "s after it stopped")
    v.check("deliveries lost", drain["made"] - drain["distinct"] + steady["made"] - steady["distinct"], 0, "")
    return v.exit_code


if __name__ == "__main__":
    sys.exit(main())
