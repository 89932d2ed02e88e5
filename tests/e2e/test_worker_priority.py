"""Model builds yield the CPU to the API: the `cpu` queue's workers run at a lower priority (IMAGE2MODEL_WORKER_NICE),
the I/O worker (remote generators, latency-bound) at the API's."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.e2e.test_jobs import upload
from tests.support.images import photo
from tests.support.sse import wait_status
from tests.support.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _tree(pid: int) -> list[int]:
    """`pid` and every process under it."""
    found = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            for child in f.read().split():
                found += _tree(int(child))
    return found


def _niceness_of_worker_tree(stack: Stack, workers: int) -> set[int]:
    """The niceness of the cpu worker's consumer and of its `workers` worker processes (waiting for them)."""
    assert stack.worker is not None
    deadline = time.monotonic() + 20
    while len(pids := _tree(stack.worker.pid)) < 1 + workers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pids) >= 1 + workers, pids
    return {os.getpriority(os.PRIO_PROCESS, pid) for pid in pids}


def _autogroup_nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


def test_cpu_workers_run_at_a_lower_priority_than_the_api_and_still_build(tmp_path: Path):
    own = os.getpriority(os.PRIO_PROCESS, 0)
    stack = Stack(tmp_path / "data").start(workers=2)
    try:
        stack.start_io_worker(threads=1)
        job = upload(stack.url, [("a.jpg", photo())])
        assert wait_status(stack.url, job["job_id"], {"completed", "failed"})["status"] == "completed"
        assert _niceness_of_worker_tree(stack, 2) == {max(own, 10)}
        assert stack.api is not None and stack.io_worker is not None and stack.worker is not None
        if Path("/proc/self/autogroup").exists():  # each leads a session of its own here (a new one is at 0)
            assert (_autogroup_nice(stack.worker.pid), _autogroup_nice(stack.api.pid)) == (10, 0)
        assert os.getpriority(os.PRIO_PROCESS, stack.api.pid) == own
        assert os.getpriority(os.PRIO_PROCESS, stack.io_worker.pid) == own
    finally:
        stack.stop()


def test_a_worker_nice_of_zero_keeps_the_workers_at_the_api_priority(tmp_path: Path):
    own = os.getpriority(os.PRIO_PROCESS, 0)
    stack = Stack(tmp_path / "data", worker_nice="0").start(workers=1)
    try:
        job = upload(stack.url, [("a.jpg", photo())])
        assert wait_status(stack.url, job["job_id"], {"completed", "failed"})["status"] == "completed"
        assert _niceness_of_worker_tree(stack, 1) == {own}
    finally:
        stack.stop()
