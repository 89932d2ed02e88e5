"""Remote items this io worker looks after, and their checks. Each item has one due time for its next check (a
status check, or a look at the status its stream pushed); a thread starts the due checks on a small pool of this
process's threads, so a check costs the status request and a store read, and no queue round trip. Two checks of
one item never overlap. A check that does not ask for another one (`add` while it runs) ends the item's tracking:
it finished, failed or went to a CPU worker.

Nothing here has to survive a crash: an item's lease lapses when no check renews it, the reaper re-queues it and
its next claim resumes polling the stored remote request (runner.py). A graceful stop hands the tracked items back
to the queue as scheduled tasks (`hand_back`), so a restart costs no attempt."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

log = logging.getLogger("image2model.worker")

Key = tuple[str, int, int]
"""(job_id, index, attempt) of a remote item."""


@dataclass
class _Entry:
    due: float
    """Monotonic time of the next check."""
    token: int = 0
    """Matches the heap entry that is current; older heap entries of the key are skipped."""
    running: bool = False
    asked: float | None = None
    """While running: when the check asked for the next one (None: it has not)."""
    nudged: float | None = None
    """While running: the soonest time a nudge asked for."""

    def next_due(self) -> float | None:
        """After a check: when the next one is due, None when the check asked for none."""
        if self.asked is None:
            return None
        return self.asked if self.nudged is None else min(self.asked, self.nudged)


class Tracker:
    """Due checks of remote items, run as `check(key)` on `threads` threads. `forget(key)` is called once an
    item's tracking ends."""

    def __init__(
        self,
        check: Callable[[Key], None],
        threads: int,
        forget: Callable[[Key], None] | None = None,
    ) -> None:
        self._check = check
        self._forget = forget
        self._threads = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None
        self._entries: dict[Key, _Entry] = {}
        self._heap: list[tuple[float, int, Key]] = []
        self._tokens = itertools.count(1)
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._handed_back: Callable[[Key, float], None] | None = None

    def add(self, key: Key, delay: float) -> None:
        """Check `key` in `delay` seconds (sooner if a nudge already asked for sooner). Called for a new item and
        by each check for the next one."""
        with self._wake:
            if self._handed_back is not None:  # stopping: the queue keeps it from now on
                self._handed_back(key, delay)
                return
            due = time.monotonic() + max(0.0, delay)
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(due)
                self._push(key, entry)
            elif entry.running:
                entry.asked = due
            else:
                entry.due = due
                self._push(key, entry)
            self._start_thread()

    def nudge(self, key: Key, delay: float = 0.0) -> bool:
        """Check a tracked item within `delay` seconds (its remote service pushed news). False for an item not
        tracked here; a nudge during a check that ends the tracking is dropped."""
        with self._wake:
            entry = self._entries.get(key)
            if entry is None or self._handed_back is not None:
                return False
            due = time.monotonic() + max(0.0, delay)
            if entry.running:
                entry.nudged = due if entry.nudged is None else min(entry.nudged, due)
            elif due < entry.due:
                entry.due = due
                self._push(key, entry)
            return True

    def __len__(self) -> int:
        with self._wake:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        with self._wake:
            return key in self._entries

    def hand_back(self, schedule: Callable[[Key, float], None]) -> int:
        """Stop: `schedule(key, delay)` every tracked item, and any added from now on. Returns how many."""
        with self._wake:
            self._handed_back = schedule
            now = time.monotonic()
            entries = [(key, e) for key, e in self._entries.items() if not e.running]
            for key, _ in entries:
                del self._entries[key]
            self._heap = []
            self._wake.notify()
        for key, entry in sorted(entries, key=lambda pair: pair[1].due):
            schedule(key, max(0.0, entry.due - now))
        return len(entries)

    # -- internals ----------------------------------------------------------------------------------------------

    def _push(self, key: Key, entry: _Entry) -> None:
        entry.token = next(self._tokens)
        heapq.heappush(self._heap, (entry.due, entry.token, key))
        self._wake.notify()

    def _start_thread(self) -> None:
        if self._thread is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="remote-check")
            self._thread = threading.Thread(target=self._run, name="remote-tracker", daemon=True)
            self._thread.start()

    def _take_due(self) -> list[Key] | None:
        """Wait until something is due; marks it running. None once handed back."""
        with self._wake:
            while self._handed_back is None:
                now = time.monotonic()
                keys = []
                while self._heap and self._heap[0][0] <= now:
                    _, token, key = heapq.heappop(self._heap)
                    entry = self._entries.get(key)
                    if entry is not None and entry.token == token and not entry.running:
                        entry.running, entry.asked, entry.nudged = True, None, None
                        keys.append(key)
                if keys:
                    return keys
                self._wake.wait(self._heap[0][0] - now if self._heap else None)
            return None

    def _run(self) -> None:
        assert self._pool is not None
        while (keys := self._take_due()) is not None:
            for key in keys:
                self._pool.submit(self._run_check, key)

    def _run_check(self, key: Key) -> None:
        try:
            self._check(key)
        except Exception:  # this one's lease lapses and the reaper retries it; the others carry on
            log.exception("event=remote_check_crashed job_id=%s index=%s", key[0], key[1])
        with self._wake:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry.running = False
            due = entry.next_due()
            if due is not None and self._handed_back is None:
                entry.due = due
                self._push(key, entry)
                return
            del self._entries[key]
            if due is not None and self._handed_back is not None:  # stopped meanwhile: the queue carries on
                self._handed_back(key, max(0.0, due - time.monotonic()))
                return
        if self._forget is not None:
            self._forget(key)
