"""`image2model api` and `image2model worker`: the service's own processes, each on its own or started by
`serve`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    from image2model.core.settings import get_settings

    settings = get_settings()
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument(
        "--processes", type=int, default=1, help="API processes sharing the port (each with its own listener)"
    )


def run_api(host: str, port: int, processes: int) -> int:
    """Run the HTTP API under uvicorn; several processes each get a listener of their own (`listeners`)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from image2model.api import listeners
    from image2model.api.slow_clients import GuardedHttpToolsProtocol
    from image2model.core.logs import configure_logging
    from image2model.core.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_file)
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


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    from image2model.core.settings import get_settings

    parser.add_argument(
        "--workers", type=int, default=get_settings().workers, help="worker processes (0: one per core)"
    )
    periodic = parser.add_mutually_exclusive_group()
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
    parser.add_argument(
        "--queue",
        choices=("cpu", "io", "webhooks"),
        default="cpu",
        help="cpu: local generation; io: remote generators (FAL); webhooks: deliver the jobs' webhooks",
    )


AUTOGROUP = Path("/proc/self/autogroup")


def lower_priority(nice: int) -> None:
    """Run this process, and the workers it starts (they inherit it), at niceness `nice` at least, so that CPU-bound
    model builds give way to the API on the same host; never raises a priority (that needs privileges).

    Where Linux groups the CPU by session (autogroup), a process's niceness only weighs against its own session's:
    a worker leading a session of its own (started detached, or by a supervisor) would still take a full share
    against the API's session. Such a worker gives its session the same niceness."""
    if not hasattr(os, "getpriority"):
        return
    if os.getpriority(os.PRIO_PROCESS, 0) < nice:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    if os.getsid(0) != os.getpid():
        return  # the session is shared (a terminal's, `serve`'s): its other processes keep their share
    try:
        group_nice = int(AUTOGROUP.read_text().split()[-1])
        if group_nice < nice:
            AUTOGROUP.write_text(str(nice))
    except (OSError, ValueError, IndexError):
        pass  # no autogroup here (other kernels, or the CPU is grouped by cgroups)


def run_worker(workers: int, periodic: bool | None, queue: str) -> int:
    """Run Huey's consumer: process workers for the `cpu` queue, threads for the `io` queue of remote generators;
    or, for `webhooks`, the webhook deliverer (one asyncio process; several may run, their deliveries are leased).

    The periodic tasks (reaper, retention) run on exactly one `cpu` worker of a deployment: by default the one
    worker of embedded mode, and in scale-out mode (Redis) only the worker started with `--periodic`."""
    from image2model.api.worker.periodic import Image2ModelConsumer
    from image2model.api.worker.tasks import huey, huey_io
    from image2model.core.logs import configure_logging
    from image2model.core.settings import get_settings

    settings = get_settings()
    if queue == "webhooks":
        from image2model.api.webhooks.worker import run_webhook_worker

        return run_webhook_worker(settings)
    configure_logging(settings.log_level, settings.log_file)
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
    if not io:
        lower_priority(settings.worker_nice)
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
