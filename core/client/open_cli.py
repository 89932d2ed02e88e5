"""`image2model open JOB`: print the web UI link of a job (the one every client prints), after checking the
server knows it; `--browser` also opens it.

`image2model.cli.main` registers the subcommand with `add_open_arguments(parser)` and runs `open_command(**vars(args))`.
httpx and pydantic are imported only when the command runs."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from image2model.core.client.cli import EXIT_FAILED, EXIT_OK, add_server_arguments, report

__all__ = ["add_open_arguments", "open_command"]


def add_open_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `open`'s arguments to `parser` (dests match `open_command`'s parameters)."""
    parser.add_argument(
        "job_id", metavar="JOB", help="a job id (from `image2model generate` or `image2model jobs`)"
    )
    parser.add_argument(
        "--web-url",
        dest="web_url",
        metavar="URL",
        help="web UI base URL (default: $IMAGE2MODEL_WEB_URL or http://127.0.0.1:7860)",
    )
    parser.add_argument("--browser", action="store_true", help="also open the link in the default browser")
    add_server_arguments(parser)
    return parser


def open_command(
    job_id: str,
    web_url: str | None = None,
    browser: bool = False,
    server: str | None = None,
    api_key: str | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    **_argparse_extras: object,
) -> int:
    """Run `image2model open JOB`: print the job's web UI link; 2 when the server does not know the job (for
    this key), 3 without a server."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    from image2model.core.client import Client
    from image2model.core.client.links import job_link
    from image2model.core.errors import Image2ModelError

    try:
        with Client(server_url=server, api_key=api_key) as client:
            snapshot = client.status(job_id)
    except Image2ModelError as exc:
        return report(exc, err)
    link = job_link(snapshot.job_id, web_url)
    print(link, file=out)
    if browser:
        import webbrowser

        if not webbrowser.open(link):
            print("error: no browser could be started; open the link above yourself", file=err)
            return EXIT_FAILED
    return EXIT_OK
