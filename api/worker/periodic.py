"""Periodic tasks: sub-minute ticks on Huey's scheduler (its crontab resolution is one minute), and the heartbeat
that keeps exactly one worker of a deployment running them."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from datetime import datetime
from typing import Any

from huey import Huey
from huey.constants import EmptyData
from huey.consumer import Consumer, Scheduler

log = logging.getLogger("image2model.worker")

HEARTBEAT_KEY = "image2model:periodic-heartbeat"


class Every:
    """A periodic-task validator that fires at most once every `seconds` (checked by the scheduler each tick)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._next = 0.0

    def __call__(self, _now: datetime) -> bool:
        t = time.monotonic()
        if t < self._next:
            return False
        self._next = t + self.seconds
        return True


class PeriodicHeartbeat:
    """Who runs the periodic tasks (reaper, retention), kept in the queue's own storage so every worker of a
    deployment sees it (the SQLite file in embedded mode, Redis in scale-out mode).

    A worker running them writes `{owner, at}` every `interval` seconds. It warns when it reads a fresh
    heartbeat of another owner (two workers run them: harmless, as every transition is a compare-and-set, but
    wasteful and a sign of a misconfigured deployment). A worker not running them warns when no fresh heartbeat
    exists (nobody re-queues the items of crashed workers nor purges old jobs)."""

    def __init__(self, huey: Huey, periodic: bool, interval: float = 2.0, warn_every: float = 60.0) -> None:
        self.huey = huey
        self.periodic = periodic
        self.interval = interval
        self.warn_every = warn_every
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._started = time.time()
        self._next_beat = 0.0
        self._next_warning = 0.0

    def _read(self) -> dict[str, Any] | None:
        raw = self.huey.storage.peek_data(HEARTBEAT_KEY)
        return None if raw is EmptyData else json.loads(raw)

    def beat(self, now: float | None = None) -> str | None:
        """Check (and, when running the periodic tasks, write) the heartbeat; the warning logged, if any."""
        now = time.time() if now is None else now
        if now < self._next_beat:
            return None
        self._next_beat = now + self.interval
        seen = self._read()
        fresh = seen is not None and now - float(seen["at"]) < 3 * self.interval
        warning = None
        if self.periodic:
            if fresh and seen is not None and seen["owner"] != self.owner:
                warning = (
                    f"two workers run the periodic tasks (this one, {self.owner}, and {seen['owner']}): "
                    "start exactly one worker with --periodic and the others with --no-periodic"
                )
            self.huey.storage.put_data(HEARTBEAT_KEY, json.dumps({"owner": self.owner, "at": now}).encode())
        elif not fresh and now - self._started > 3 * self.interval:
            warning = (
                "no worker runs the periodic tasks (reaper, retention): items of crashed workers are not "
                "re-queued and old jobs are not purged; start exactly one worker with --periodic"
            )
        if warning is None or now < self._next_warning:
            return None
        self._next_warning = now + self.warn_every
        log.warning("event=periodic_heartbeat %s", warning)
        return warning


class TickScheduler(Scheduler):
    """Huey's scheduler checking periodic tasks every second instead of every minute, and keeping the
    periodic heartbeat when given one."""

    periodic_task_seconds = 1

    def __init__(
        self, huey: Huey, stop_flag: Any, interval: float, periodic: bool, heartbeat: PeriodicHeartbeat | None
    ) -> None:
        super().__init__(huey, stop_flag, interval, periodic)
        self.heartbeat = heartbeat

    def loop(self, now: datetime | None = None) -> None:
        if self.heartbeat is not None:
            try:
                self.heartbeat.beat()
            except Exception:
                log.exception("event=periodic_heartbeat_failed")
        super().loop(now)


class Image2ModelConsumer(Consumer):
    """Huey's consumer with the one-second periodic tick; with `heartbeat=True` (the queue that owns the periodic
    tasks) it also keeps the periodic heartbeat. Everything else is stock Huey."""

    def __init__(self, huey: Huey, heartbeat: bool = False, **options: Any) -> None:
        self._heartbeat = heartbeat
        super().__init__(huey, **options)

    def _create_scheduler(self) -> TickScheduler:
        heartbeat = PeriodicHeartbeat(self.huey, self.periodic) if self._heartbeat else None
        return TickScheduler(self.huey, self.stop_flag, self.scheduler_interval, self.periodic, heartbeat)
