"""`BodyWriter`: a chunk is written straight to a connection only while the response is under way, chunked, and
the connection takes it without waiting; `offer` gives a request a writer only for the cycle serving it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from image2model.api.direct_body import EXTENSION, BodyWriter, offer


class _Transport:
    def __init__(self, buffered: int = 0, closing: bool = False) -> None:
        self.buffered, self.closing = buffered, closing
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered


def _cycle(transport: _Transport | None = None, **state: bool) -> SimpleNamespace:
    """A uvicorn `RequestResponseCycle`'s state as the writer reads it: a chunked response under way by default."""
    fields = {
        "response_started": True,
        "response_complete": False,
        "chunked_encoding": True,
        "disconnected": False,
    }
    paused = state.pop("write_paused", False)
    return SimpleNamespace(
        **{**fields, **state},
        transport=transport or _Transport(),
        flow=SimpleNamespace(write_paused=paused),
        scope={},
    )


def test_a_chunk_goes_out_at_once_in_chunked_framing() -> None:
    cycle = _cycle()
    assert BodyWriter(cycle).write(b"id: 1\r\n\r\n")
    assert cycle.transport.writes == [b"9\r\nid: 1\r\n\r\n\r\n"]


@pytest.mark.parametrize(
    "state",
    [
        {"response_started": False},  # the head goes through ASGI first
        {"response_complete": True},
        {"chunked_encoding": False},
        {"disconnected": True},
        {"write_paused": True},  # the client is behind: the stream's task waits for it
    ],
)
def test_nothing_is_written_unless_the_response_is_under_way_and_the_client_keeps_up(state: dict) -> None:
    cycle = _cycle(**state)
    assert not BodyWriter(cycle).write(b"x")
    assert cycle.transport.writes == []


@pytest.mark.parametrize("transport", [_Transport(buffered=10), _Transport(closing=True)])
def test_nothing_is_written_to_a_connection_with_bytes_queued_or_closing(transport: _Transport) -> None:
    assert not BodyWriter(_cycle(transport)).write(b"x")
    assert transport.writes == []


def test_a_request_is_offered_a_writer_only_by_the_cycle_serving_it() -> None:
    cycle = _cycle()
    offer(cycle, cycle.scope)
    assert isinstance(cycle.scope["extensions"][EXTENSION], BodyWriter)
    other: dict = {}
    offer(cycle, other)  # an upgraded connection's scope is not the cycle's
    offer(None, other)
    assert other == {}


def test_a_cycle_without_the_state_the_writer_reads_offers_none() -> None:
    cycle = _cycle()
    del cycle.chunked_encoding  # another uvicorn: the stream sends everything through ASGI
    offer(cycle, cycle.scope)
    assert "extensions" not in cycle.scope
