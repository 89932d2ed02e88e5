"""Real service processes for end-to-end tests: uvicorn API and Huey consumer on a temp data dir, loopback only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]

TEST_ENV = {
    "IMAGE2MODEL_EXTRA_GENERATORS": "tests.support.generators:InstantGenerator,tests.support.generators:FakeRemoteGenerator",
    "IMAGE2MODEL_DEFAULT_GENERATOR": "instant",
    "IMAGE2MODEL_LEASE_SECONDS": "2",
    "IMAGE2MODEL_REAPER_INTERVAL_SECONDS": "1",
    "IMAGE2MODEL_REQUEUE_AFTER_SECONDS": "5",
    "IMAGE2MODEL_PROGRESS_MIN_INTERVAL": "0.05",
    "IMAGE2MODEL_LOG_LEVEL": "INFO",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """An API process and a worker process sharing one data directory."""

    def __init__(self, data_dir: Path, **settings: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("IMAGE2MODEL_")},
            **TEST_ENV,
            "IMAGE2MODEL_DATA_DIR": str(data_dir),
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            **{f"IMAGE2MODEL_{k.upper()}": v for k, v in settings.items()},
        }
        self.api: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.io_worker: subprocess.Popen | None = None
        self.logs = data_dir.parent / f"{data_dir.name}-logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
        return subprocess.Popen(
            [sys.executable, "-m", "image2model.api.cli", *args],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_api(self, processes: int = 1) -> None:
        """Start the API (`processes` uvicorn workers) and wait until it answers."""
        extra = ["--processes", str(processes)] if processes > 1 else []
        self.api = self._spawn("api", "api", "--port", str(self.port), *extra)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.api.poll() is not None:
                raise RuntimeError(f"API exited: {(self.logs / 'api.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("API did not become healthy in 30 s")

    def start_worker(self, workers: int = 1) -> None:
        self.worker = self._spawn("worker", "worker", "--workers", str(workers))

    def start_io_worker(self, threads: int = 4) -> None:
        """The thread worker that drives remote generators."""
        self.io_worker = self._spawn("io-worker", "worker", "--queue", "io", "--workers", str(threads))

    def start(self, workers: int = 1) -> Stack:
        self.start_api()
        self.start_worker(workers)
        return self

    @staticmethod
    def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def stop_api(self) -> None:
        self._stop(self.api)

    def kill_worker(self) -> None:
        """SIGKILL the consumer and every worker process it forked."""
        self._stop(self.worker, signal.SIGKILL)

    def kill_io_worker(self) -> None:
        self._stop(self.io_worker, signal.SIGKILL)

    def stop(self) -> None:
        self._stop(self.io_worker)
        self._stop(self.worker)
        self._stop(self.api)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""
