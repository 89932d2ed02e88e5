"""One job's Server-Sent Events stream as a plain ASGI response: the job's history after `Last-Event-ID` from the
store, then the hub's live chunks (the same bytes for every stream of the job), until the terminal event.

Per stream there is one task sending and one waiting for the client to leave; whatever the hub handed over
since the last send goes out in one write, and the terminal event in the same write as the end of the body. A
replay and the live events are stitched by seq, so nothing is sent twice and a gap is filled from the store."""

from __future__ import annotations

import asyncio
import logging
import time

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from image2model.api.direct_body import EXTENSION, BodyWriter
from image2model.api.hub import PING, Chunk, EventHub, Notice, Subscription, encode_event
from image2model.api.store import JobRecord, JobStore
from image2model.core.models import Event, JobStatus

log = logging.getLogger("image2model.api")

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class EventStreamResponse(Response):
    """`text/event-stream` of one job. Subscribe (`hub.subscribe`) before building it, so no event written
    between the route's checks and the replay is missed."""

    media_type = "text/event-stream"

    def __init__(
        self,
        hub: EventHub,
        store: JobStore,
        subscription: Subscription,
        job: JobRecord,
        after: int,
        retry_ms: int,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = list(HEADERS)
        self.hub, self.store, self.sub, self.job = hub, store, subscription, job
        self.after = after
        self._retry = f"retry: {retry_ms}\r\n".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sub = self.sub
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if scope.get("method") == "HEAD":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            sub.task = asyncio.current_task()
            leaving = asyncio.create_task(_wait_for_disconnect(receive, sub))
            try:
                tail = await self._stream(send, scope.get("extensions", {}).get(EXTENSION))
            except asyncio.CancelledError:
                if not sub.closed:
                    raise
                log.info("event=stream_cut job_id=%s reason=client_not_reading", sub.job_id)
                return  # cut off by the hub while stuck in a send: the server closes the connection
            finally:
                leaving.cancel()
            await self._send(send, tail, more=False)
        finally:
            self.hub.unsubscribe(sub)

    async def _send(self, send: Send, body: bytes, more: bool = True) -> None:
        self.sub.sending_since = time.monotonic()
        await send({"type": "http.response.body", "body": body, "more_body": more})
        self.sub.sending_since = None

    async def _missed(self, last: int) -> list[Event]:
        return await anyio.to_thread.run_sync(self.store.events_after, self.job.job_id, last)

    async def _stream(self, send: Send, writer: BodyWriter | None) -> bytes:
        """Send the stream until its terminal event; returns what is left to send with the end of the body (the
        terminal event goes out in the same write as the end: one write fewer per stream). Once the response is
        under way the hub may write the stream's chunks directly (`writer`), keeping `sub.last` and
        `sub.waiting` for it."""
        sub = self.sub
        sub.last = self.after
        backlog = await self._missed(sub.last)
        if not backlog and self.job.status.terminal and sub.last >= self.job.seq:
            return b""
        sub.waiting = self.job.status == JobStatus.QUEUED
        prefix = self._retry
        out: list[bytes] = []
        done = False
        items: list = list(backlog)
        while True:
            for item in items:
                if isinstance(item, Chunk):
                    if item.last <= sub.last:
                        continue
                    # Overlapped by the replay, or events missing: from the store.
                    if item.first != sub.last + 1:
                        for event in await self._missed(sub.last):
                            self._add(out, event)
                            done = event.terminal
                            if done:
                                break
                    else:
                        out.append(item.data)
                        sub.last, done, sub.waiting = item.last, item.terminal, sub.waiting and item.queued
                elif isinstance(item, Event):
                    if item.seq <= sub.last:
                        continue
                    self._add(out, item)
                    done = item.terminal
                elif isinstance(item, Notice):
                    if sub.waiting:
                        out.append(item.encode(sub.last))
                else:
                    out.append(PING)
                if done:
                    break
            if done:
                return prefix + b"".join(out)
            if out:
                await self._send(send, prefix + b"".join(out))
                prefix, out = b"", []
                sub.writer = writer
            taken = await sub.take()
            if taken is None:
                return b""
            items = taken

    def _add(self, out: list[bytes], event: Event) -> None:
        """Append one stored event to `out`, keeping the stream's seq and waiting state."""
        out.append(encode_event(event))
        self.sub.last = event.seq
        self.sub.waiting = self.sub.waiting and event.data.get("status") == "queued"


async def _wait_for_disconnect(receive: Receive, sub: Subscription) -> None:
    """Close the subscription when the client goes away (the sender then stops)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            sub.close()
            return
