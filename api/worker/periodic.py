"""Sub-minute periodic tasks on Huey's scheduler (its crontab resolution is one minute)."""

from __future__ import annotations

import time
from datetime import datetime

from huey.consumer import Consumer, Scheduler


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


class TickScheduler(Scheduler):
    """Huey's scheduler checking periodic tasks every second instead of every minute."""

    periodic_task_seconds = 1


class Image2ModelConsumer(Consumer):
    """Huey's consumer with the one-second periodic tick; everything else is stock Huey."""

    scheduler_class = TickScheduler
