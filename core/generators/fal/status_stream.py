"""FAL's status stream, `GET .../requests/{id}/status/stream` (Server-Sent Events, fal.md §2): every status change
of a request as it happens, read with httpx on an asyncio loop and parsed exactly like a status check. fal-client
itself never uses this endpoint; FAL sends a keep-alive comment every 15 s and closes the stream after COMPLETED."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from image2model.core.generators.base import RemoteBusy, StreamUnavailable
from image2model.core.generators.fal import connection

if TYPE_CHECKING:
    import fal_client
    import httpx


class StreamEnded(ConnectionError):
    """The stream closed before the request completed (FAL restarts, proxies cut long responses)."""


class StatusStreams:
    """Opens the status streams of one fal-client's requests, with its key and User-Agent, on whatever event loop
    iterates them (one keep-alive httpx client per loop). A stream that sends nothing at all, not even its
    keep-alive comment, for `stall_seconds` raises `httpx.ReadTimeout`."""

    def __init__(self, fal: fal_client.SyncClient, stall_seconds: float) -> None:
        wanted = ("authorization", "user-agent")
        self._headers = {k: v for k, v in fal._client.headers.items() if k.lower() in wanted}
        self._headers["Accept"] = "text/event-stream"
        self._stall = stall_seconds
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    def _client(self) -> httpx.AsyncClient:
        import httpx

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
            client = httpx.AsyncClient(headers=self._headers, limits=limits, follow_redirects=True)
            self._clients[loop] = client
        return client

    async def follow(self, handle: fal_client.SyncRequestHandle) -> AsyncIterator[fal_client.Status]:
        """Each status FAL pushes for `handle`'s request, ending after `Completed`. Raises StreamUnavailable
        (404: no stream for this request), RemoteBusy (429), fal-client's HTTP error for other answers, httpx's
        errors for transport failures and stalls, StreamEnded when it closes early."""
        import fal_client.client as fc
        import httpx
        from fal_client import Completed, FalClientHTTPError

        from image2model.core.client._sse import SSEDecoder

        timeout = httpx.Timeout(self._stall, connect=min(self._stall, 30.0))
        url = handle.status_url + "/stream"
        async with self._client().stream("GET", url, params={"logs": "1"}, timeout=timeout) as response:
            if response.status_code >= 400:
                await response.aread()
                if response.status_code in (404, 405, 501):
                    raise StreamUnavailable(f"FAL answered HTTP {response.status_code} for the status stream")
                try:
                    fc._raise_for_status(response)
                except FalClientHTTPError as exc:
                    if exc.status_code == 429:
                        after = connection.retry_after_seconds(exc.response_headers)
                        raise RemoteBusy("FAL rate-limited the status stream", after) from exc
                    raise
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                raise StreamUnavailable(
                    f"FAL answered {response.headers.get('content-type')!r}, not a stream"
                )
            decoder = SSEDecoder()
            async for chunk in response.aiter_raw():
                for event in decoder.feed(chunk):
                    status = handle._parse_status(json.loads(event.data))
                    yield status
                    if isinstance(status, Completed):
                        return
        raise StreamEnded("FAL's status stream ended before the request completed")

    async def aclose(self) -> None:
        """Close this loop's client."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
