"""The asynchronous client: `AsyncClient`, the same API as `Client` with awaitables and an async iterator."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx

from image2model.core.models import (
    Event,
    ExportResponse,
    FileEntry,
    FileListing,
    JobPage,
    JobProgress,
    JobSnapshot,
    JobStatus,
    JobSummary,
    ModelsAvailable,
    UploadResponse,
    WebhookLog,
)

from ._base import (
    CHUNK_SIZE,
    DEFAULT_EXPORT_TIMEOUT,
    DEFAULT_STREAM_READ_TIMEOUT,
    DEFAULT_TIMEOUT,
    RETRIABLE_STATUS,
    AtomicFile,
    BearerAuth,
    ExportPoll,
    ImageInput,
    JobResult,
    ReconnectPolicy,
    StreamState,
    download_target,
    error_for,
    export_body,
    export_result,
    export_timeout,
    form_fields,
    jobs_params,
    json_body,
    path,
    resolve_config,
    retry_after,
    select_formats,
    submit_headers,
    submit_timeout,
    unavailable,
    upload_files,
    webhook_fields,
)
from ._sse import SSEDecoder
from ._watch import AsyncJobViews

EventCallback = Callable[[Event], object | Awaitable[object]]
"""Called with each event; may be a coroutine function."""


class AsyncClient(AsyncJobViews):
    """An asyncio client of the image2model HTTP API.

    `server_url` and `api_key` default to IMAGE2MODEL_SERVER_URL and IMAGE2MODEL_API_KEY. Use it as a context
    manager (or call `close()`). API errors raise the typed exceptions of `image2model.core.errors`; a server
    that cannot be reached raises `ServerUnavailable`.
    """

    def __init__(
        self,
        server_url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        reconnect: ReconnectPolicy | None = None,
        stream_read_timeout: float = DEFAULT_STREAM_READ_TIMEOUT,
    ) -> None:
        self.server_url, api_key = resolve_config(server_url, api_key)
        self.timeout = timeout
        self.reconnect = reconnect or ReconnectPolicy()
        self.stream_read_timeout = stream_read_timeout
        self._http = httpx.AsyncClient(
            base_url=self.server_url,
            auth=BearerAuth(api_key, self.server_url),
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "image2model-client/0.1"},
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.server_url!r})"

    # -- plumbing --

    async def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise unavailable(self.server_url, exc) from exc
        return json_body(response)

    # -- jobs --

    async def submit(
        self,
        images: ImageInput | Iterable[ImageInput],
        *,
        face_limit: int | None = None,
        generator: str | None = None,
        formats: str | Sequence[str] | None = None,
        webhook_url: str | None = None,
        webhook_events: str | Sequence[str] | None = None,
        idempotency_key: str | None = None,
        wait: int | None = None,
        **options: Any,
    ) -> UploadResponse:
        """Upload one or more images (paths, bytes, binary file objects or PIL images) as one job.

        `idempotency_key` (1..255 visible ASCII characters) makes a retry safe: sent again with the same images and
        options within 24 h, it returns the first job instead of a new one (another request with the same key
        raises `IdempotencyMismatch`; one while the first is still running `IdempotencyInProgress`). `wait` (1..60)
        asks the server to answer once the job ended or after that many seconds: the answer's `status` says
        which, and a job that ended comes with its `files`.
        `webhook_url` gets the job's events (`webhook_events`, default the terminal ones) as signed POSTs."""
        data = {
            **form_fields(face_limit, generator, formats, options),
            **webhook_fields(webhook_url, webhook_events),
        }
        headers = submit_headers(idempotency_key, wait)
        timeout = submit_timeout(self.timeout, wait)
        with upload_files(images) as files:
            body = await self._request(
                "POST", path("/upload/"), data=data, files=files, headers=headers, timeout=timeout
            )
        return UploadResponse.model_validate(body)

    async def status(self, job_id: str) -> JobSnapshot:
        """The job's current snapshot."""
        return JobSnapshot.model_validate(await self._request("GET", path("/status/tasks", job_id)))

    async def progress(self, job_id: str) -> JobProgress:
        """Per-file progress of the job."""
        return JobProgress.model_validate(
            await self._request("GET", path("/status/jobs", job_id, "progress"))
        )

    async def cancel(self, job_id: str) -> JobSnapshot:
        """Stop the job's queued and running items; returns the snapshot after cancelling."""
        return JobSnapshot.model_validate(await self._request("POST", path("/jobs", job_id, "cancel")))

    async def jobs(
        self, limit: int = 20, status: JobStatus | str | None = None, cursor: str | None = None
    ) -> JobPage:
        """One page of this key's jobs, newest first (`status` filters; `cursor` is a page's `next_cursor`)."""
        body = await self._request("GET", path("/jobs"), params=jobs_params(limit, status, cursor))
        return JobPage.model_validate(body)

    async def iter_jobs(
        self, status: JobStatus | str | None = None, page_size: int = 100
    ) -> AsyncIterator[JobSummary]:
        """Every job of this key, newest first, fetched a page at a time."""
        cursor: str | None = None
        while True:
            page = await self.jobs(page_size, status, cursor)
            for job in page.jobs:
                yield job
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def delete(self, job_id: str) -> None:
        """Delete a job: its running items are cancelled, then the job, its events and its files are removed."""
        try:
            response = await self._http.request("DELETE", path("/jobs", job_id))
        except httpx.TransportError as exc:
            raise unavailable(self.server_url, exc) from exc
        if response.is_error:
            raise error_for(response)

    async def models(self) -> ModelsAvailable:
        """The generators this server offers, with their options and limits."""
        return ModelsAvailable.model_validate(await self._request("GET", path("/models/available")))

    async def health(self) -> dict[str, Any]:
        """The server's liveness answer."""
        body = await self._request("GET", path("/health"))
        return body if isinstance(body, dict) else {"status": body}

    async def webhooks(self, job_id: str) -> WebhookLog:
        """The delivery log of the job's webhook: each event's attempts, last status, when delivered."""
        return WebhookLog.model_validate(await self._request("GET", path("/jobs", job_id, "webhooks")))

    # -- events --

    async def events(
        self,
        job_id: str,
        last_event_id: int | None = None,
        *,
        timeout: float | None = None,
        queue_positions: bool = False,
    ) -> AsyncIterator[Event]:
        """The job's events as they happen, ending after the terminal one.

        Starts after `last_event_id` when given (else from the beginning). A dropped connection is resumed
        with `Last-Event-ID` under `self.reconnect`'s bounds; no event is yielded twice. `timeout` bounds the
        whole iteration (`TimeoutError`). With `queue_positions`, the server's `queue_position` notices come
        too while the job waits (`EventType.QUEUE_POSITION`, carrying the last event's `seq`).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        state = StreamState(self.server_url, job_id, last_event_id, self.reconnect, deadline, queue_positions)
        url = path("/status/tasks", job_id, "stream")
        while True:
            state.check_deadline()
            delay: float
            try:
                async with self._http.stream(
                    "GET",
                    url,
                    headers=state.headers(),
                    timeout=state.timeout(self.timeout, self.stream_read_timeout),
                ) as response:
                    if response.is_error:
                        await response.aread()
                        error = error_for(response)
                        if response.status_code not in RETRIABLE_STATUS:
                            raise error
                        delay = state.failed(error, retry_after(response))
                    else:
                        decoder = SSEDecoder()
                        async for chunk in response.aiter_bytes():
                            for sse in decoder.feed(chunk):
                                event = state.accept(sse)
                                if event is None:
                                    continue
                                yield event
                                if event.terminal:
                                    return
                            state.check_deadline()
                        decoder.close()
                        delay = state.failed("the stream ended before the job finished")
            except httpx.TransportError as exc:
                delay = state.failed(exc)
            await asyncio.sleep(delay)

    async def wait(
        self, job_id: str, on_event: EventCallback | None = None, timeout: float | None = None
    ) -> JobSnapshot:
        """Follow the job's events to its end (calling `on_event` for each); return the final snapshot."""
        async for event in self.events(job_id, timeout=timeout):
            if on_event is not None:
                outcome = on_event(event)
                if inspect.isawaitable(outcome):
                    await outcome
        return await self.status(job_id)

    # -- files --

    async def files(self, job_id: str) -> FileListing:
        """The job's output files."""
        return FileListing.model_validate(await self._request("GET", path("/download", job_id, "all")))

    async def download(
        self,
        job_id_or_entry: str | FileEntry,
        filename: str | None = None,
        dest_dir: str | os.PathLike[str] | None = None,
    ) -> Path:
        """Stream one output file into `dest_dir` (default: the current directory) and return its path.

        The file appears only once complete (written to a temp file, then renamed)."""
        url, target = download_target(job_id_or_entry, filename, dest_dir)
        try:
            async with self._http.stream("GET", url, follow_redirects=True) as response:
                if response.is_error:
                    await response.aread()
                    raise error_for(response)
                out = AtomicFile(target)
                try:
                    async for chunk in response.aiter_bytes(CHUNK_SIZE):
                        out.write(chunk)
                except BaseException:
                    out.abort()
                    raise
                return out.commit()
        except httpx.TransportError as exc:
            raise unavailable(self.server_url, exc) from exc

    async def download_all(
        self,
        job_id: str,
        dest_dir: str | os.PathLike[str] | None = None,
        formats: Sequence[str] | None = None,
    ) -> list[Path]:
        """Download every output file of the job (only `formats`, e.g. ["glb"], when given)."""
        listing = await self.files(job_id)
        return [
            await self.download(entry, dest_dir=dest_dir) for entry in select_formats(listing.files, formats)
        ]

    # -- exports --

    async def export(
        self,
        job_id: str,
        formats: str | Sequence[str],
        *,
        face_limit: int | None = None,
        height_mm: float | None = None,
        up: str | None = None,
        origin: str | None = None,
        files: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        timeout: float = DEFAULT_EXPORT_TIMEOUT,
    ) -> ExportResponse:
        """Make `formats` (glb, obj, stl, ply, 3mf) from a finished job's stored models, without generating
        again: `face_limit` faces at most (still closed), `height_mm` tall along `up` (files in millimetres,
        GLB in metres), `up="z"` for printers and CAD, `origin="bottom"` on the build plate; only the `files`
        (file_ids of the listing) when given. Waits until the files are written (up to `timeout` seconds in
        all) and returns the export with its listing entries (`.files`, ready for `download_export`).
        `idempotency_key` makes a retry safe: the same request with the same key returns the first export.
        Raises `ExportFailed` when the worker could not make it."""
        body = export_body(formats, face_limit, height_mm, up, origin, files)
        url = path("/jobs", job_id, "exports")
        headers = submit_headers(idempotency_key, None)
        export = export_result(
            await self._request("POST", url, json=body, headers=headers, timeout=export_timeout(self.timeout))
        )
        poll = ExportPoll(export, timeout)
        while not export.status.terminal:
            await asyncio.sleep(poll.next_delay())
            export = await self.export_status(job_id, export.export_id)
        return export

    async def export_status(self, job_id: str, export_id: str) -> ExportResponse:
        """An export as it stands (raises `ExportFailed` for a failed one)."""
        return export_result(await self._request("GET", path("/jobs", job_id, "exports", export_id)))

    async def download_export(
        self, export: ExportResponse, dest_dir: str | os.PathLike[str] | None = None
    ) -> list[Path]:
        """Download an export's files into `dest_dir` (default: the current directory)."""
        return [await self.download(entry, dest_dir=dest_dir) for entry in export.files]

    # -- all in one --

    async def generate(
        self,
        images: ImageInput | Iterable[ImageInput],
        dest_dir: str | os.PathLike[str] | None = None,
        on_event: EventCallback | None = None,
        *,
        face_limit: int | None = None,
        generator: str | None = None,
        formats: str | Sequence[str] | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> JobResult:
        """Submit, follow the job to its end, list its files and, when `dest_dir` is given, download them.

        A failed or cancelled job does not raise: check `result.ok` or call `result.raise_for_status()`."""
        upload = await self.submit(
            images, face_limit=face_limit, generator=generator, formats=formats, **options
        )
        snapshot = await self.wait(upload.job_id, on_event=on_event, timeout=timeout)
        result = JobResult(upload=upload, snapshot=snapshot)
        if result.ok:
            result.files = (await self.files(upload.job_id)).files
            if dest_dir is not None:
                result.paths = [await self.download(entry, dest_dir=dest_dir) for entry in result.files]
        return result
