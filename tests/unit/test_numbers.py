"""Numbers from text that clients control: ASCII digits within a bound, anything else is None (never an error)."""

from __future__ import annotations

import pytest

from image2model.core.numbers import MAX_INT64, parse_decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("42", 42), (" 7 ", 7), (str(MAX_INT64), MAX_INT64), ("007", 7)],
)
def test_ascii_digits_within_the_bound_are_numbers(text: str, expected: int) -> None:
    assert parse_decimal(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        " ",
        "\u00b2",
        "\u0663",
        "1\u00b2",
        "-1",
        "+1",
        "1.5",
        "1e3",
        "0x10",
        str(2**63),
        "9" * 5000,
        "1 2",
    ],
)
def test_anything_else_is_not_a_number(text: str | None) -> None:
    assert parse_decimal(text) is None


def test_the_bound_can_be_lower() -> None:
    assert parse_decimal("60", maximum=60) == 60
    assert parse_decimal("61", maximum=60) is None
