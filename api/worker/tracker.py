"""Remote items waiting for their next status check, held in the io worker's memory. One thread hands the due ones
to the io queue as a few batch tasks per round (one per io thread at most), instead of one scheduled Huey task per
check: a check then costs the status request and a store read, not a schedule, a scheduler pass and a dequeue too.

Nothing here has to survive a crash: an item's lease lapses when no check renews it, the reaper re-queues it and
its next claim resumes polling the stored remote request (runner.py). A graceful stop hands the tracked items back
to the queue as scheduled tasks (`hand_back`), so a restart costs no attempt."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("image2model.worker")

Key = tuple[str, int, int]
"""(job_id, index, attempt) of a remote item."""


class Tracker:
    """Due times of remote items' next checks; `dispatch(keys)` runs when they are due, from the tracker's thread.

    `dispatch` gets at most `batches` lists per round, so each io thread takes one. Checks due within `window`
    seconds of each other go out in the same round."""

    def __init__(self, dispatch: Callable[[list[Key]], None], batches: int, window: float = 0.1) -> None:
        self._dispatch = dispatch
        self._batches = max(1, batches)
        self._window = window
        self._due: list[tuple[float, Key]] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._handed_back: Callable[[Key, float], None] | None = None

    def add(self, key: Key, delay: float) -> None:
        """Check `key` again in `delay` seconds."""
        with self._wake:
            if self._handed_back is not None:  # stopping: the queue keeps it from now on
                self._handed_back(key, delay)
                return
            heapq.heappush(self._due, (time.monotonic() + max(0.0, delay), key))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="remote-tracker", daemon=True)
                self._thread.start()
            self._wake.notify()

    def __len__(self) -> int:
        with self._wake:
            return len(self._due)

    def hand_back(self, schedule: Callable[[Key, float], None]) -> int:
        """Stop: `schedule(key, delay)` every tracked item, and any added from now on. Returns how many."""
        with self._wake:
            self._handed_back = schedule
            now, due = time.monotonic(), self._due
            self._due = []
            self._wake.notify()
        for at, key in due:
            schedule(key, max(0.0, at - now))
        return len(due)

    def _take_due(self) -> list[Key] | None:
        """Wait until something is due; None once handed back."""
        with self._wake:
            while self._handed_back is None:
                now = time.monotonic()
                if self._due and self._due[0][0] <= now + self._window:
                    keys = []
                    while self._due and self._due[0][0] <= now + self._window:
                        keys.append(heapq.heappop(self._due)[1])
                    return keys
                self._wake.wait(self._due[0][0] - now if self._due else None)
            return None

    def _run(self) -> None:
        while (keys := self._take_due()) is not None:
            size = -(-len(keys) // self._batches)
            for start in range(0, len(keys), size):
                batch = keys[start : start + size]
                try:
                    self._dispatch(batch)
                except Exception:
                    log.exception("event=remote_dispatch_failed items=%d", len(batch))
                    for key in batch:
                        self.add(key, 1.0)
