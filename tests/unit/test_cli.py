"""The `image2model` command: its table of subcommands, what `--help` imports, and the log policy a terminal that
serves gets (`--log-level`, `--log-file`)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from image2model.cli.main import COMMANDS, Command, build_parser, main, resolve

ROOT = Path(__file__).resolve().parents[2]


def test_every_subcommand_resolves_and_parses_its_defaults() -> None:
    parser = build_parser()
    assert [c.name for c in COMMANDS] == [
        "serve",
        "api",
        "worker",
        "ui",
        "bot",
        "generate",
        "jobs",
        "delete",
        "export",
        "open",
    ]
    for command in COMMANDS:
        assert callable(resolve(command.run)), command.name
    args = parser.parse_args(["serve", "--no-ui", "--log-level", "debug"])
    assert (args.command, args.no_ui, args.log_level) == ("serve", True, "DEBUG")
    assert args.log_file.endswith("logs/image2model.log")
    assert parser.parse_args(["worker", "--no-periodic", "--queue", "io"]).periodic is False
    assert parser.parse_args(["worker", "--queue", "webhooks"]).queue == "webhooks"


def test_a_subcommand_is_one_entry_called_with_its_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    extra = Command(
        "echo", "print the arguments", "tests.unit.test_cli:_echo_arguments", "tests.unit.test_cli:_echo"
    )
    args = vars(build_parser([*COMMANDS, extra]).parse_args(["echo", "--times", "2", "hi"]))
    assert args == {"command": "echo", "times": 2, "word": "hi"}
    args.pop("command")
    assert resolve(extra.run)(**args) == 0
    assert capsys.readouterr().out == "hi hi\n"


def _echo_arguments(parser) -> None:  # noqa: ANN001 - an argparse parser
    parser.add_argument("--times", type=int, default=1)
    parser.add_argument("word")


def _echo(times: int, word: str) -> int:
    print(" ".join([word] * times))
    return 0


def test_main_returns_the_subcommands_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", str(tmp_path / "missing.jpg")]) == 2
    assert "no such image file" in capsys.readouterr().err


def test_help_loads_neither_the_web_ui_nor_the_bot_nor_the_service() -> None:
    code = textwrap.dedent(
        """
        import contextlib, io, json, sys
        from image2model.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main(["--help"])
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("gradio", "discord", "fastapi", "huey"))))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    assert json.loads(out) == []


_LOGGING = """
import logging, sys
from image2model.core.logs import HEADLINE, configure_logging
configure_logging(sys.argv[1], sys.argv[2])
configure_logging(sys.argv[1])  # a second call (the API factory's) keeps the handlers
logging.getLogger("image2model.api").info("event=job_created job_id=j1")
logging.getLogger("image2model.api").info("event=job_finished job_id=j1 status=completed", extra=HEADLINE)
logging.getLogger("image2model.worker").warning("event=periodic_heartbeat two workers")
logging.getLogger("huey").info("Executing %s", "image2model.api.worker.tasks.reap")
logging.getLogger("huey.consumer.Scheduler").info("Enqueueing periodic task %s.", "reap")
logging.getLogger("huey.consumer").info("Huey consumer started with %s %s", 1, "process")
"""


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_with_a_log_file_the_terminal_keeps_warnings_and_headlines(tmp_path: Path, level: str) -> None:
    log_file = tmp_path / "logs" / "all.log"
    done = subprocess.run(
        [sys.executable, "-c", _LOGGING, level, str(log_file)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    terminal = done.stderr.splitlines()
    assert len(terminal) == 2
    assert "level=info" in terminal[0] and "event=job_finished job_id=j1" in terminal[0]
    assert "level=warning" in terminal[1] and "two workers" in terminal[1]
    written = log_file.read_text()
    assert "event=job_created" in written and "event=job_finished" in written and "two workers" in written
    assert "Huey consumer started" in written
    # the periodic reaper's three lines every five seconds count as debug
    assert ("Executing image2model.api.worker.tasks.reap" in written) == (level == "DEBUG")
    assert ("Enqueueing periodic task reap." in written) == (level == "DEBUG")


def test_without_a_log_file_everything_goes_to_the_terminal(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LOGGING, "INFO", ""], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert "event=job_created" in done.stderr and "two workers" in done.stderr
    assert "Executing" not in done.stderr and not list(tmp_path.iterdir())
