"""Reading an export request: one sentence per bad field, 422 for a body that is not a JSON object."""

from __future__ import annotations

import json

import pytest

from image2model.api.exports import parse_export_request
from image2model.core.errors import MalformedRequest, ValidationFailed


def parse(body: object):
    return parse_export_request(json.dumps(body).encode())


def test_a_full_request_is_read_with_its_defaults_filled_in() -> None:
    request = parse({"formats": "STL, 3mf,stl", "height_mm": 80, "up": "Z", "origin": "centre"})
    assert request.formats == ["stl", "3mf"] and request.height_mm == 80.0 and request.up == "z"
    assert request.shaping() == {"height_mm": 80.0, "up": "z", "origin": "center", "face_limit": None}
    assert parse({"formats": ["glb"], "face_limit": 2000.0, "files": ["a", "a"]}).files == ["a"]


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse({"formats": ["stl", "dwg"], "face_limit": True, "height_mm": 1e9, "up": 1, "extra": 0})
    fields = [e["field"] for e in caught.value.details["errors"]]
    assert fields == ["extra", "formats", "face_limit", "height_mm", "up"]
    assert "dwg" in caught.value.message and "at most 100000" in caught.value.message


def test_numbers_too_big_for_a_float_are_refused_not_crashed_on() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_export_request(
            b'{"formats": ["stl"], "face_limit": 1' + b"0" * 400 + b', "height_mm": 1' + b"0" * 400 + b"}"
        )
    assert [e["field"] for e in caught.value.details["errors"]] == ["face_limit", "height_mm"]


@pytest.mark.parametrize("raw", [b"", b"[]", b"{", b"\xff", b'"stl"', b"[" * 60_000])
def test_a_body_that_is_not_a_json_object_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedRequest, match="JSON object"):
        parse_export_request(raw)
