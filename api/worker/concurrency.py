"""How many requests of each remote group (one paid account, e.g. every FAL model) this worker lets be in flight:
the generator's setting is a hard ceiling; below it the limit adapts. A refusal (`RemoteBusy`, FAL's 429) brings
the limit down to what the remote accepted and pauses new submissions for its Retry-After; each accepted
submission raises the limit by one again, so it climbs back to the ceiling once the remote takes everything."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

log = logging.getLogger("image2model.worker")

PAUSE_WITHOUT_RETRY_AFTER = 1.0
PAUSE_MAX = 300.0


@dataclass
class _Group:
    limit: int
    paused_until: float = 0.0


class AdaptiveLimit:
    """The in-flight limits of this process's remote groups."""

    def __init__(self) -> None:
        self._groups: dict[str, _Group] = {}
        self._lock = threading.Lock()

    def _group(self, name: str, ceiling: int) -> _Group:
        group = self._groups.get(name)
        if group is None:
            group = self._groups[name] = _Group(ceiling)
        if ceiling:
            group.limit = min(group.limit, ceiling) if group.limit else ceiling
        return group

    def allowance(self, name: str, ceiling: int) -> tuple[int, float]:
        """(cap for the next submission, 0 meaning none; seconds to wait before submitting, 0 when it may now)."""
        with self._lock:
            group = self._group(name, ceiling)
            return group.limit, max(0.0, group.paused_until - time.monotonic())

    def refused(self, name: str, ceiling: int, in_flight: int, retry_after: float | None) -> float:
        """The remote refused a submission with `in_flight` requests of the group in flight (the refused one
        included): lower the limit and pause. Returns the pause in seconds."""
        pause = min(PAUSE_MAX, retry_after if retry_after is not None else PAUSE_WITHOUT_RETRY_AFTER)
        with self._lock:
            group = self._group(name, ceiling)
            accepted = max(1, in_flight - 1)
            group.limit = min(group.limit, accepted) if group.limit else accepted
            group.paused_until = max(group.paused_until, time.monotonic() + pause)
            limit = group.limit
        log.info(
            "event=remote_limit group=%s limit=%d pause_s=%.1f in_flight=%d", name, limit, pause, in_flight
        )
        return pause

    def accepted(self, name: str, ceiling: int) -> None:
        """A submission went through: allow one more in flight (up to the ceiling)."""
        with self._lock:
            group = self._group(name, ceiling)
            if group.limit and (not ceiling or group.limit < ceiling):
                group.limit += 1


limits = AdaptiveLimit()
"""This process's limits (the io worker's)."""
