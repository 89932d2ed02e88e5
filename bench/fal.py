"""FAL path through the whole service against the loopback fake FAL (its own process), timed at SSE clients.

Usage: python bench/fal.py [--quick] [--scenarios latency,held,wide,burst] [--max-in-flight N] [--threads 4]

Scenarios and targets (issue 15), each on a fresh service with the service's default settings:
  latency  jobs arriving one a second, each running 5-30 s at FAL: FAL done -> `task_completed` received by an SSE
           client, p50 <= 100 ms, p99 <= 300 ms
  held     20 jobs held at FAL, then all released at once: the last terminal event <= 1 s after the release
  wide     50 jobs x 20 s at FAL: all done <= 30 s after the first upload
  burst    200 jobs x 30 s: all done <= 40 s after the first upload; the GLB listed (the first `file_update` naming a
           .glb) p50 <= 1 s after FAL's completion; io worker <= 10 % of a core while the 200 requests are open
`--max-in-flight N` overrides the FAL in-flight cap (the default cap of older revisions makes `burst` take minutes).
The fake reports when each request completed; every job has an SSE client of its own from its upload on.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx
from _common import REPO, Verdicts, children, cpu_seconds, follow_sse, pct, running_stack, small_jpeg

KEY = "bench-fal-key"
TERMINAL = {"task_completed", "task_failed", "task_cancelled"}
PRODUCTION = {
    "lease_seconds": "30",
    "reaper_interval_seconds": "5",
    "requeue_after_seconds": "60",
    "progress_min_interval": "0.25",
}
"""The tests' stack uses short leases and intervals; benchmarks run with the service's own defaults."""


@dataclass
class Job:
    job_id: str
    uploaded: float
    events: list[tuple[float, str, dict]] = field(default_factory=list)

    def received(self, name: str) -> float | None:
        return next((t for t, e, _ in self.events if e == name), None)

    def terminal(self) -> tuple[float, str] | None:
        return next(((t, e) for t, e, _ in self.events if e in TERMINAL), None)

    def glb_listed(self) -> float | None:
        """When the first event naming a .glb among the item's outputs arrived."""
        for t, _, data in self.events:
            if any(str(name).endswith(".glb") for name in data.get("outputs") or ()):
                return t
        return None


