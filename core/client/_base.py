"""What the sync and async clients share: configuration, request building, error mapping, the reconnect policy
of the event stream, and atomic downloads. Nothing here does network I/O."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import time
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

from image2model.core.errors import (
    ExportFailed,
    Image2ModelError,
    ServerError,
    ServerUnavailable,
    error_from_body,
)
from image2model.core.models import (
    Event,
    EventType,
    ExportResponse,
    ExportStatus,
    FileEntry,
    JobSnapshot,
    JobStatus,
    UploadResponse,
)
from image2model.core.numbers import parse_decimal
from image2model.core.settings import Settings

from ._sse import ServerSentEvent

log = logging.getLogger("image2model.client")

API = "/api/v1"
DEFAULT_TIMEOUT = 30.0
# The server sends a keep-alive comment every 15 s; three missed ones mean the stream is dead.
DEFAULT_STREAM_READ_TIMEOUT = 45.0
RETRIABLE_STATUS = frozenset({429, 502, 503, 504})
CHUNK_SIZE = 64 * 1024

ImageInput = Any
"""A path (str or os.PathLike), bytes, a binary file object, or a PIL image."""


@dataclass(frozen=True)
class ReconnectPolicy:
    """How `events()` resumes a broken stream.

    After a drop it waits (the server's `retry:` when it sent one, else `initial_delay`), doubling per
    consecutive failure up to `max_delay`, and gives up with `ServerUnavailable` after `max_attempts`
    consecutive failed reconnects or `max_elapsed` seconds without receiving an event. Receiving an event
    resets both counters.
    """

    max_attempts: int = 8
    max_elapsed: float = 120.0
    initial_delay: float = 0.25
    max_delay: float = 5.0


@dataclass
class JobResult:
    """What `generate()` returns: the upload, the final snapshot, the output files and where they went."""

    upload: UploadResponse
    snapshot: JobSnapshot
    files: list[FileEntry] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)

    @property
    def job_id(self) -> str:
        return self.snapshot.job_id

    @property
    def status(self) -> JobStatus:
        return self.snapshot.status

    @property
    def ok(self) -> bool:
        """True when the job completed (at least one file succeeded)."""
        return self.snapshot.status == JobStatus.COMPLETED

    def raise_for_status(self) -> JobResult:
        """Raise `GenerationError` with the job's error unless it completed; return self otherwise."""
        if not self.ok:
            from image2model.core.errors import GenerationError

            raise GenerationError(
                self.snapshot.error
                or self.snapshot.message
                or f"job {self.job_id} {self.snapshot.status.value}",
                {"job_id": self.job_id, "status": self.snapshot.status.value},
            )
        return self


# --- configuration ---------------------------------------------------------------------------------------


def resolve_config(server_url: str | None, api_key: str | None) -> tuple[str, str]:
    """Explicit arguments win; otherwise IMAGE2MODEL_SERVER_URL / IMAGE2MODEL_API_KEY (via Settings)."""
    if server_url is None or api_key is None:
        settings = Settings()
        server_url = settings.server_url if server_url is None else server_url
        api_key = settings.api_key if api_key is None else api_key
    return server_url.rstrip("/"), api_key


class BearerAuth(httpx.Auth):
    """Adds `Authorization: Bearer <key>` to requests for the configured server only, so a key never leaks to
    another host an absolute URL (a listing's link, a redirect) points at."""

    def __init__(self, api_key: str, base_url: str) -> None:
        self._key = api_key
        self._origin = _origin(httpx.URL(base_url))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._key and _origin(request.url) == self._origin:
            request.headers["Authorization"] = f"Bearer {self._key}"
        yield request


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host, url.port or default)


def user_agent() -> str:
    return "image2model-client/0.1"


# --- requests --------------------------------------------------------------------------------------------


def path(*parts: str) -> str:
    """An API path with each dynamic part percent-encoded (job ids and file names come from users)."""
    return API + "".join("/" + quote(p, safe="") if i else p for i, p in enumerate(parts))


def form_fields(
    face_limit: int | None,
    generator: str | None,
    formats: str | Sequence[str] | None,
    options: dict[str, Any],
) -> dict[str, str]:
    """The upload's non-file form fields; each extra option becomes its own field."""
    fields: dict[str, str] = {}
    if face_limit is not None:
        fields["face_limit"] = str(int(face_limit))
    if generator:
        fields["generator"] = generator
    if formats:
        fields["formats"] = formats if isinstance(formats, str) else ",".join(formats)
    for name, value in options.items():
        if value is None:
            continue
        if name in fields or name == "files":
            raise TypeError(f"option {name!r} clashes with a reserved upload field")
        fields[name] = _option_value(value)
    return fields


