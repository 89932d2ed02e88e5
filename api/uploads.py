"""Streaming multipart upload parsing: file parts go straight to a staging directory, limits are enforced
while bytes arrive, and nothing stays behind when a request is rejected."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

from image2model.core.errors import (
    FileTooLarge,
    Image2ModelError,
    MalformedRequest,
    TooManyFiles,
    ValidationFailed,
)
from image2model.core.numbers import parse_decimal

FILE_FIELDS = ("files", "file")
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 100
_DRAIN_LIMIT = 512 * 1024 * 1024


@dataclass
class StagedFile:
    filename: str
    path: Path
    size: int = 0
    sha256: str | None = None
    """Digest of the file's bytes, computed while they streamed in when the request needed it (idempotency)."""


@dataclass
class StagedUpload:
    """A parsed upload: files on disk under `staging`, and the form fields."""

    staging: Path
    files: list[StagedFile] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)

    def discard(self) -> None:
        if self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)

    def field(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    def request_parts(self) -> dict[str, Any]:
        """What makes two uploads the same request: each file's name, size and digest in order, and the fields."""
        return {
            "files": [[f.filename, f.size, f.sha256] for f in self.files],
            "fields": sorted(self.fields.items()),
        }


def check_filename(name: str) -> str | None:
    """Why a client-supplied filename is unacceptable, or None when it is fine."""
    if not name.strip():
        return "a file was sent without a filename"
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith(".."):
        return f"filename {name!r} looks like a path; send the bare file name"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"filename {name!r} contains control characters"
    if len(name.encode()) > 255:
        return "filename is longer than 255 bytes"
    return None


class _Collector:
    """Parser callbacks writing parts as they stream."""

    def __init__(
        self, upload: StagedUpload, max_files: int, max_file_size: int, digest: bool = False
    ) -> None:
        self.upload = upload
        self.digest = digest
        self._hash: Any = None
        self.max_files = max_files
        self.max_file_size = max_file_size
        self._headers: dict[bytes, bytes] = {}
        self._field_name = b""
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._file: BinaryIO | None = None
        self._current: StagedFile | None = None
        self._value: bytearray | None = None
        self._name = ""
        self.errors: list[dict[str, str]] = []

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self._headers = {}

    def header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in params or b"filename*" in params:
            filename = params.get(b"filename", params.get(b"filename*", b"")).decode("utf-8", "replace")
            if self._name not in FILE_FIELDS:
                raise ValidationFailed(
                    f"Unexpected file field {self._name!r}; send images in the 'files' field.",
                    {"errors": [{"field": self._name, "message": "unexpected file field"}]},
                )
            if len(self.upload.files) >= self.max_files:
                raise TooManyFiles(
                    f"Too many files: at most {self.max_files} images per upload.",
                    {"max_files": self.max_files},
                )
            problem = check_filename(filename)
            if problem:
                self.errors.append(
                    {"field": filename or f"file {len(self.upload.files) + 1}", "message": problem}
                )
            staged = StagedFile(filename=filename, path=self.upload.staging / str(len(self.upload.files)))
            self.upload.files.append(staged)
            self._current = staged
            self._hash = hashlib.sha256() if self.digest else None
            self._file = open(staged.path, "wb")  # noqa: SIM115 - closed in part_end / close()
        else:
            if sum(len(v) for v in self.upload.fields.values()) >= MAX_FIELDS:
                raise MalformedRequest(f"Too many form fields (at most {MAX_FIELDS}).")
            self._value = bytearray()

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None and self._current is not None:
            self._current.size += end - start
            if self._current.size > self.max_file_size:
                raise FileTooLarge(
                    f"{self._current.filename} is larger than {self.max_file_size / 1048576:g} MiB; "
                    "send a smaller image.",
                    {"filename": self._current.filename, "max_file_size": self.max_file_size},
                )
            self._file.write(data[start:end])
            if self._hash is not None:
                self._hash.update(data[start:end])
        elif self._value is not None:
            self._value.extend(data[start:end])
            if len(self._value) > MAX_FIELD_BYTES:
                raise MalformedRequest(f"Form field {self._name!r} is too long.")

    def part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            if self._current is not None and self._hash is not None:
                self._current.sha256 = self._hash.hexdigest()
            self._current = None
        elif self._value is not None:
            self.upload.fields.setdefault(self._name, []).append(self._value.decode("utf-8", "replace"))
            self._value = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def receive_upload(
    content_type: str | None,
    content_length: str | None,
    body: AsyncIterator[bytes],
    staging_root: Path,
    max_files: int,
    max_file_size: int,
    digest: bool = False,
) -> StagedUpload:
    """Parse a multipart body into a staging directory (with each file's SHA-256 when `digest`). On any error the
    directory is removed and the error raised; the body is drained first (up to a bound) so the client reads our
    answer, not a reset."""
    ctype, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise MalformedRequest(
            "Send the images as multipart/form-data with one 'files' part per image.",
            {
                "errors": [
                    {"field": "content-type", "message": "expected multipart/form-data with a boundary"}
                ]
            },
        )
    declared = parse_decimal(content_length)
    if (
        declared is not None
        and declared > max_files * (max_file_size + 16 * 1024) + MAX_FIELDS * MAX_FIELD_BYTES
    ):
        raise FileTooLarge(
            f"The upload is {declared / 1048576:.1f} MiB; at most {max_files} images of "
            f"{max_file_size / 1048576:g} MiB each are accepted.",
            {"max_files": max_files, "max_file_size": max_file_size},
        )
    upload = StagedUpload(staging=staging_root / uuid.uuid4().hex)
    upload.staging.mkdir(parents=True)
    collector = _Collector(upload, max_files, max_file_size, digest)
    parser = MultipartParser(boundary, collector.callbacks())
    iterator = aiter(body)
    try:
        async for chunk in iterator:
            parser.write(chunk)
        parser.finalize()
    except Image2ModelError:
        collector.close()
        upload.discard()
        await _drain(iterator)
        raise
    except Exception as exc:
        collector.close()
        upload.discard()
        await _drain(iterator)
        raise MalformedRequest(f"The multipart body could not be parsed: {exc}") from None
    collector.close()
    if collector.errors:
        upload.discard()
        raise ValidationFailed(
            "; ".join(e["message"] for e in collector.errors), {"errors": collector.errors}
        )
    return upload


async def _drain(iterator: AsyncIterator[bytes]) -> None:
    drained = 0
    try:
        async for chunk in iterator:
            drained += len(chunk)
            if drained > _DRAIN_LIMIT:
                return
    except Exception:
        return