class FakeProcess:
    """The fake FAL in a process of its own, so its serving does not share the benchmark's interpreter."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.fal_server", "--port", "0", "--key", KEY],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().split()[-1]
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def control(self, route: str, body: object | None = None) -> object:
        response = self.http.post(f"/__fake__/{route}", json=body) if body is not None else None
        if response is None:
            response = self.http.get(f"/__fake__/{route}")
        response.raise_for_status()
        return response.json()

    def jobs(self) -> list[dict]:
        return self.http.get("/__fake__/jobs").json()

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)


async def upload_and_watch(stack, jobs: dict[str, Job], count: int, image: bytes, deadline: float) -> None:
    """Upload `count` one-photo FAL jobs (8 at a time), each followed by an SSE client from its upload on."""
    watchers: list[asyncio.Task] = []
    limit = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:

        async def one(i: int) -> None:
            async with limit:
                t = time.time()
                r = await client.post(
                    "/api/v1/upload/",
                    files=[("files", (f"p{i}.jpg", image, "image/jpeg"))],
                    data={"generator": "fal", "formats": "glb"},
                )
                r.raise_for_status()
                job = Job(r.json()["job_id"], t)
                jobs[job.job_id] = job

                def sink(now: float, event: str, data: dict, job: Job = job) -> None:
                    job.events.append((now, event, data))

                path = f"/api/v1/status/tasks/{job.job_id}/stream"
                watchers.append(asyncio.create_task(follow_sse(stack.port, path, sink, deadline)))

        await asyncio.gather(*(one(i) for i in range(count)))
    await asyncio.gather(*watchers)


def fal_done(fake: FakeProcess, stack, jobs: dict[str, Job]) -> dict[str, float]:
    """job_id -> when FAL completed its request (the fake's own clock, epoch seconds)."""
    done = {j["id"]: j["done_at"] for j in fake.jobs() if j["done_at"] is not None}
    out = {}
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        for job_id in jobs:
            listing = client.get(f"/api/v1/download/{job_id}/all").json()
            if listing["files"]:
                request_id = listing["files"][0]["metadata"]["fal"]["request_id"]
                if request_id in done:
                    out[job_id] = done[request_id]
    return out


def summary_line(fake: FakeProcess, jobs: dict[str, Job]) -> str:
    seen = fake.jobs()
    terminal = [j.terminal() for j in jobs.values()]
    completed = sum(1 for t in terminal if t and t[1] == "task_completed")
    checks = sum(j["polls"] for j in seen)
    streams = sum(j.get("stream_opens", 0) for j in seen)
    return (
        f"{completed}/{len(jobs)} completed; FAL saw {len(seen)} submissions, {checks} status checks and stream "
        f"steps, {streams} status streams"
    )


def scenario_latency(args, fake: FakeProcess, verdicts: Verdicts) -> None:
    count = 10 if args.quick else 30
    rng = random.Random(15)
    fake.control(
        "script", {"next": [{"queue_s": 0.5, "run_s": rng.uniform(4.5, 29.5)} for _ in range(count)]}
    )
    with running_stack("fal-latency", workers=2, **args.settings) as stack:
        stack.start_io_worker(threads=args.threads)
        time.sleep(2.0)
        jobs: dict[str, Job] = {}

        async def arrivals() -> None:
            deadline = time.monotonic() + count + 90
            tasks = []
            for _ in range(count):
                tasks.append(asyncio.create_task(upload_and_watch(stack, jobs, 1, small_jpeg(256), deadline)))
                await asyncio.sleep(1.0)
            await asyncio.gather(*tasks)

        asyncio.run(arrivals())
        done = fal_done(fake, stack, jobs)
        added, split = [], []
        for job_id, t in done.items():
            job = jobs[job_id]
            received = job.received("task_completed")
            if received is None:
                continue
            added.append((received - t) * 1000)
            stamp = next(d["timestamp"] / 1000 for _, e, d in job.events if e == "task_completed")
            split.append(((received - t) * 1000, (stamp - t) * 1000, (received - stamp) * 1000))
        print(f"latency: {count} jobs, one a second, 5-30 s at FAL each; {summary_line(fake, jobs)}")
        print(
            f"  FAL done -> task_completed at the SSE client  p50 {pct(added, 50):.0f} ms  "
            f"p90 {pct(added, 90):.0f} ms  p99 {pct(added, 99):.0f} ms  max {max(added, default=0):.0f} ms"
        )
        worst = ", ".join(
            f"{total:.0f} ms ({stored:.0f} to store it, {sent:.0f} to the client)"
            for total, stored, sent in sorted(split)[-3:]
        )
        print(f"  slowest: {worst}")
        verdicts.check("latency: jobs completed", len(added), count, "jobs", higher_is_better=True)
        verdicts.check("latency: FAL done -> task_completed p50", pct(added, 50), 100, "ms")
        verdicts.check("latency: FAL done -> task_completed p99", pct(added, 99), 300, "ms")


def scenario_held(args, fake: FakeProcess, verdicts: Verdicts) -> None:
    count = 20
    fake.control("script", {"default": {"stuck": True}})
    with running_stack("fal-held", workers=2, **args.settings) as stack:
        stack.start_io_worker(threads=args.threads)
        time.sleep(2.0)
        jobs: dict[str, Job] = {}
        released: list[float] = []

        async def run() -> None:
            deadline = time.monotonic() + 120
            watching = asyncio.create_task(upload_and_watch(stack, jobs, count, small_jpeg(256), deadline))
            quiet_until = time.monotonic() + 5.0
            seen = 0
            while time.monotonic() < quiet_until:  # held until every request reached FAL and follows its
                await asyncio.sleep(0.2)  # status stream, or nothing new happened there for 5 s
                held = await asyncio.to_thread(fake.jobs)
                if len(held) != seen:
                    seen, quiet_until = len(held), time.monotonic() + 5.0
                if seen >= count and sum(j["stream_opens"] for j in held) >= count:
                    break
            await asyncio.sleep(1.0)
            await asyncio.to_thread(fake.control, "script", {"default": {"queue_s": 0, "run_s": 0}})
            released.append(time.time())
            await asyncio.to_thread(fake.control, "complete", {})
            await watching

        asyncio.run(run())
        ends = [t[0] for t in (j.terminal() for j in jobs.values()) if t]
        held = sum(1 for j in fake.jobs() if j["created"] < released[0])
        last = (max(ends) - released[0]) if len(ends) == count else float("inf")
        print(f"held: {count} jobs, {held} of them held at FAL, then released; {summary_line(fake, jobs)}")
        print(f"  release -> last terminal event at the SSE clients {last:.2f} s")
        verdicts.check("held: release -> last terminal event", last, 1.0, "s")


def scenario_wide(
    args, fake: FakeProcess, verdicts: Verdicts, count: int, seconds: float, target: float
) -> None:
    name = "wide" if count <= 50 else "burst"
    fake.control("reset", {})
    fake.control("keys", {"keys": [KEY]})
    fake.control("script", {"default": {"queue_s": 0, "run_s": seconds}})
    with running_stack(f"fal-{name}", workers=2, **args.settings) as stack:
        stack.start_io_worker(threads=args.threads)
        time.sleep(2.0)
        pids = [stack.io_worker.pid, *children(stack.io_worker.pid)]
        jobs: dict[str, Job] = {}
        cpu_window: list[float] = []

        async def run() -> None:
            deadline = time.monotonic() + seconds * 4 + 120
            watching = asyncio.create_task(upload_and_watch(stack, jobs, count, small_jpeg(256), deadline))
            while len(await asyncio.to_thread(fake.jobs)) < count and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            first = min((j["created"] for j in await asyncio.to_thread(fake.jobs)), default=time.time())
            await asyncio.sleep(1.0)
            open_until = first + seconds - 1.0
            if time.time() < open_until - 2.0:  # io worker CPU while every request is open at FAL
                c0, t0 = sum(cpu_seconds(p) for p in pids), time.time()
                await asyncio.sleep(open_until - time.time())
                cpu_window.append((sum(cpu_seconds(p) for p in pids) - c0) / (time.time() - t0) * 100)
            await watching

        asyncio.run(run())
        ends = [t[0] for t in (j.terminal() for j in jobs.values()) if t]
        start = min(j.uploaded for j in jobs.values())
        wall = (max(ends) - start) if len(ends) == count else float("inf")
        print(f"{name}: {count} jobs x {seconds:g} s at FAL; {summary_line(fake, jobs)}")
        print(f"  first upload -> last terminal event {wall:.1f} s")
        verdicts.check(f"{name}: {count} jobs x {seconds:g} s, wall", wall, target, "s")
        if name == "burst":
            done = fal_done(fake, stack, jobs)
            listed = [jobs[j].glb_listed() - t for j, t in done.items() if jobs[j].glb_listed()]
            finished = [jobs[j].received("task_completed") - t for j, t in done.items() if jobs[j].terminal()]
            print(
                f"  FAL done -> GLB listed  p50 {pct(listed, 50):.2f} s  p90 {pct(listed, 90):.2f} s;  "
                f"-> task_completed p50 {pct(finished, 50):.2f} s  p90 {pct(finished, 90):.2f} s"
            )
            verdicts.check("burst: FAL done -> GLB listed p50", pct(listed, 50), 1.0, "s")
            if cpu_window:
                print(
                    f"  io worker CPU while the {count} requests were open at FAL: {cpu_window[0]:.1f} % of a core"
                )
                verdicts.check("burst: io worker CPU, requests open", cpu_window[0], 10.0, "% of a core")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer latency jobs; burst of 100 x 20 s")
    parser.add_argument("--scenarios", default="latency,held,wide,burst")
    parser.add_argument("--threads", type=int, default=4, help="io worker threads")
    parser.add_argument("--max-in-flight", type=int, default=None, help="override the FAL in-flight cap")
    args = parser.parse_args()
    args.settings = {"fal_key": KEY, **PRODUCTION}
    if args.max_in_flight is not None:
        args.settings["fal_max_in_flight"] = str(args.max_in_flight)
    print(f"fal: {args.threads} io threads, in-flight cap {args.max_in_flight or 'default'}")
    verdicts = Verdicts()
    fake = FakeProcess()
    args.settings["fal_base_url"] = fake.url
    try:
        for name in args.scenarios.split(","):
            fake.control("reset", {})
            fake.control("keys", {"keys": [KEY]})
            if name == "latency":
                scenario_latency(args, fake, verdicts)
            elif name == "held":
                scenario_held(args, fake, verdicts)
            elif name == "wide":
                scenario_wide(args, fake, verdicts, 50, 20.0, 30.0)
            elif name == "burst":
                count, seconds = (100, 20.0) if args.quick else (200, 30.0)
                scenario_wide(args, fake, verdicts, count, seconds, seconds + 10.0)
            else:
                parser.error(f"unknown scenario {name!r}")
    finally:
        fake.stop()
    return verdicts.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
