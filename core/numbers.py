"""Numbers read from text that clients control (headers, query strings, tokens, remote responses): ASCII digits
only, with a bound on their length, so `²`, `٣` or a 5,000-digit number is "not a number" instead of an
exception (`str.isdigit()` accepts them; `int()` then raises)."""

from __future__ import annotations

MAX_INT64 = 2**63 - 1
"""The largest id SQLite (and most languages' integers) can hold."""


def parse_decimal(text: str | None, maximum: int = MAX_INT64) -> int | None:
    """The value of `text` (surrounding whitespace allowed) when it is ASCII digits worth at most `maximum`, else
    None."""
    if text is None:
        return None
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit() or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if value <= maximum else None