def _option_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return str(value)


def webhook_fields(url: str | None, events: str | Sequence[str] | None) -> dict[str, str]:
    """The upload's `webhook_url` / `webhook_events` fields (events: a list or a comma-separated string)."""
    fields: dict[str, str] = {}
    if url:
        fields["webhook_url"] = url
    if events:
        fields["webhook_events"] = events if isinstance(events, str) else ",".join(events)
    return fields


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", ".png", "image/png"),
    (b"\xff\xd8\xff", ".jpg", "image/jpeg"),
)
_BY_SUFFIX = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def _sniff(head: bytes) -> tuple[str, str]:
    """(suffix, mime) guessed from the first bytes; the server decides for real, this only names the part."""
    for magic, suffix, mime in _MAGIC:
        if head.startswith(magic):
            return suffix, mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp", "image/webp"
    return "", "application/octet-stream"


def _is_pil_image(obj: object) -> bool:
    # Checked by module name so PIL is never imported unless the caller already did.
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "save") and hasattr(obj, "size")


@contextlib.contextmanager
def upload_files(images: ImageInput | Iterable[ImageInput]) -> Generator[list[tuple[str, Any]], None, None]:
    """Multipart `files` parts for httpx (streamed from disk for paths), closing what it opened afterwards."""
    if (
        isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview))
        or hasattr(images, "read")
        or _is_pil_image(images)
    ):
        images = [images]
    items = list(images)
    if not items:
        raise ValueError("submit() needs at least one image")
    with contextlib.ExitStack() as stack:
        parts: list[tuple[str, Any]] = []
        for index, image in enumerate(items, start=1):
            parts.append(("files", _part(image, index, stack)))
        yield parts


def _part(image: ImageInput, index: int, stack: contextlib.ExitStack) -> tuple[str, IO[bytes] | bytes, str]:
    if isinstance(image, (str, os.PathLike)):
        p = Path(image)
        if not p.is_file():
            raise FileNotFoundError(f"no such image file: {p}")
        handle = stack.enter_context(p.open("rb"))
        mime = _BY_SUFFIX.get(p.suffix.lower()) or _sniff(handle.read(16))[1]
        handle.seek(0)
        return p.name, handle, mime
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        suffix, mime = _sniff(data[:16])
        return f"image{index}{suffix}", data, mime
    if _is_pil_image(image):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        stem = Path(str(getattr(image, "filename", "") or f"image{index}")).stem
        return f"{stem}.png", buf.getvalue(), "image/png"
    if hasattr(image, "read"):
        name = Path(str(getattr(image, "name", "") or "")).name
        head = b""
        if getattr(image, "seekable", lambda: False)():
            start = image.tell()
            head = image.read(16)
            image.seek(start)
        suffix, mime = _sniff(head)
        if name:
            mime = _BY_SUFFIX.get(Path(name).suffix.lower(), mime)
        return name or f"image{index}{suffix}", image, mime
    raise TypeError(
        f"unsupported image input {type(image).__name__}: pass a path, bytes, a file object or a PIL image"
    )


# --- responses -------------------------------------------------------------------------------------------


def error_for(response: httpx.Response) -> Image2ModelError:
    """The typed exception for a non-2xx response whose body has been read."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return error_from_body(response.status_code, body)


def json_body(response: httpx.Response) -> Any:
    """The JSON of a 2xx response (raise the typed error for anything else)."""
    if response.is_error:
        raise error_for(response)
    try:
        return response.json()
    except ValueError as exc:
        raise ServerError(f"HTTP {response.status_code}: the server did not answer JSON") from exc


def unavailable(base_url: str, exc: Exception) -> ServerUnavailable:
    """A clear message for a transport failure; connection refusals tell the user how to start a server."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return ServerUnavailable(
            f"Cannot reach the image2model server at {base_url} ({exc.__class__.__name__}: {exc}). "
            "Start one with `image2model serve`, or point IMAGE2MODEL_SERVER_URL / --server at one.",
            {"server_url": base_url},
        )
    return ServerUnavailable(
        f"The connection to the image2model server at {base_url} failed ({exc.__class__.__name__}: {exc}).",
        {"server_url": base_url},
    )


def safe_filename(name: str) -> str:
    """The last path component of a server-given file name; refuses names that would escape dest_dir."""
    base = Path(name.replace("\\", "/")).name
    if base in ("", ".", "..") or "\0" in base:
        raise ValueError(f"refusing unsafe file name {name!r}")
    return base


def retry_after(response: httpx.Response) -> float | None:
    seconds = parse_decimal(response.headers.get("Retry-After"), maximum=24 * 3600)
    return float(seconds) if seconds is not None else None


