"""Idle cost: the CPU time and wake-ups of the API, worker and web UI processes with nobody connected and no job
running. Target: ≤ 0.2 % of one core each for the API and the UI (issue 16: "idle should cost nothing
measurable"); the worker is printed for reference (its queue poll is a setting).

It starts an API and a worker (tests/support/stack.py) and `image2model ui` against them, waits until the UI page
answers and everything has settled, then reads each process's CPU time (utime + stime of every thread, forked
children included) and its threads' context switches from /proc over the measured window. The busiest threads of
each process are listed by wake-ups, which says what wakes it."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._common import Verdicts, running_stack  # noqa: E402
from tests.support.stack import free_port  # noqa: E402

TARGET_PERCENT = 0.2
TICKS = os.sysconf("SC_CLK_TCK")


def _family(pid: int) -> list[int]:
    """`pid` and every process below it."""
    out = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for child in map(int, children):
        out += _family(child)
    return out


def _threads(pids: list[int]) -> dict[tuple[int, int], tuple[str, float, int]]:
    """(pid, tid) -> (thread name, CPU seconds, context switches) for every thread of `pids`."""
    found = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                stat = (task / "stat").read_text()
                status = (task / "status").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            cpu = (int(fields[11]) + int(fields[12])) / TICKS
            switches = sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line)
            found[(pid, int(task.name))] = (name, cpu, switches)
    return found


def measure(pids: dict[str, int], seconds: float) -> dict[str, tuple[float, float, list[tuple[str, float]]]]:
    """Per process: (% of one core, wake-ups per second, [(thread, wake-ups/s)] busiest first)."""
    families = {name: _family(pid) for name, pid in pids.items()}
    before = {name: _threads(family) for name, family in families.items()}
    time.sleep(seconds)
    results = {}
    for name, family in families.items():
        after = _threads(family)
        cpu = wakes = 0.0
        per_thread: dict[str, float] = {}
        for key, (thread, t1, s1) in after.items():
            _, t0, s0 = before[name].get(key, (thread, 0.0, 0))
            cpu += t1 - t0
            wakes += s1 - s0
            per_thread[thread] = per_thread.get(thread, 0.0) + (s1 - s0) / seconds
        busiest = sorted(per_thread.items(), key=lambda kv: -kv[1])[:3]
        results[name] = (100 * cpu / seconds, wakes / seconds, busiest)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window (default 30)")
    parser.add_argument("--settle", type=float, default=10.0, help="wait after start-up before measuring")
    parser.add_argument("--quick", action="store_true", help="a 10 s window after 5 s")
    args = parser.parse_args()
    seconds, settle = (10.0, 5.0) if args.quick else (args.seconds, args.settle)
    verdicts = Verdicts()
    with running_stack("idle", workers=1) as stack:
        port = free_port()
        ui_log = open(stack.logs / "ui.log", "ab")  # noqa: SIM115 - closed below
        ui = subprocess.Popen(
            [sys.executable, "-m", "image2model.cli", "ui", "--port", str(port), "--server", stack.url],
            env=stack.env, cwd=REPO, stdout=ui_log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or ui.poll() is not None:
                    raise SystemExit(f"the UI did not start: {(stack.logs / 'ui.log').read_text()[-2000:]}")
                time.sleep(0.25)
            time.sleep(settle)
            assert stack.api is not None and stack.worker is not None
            pids = {"api": stack.api.pid, "ui": ui.pid, "worker": stack.worker.pid}
            results = measure(pids, seconds)
        finally:
            ui.terminate()
            ui.wait(timeout=20)
            ui_log.close()
    print(f"idle for {seconds:.0f} s after {settle:.0f} s settling (nobody connected, no job):")
    for name, (percent, wakes, busiest) in results.items():
        threads = ", ".join(f"{t} {w:.1f}/s" for t, w in busiest)
        print(f"  {name:<7} {percent:6.3f} % of a core  {wakes:7.1f} wake-ups/s  (busiest: {threads})")
    for name in ("api", "ui"):
        verdicts.check(f"idle {name} CPU", results[name][0], TARGET_PERCENT, "%", higher_is_better=False)
    sys.exit(verdicts.exit_code)


if __name__ == "__main__":
    main()
