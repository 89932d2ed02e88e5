"""`image2model api --processes N`: every process has a listener of its own on the shared port, connections
spread over them, a dead process is replaced, and a port someone already serves is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.stack import REPO, Stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="Linux /proc"),
]

LISTEN, ESTABLISHED = "0A", "01"


@pytest.fixture(scope="module")
def backend() -> str:
    """How the API listens does not depend on the store."""
    return "sqlite"


def _sockets(port: int, state: str) -> set[str]:
    """Inodes of the TCP sockets on local `port` in `state` (from /proc/net/tcp and tcp6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                    inodes.add(fields[9])
    return inodes


def _owners(root: int, inodes: set[str]) -> dict[int, set[str]]:
    """Which processes under `root` hold which of `inodes`."""
    pids = [root]
    owners: dict[int, set[str]] = {}
    while pids:
        pid = pids.pop()
        try:
            pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    owners.setdefault(pid, set()).add(target[8:-1])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return owners


def _listeners(stack: Stack) -> dict[int, set[str]]:
    assert stack.api is not None
    return _owners(stack.api.pid, _sockets(stack.port, LISTEN))


def _wait_for_listeners(stack: Stack, count: int, timeout: float = 30) -> dict[int, set[str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owners = _listeners(stack)
        if len(owners) == count:
            return owners
        time.sleep(0.1)
    raise AssertionError(f"expected {count} listening processes, saw {_listeners(stack)}")


@pytest.fixture
def two_processes(tmp_path: Path):
    stack = Stack(tmp_path / "data")
    stack.start_api(processes=2)
    try:
        yield stack
    finally:
        stack.stop()


def test_each_api_process_has_its_own_listener_and_connections_spread_over_them(two_processes: Stack):
    owners = _wait_for_listeners(two_processes, 2)
    assert all(len(inodes) == 1 for inodes in owners.values()), owners
    assert len({inode for inodes in owners.values() for inode in inodes}) == 2

    clients = [httpx.Client(base_url=two_processes.url, timeout=10) for _ in range(32)]
    try:
        for client in clients:
            assert client.get("/api/v1/health").status_code == 200
        served = _owners(two_processes.api.pid, _sockets(two_processes.port, ESTABLISHED))
        per_process = sorted(len(served.get(pid, ())) for pid in owners)
        # By the kernel's address hash: 32 connections split 6/26 or worse about once in 10,000 runs.
        assert sum(per_process) == 32 and per_process[0] >= 6, per_process
    finally:
        for client in clients:
            client.close()


def test_a_killed_api_process_is_replaced_with_a_listener_of_its_own(two_processes: Stack):
    before = _wait_for_listeners(two_processes, 2)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after = _listeners(two_processes)
        if len(after) == 2 and victim not in after:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no replacement for {victim}: {_listeners(two_processes)}")
    assert set(after[max(before)]) == set(before[max(before)])
    assert httpx.get(f"{two_processes.url}/api/v1/health", timeout=5).status_code == 200


def test_a_second_api_on_a_port_already_served_is_refused(two_processes: Stack):
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "image2model.cli",
            "api",
            "--port",
            str(two_processes.port),
            "--processes",
            "2",
        ],
        env=two_processes.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert f"something is already listening on 127.0.0.1:{two_processes.port}" in second.stderr
    assert len(_listeners(two_processes)) == 2
    assert httpx.get(f"{two_processes.url}/api/v1/health", timeout=5).status_code == 200
