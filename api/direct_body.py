"""Body chunks written straight to a connection, for the event hub's fan-out.

Handing a chunk to a stream's task costs a wake-up and a trip through the whole ASGI send chain (every middleware's
wrapper, then uvicorn's) for each of thousands of streams; most of the API's time in a fan-out went there, not into
the socket write. So our HTTP protocol (`slow_clients.GuardedHttpToolsProtocol`) offers each request a `BodyWriter`
as the server extension `EXTENSION`: an idle event stream's next chunk is written to its connection at once, in
uvicorn's chunked framing, when the connection takes it without waiting; its terminal event too, and the stream's
task then only ends the response, once live events pause (`hub.END_DELAY`). Anything else (a connection that is
behind, the first write of a response and the end of its body) still goes through ASGI, so flow control, the
response's start and its end stay uvicorn's."""

from __future__ import annotations

from typing import Any

EXTENSION = "image2model.body_writer"


class BodyWriter:
    """Writes body chunks of one response (a uvicorn httptools `RequestResponseCycle`) past the ASGI chain."""

    __slots__ = ("_cycle",)

    def __init__(self, cycle: Any) -> None:
        self._cycle = cycle

    def write(self, body: bytes) -> bool:
        """Send `body` as the response's next chunk now, if the response is under way with chunked encoding and its
        connection has nothing queued; False, having written nothing, otherwise (send it through ASGI then)."""
        cycle = self._cycle
        transport = cycle.transport
        if (
            not cycle.response_started
            or cycle.response_complete
            or not cycle.chunked_encoding
            or cycle.disconnected
            or cycle.flow.write_paused
            or transport.is_closing()
            or transport.get_write_buffer_size()
        ):
            return False
        transport.write(b"%x\r\n%b\r\n" % (len(body), body))
        return True


_CYCLE_STATE = ("response_started", "response_complete", "chunked_encoding", "disconnected", "transport")


def offer(cycle: Any, scope: dict[str, Any]) -> None:
    """Offer the request `scope` a `BodyWriter` (in its `extensions`) if `cycle` is the one serving it and has the
    state the writer reads; otherwise (an upgraded connection, a uvicorn that keeps other state) none: the
    stream then sends everything through ASGI."""
    if cycle is None or getattr(cycle, "scope", None) is not scope:
        return
    if not all(hasattr(cycle, name) for name in _CYCLE_STATE) or not hasattr(cycle.flow, "write_paused"):
        return
    scope.setdefault("extensions", {})[EXTENSION] = BodyWriter(cycle)
