"""Real service processes for end-to-end tests: uvicorn API and Huey consumers on a temp data dir, loopback only,
on either backend: SQLite files under the data dir, or a `redis-server` of the stack's own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.redis_server import RedisServer

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


BACKENDS = ("sqlite", "redis")

default_backend = "sqlite"
"""Backend of stacks that name none; the e2e suite's `backend` fixture sets it, so the suite runs on both."""


class Stack:
    """An API process and worker processes sharing one data directory (and, on Redis, one redis-server).

    `backend="redis"` starts a redis-server of the stack's own unless `redis_url=` names one to share (several
    stacks on one Redis and one data dir make one deployment with several API and worker hosts)."""

    def __init__(self, data_dir: Path, backend: str | None = None, name: str = "", **settings: str) -> None:
        self.data_dir = data_dir
        self.backend = backend or ("redis" if settings.get("redis_url") else default_backend)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logs = data_dir.parent / f"{data_dir.name}-logs{'-' + name if name else ''}"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis: RedisServer | None = None
        if self.backend == "redis" and not settings.get("redis_url"):
            self.redis = RedisServer(self.logs / "redis").start()
            settings = {**settings, "redis_url": self.redis.url}
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
        self.webhook_worker: subprocess.Popen | None = None

    @property
    def redis_url(self) -> str:
        return self.env.get("IMAGE2MODEL_REDIS_URL", "")

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
        return subprocess.Popen(
            [sys.executable, "-m", "image2model.cli", *args],
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

    def start_worker(self, workers: int = 1, periodic: bool = True) -> None:
        """The process worker of the `cpu` queue; it runs the periodic tasks unless told not to."""
        flag = "--periodic" if periodic else "--no-periodic"
        self.worker = self._spawn("worker", "worker", "--workers", str(workers), flag)

    def start_io_worker(self, threads: int = 4) -> None:
        """The thread worker that drives remote generators."""
        self.io_worker = self._spawn("io-worker", "worker", "--queue", "io", "--workers", str(threads))

    def start_webhook_worker(self, name: str = "webhooks") -> subprocess.Popen:
        """A webhook deliverer (`worker --queue webhooks`): the stack's own, or another one called `name` that
        the caller stops (`stop_process`)."""
        proc = self._spawn(name, "worker", "--queue", "webhooks")
        if name == "webhooks":
            self.webhook_worker = proc
        return proc

    def stop_process(self, proc: subprocess.Popen) -> None:
        """SIGTERM a process this stack started (and its group), waiting for it."""
        self._stop(proc)

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

    def kill_webhook_worker(self) -> None:
        self._stop(self.webhook_worker, signal.SIGKILL)

    def stop(self) -> None:
        self._stop(self.webhook_worker)
        self._stop(self.io_worker)
        self._stop(self.worker)
        self._stop(self.api)
        if self.redis is not None:
            self.redis.stop()

    def stored_jobs(self) -> int:
        """Jobs in this stack's job store, read from the store itself."""
        from image2model.api.store.redis import RedisJobStore
        from image2model.api.store.sqlite import SqliteJobStore

        if self.redis_url:
            store: RedisJobStore | SqliteJobStore = RedisJobStore(self.redis_url)
        elif (self.data_dir / "state.db").exists():
            store = SqliteJobStore(self.data_dir / "state.db")
        else:
            return 0
        try:
            return sum(store.counts()["jobs"].values())
        finally:
            store.close()

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""
