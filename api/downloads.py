"""Serving a stored file over HTTP: `304 Not Modified` for a matching `If-None-Match`, ranges as Starlette serves
them, and a JSON error (never Starlette's plain text) for a malformed Range or one past the end of the file."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
from fastapi import Request
from fastapi.responses import FileResponse, Response
from starlette.responses import MalformedRangeHeader
from starlette.responses import RangeNotSatisfiable as StarletteRangeNotSatisfiable

from image2model.core.errors import RangeNotSatisfiable, ValidationFailed

_NOT_MODIFIED_HEADERS = ("etag", "cache-control", "last-modified", "x-content-type-options")


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of `If-None-Match` (a list of entity tags, or `*`) with the file's ETag."""
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in if_none_match.split(","))


async def file_response(
    request: Request, path: Path, media_type: str, filename: str, headers: dict[str, str]
) -> Response:
    """The file as an attachment (Range, ETag and Last-Modified included), or 304 when the client's copy is
    current. Raises VALIDATION_ERROR for a malformed Range and RANGE_NOT_SATISFIABLE for one past the end."""
    stat = await anyio.to_thread.run_sync(os.stat, path)
    response = FileResponse(
        path,
        stat_result=stat,
        media_type=media_type,
        filename=filename,
        content_disposition_type="attachment",
        headers=headers,
    )
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and etag_matches(if_none_match, response.headers["etag"]):
        kept = {k: v for k, v in response.headers.items() if k in _NOT_MODIFIED_HEADERS}
        return Response(status_code=304, headers=kept)
    _check_range(request, response, stat.st_size)
    return response


def _check_range(request: Request, response: FileResponse, size: int) -> None:
    """Validate a Range the response would honour (an If-Range that does not match makes it send the whole file)."""
    http_range = request.headers.get("range")
    if http_range is None:
        return
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range not in (response.headers["etag"], response.headers["last-modified"]):
        return
    try:
        FileResponse._parse_range_header(http_range, size)  # the parser the response itself uses
    except MalformedRangeHeader as exc:
        raise ValidationFailed(
            f"The Range header is malformed ({exc.content.rstrip('.')}); send e.g. 'Range: bytes=0-1023'.",
            {"errors": [{"field": "Range", "message": exc.content}]},
        ) from None
    except StarletteRangeNotSatisfiable:
        raise RangeNotSatisfiable(
            f"The Range starts past the end of the file, which is {size} bytes long.", {"size": size}
        ) from None
