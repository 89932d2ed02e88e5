"""Status streams of the remote requests this io worker looks after: one asyncio event loop, in a thread of its
own, holds every stream. Each pushed status becomes the request's latest and nudges the tracker, so a new phase
(and the result above all) is acted on at once and a new queue place or log line within a second; between
pushes the tracker's routine checks read the latest status instead of asking the remote service.

A stream that fails (an error, a stall, an early close) is opened again after a growing pause, and the item is
checked the ordinary way at once and until then; a stream the remote does not offer (`StreamUnavailable`) is not
tried again for that item. Nothing here has to survive a crash: a resumed item opens its stream again.

The model first: CPU follow-ups of fetched results (`after_fetches`) wait while other pushed results are still
being downloaded, so when many finish at once every model is listed before any of their slower outputs."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from image2model.api.worker.tracker import Key
from image2model.core.generators import RemoteGenerator, StreamUnavailable

log = logging.getLogger("image2model.worker")

RETRY_BASE_SECONDS = 2.0
RETRY_MAX_SECONDS = 60.0
NEWS_WITHIN = 1.0
"""A pushed status of the same kind as the last (a new queue place or log line) is acted on within this long;
a new kind (generating, completed) at once."""
SETTLE_SECONDS = 0.05
"""Held follow-ups go once no pushed result has waited for its download for this long, or `hold_max` seconds
after the first of them was held (they wait only while this worker is busy downloading)."""


@dataclass
class _Stream:
    gen: RemoteGenerator
    state: dict[str, Any]
    task: asyncio.Task | None = None
    latest: Any = None
    live: bool = False
    """A status arrived on the connection that is open now."""
    ended: bool = False
    """The stream said the remote work is done (its last status is final)."""
    failures: int = 0


class Follower:
    """Follows remote requests' status streams; `nudge(key, delay)` asks the tracker for an earlier check. Keep
    `hold_max` well inside the lease: nothing renews a fetched item's lease while its follow-up is held."""

    def __init__(self, nudge: Callable[[Key, float], bool], hold_max: float = 10.0) -> None:
        self._nudge = nudge
        self.hold_max = hold_max
        self._streams: dict[Key, _Stream] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._held: list[Callable[[], None]] = []
        self._held_since: float | None = None
        self._release: asyncio.TimerHandle | None = None

    def follow(self, key: Key, gen: RemoteGenerator, state: dict[str, Any]) -> bool:
        """Open the status stream of a tracked item (if its generator offers one); False when it offers none."""
        with self._lock:
            if key in self._streams:
                return True
            stream = _Stream(gen, dict(state))
            if gen.watch(stream.state) is None:
                return False
            self._streams[key] = stream
            loop = self._start_loop()
        loop.call_soon_threadsafe(self._open, key, stream)
        return True

    def unfollow(self, key: Key) -> None:
        """Close an item's stream (its tracking ended)."""
        with self._lock:
            stream = self._streams.pop(key, None)
            loop = self._loop
        if stream is not None and loop is not None:
            loop.call_soon_threadsafe(self._closed, stream)

    def pushed(self, key: Key) -> Any:
        """The latest status the item's stream pushed, while the stream is live (or said the work is done);
        None means ask the remote service."""
        stream = self._streams.get(key)
        if stream is None or not (stream.live or stream.ended):
            return None
        return stream.latest

    def after_fetches(self, run: Callable[[], None]) -> None:
        """Run `run` (a CPU follow-up) once no pushed result is waiting for its download, at most `hold_max`
        seconds from the first held one."""
        with self._lock:
            loop = self._loop
            if loop is None or not self._fetching():
                hold = False
            else:
                hold = True
                self._held.append(run)
                if self._held_since is None:
                    self._held_since = time.monotonic()
                    loop.call_soon_threadsafe(self._release_later, self.hold_max)
        if not hold:
            run()

    # -- on the loop --------------------------------------------------------------------------------------------

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            threading.Thread(target=self._loop.run_forever, name="status-streams", daemon=True).start()
        return self._loop

    def _fetching(self) -> bool:
        """Whether a pushed result still waits for its download (call with the lock held)."""
        return any(s.ended for s in self._streams.values())

    def _open(self, key: Key, stream: _Stream) -> None:
        if self._streams.get(key) is stream:
            stream.task = asyncio.get_running_loop().create_task(self._follow(key, stream))

    def _closed(self, stream: _Stream) -> None:
        if stream.task is not None:
            stream.task.cancel()
        with self._lock:
            settled = bool(self._held) and not self._fetching()
        if settled:
            self._release_later(SETTLE_SECONDS)

    def _release_later(self, delay: float) -> None:
        if self._release is not None:
            self._release.cancel()
        self._release = asyncio.get_running_loop().call_later(delay, self._release_held)

    def _release_held(self) -> None:
        self._release = None
        with self._lock:
            if self._held_since is None:
                return
            waited = time.monotonic() - self._held_since
            if self._fetching() and waited < self.hold_max:
                self._release_later(max(SETTLE_SECONDS, self.hold_max - waited))
                return
            held, self._held, self._held_since = self._held, [], None
        if held:  # enqueueing is blocking I/O: not on this loop
            threading.Thread(target=_run_all, args=(held,), name="held-follow-ups", daemon=True).start()

    async def _follow(self, key: Key, stream: _Stream) -> None:
        while self._streams.get(key) is stream:
            updates = stream.gen.watch(stream.state)
            if updates is None:
                return
            try:
                async for status in updates:
                    self._heard(key, stream, status)
                stream.ended = True
                stream.live = False
                return
            except asyncio.CancelledError:
                raise
            except StreamUnavailable as exc:
                stream.live = False
                log.info(
                    "event=status_stream_unavailable job_id=%s index=%s reason=%r", key[0], key[1], str(exc)
                )
                self._nudge(key, 0.0)
                return
            except Exception as exc:
                stream.live = False
                stream.failures += 1
                self._nudge(key, 0.0)  # it may have missed a change: ask now, poll until it is back
                pause = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (stream.failures - 1))
                pause = max(pause, float(getattr(exc, "retry_after", None) or 0.0))
                log.info(
                    "event=status_stream_failed job_id=%s index=%s failures=%d retry_in=%.1f error=%r",
                    key[0], key[1], stream.failures, pause, f"{type(exc).__name__}: {exc}",
                )  # fmt: skip
                await asyncio.sleep(pause)

    def _heard(self, key: Key, stream: _Stream, status: Any) -> None:
        previous, stream.latest = stream.latest, status
        stream.live = True
        stream.failures = 0
        if previous is None or type(previous) is not type(status):
            self._nudge(key, 0.0)
        elif previous != status:
            self._nudge(key, NEWS_WITHIN)


def _run_all(held: list[Callable[[], None]]) -> None:
    for run in held:
        try:
            run()
        except Exception:
            log.exception("event=held_follow_up_failed")
