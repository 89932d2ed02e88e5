"""`image2model serve`: the whole embedded service in one command. It starts the API, the workers and (when
installed) the web UI as child processes, prints where they listen, and stops them all on Ctrl-C or SIGTERM.

Its terminal shows the URLs, then only what matters: warnings, errors and one line per finished job. Every log
line of every process goes to the log file (`--log-file`, default data_dir/logs/image2model.log)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    from image2model.core.settings import get_settings

    settings = get_settings()
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--ui-port", type=int, default=settings.ui_port)
    parser.add_argument(
        "--workers", type=int, default=settings.workers, help="worker processes (0: one per core)"
    )
    parser.add_argument("--no-ui", action="store_true", help="do not start the web UI")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=settings.log_level.upper(),
        help="what goes to the log file (default: %(default)s, from IMAGE2MODEL_LOG_LEVEL)",
    )
    parser.add_argument(
        "--log-file",
        default=settings.log_file or str(settings.data_dir / "logs" / "image2model.log"),
        metavar="PATH",
        help="every process's log lines (default: %(default)s); '-' puts them all on the terminal instead",
    )


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "image2model.cli", *args]


def _child_setup() -> None:
    """In each child of `serve`: its own session (a terminal's Ctrl-C reaches only `serve`, which then stops the
    children gracefully) and, on Linux, SIGTERM when `serve` itself dies so nothing is orphaned."""
    os.setsid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    # preexec_fn is safe here: serve is single-threaded.
    return subprocess.Popen(_cmd(*args), env=env, preexec_fn=_child_setup)


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def _has_remote_generators() -> bool:
    from image2model.core.generators import generator_classes
    from image2model.core.settings import get_settings

    return any(cls.spec.queue == "io" for cls in generator_classes(get_settings()).values())


def _has_ui() -> bool:
    import importlib.util

    return (
        importlib.util.find_spec("gradio") is not None
        and importlib.util.find_spec("image2model.ui_gradio.app") is not None
    )


def serve(
    host: str,
    port: int,
    ui_port: int,
    workers: int,
    no_ui: bool,
    log_level: str = "INFO",
    log_file: str = "-",
) -> int:
    """Start the API, the workers (and the web UI when installed); stop them all on Ctrl-C or SIGTERM."""
    from image2model.core.logs import configure_logging

    log_path = "" if log_file == "-" else str(Path(log_file).resolve())
    configure_logging(log_level, log_path)
    env = {**os.environ, "IMAGE2MODEL_LOG_LEVEL": log_level, "IMAGE2MODEL_LOG_FILE": log_path}
    api_url = f"http://{host}:{port}"
    children: dict[str, list[str]] = {
        "api": ["api", "--host", host, "--port", str(port)],
        "worker": ["worker", "--workers", str(workers), "--periodic"],
        "webhooks": ["worker", "--queue", "webhooks"],
    }
    if _has_remote_generators():
        children["io-worker"] = ["worker", "--queue", "io"]
    if not no_ui and _has_ui():
        children["ui"] = ["ui", "--host", host, "--port", str(ui_port), "--server", api_url]
    procs = {name: _spawn(args, env) for name, args in children.items()}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if _wait_healthy(api_url, procs["api"]):
        print(f"image2model API  {api_url}  (docs: {api_url}/docs)", flush=True)
        if "ui" in procs:
            print(f"image2model UI   http://{host}:{ui_port}", flush=True)
        where = f"Log: {log_path} ({log_level}). " if log_path else ""
        print(f"Workers running. {where}Press Ctrl-C to stop.", flush=True)
    code = 0
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"{name} exited with code {proc.returncode}; stopping.", file=sys.stderr, flush=True)
                code = proc.returncode or 1
                stopping = True
        time.sleep(0.2)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    print("image2model stopped.", flush=True)
    return code
