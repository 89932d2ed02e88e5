"""An idle web UI costs nothing: Gradio's queue (gradio 6.31) looks for new events every millisecond and for progress
to send every 10 ms, even with nobody connected, about 1,100 wake-ups a second and 3–5 % of a core. `quiet_queue`
makes those two polls waits while there is nothing to poll for: a new event wakes the first, a job starting the
second. While work is there, Gradio's loops run exactly as written.

Gradio's loops sleep through `asyncio.sleep` of its own `gradio.queueing` module; that name is given a stand-in
which passes every call through, except the two idle polls of a `QuietQueue`'s loops (told apart by the loop's
context and the poll's own delay)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from types import ModuleType
from typing import Any

import gradio as gr
from gradio import queueing

IDLE_WAIT = 5.0
"""Longest idle wait before a loop looks again by itself (a wake-up that went missing costs no more than this)."""

_LOOP: contextvars.ContextVar[tuple[QuietQueue, str]] = contextvars.ContextVar("i2m_gradio_queue_loop")


class QuietQueue(queueing.Queue):
    """Gradio's queue whose idle polls wait for work. Made from Gradio's own by `quiet_queue`."""

    _waits: dict[str, asyncio.Event]
    waiting: set[str]
    """The loops parked in `wait_for_work` now."""

    def _wake(self, loop: str) -> None:
        self._waits.setdefault(loop, asyncio.Event()).set()

    def idle(self, loop: str) -> bool:
        """Whether `loop` ("events" or "progress") has nothing to poll for."""
        if self.stopped:
            return False
        if loop == "events":
            return len(self) == 0
        return not any(job for job in self.active_jobs if job is not None)

    async def wait_for_work(self, loop: str) -> None:
        """Return once `loop` may have work (or after `IDLE_WAIT`)."""
        event = self._waits.setdefault(loop, asyncio.Event())
        self.waiting.add(loop)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), IDLE_WAIT)
        finally:
            self.waiting.discard(loop)
        event.clear()

    async def push(self, *args: Any, **kwargs: Any) -> Any:
        outcome = await super().push(*args, **kwargs)
        self._wake("events")
        return outcome

    async def process_events(self, *args: Any, **kwargs: Any) -> None:
        self._wake("progress")
        await super().process_events(*args, **kwargs)

    async def start_processing(self) -> None:
        _LOOP.set((self, "events"))
        await super().start_processing()

    async def start_progress_updates(self) -> None:
        _LOOP.set((self, "progress"))
        await super().start_progress_updates()

    def close(self) -> None:
        super().close()
        for loop in ("events", "progress"):
            self._wake(loop)


class _QueueAsyncio(ModuleType):
    """`asyncio` as `gradio.queueing` sees it: the same module, but a quiet queue's idle poll waits for work."""

    def __init__(self) -> None:
        super().__init__("asyncio")

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float, result: Any = None) -> Any:
        current = _LOOP.get(None)
        if current is not None:
            queue, loop = current
            poll = queue.sleep_when_free if loop == "events" else queue.progress_update_sleep_when_free
            if delay == poll and queue.idle(loop):
                await queue.wait_for_work(loop)
                return result
        return await asyncio.sleep(delay, result)


def quiet_queue(demo: gr.Blocks) -> None:
    """Make the queue of `demo` (after `demo.queue(...)`) wait for work instead of polling while idle."""
    queue = demo._queue
    if not isinstance(queue, QuietQueue):
        queue.__class__ = QuietQueue
        queue._waits, queue.waiting = {}, set()
    if not isinstance(queueing.asyncio, _QueueAsyncio):
        queueing.asyncio = _QueueAsyncio()  # type: ignore[assignment]
