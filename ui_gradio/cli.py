"""`image2model ui`: the web UI as a command. The `image2model` command (`image2model.cli.main`) registers it
with `add_ui_arguments` and calls `run_ui(host, port, server, api_key)`."""

from __future__ import annotations

import argparse
import os
import signal
import threading


def add_ui_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `ui` subcommand's options: --host, --port, --server, --api-key (defaults from settings)."""
    from image2model.core.settings import get_settings

    settings = get_settings()
    parser.add_argument("--host", default=settings.host, help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=settings.ui_port, help="port (default %(default)s)")
    parser.add_argument(
        "--server", default=None, help=f"API base URL (default IMAGE2MODEL_SERVER_URL, {settings.server_url})"
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="API key for the server (default IMAGE2MODEL_API_KEY); never sent to browsers",
    )


def run_ui(host: str, port: int, server: str | None = None, api_key: str | None = None) -> int:
    """Serve the web UI for the API at `server` until SIGTERM/SIGINT; returns the exit code."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from image2model.core.logs import configure_logging
    from image2model.core.settings import get_settings

    from .app import build_app, close_app, launch_options

    base = get_settings()
    configure_logging(base.log_level, base.log_file)
    settings = base.model_copy(
        update={
            "server_url": server or base.server_url,
            "api_key": base.api_key if api_key is None else api_key,
        }
    )
    # `image2model serve` starts the API and the UI together: give the API time to come up.
    demo = build_app(settings, wait=60.0)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, **launch_options())
    print(f"image2model UI on http://{host}:{port} (API {settings.server_url})", flush=True)
    try:
        stop.wait()
    finally:
        close_app(demo)
    return 0
