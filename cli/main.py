"""The `image2model` command's subcommands, one line each in `COMMANDS`: a name, a help line, the function that adds
its arguments to its parser and the function that runs it (called with the parsed arguments as keywords; it
returns the exit code). Both are named as `module:function` and imported only when needed, so `image2model
--help` loads neither the web UI nor the bot."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: str
    """`module:function` that adds the subcommand's arguments to its `argparse` parser."""
    run: str
    """`module:function` that runs it with the parsed arguments as keywords and returns the exit code."""


_SERVICE = "image2model.cli.service"
_CLIENT = "image2model.core.client.cli"

COMMANDS: tuple[Command, ...] = (
    Command("serve", "start API, workers and web UI on the embedded defaults", "image2model.cli.serve:add_serve_arguments", "image2model.cli.serve:serve"),
    Command("api", "run only the HTTP API", f"{_SERVICE}:add_api_arguments", f"{_SERVICE}:run_api"),
    Command("worker", "run only the queue workers (Huey consumer) or the webhook deliverer", f"{_SERVICE}:add_worker_arguments", f"{_SERVICE}:run_worker"),
    Command("ui", "run the Gradio web UI against a running server", "image2model.ui_gradio.cli:add_ui_arguments", "image2model.ui_gradio.cli:run_ui"),
    Command("bot", "run the Discord bot (/model) against a running server", "image2model.bot.cli:add_bot_arguments", "image2model.bot.cli:run_bot"),
    Command("generate", "turn images into 3D models through a running server", f"{_CLIENT}:add_generate_arguments", f"{_CLIENT}:generate_command"),
    Command("jobs", "list this API key's jobs, newest first (a table)", f"{_CLIENT}:add_jobs_arguments", f"{_CLIENT}:jobs_command"),
    Command("delete", "delete jobs with their events and files", f"{_CLIENT}:add_delete_arguments", f"{_CLIENT}:delete_command"),
    Command("export", "make other formats and sizes of a finished job's models and download them", "image2model.core.client.export_cli:add_export_arguments", "image2model.core.client.export_cli:export_command"),
    Command("open", "print the web UI link of a job", "image2model.core.client.open_cli:add_open_arguments", "image2model.core.client.open_cli:open_command"),
)  # fmt: skip


def resolve(target: str) -> Callable[..., Any]:
    """The function a `module:function` string names."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    """The `image2model` parser with every subcommand of `commands`."""
    parser = argparse.ArgumentParser(prog="image2model", description="Photos in, 3D models out.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        resolve(command.arguments)(sub.add_parser(command.name, help=command.help, description=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the subcommand; its exit code."""
    args = vars(build_parser().parse_args(argv))
    name = args.pop("command")
    command = next(c for c in COMMANDS if c.name == name)
    return int(resolve(command.run)(**args))
