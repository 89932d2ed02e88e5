"""An incremental Server-Sent Events parser (WHATWG HTML, "Parsing an event stream"), shared by both clients.

Feed it the raw bytes of a response as they arrive; it returns the events completed so far. It holds no I/O,
so the sync and async clients drive it the same way.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from image2model.core.numbers import parse_decimal

__all__ = ["ServerSentEvent", "SSEDecoder"]

_EOL = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event: `event` defaults to "message", `id` is the stream's last event id at dispatch."""

    event: str
    data: str
    id: str
    retry: int | None = None


class SSEDecoder:
    """Turns a byte stream into `ServerSentEvent`s.

    Follows the WHATWG rules: UTF-8 with one leading BOM stripped, lines end in CRLF, LF or a lone CR (also
    when a CRLF is split between two chunks), `:` starts a comment, one space after the field's colon is
    dropped, `data` lines join with LF, an `id` containing NUL is ignored, `retry` takes ASCII digits only, a
    blank line dispatches (nothing when no data arrived), and an unterminated event at end of stream is
    dropped.
    """

    def __init__(self, last_event_id: str = "") -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = False
        self._skip_lf = False
        self._partial = ""
        self._event = ""
        self._data: list[str] = []
        self._last_event_id = last_event_id
        self.retry: int | None = None
        """The latest reconnection time (ms) the server asked for, if any."""

    @property
    def last_event_id(self) -> str:
        return self._last_event_id

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume a chunk of the stream; return the events it completed (possibly none)."""
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if not self._started:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._skip_lf:
            # The previous chunk ended in CR: a LF opening this one belongs to that line ending.
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        out: list[ServerSentEvent] = []
        pos = 0
        for match in _EOL.finditer(text):
            line = self._partial + text[pos : match.start()]
            self._partial = ""
            pos = match.end()
            self._process_line(line, out)
        if pos == len(text) and text.endswith("\r"):
            self._skip_lf = True
        self._partial += text[pos:]
        return out

    def close(self) -> None:
        """End of stream: an event not terminated by a blank line is discarded, as the spec says."""
        self._partial = ""
        self._event = ""
        self._data = []

    def _process_line(self, line: str, out: list[ServerSentEvent]) -> None:
        if not line:
            self._dispatch(out)
            return
        if line.startswith(":"):
            return  # comment (keep-alive)
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            if "\0" not in value:
                self._last_event_id = value
        elif field == "retry" and (retry := parse_decimal(value)) is not None and value == value.strip():
            self.retry = retry
        # Any other field is ignored.

    def _dispatch(self, out: list[ServerSentEvent]) -> None:
        event, data = self._event, self._data
        self._event, self._data = "", []
        if not data:
            return
        out.append(
            ServerSentEvent(
                event=event or "message", data="\n".join(data), id=self._last_event_id, retry=self.retry
            )
        )
