"""The `image2model` command: serve (everything), api, worker, generate."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

import httpx


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "image2model.api.cli", *args]


def run_api(host: str, port: int, processes: int) -> int:
    """Run the HTTP API under uvicorn; several processes each get a listener of their own (`listeners`)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from image2model.api import listeners
    from image2model.api.slow_clients import GuardedHttpToolsProtocol
    from image2model.core.logs import configure_logging
    from image2model.core.settings import get_settings

    configure_logging(get_settings().log_level)
    options = {
        "factory": True,
        "log_level": "warning",
        "timeout_graceful_shutdown": 5,
        "http": GuardedHttpToolsProtocol,  # header deadline and size, connection cap (IMAGE2MODEL_HTTP_*)
    }
    app = "image2model.api.app:create_app"
    if processes <= 1 or not listeners.SUPPORTED or port == 0:
        uvicorn.run(app, host=host, port=port, workers=processes, **options)
        return 0
    problem = listeners.port_taken(host, port)
    if problem:
        print(f"image2model api: {problem}.", file=sys.stderr)
        return 1
    config = uvicorn.Config(app, host=host, port=port, workers=processes, **options)
    Multiprocess(config, sockets=[listeners.ReusePortListener(host, port)]).run()  # type: ignore[list-item]
    return 0


def run_worker(workers: int, periodic: bool | None, queue: str) -> int:
    """Run Huey's consumer: process workers for the `cpu` queue, threads for the `io` queue of remote generators.

    The periodic tasks (reaper, retention) run on exactly one `cpu` worker of a deployment: by default the one
    worker of embedded mode, and in scale-out mode (Redis) only the worker started with `--periodic`."""
    from image2model.api.worker.periodic import Image2ModelConsumer
    from image2model.api.worker.tasks import huey, huey_io
    from image2model.core.logs import configure_logging
    from image2model.core.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level)
    io = queue == "io"
    if periodic is None:
        periodic = not settings.redis_url
        if not periodic and not io:
            print(
                "Scale-out mode: this worker does not run the periodic tasks (reaper, retention). "
                "Start exactly one worker with --periodic.",
                file=sys.stderr,
                flush=True,
            )
    consumer = Image2ModelConsumer(
        huey_io if io else huey,
        heartbeat=not io,
        workers=workers or (settings.io_threads if io else settings.workers or os.cpu_count() or 1),
        periodic=periodic and not io,
        initial_delay=settings.worker_poll_min,
        backoff=1.15,
        max_delay=settings.worker_poll_max,
        worker_type="thread" if io else "process",
        health_check_interval=1,
        graceful_signal="TERM",
        shutdown_timeout=10,
    )
    consumer.run()
    return 0


def _has_remote_generators() -> bool:
    from image2model.core.generators import generator_classes
    from image2model.core.settings import get_settings

    return any(cls.spec.queue == "io" for cls in generator_classes(get_settings()).values())


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


def serve(host: str, port: int, ui_port: int, workers: int, ui: bool) -> int:
    """Start the API, the workers (and the web UI when installed); stop them all on Ctrl-C or SIGTERM."""
    env = dict(os.environ)
    procs: dict[str, subprocess.Popen] = {
        "api": _spawn(["api", "--host", host, "--port", str(port)], env),
        "worker": _spawn(["worker", "--workers", str(workers), "--periodic"], env),
    }
    if _has_remote_generators():
        procs["io-worker"] = _spawn(["worker", "--queue", "io"], env)
    api_url = f"http://{host}:{port}"
    if ui and _has_ui():
        ui_env = {**env, "IMAGE2MODEL_SERVER_URL": api_url}
        procs["ui"] = _spawn(["ui", "--host", host, "--port", str(ui_port)], ui_env)
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
        print("Workers running. Press Ctrl-C to stop.", flush=True)
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


def _has_ui() -> bool:
    import importlib.util

    return (
        importlib.util.find_spec("gradio") is not None
        and importlib.util.find_spec("image2model.ui_gradio.app") is not None
    )


def build_parser() -> argparse.ArgumentParser:
    from image2model.core.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="image2model", description="Photos in, 3D models out.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="start API, workers and web UI on the embedded defaults")
    p.add_argument("--host", default=settings.host)
    p.add_argument("--port", type=int, default=settings.port)
    p.add_argument("--ui-port", type=int, default=settings.ui_port)
    p.add_argument("--workers", type=int, default=settings.workers, help="worker processes (0: one per core)")
    p.add_argument("--no-ui", action="store_true", help="do not start the web UI")

    p = sub.add_parser("api", help="run only the HTTP API")
    p.add_argument("--host", default=settings.host)
    p.add_argument("--port", type=int, default=settings.port)
    p.add_argument(
        "--processes", type=int, default=1, help="API processes sharing the port (each with its own listener)"
    )

    p = sub.add_parser("worker", help="run only the queue workers (Huey consumer)")
    p.add_argument("--workers", type=int, default=settings.workers, help="worker processes (0: one per core)")
    periodic = p.add_mutually_exclusive_group()
    periodic.add_argument(
        "--periodic",
        dest="periodic",
        action="store_true",
        default=None,
        help="run the reaper and retention tasks here (exactly one worker of a deployment; "
        "the default in embedded mode, off by default with Redis)",
    )
    periodic.add_argument(
        "--no-periodic",
        dest="periodic",
        action="store_false",
        help="leave the periodic tasks to another worker",
    )
    p.add_argument(
        "--queue",
        choices=("cpu", "io"),
        default="cpu",
        help="cpu: local generation; io: remote generators (FAL)",
    )

    p = sub.add_parser("ui", help="run the Gradio web UI against a running server")
    from image2model.ui_gradio.cli import add_ui_arguments

    add_ui_arguments(p)

    p = sub.add_parser("bot", help="run the Discord bot (/model) against a running server")
    from image2model.bot.cli import add_bot_arguments

    add_bot_arguments(p)

    p = sub.add_parser("generate", help="turn images into 3D models through a running server")
    from image2model.core.client.cli import add_generate_arguments

    add_generate_arguments(p)

    from image2model.core.client.cli import add_delete_arguments, add_jobs_arguments

    add_jobs_arguments(sub.add_parser("jobs", help="list this API key's jobs, newest first (a table)"))
    add_delete_arguments(sub.add_parser("delete", help="delete jobs with their events and files"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args.host, args.port, args.ui_port, args.workers, not args.no_ui)
    if args.command == "api":
        return run_api(args.host, args.port, args.processes)
    if args.command == "worker":
        return run_worker(args.workers, args.periodic, args.queue)
    if args.command == "ui":
        from image2model.ui_gradio.cli import run_ui

        return run_ui(args.host, args.port, args.server, args.api_key)
    if args.command == "bot":
        from image2model.bot.cli import run_bot

        return run_bot(args.token, args.server, args.api_key, args.sync_guild)
    if args.command == "generate":
        from image2model.core.client.cli import generate_command

        options = {k: v for k, v in vars(args).items() if k != "command"}
        return generate_command(**options)
    if args.command in ("jobs", "delete"):
        from image2model.core.client import cli as client_cli

        command = client_cli.jobs_command if args.command == "jobs" else client_cli.delete_command
        return command(**{k: v for k, v in vars(args).items() if k != "command"})
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
