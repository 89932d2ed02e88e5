"""The event hub: one per API process. It tails the store's event log and fans events out to the subscribed
streams, so no stream polls the store on its own. Each event is encoded once, as the SSE frame every stream
sends, and the events of one job that arrive together become one chunk: every stream of the job gets the same
bytes. Each stream has a bounded buffer; a stream that falls too far behind (its client stopped reading) is
closed, and its client resumes with Last-Event-ID, missing nothing, while the job's other streams never wait
for it.

While any stream is open the hub also reads the queue order once per `position_interval` and tells each stream of
a waiting job its place when that changed (paced, giving way to live events), sends the keep-alive comments, and ends every stream when the server
shuts down (clients reconnect, to this server once it is back or to another)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from image2model.api.direct_body import BodyWriter
from image2model.api.store import JobStore
from image2model.core.models import Event, EventType

log = logging.getLogger("image2model.hub")

IDLE_POLL = 1.0
"""How often the hub reads the event log while no stream is open (its observers need not hear at once); a new
stream wakes it."""
POSITION_SPREAD = 0.5
"""A round of queue notices is spread over this share of `position_interval`, in steps of `POSITION_STEP` seconds,
and a step waits while live events are being fanned out (for at most `position_interval` a round): notices are
hints, and thousands told at once (every watcher of every waiting job) held up the live events of the jobs that
run, which matter more (2,000 watchers of 20 jobs: event delivery p50 118 ms with that clump, 28 ms without)."""
POSITION_STEP = 0.01
END_DELAY = 0.5
"""A stream whose terminal event the hub wrote itself ends its response (its task's wake-up, the end of the body,
the request's unwinding through the middleware: most of a stream's cost) once live events pause, or after this many
seconds: a burst of jobs finishing reaches every watcher first, and is cleaned up after."""
END_BATCH = 100
"""Streams woken at a time to end their responses (one batch a turn of the loop, so live events interleave)."""
HOUSEKEEPING_SECONDS = 0.5
STUCK_SECONDS = 30.0
"""A stream whose send has not completed for this long (its client reads nothing) is cut off."""
PING = b": ping\r\n\r\n"


def worth_telling(told: int | None, position: int) -> bool:
    """Whether a stream last told `told` should hear `position`: every step within the first ten places, and
    further back only when the place improved by a tenth (a long queue is not worth a notice per job started)."""
    if told is None:
        return True
    if position == told:
        return False
    return position <= 10 or position <= told * 0.9


def encode_event(event: Event) -> bytes:
    """One stored event as an SSE frame: `id:` its seq, `event:` its type, `data:` its JSON on one line."""
    data = json.dumps(event.data, separators=(",", ":"))
    return f"id: {event.seq}\r\nevent: {event.type.value}\r\ndata: {data}\r\n\r\n".encode()


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive events of one job, encoded once and shared by all the job's streams."""

    first: int
    last: int
    data: bytes
    events: int
    terminal: bool
    queued: bool
    """Every event in it says `queued` (its job may still be waiting)."""

    @classmethod
    def of(cls, events: list[Event]) -> Chunk:
        return cls(
            first=events[0].seq,
            last=events[-1].seq,
            data=b"".join(encode_event(e) for e in events),
            events=len(events),
            terminal=events[-1].terminal,
            queued=all(e.data.get("status") == "queued" for e in events),
        )


class Notice:
    """A queue position notice: no id of its own; each stream stamps it with its last seq (encoded once per seq:
    the streams of one job are mostly at the same one)."""

    __slots__ = ("_frames", "data")

    def __init__(self, data: dict) -> None:
        self.data = data
        self._frames: dict[int, bytes] = {}

    def encode(self, seq: int) -> bytes:
        frame = self._frames.get(seq)
        if frame is None:
            body = json.dumps({**self.data, "seq": seq}, separators=(",", ":"))
            frame = self._frames[seq] = (
                f"event: {EventType.QUEUE_POSITION.value}\r\ndata: {body}\r\n\r\n".encode()
            )
        return frame


Item = Chunk | Notice | bytes
"""What a stream is handed: shared chunks of events, queue notices and keep-alive comments."""