# --- the event stream ------------------------------------------------------------------------------------


def to_event(sse: ServerSentEvent) -> Event | None:
    """The typed `Event`, or None for what a client cannot use (unknown event names, non-JSON data)."""
    try:
        etype = EventType(sse.event)
    except ValueError:
        log.debug("skipping unknown event type %r", sse.event)
        return None
    try:
        data = json.loads(sse.data)
    except ValueError:
        log.warning("event %s id=%s carries non-JSON data; skipped", sse.event, sse.id)
        return None
    if not isinstance(data, dict):
        return None
    seq = parse_decimal(sse.id)
    if seq is None:
        seq = data.get("seq") if isinstance(data.get("seq"), int) else None
    try:
        return Event(seq=seq, type=etype, data=data)
    except (TypeError, ValueError):
        log.warning("event %s without a usable id; skipped", sse.event)
        return None


class StreamState:
    """Bookkeeping of one `events()` call across reconnects: last seq delivered, backoff, bounds."""

    def __init__(
        self,
        base_url: str,
        job_id: str,
        last_event_id: int | None,
        policy: ReconnectPolicy,
        deadline: float | None,
        queue_positions: bool = False,
    ) -> None:
        self.queue_positions = queue_positions
        self.base_url = base_url
        self.job_id = job_id
        self.last_seq = last_event_id
        self.policy = policy
        self.deadline = deadline
        self.server_retry: float | None = None
        self.failures = 0
        self.down_since: float | None = None
        self.wait_hint: float | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_seq is not None:
            headers["Last-Event-ID"] = str(self.last_seq)
        return headers

    def timeout(self, connect: float, read: float) -> httpx.Timeout:
        remaining = self.remaining()
        if remaining is not None:
            connect, read = min(connect, remaining), min(read, remaining)
        return httpx.Timeout(connect, read=max(read, 0.001), connect=max(connect, 0.001))

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check_deadline(self) -> None:
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise TimeoutError(f"job {self.job_id} did not finish in time")

    def accept(self, sse: ServerSentEvent) -> Event | None:
        """The event to yield, or None (duplicate from a replay overlap, or unusable)."""
        if sse.retry is not None:
            self.server_retry = sse.retry / 1000
        event = to_event(sse)
        if event is None:
            seq = parse_decimal(sse.id)
            if seq is not None and (self.last_seq is None or seq > self.last_seq):
                self.last_seq = seq
            return None
        if event.type is EventType.QUEUE_POSITION:  # a notice, not a stored event: it moves no cursor
            return event if self.queue_positions else None
        if self.last_seq is not None and event.seq <= self.last_seq:
            return None  # already delivered: never yield a seq twice
        self.last_seq = event.seq
        self.failures = 0
        self.down_since = None
        return event

    def failed(self, reason: Exception | str, wait_hint: float | None = None) -> float:
        """Record a failed or ended connection; return how long to wait before reconnecting, or raise."""
        self.check_deadline()
        now = time.monotonic()
        self.failures += 1
        if self.down_since is None:
            self.down_since = now
        if self.failures > self.policy.max_attempts or now - self.down_since > self.policy.max_elapsed:
            if isinstance(reason, Image2ModelError):
                raise reason
            detail = f"{reason.__class__.__name__}: {reason}" if isinstance(reason, Exception) else reason
            raise ServerUnavailable(
                f"Lost the event stream of job {self.job_id} from {self.base_url} and could not resume it "
                f"after {self.failures - 1} attempts ({detail}). "
                "Is the server still running (`image2model serve`)?",
                {"server_url": self.base_url, "job_id": self.job_id, "last_event_id": self.last_seq},
            )
        base = self.server_retry if self.server_retry is not None else self.policy.initial_delay
        delay = min(base * 2 ** (self.failures - 1), max(self.policy.max_delay, base))
        if wait_hint is not None:
            delay = max(delay, wait_hint)
        remaining = self.remaining()
        if remaining is not None:
            delay = min(delay, max(remaining, 0.0))
        log.info("event stream of job %s interrupted (%s); reconnecting in %.2fs", self.job_id, reason, delay)
        return delay


# --- downloads -------------------------------------------------------------------------------------------


class AtomicFile:
    """A temp file next to the target, renamed over it only once complete; removed on any failure. It is created
    with the user's normal permissions (0666 less the umask, like any file they save), not mkstemp's 0600."""

    def __init__(self, target: Path) -> None:
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        while True:
            tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.part"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                break
            except FileExistsError:
                continue
        self.tmp = tmp
        self.handle = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.handle.write(chunk)

    def commit(self) -> Path:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.tmp, self.target)
        return self.target

    def abort(self) -> None:
        self.handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


