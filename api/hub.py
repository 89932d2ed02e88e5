"""The event hub: one per API process. It tails the store's event log and fans events out to the
subscribed streams, so no stream polls the store on its own. While any stream is open it also reads the queue
order once per `position_interval` and tells each stream of a waiting job its place when that changed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable

from image2model.api.store import JobStore
from image2model.core.models import Event, EventType

log = logging.getLogger("image2model.hub")

QUEUE_SIZE = 1000
IDLE_POLL = 1.0
"""How often the hub reads the event log while no stream is open (its observers need not hear at once); a new
stream wakes it."""
POSITION_BATCH = 100
"""Streams told their queue position per step; a step then yields the loop for `POSITION_PACE` seconds."""
POSITION_PACE = 0.005


def worth_telling(told: int | None, position: int) -> bool:
    """Whether a stream last told `told` should hear `position`: every step within the first ten places, and
    further back only when the place improved by a tenth (a long queue is not worth a notice per job started)."""
    if told is None:
        return True
    if position == told:
        return False
    return position <= 10 or position <= told * 0.9


class Subscription:
    """A stream's mailbox. On overflow it is closed; the client reconnects with Last-Event-ID and loses nothing."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.position: int | None = None
        """The queue position this stream was last told."""

    def deliver(self, event: Event) -> bool:
        try:
            self.queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            return False

    def close(self) -> None:
        """Wake the stream with the end marker (making room for it if the mailbox is full)."""
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def next(self) -> Event | None:
        """The next live event, or None when the hub dropped this subscription."""
        return await self.queue.get()


class EventHub:
    """Reads the event log from one cursor and hands each event to the streams of its job. With a backend that
    can block (Redis Streams) it waits inside the backend, in a thread, so an event is dispatched as soon as it is
    written; otherwise it polls every `interval` seconds."""

    BLOCK_SECONDS = 1.0

    def __init__(
        self,
        store: JobStore,
        interval: float,
        observers: list[Callable[[str, Event], None]] | None = None,
        position_interval: float = 1.0,
    ):
        self.store = store
        self.interval = interval
        self.position_interval = position_interval
        self.observers = observers or []
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._tasks: list[asyncio.Task] = []
        self._cursor: object = None
        self._subscribed = asyncio.Event()

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._subs.values())

    async def start(self) -> None:
        self._cursor = await asyncio.to_thread(self.store.head)
        self._tasks = [
            asyncio.create_task(self._run(), name="event-hub"),
            asyncio.create_task(self._tell_positions(), name="queue-positions"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:  # what was written since the last read still reaches the observers (the job lines of the log)
            _, rows = await asyncio.to_thread(self.store.tail, self._cursor)
        except Exception:
            log.exception("event=hub_final_tail_failed")
            rows = []
        for job_id, event in rows:
            for observe in self.observers:
                observe(job_id, event)
        for subs in self._subs.values():
            for sub in subs:
                sub.close()
        self._subs.clear()

    def subscribe(self, job_id: str) -> Subscription:
        sub = Subscription(job_id)
        self._subs[job_id].add(sub)
        self._subscribed.set()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.job_id]

    async def _run(self) -> None:
        blocking = self.store.blocking_tail
        while True:
            try:
                if blocking:
                    self._cursor, rows = await asyncio.to_thread(
                        self.store.wait_tail, self._cursor, self.BLOCK_SECONDS
                    )
                else:
                    self._cursor, rows = self.store.tail(self._cursor)
            except Exception:
                log.exception("event=hub_tail_failed")
                await asyncio.sleep(1.0)
                continue
            for job_id, event in rows:
                self._dispatch(job_id, event)
            if not blocking and len(rows) < 1000:
                await self._pause(self.interval, IDLE_POLL)

    async def _pause(self, interval: float, idle: float) -> None:
        """Wait `interval` while streams are open; with none, up to `idle` seconds, cut short by a new stream."""
        if self._subs:
            await asyncio.sleep(interval)
            return
        self._subscribed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), idle)

    async def _tell_positions(self) -> None:
        while True:
            await self._pause(self.position_interval, 3600.0)
            if not self._subs:
                continue
            try:
                positions = await asyncio.to_thread(self.store.queue_positions)
            except Exception:
                log.exception("event=queue_positions_failed")
                continue
            now_ms = int(time.time() * 1000)
            due: list[tuple[Subscription, Event]] = []
            for job_id, subs in list(self._subs.items()):
                position = positions.get(job_id)
                if position is None:
                    continue
                told = [sub for sub in subs if worth_telling(sub.position, position)]
                if not told:
                    continue
                notice = Event(
                    seq=0,
                    type=EventType.QUEUE_POSITION,
                    data={
                        "job_id": job_id,
                        "task_id": job_id,
                        "status": "queued",
                        "progress": 0.0,
                        "queue_position": position,
                        "timestamp": now_ms,
                    },
                )
                due += [(sub, notice) for sub in told]
            # Paced over part of the interval: thousands of streams told at once would hold up live events.
            for start in range(0, len(due), POSITION_BATCH):
                for sub, notice in due[start : start + POSITION_BATCH]:
                    if sub.deliver(notice):
                        sub.position = notice.data["queue_position"]
                await asyncio.sleep(POSITION_PACE)

    def _dispatch(self, job_id: str, event: Event) -> None:
        for observe in self.observers:
            observe(job_id, event)
        for sub in list(self._subs.get(job_id, ())):
            if not sub.deliver(event):
                log.warning("event=subscriber_overflow job_id=%s", job_id)
                self.unsubscribe(sub)
                sub.close()
