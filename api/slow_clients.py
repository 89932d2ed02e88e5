"""Guards against clients that are slow or too many, so a few of them cannot hold an API process:

* a request's head must arrive within `http_header_timeout` seconds (counted from the connection, or from the
  end of the previous answer on a kept-alive one) and stay under `MAX_HEAD_BYTES`;
* beyond `http_max_connections` open connections (event streams included) a process answers 503;
* a request body must keep coming: `BodyDeadline` cuts one that stalls for `http_body_timeout` seconds or, past
  that, arrives slower than `http_body_min_rate` on average;
* bytes that are not HTTP/1.1 get the envelope too, not uvicorn's plain-text 400.

The first two live in `GuardedHttpToolsProtocol` (uvicorn's httptools protocol, extended): nothing above it sees a
request before its head is complete. The body deadline is ASGI middleware: it counts only the time the app waits
for the client, not the time the app takes between reads. Every refusal carries the contract's JSON envelope and
closes the connection."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from http import HTTPStatus
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from image2model.api import direct_body
from image2model.api.errors import error_response
from image2model.core.errors import (
    HeadersTooLarge,
    Image2ModelError,
    RequestTimeout,
    TooManyConnections,
    ValidationFailed,
)
from image2model.core.settings import get_settings

log = logging.getLogger("image2model.api")

MAX_HEAD_BYTES = 64 * 1024
"""Largest request head (request line and headers) accepted."""


def _raw_error(exc: Image2ModelError) -> bytes:
    """A complete HTTP/1.1 response carrying `exc`'s envelope, for answers given below the ASGI app."""
    body = json.dumps(exc.to_body(), separators=(",", ":")).encode()
    status = HTTPStatus(exc.status_code)
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _too_many_connections(scope: Scope, receive: Receive, send: Send) -> None:
    """Stands in for the app while a process holds more connections than it allows."""
    limit = get_settings().http_max_connections
    response = error_response(
        TooManyConnections(
            f"This server holds its limit of {limit} connections; retry in a moment.", {"retry_after": 1}
        )
    )
    response.headers["connection"] = "close"
    await response(scope, receive, send)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a deadline and a size cap on each request's head, and a cap on the
    connections of the process. Pass it as uvicorn's `http` option."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self.header_timeout = settings.http_header_timeout
        self.max_connections = settings.http_max_connections
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._in_head = True

    def _arm(self) -> None:
        self._disarm()
        self._in_head, self._head_bytes = True, 0
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, exc: Image2ModelError) -> None:
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        log.info("event=client_refused client=%s code=%s", client, exc.error_code)
        self.transport.write(_raw_error(exc))
        self.transport.close()

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._head_bytes == 0:
            self.transport.close()  # an idle connection: nothing to answer
            return
        self._refuse(
            RequestTimeout(
                f"The request headers did not arrive within {self.header_timeout:g} s; the connection is closed."
            )
        )

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are not HTTP/1.1, in the contract's envelope instead of plain text."""
        self._refuse(ValidationFailed(f"{msg} Send an HTTP/1.1 request."))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(
                HeadersTooLarge(f"The request headers are larger than {MAX_HEAD_BYTES // 1024} KiB.")
            )

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_head = False
        if len(self.connections) <= self.max_connections:
            super().on_headers_complete()
            direct_body.offer(self.cycle, self.scope)
            return
        app, self.app = self.app, _too_many_connections
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm()


class BodyDeadline:
    """ASGI middleware: a request body that stalls for `timeout` seconds, or whose average rate after the first
    `timeout` seconds falls under `min_rate` bytes/s, is answered 408 and the connection closed."""

    def __init__(self, app: ASGIApp, timeout: float, min_rate: float) -> None:
        self.app = app
        self.timeout = timeout
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guard = _BodyGuard(scope, receive, send, self.timeout, self.min_rate)
        await self.app(scope, guard.receive, guard.send)


class _BodyGuard:
    """One request's receive/send, timed while the app waits for body bytes."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, timeout: float, min_rate: float) -> None:
        self.scope, self._receive, self._send = scope, receive, send
        self.timeout, self.min_rate = timeout, min_rate
        self.waited = 0.0
        self.received = 0
        self.body_done = False
        self.started = False
        self.cut = False

    async def receive(self) -> Message:
        if self.cut:
            return {"type": "http.disconnect"}
        if self.body_done:
            return await self._receive()
        allowed = self.timeout + (self.received / self.min_rate if self.min_rate > 0 else float("inf"))
        budget = min(self.timeout, allowed - self.waited)
        message: Message | None = None
        if budget > 0:
            start = time.monotonic()
            with anyio.move_on_after(budget):
                message = await self._receive()
            self.waited += time.monotonic() - start
        if message is None:
            await self._cut()
            return {"type": "http.disconnect"}
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.body_done = not message.get("more_body", False)
        else:
            self.body_done = True
        return message

    async def send(self, message: Message) -> None:
        if self.cut:
            return  # the app answering a request that was already refused
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)

    async def _cut(self) -> None:
        self.cut = True
        client = self.scope.get("client")
        log.info(
            "event=client_refused client=%s code=REQUEST_TIMEOUT received=%d waited_s=%.1f",
            f"{client[0]}:{client[1]}" if client else "?",
            self.received,
            self.waited,
        )
        if self.started:
            return
        rate = f" or arrived slower than {self.min_rate:g} bytes/s" if self.min_rate > 0 else ""
        response = error_response(
            RequestTimeout(
                f"The request body stalled for {self.timeout:g} s{rate}; the connection is closed. "
                "Send the body at a steady pace."
            )
        )
        await response(self.scope, self._receive, self._send)