def download_target(
    job_id_or_entry: str | FileEntry, filename: str | None, dest_dir: str | os.PathLike[str] | None
) -> tuple[str, Path]:
    """(URL to fetch, file to write) for `download()`."""
    if isinstance(job_id_or_entry, FileEntry):
        url = job_id_or_entry.download_url
        name = filename or job_id_or_entry.filename
    else:
        if not filename:
            raise TypeError("download(job_id, filename) needs the file name (or pass a FileEntry)")
        url = path("/download", job_id_or_entry, filename)
        name = filename
    return url, Path(dest_dir if dest_dir is not None else ".") / safe_filename(name)


def select_formats(entries: list[FileEntry], formats: str | Sequence[str] | None) -> list[FileEntry]:
    """The entries whose format is one of `formats` (all of them when `formats` is empty)."""
    if not formats:
        return list(entries)
    wanted = {
        f.strip().lower().lstrip(".") for f in (formats.split(",") if isinstance(formats, str) else formats)
    }
    return [e for e in entries if e.format.lower() in wanted]


# --- exports ---------------------------------------------------------------------------------------------

EXPORT_SERVER_WAIT = 60.0
"""The server answers an export request within this long (201 when done, else 202)."""
DEFAULT_EXPORT_TIMEOUT = 300.0
EXPORT_POLL_FIRST, EXPORT_POLL_MAX = 0.1, 2.0


def export_body(
    formats: str | Sequence[str],
    face_limit: int | None,
    height_mm: float | None,
    up: str | None,
    origin: str | None,
    files: Sequence[str] | None,
) -> dict[str, Any]:
    """The JSON of `POST /jobs/{job_id}/exports` (unset options left out: the server's defaults apply)."""
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    body: dict[str, Any] = {"formats": [f.strip() for f in names if f.strip()]}
    for name, value in (("face_limit", face_limit), ("height_mm", height_mm), ("up", up), ("origin", origin)):
        if value is not None:
            body[name] = value
    if files is not None:
        body["files"] = list(files)
    return body


def export_timeout(timeout: float) -> httpx.Timeout:
    """Room for the server's wait on top of the client's usual timeout."""
    return httpx.Timeout(timeout, read=timeout + EXPORT_SERVER_WAIT)


def export_result(body: Any) -> ExportResponse:
    """The export, raising `ExportFailed` when the worker could not make it."""
    export = ExportResponse.model_validate(body)
    if export.status == ExportStatus.FAILED:
        raise ExportFailed(export.error or "The export failed.", {"export_id": export.export_id})
    return export


class ExportPoll:
    """Growing waits between checks of an unfinished export, bounded by `timeout` seconds in all."""

    def __init__(self, export: ExportResponse, timeout: float) -> None:
        self.export = export
        self.deadline = time.monotonic() + timeout
        self.delay = EXPORT_POLL_FIRST

    def next_delay(self) -> float:
        """Seconds to wait before the next check; TimeoutError once the time is up."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(
                f"export {self.export.export_id} did not finish in time ({self.export.status.value})"
            )
        delay, self.delay = min(self.delay, left), min(self.delay * 2, EXPORT_POLL_MAX)
        return delay


# --- job API v1.1: idempotent and waiting submits, history -------------------------------------------------

MAX_WAIT_SECONDS = 60


def submit_headers(idempotency_key: str | None, wait: int | None) -> dict[str, str]:
    """A request's `Idempotency-Key` and `Prefer: wait=N` headers; ValueError for values the server would refuse."""
    headers: dict[str, str] = {}
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= 255 or not all("!" <= c <= "~" for c in idempotency_key):
            raise ValueError("idempotency_key must be 1 to 255 visible ASCII characters (no spaces)")
        headers["Idempotency-Key"] = idempotency_key
    if wait is not None:
        if isinstance(wait, bool) or not isinstance(wait, int) or not 1 <= wait <= MAX_WAIT_SECONDS:
            raise ValueError(f"wait must be a whole number of seconds from 1 to {MAX_WAIT_SECONDS}")
        headers["Prefer"] = f"wait={wait}"
    return headers


def submit_timeout(timeout: float, wait: int | None) -> float:
    """A request that asks the server to wait `wait` seconds must itself wait that long, and then some."""
    return timeout if wait is None else max(timeout, wait + timeout)


def jobs_params(limit: int, status: str | None, cursor: str | None) -> dict[str, str | int]:
    """The query of `GET /jobs`."""
    params: dict[str, str | int] = {"limit": limit}
    if status:
        params["status"] = str(status)
    if cursor:
        params["cursor"] = cursor
    return params