class Subscription:
    """A stream's bounded buffer. When more than `limit` events wait in it, the hub closes it; the stream then
    ends and its client reconnects with Last-Event-ID and loses nothing."""

    __slots__ = (
        "_closed",
        "_delivered",
        "_items",
        "_pending",
        "_waiter",
        "job_id",
        "last",
        "limit",
        "position",
        "sending_since",
        "task",
        "waiting",
        "writer",
    )

    def __init__(self, job_id: str, limit: int) -> None:
        self.job_id = job_id
        self.limit = limit
        self.position: int | None = None
        """The queue position this stream was last told."""
        self.task: asyncio.Task | None = None
        """The task sending this stream (set by the stream)."""
        self.sending_since: float | None = None
        """Monotonic start of the send in progress, if any."""
        self.last = 0
        """Seq of the last event sent (kept by the stream, and by the hub when it writes to it directly)."""
        self.waiting = False
        """Every event sent so far said `queued` (the job may still wait: queue notices are worth sending)."""
        self.writer: BodyWriter | None = None
        """Writes to the stream's connection past ASGI; set by the stream once its response is under way."""
        self._items: deque[Item] = deque()
        self._pending = 0
        self._waiter: asyncio.Future | None = None
        self._closed = False
        self._delivered = False

    def push(self, item: Item, events: int = 1) -> bool:
        """Hand the stream an item; False when that overflowed its buffer (the hub then closes it)."""
        if self._closed:
            return True
        self._items.append(item)
        self._pending += events
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return self._pending <= self.limit

    def write_now(self, data: bytes) -> bool:
        """Write `data` to the stream's connection at once, if the stream is idle (its task waits, nothing queued)
        and the connection takes it without waiting; False otherwise (then `push` it)."""
        writer = self.writer
        return (
            writer is not None
            and self._waiter is not None
            and not self._items
            and not self._closed
            and writer.write(data)
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """End the stream; what it has not sent yet is dropped (the client replays it with Last-Event-ID)."""
        self._closed = True
        self._items.clear()
        self._pending = 0
        if not self._delivered:  # a delivered stream is woken by the hub (`wake`), when live events pause
            self.wake()

    def deliver_end(self) -> None:
        """The hub wrote the stream's terminal event itself: the stream is over, and its task, still waiting for
        items, stays asleep until `wake` (it then only ends the response)."""
        self._closed = self._delivered = True

    def wake(self) -> None:
        """Wake the stream's task if it waits for items (it then finds the stream closed, and ends)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def take(self) -> list[Item] | None:
        """Everything handed over since the last take (waiting for something), or None once closed."""
        while not self._items:
            if self._closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        if self._closed:
            return None
        items = list(self._items)
        self._items.clear()
        self._pending = 0
        return items


def server_exiting() -> bool:
    """Whether the uvicorn server of this process was told to stop (it owns SIGTERM's handler while it serves)."""
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return bool(getattr(server, "should_exit", False))


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
        ping_seconds: float = 15.0,
        max_pending: int = 1000,
    ):
        self.store = store
        self.interval = interval
        self.position_interval = position_interval
        self.ping_seconds = ping_seconds
        self.max_pending = max_pending
        self.observers = observers or []
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._tasks: list[asyncio.Task] = []
        self._cursor: object = None
        self._subscribed = asyncio.Event()
        self._last_live = 0.0
        """Monotonic time of the last dispatch that handed live events to streams."""
        self._delivered: deque[tuple[float, Subscription]] = deque()
        """Streams whose terminal event the hub wrote (with when), their tasks waiting to end the responses."""
        self._delivered_added = asyncio.Event()
        self.deliveries = {"direct": 0, "stream": 0}
        """Live event chunks delivered so far: written by the hub to idle connections, or handed to the streams."""
        self.exiting: Callable[[], bool] = server_exiting

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._subs.values())

    async def start(self) -> None:
        self._cursor = await asyncio.to_thread(self.store.head)
        self._tasks = [
            asyncio.create_task(self._run(), name="event-hub"),
            asyncio.create_task(self._tell_positions(), name="queue-positions"),
            asyncio.create_task(self._housekeeping(), name="stream-housekeeping"),
            asyncio.create_task(self._end_delivered(), name="stream-ends"),
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
        self._close_all()

    def subscribe(self, job_id: str) -> Subscription:
        sub = Subscription(job_id, self.max_pending)
        self._subs[job_id].add(sub)
        self._subscribed.set()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.job_id]

    def _close_all(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.close()
        self._subs.clear()
        while self._delivered:
            self._delivered.popleft()[1].wake()

    def _overflowed(self, sub: Subscription) -> None:
        log.warning("event=subscriber_overflow job_id=%s pending_limit=%d", sub.job_id, sub.limit)
        self.unsubscribe(sub)
        sub.close()

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
            self._dispatch(rows)
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

    def _dispatch(self, rows: list[tuple[str, Event]]) -> None:
        by_job: dict[str, list[Event]] = {}
        for job_id, event in rows:
            for observe in self.observers:
                observe(job_id, event)
            if job_id in self._subs:
                by_job.setdefault(job_id, []).append(event)
        if by_job:
            self._last_live = time.monotonic()
        for job_id, events in by_job.items():
            chunk = Chunk.of(events)
            subs = list(self._subs.get(job_id, ()))
            written = 0
            for sub in subs:
                if chunk.first == sub.last + 1 and sub.write_now(chunk.data):
                    sub.last = chunk.last
                    sub.waiting = sub.waiting and chunk.queued
                    written += 1
                    if chunk.terminal:  # delivered: its task only ends the response, later (`_end_delivered`)
                        self.unsubscribe(sub)
                        sub.deliver_end()
                        self._delivered.append((self._last_live, sub))
                        self._delivered_added.set()
                elif not sub.push(chunk, chunk.events):
                    self._overflowed(sub)
            self.deliveries["direct"] += written
            self.deliveries["stream"] += len(subs) - written

    async def _end_delivered(self) -> None:
        """Wake the tasks of streams whose terminal event the hub wrote, `END_BATCH` a turn of the loop, once live
        events pause (none fanned out for two `POSITION_STEP`s) or the oldest has waited `END_DELAY`."""
        while True:
            if not self._delivered:
                self._delivered_added.clear()
                await self._delivered_added.wait()
                continue
            now = time.monotonic()
            if now - self._last_live < 2 * POSITION_STEP and now - self._delivered[0][0] < END_DELAY:
                await asyncio.sleep(POSITION_STEP)
                continue
            for _ in range(min(END_BATCH, len(self._delivered))):
                self._delivered.popleft()[1].wake()
            await asyncio.sleep(0)

    async def _housekeeping(self) -> None:
        """Keep-alive comments every `ping_seconds`, streams stuck in a send cut off, and every stream ended
        once the server is told to stop."""
        next_ping = time.monotonic() + self.ping_seconds
        while True:
            await asyncio.sleep(min(HOUSEKEEPING_SECONDS, self.ping_seconds))
            if self.exiting():
                self._close_all()
                continue
            now = time.monotonic()
            if now < next_ping:
                continue
            next_ping = now + self.ping_seconds
            for subs in list(self._subs.values()):
                for sub in list(subs):
                    since = sub.sending_since
                    if since is not None and now - since > STUCK_SECONDS and sub.task is not None:
                        log.warning("event=stream_stuck job_id=%s seconds=%.0f", sub.job_id, now - since)
                        self.unsubscribe(sub)
                        sub.close()
                        sub.task.cancel()
                    elif not (sub.write_now(PING) or sub.push(PING)):
                        self._overflowed(sub)

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
            due: list[tuple[Subscription, Notice, int]] = []
            for job_id, subs in list(self._subs.items()):
                position = positions.get(job_id)
                if position is None:
                    continue
                told = [sub for sub in subs if worth_telling(sub.position, position)]
                if not told:
                    continue
                notice = Notice(
                    {
                        "job_id": job_id,
                        "task_id": job_id,
                        "status": "queued",
                        "progress": 0.0,
                        "queue_position": position,
                        "timestamp": now_ms,
                    }
                )
                due += [(sub, notice, position) for sub in told]
            steps = max(1, int(self.position_interval * POSITION_SPREAD / POSITION_STEP))
            batch = max(1, -(-len(due) // steps))
            yield_until = time.monotonic() + self.position_interval
            for start in range(0, len(due), batch):
                while (
                    time.monotonic() - self._last_live < 2 * POSITION_STEP and time.monotonic() < yield_until
                ):
                    await asyncio.sleep(POSITION_STEP)
                for sub, notice, position in due[start : start + batch]:
                    if sub.closed:
                        continue
                    if (sub.waiting and sub.write_now(notice.encode(sub.last))) or sub.push(notice):
                        sub.position = position
                    else:
                        self._overflowed(sub)
                await asyncio.sleep(POSITION_STEP)
