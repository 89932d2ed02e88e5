"""The incremental SSE parser against the WHATWG rules, fed in every possible chunking."""

from __future__ import annotations

import pytest

from image2model.core.client import ServerSentEvent, SSEDecoder

STREAM = (
    "\ufeff: hello comment\r\n"
    "retry: 1500\r\n"
    "id: 1\r\n"
    "event: task_queued\r\n"
    'data: {"a": 1}\r\n'
    "\r\n"
    "id: 2\r"
    "event: file_update\r"
    "data:first\r"
    "data:  second é ✓\r"
    "\r"
    ": keep-alive\n"
    "data\n"
    "\n"
    "event: ignored-no-data\n"
    "\n"
    "id: 3\n"
    "event: task_completed\n"
    "data: {}\n"
    "\n"
    "id: 4\n"
    "data: never dispatched"
).encode()

EXPECTED = [
    ServerSentEvent(event="task_queued", data='{"a": 1}', id="1", retry=1500),
    ServerSentEvent(event="file_update", data="first\n second é ✓", id="2", retry=1500),
    ServerSentEvent(event="message", data="", id="2", retry=1500),
    ServerSentEvent(event="task_completed", data="{}", id="3", retry=1500),
]


def _parse(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    decoder.close()
    return events


def test_whole_stream_parses_per_spec() -> None:
    assert _parse([STREAM]) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_any_split_point_gives_the_same_events(cut: int) -> None:
    # Splits land inside CRLF pairs, inside multi-byte UTF-8 characters and inside the BOM.
    assert _parse([STREAM[:cut], STREAM[cut:]]) == EXPECTED


def test_byte_by_byte_feed_gives_the_same_events() -> None:
    assert _parse([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_cr_at_chunk_end_then_lf_is_one_line_ending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    # A lone CR already ended the line; the LF must not count as a blank line (which would dispatch).
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: y\r\n\r\n") == [ServerSentEvent("message", "x\ny", "", None)]


def test_bad_retry_and_nul_id_are_ignored() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"retry: 12a\nid: 7\ndata: a\n\nid: 8\x009\nretry: -5\ndata: b\n\n")
    assert [(e.id, e.retry) for e in events] == [("7", None), ("7", None)]
    assert decoder.last_event_id == "7"


def test_id_persists_and_can_be_reset_by_empty_id() -> None:
    decoder = SSEDecoder(last_event_id="41")
    events = decoder.feed(b"data: a\n\nid\ndata: b\n\n")
    assert [e.id for e in events] == ["41", ""]


def test_field_names_are_case_sensitive_and_unknown_fields_ignored() -> None:
    events = _parse([b"Data: nope\nevent: e\nfoo: bar\ndata: yes\n\n"])
    assert events == [ServerSentEvent("e", "yes", "", None)]
