"""Structured logging: one `key=value` line per record; records carry `job_id` in their message fields.

Every line goes to stderr, unless a log file is configured (`IMAGE2MODEL_LOG_FILE`, `image2model serve`'s
`--log-file`): then every line goes to the file and stderr keeps only what a terminal needs, warnings, errors and
the headlines (one line per finished job)."""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from pathlib import Path

HEADLINE = {"headline": True}
"""`extra=` of a record that a terminal shows even when the rest goes to the log file."""

# Huey logs every task it runs at INFO (the periodic reaper alone: three lines every five seconds). Our own
# item_started / item_completed lines say what matters, so these count as DEBUG.
_TASK_CHATTER = frozenset(
    {
        "Executing %s",
        "%s executed in %0.3fs",
        "Enqueueing periodic task %s.",
        "Added task %s to schedule, eta %s",
    }
)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        line = f"ts={ts} level={record.levelname.lower()} logger={record.name} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _not_chatter(record: logging.LogRecord) -> bool:
    if record.levelno == logging.INFO and record.name.startswith("huey") and record.msg in _TASK_CHATTER:
        return logging.getLogger().isEnabledFor(logging.DEBUG)
    return True


def _for_terminal(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or bool(getattr(record, "headline", False))


def configure_logging(level: str = "INFO", log_file: str | Path | None = None) -> None:
    """Send every log line at `level` to stderr in key=value form, or, with `log_file`, to that file (appended
    to; several processes may share it) and only warnings, errors and headlines to stderr. Idempotent: once a
    process is configured, later calls only change the level."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(isinstance(h.formatter, KeyValueFormatter) for h in root.handlers):
        return
    terminal = logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [terminal]
    if log_file:
        path = Path(log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Reopened when moved away, so logrotate works; appends from several processes interleave by line.
        handlers.append(logging.handlers.WatchedFileHandler(path, encoding="utf-8"))
        terminal.addFilter(_for_terminal)
    for handler in handlers:
        handler.setFormatter(KeyValueFormatter())
        handler.addFilter(_not_chatter)
        root.addHandler(handler)
