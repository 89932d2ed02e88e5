"""The FAL remote generator: `start` submits one request to FAL's queue, `watch` follows its status stream,
`poll` checks it once per call (or takes the status the stream pushed) and downloads the result when it is done,
`cancel` stops it. State lives in the dict the service persists."""

from __future__ import annotations

import base64
import contextlib
import math
import mimetypes
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from image2model.core.errors import GenerationError
from image2model.core.generators.base import (
    Fetched,
    GenerationRequest,
    GenerationResult,
    GeneratorSpec,
    OutputFile,
    Pending,
    ProgressCallback,
    RemoteBusy,
    RemoteGenerator,
)
from image2model.core.generators.fal import connection, status_stream
from image2model.core.generators.fal.models import FORMATS, MODELS, FalModel
from image2model.core.settings import Settings, get_settings

if TYPE_CHECKING:
    import fal_client
    import httpx

EXPECTED_SECONDS = 60.0
"""Typical FAL generation time; shapes the progress fraction while FAL reports no percentage."""

POLL_STRETCH = 0.3
"""While FAL generates, the wait between two status checks grows by this many seconds per second generated (from
`fal_poll_interval`, up to `fal_poll_interval_max`): a long run is checked less often."""

_SNIFF = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"RIFF", "image/webp"),
    (b"GIF8", "image/gif"),
)


class FalGenerator(RemoteGenerator):
    """One FAL model behind one generator name; subclasses (one per model) set `spec` and `model`."""

    model: ClassVar[FalModel]
    in_flight_group: ClassVar[str] = "fal"

    # Knobs as attributes so tests can make them small on one instance.
    submit_attempts = 4
    """Tries of an upload or a submission before the item fails (they happen inside `start`)."""
    retry_base_delay = 1.0
    retry_max_delay = 30.0
    poll_error_limit = 8
    """Consecutive failed polls (429/5xx/transport/unreadable) before the item fails."""
    data_uri_limit = 1_000_000
    """Images whose data URI is at most this many bytes are sent inline; bigger ones go through FAL's upload."""
    max_mesh_bytes = 256 * 1024 * 1024
    max_preview_bytes = 20 * 1024 * 1024
    download_timeout = 60.0

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._lock = threading.Lock()
        self._fal: fal_client.SyncClient | None = None
        self._http: httpx.Client | None = None
        self._quick: connection.QuickHTTP | None = None
        self._streams: status_stream.StatusStreams | None = None

    def warm_up(self) -> None:
        """At worker start, import what fetching a result needs (fal-client, numpy, Pillow, trimesh's glTF
        reader for the print report of a result complete as fetched): the first result would otherwise wait
        for those imports (about a second)."""
        import trimesh.exchange.gltf  # noqa: F401

        from image2model.core.generators.fal import outputs  # noqa: F401
        from image2model.core.mesh import printability  # noqa: F401

        _ = self.fal

    # -- plumbing -----------------------------------------------------------------------------------------------

    @property
    def fal(self) -> fal_client.SyncClient:
        with self._lock:
            if self._fal is None:
                self._fal = connection.make_client(self.settings.fal_key, self.settings.fal_base_url)
            return self._fal

    @property
    def http(self) -> httpx.Client:
        """Plain HTTP client for downloading result files (no FAL key sent to file hosts)."""
        import httpx

        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self.download_timeout, follow_redirects=True)
            return self._http

    def max_in_flight(self) -> int:
        return self.settings.fal_max_in_flight

    def _quick_http(self) -> connection.QuickHTTP | None:
        fal = self.fal
        with self._lock:
            if self._quick is None and connection.QuickHTTP.usable():
                self._quick = connection.QuickHTTP(fal)
            return self._quick

    def _status(self, handle: fal_client.SyncRequestHandle) -> fal_client.Status:
        """One status check with logs, by the quick path when it can be used. A failure to connect there (or a
        redirect) is retried at once through fal-client itself, which then tries FAL's backup domain; other
        failures count as failed polls, as fal-client's own would."""
        import httpx

        quick = self._quick_http()
        if quick is not None:
            try:
                status = quick.status(handle)
            except httpx.ConnectError:
                status = None
            if status is not None:
                return status
        return handle.status(with_logs=True)

    def _result(self, handle: fal_client.SyncRequestHandle) -> Any:
        """The result of a completed request, by the quick path when it can be used (else as `_status`)."""
        import httpx

        quick = self._quick_http()
        if quick is not None:
            try:
                result = quick.result(handle)
            except httpx.ConnectError:
                result = None
            if result is not None:
                return result
        return connection.fetch_result(handle)

    def _download(self, url: str, limit: int, what: str) -> bytes:
        """A result file, by the quick path when it can be used, else (a redirect, no connection) with httpx.
        Raises GenerationError for permanent failures and TransientDownloadError for retryable ones."""
        import httpx

        from image2model.core.generators.fal import outputs

        quick = self._quick_http()
        if quick is not None:
            try:
                answer = quick.download(url, limit, self.download_timeout)
            except connection.ResponseTooLarge as exc:
                raise outputs.too_large(what, limit, exc.declared) from exc
            except httpx.ConnectError:
                answer = None
            except httpx.TransportError as exc:
                raise outputs.TransientDownloadError(
                    f"could not download FAL's {what} ({type(exc).__name__})"
                ) from exc
            if answer is not None:
                status, body = answer
                outputs.refuse(status, what)
                return body
        return outputs.download(self.http, url, limit, what)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.retry_base_delay * 2 ** (attempt - 1), self.retry_max_delay) * random.uniform(
            0.8, 1.2
        )
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_max_delay))
        return delay

    def _with_retries(self, doing: str, call: Any) -> Any:
        """Run `call()` with backoff on transient FAL failures; GenerationError otherwise. A 429 is not retried
        here: it raises `RemoteBusy` with FAL's Retry-After, and the service waits before trying again (fewer
        requests in flight), without holding a thread."""
        for attempt in range(1, self.submit_attempts + 1):
            try:
                return call()
            except Exception as exc:
                failure = connection.classify(exc, doing)
                if failure is None:
                    raise
                if failure.status_code == 429:
                    raise RemoteBusy(failure.message, failure.retry_after) from exc
                if not failure.transient or attempt == self.submit_attempts:
                    tail = (
                        "" if not failure.transient else f"; gave up after {attempt} tries. Try again later."
                    )
                    raise GenerationError(
                        failure.message + tail,
                        {"fal_status": failure.status_code, "fal_detail": _jsonable(failure.detail)},
                    ) from exc
                time.sleep(self._backoff(attempt, failure.retry_after))
        raise AssertionError("unreachable")

    # -- start --------------------------------------------------------------------------------------------------

    def _image_ref(self, path: Path) -> tuple[str, str]:
        """(reference FAL accepts, how it was sent): a data URI when small, else an upload to FAL storage."""
        data = Path(path).read_bytes()
        content_type = next((t for magic, t in _SNIFF if data.startswith(magic)), None)
        content_type = content_type or mimetypes.guess_type(str(path))[0] or "application/octet-stream"
        encoded_size = len("data:;base64,") + len(content_type) + 4 * math.ceil(len(data) / 3)
        if encoded_size <= self.data_uri_limit:
            return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}", "data_uri"
        name = Path(path).name
        url = self._with_retries("uploading the image", lambda: self.fal.upload(data, content_type, name))
        return url, "upload"

    def start(self, request: GenerationRequest) -> dict[str, Any]:
        if not self.settings.fal_key:
            raise GenerationError("No FAL key is configured (set IMAGE2MODEL_FAL_KEY or FAL_KEY).")
        images = list(request.images)
        if not 1 <= len(images) <= self.model.max_images:
            raise GenerationError(
                f"{self.spec.name} takes 1 to {self.model.max_images} images per item, got {len(images)}."
            )
        refs = [self._image_ref(p) for p in images]
        known = {o.name for o in self.spec.options}
        options = {k: v for k, v in request.options.items() if k in known}
        app, arguments = self.model.build_input([r for r, _ in refs], options)
        app = app or self.model.app_id
        handle = self._with_retries("submitting the request", lambda: self.fal.submit(app, arguments))
        now = time.time()
        return {
            "generator": self.spec.name,
            "app_id": app,
            "request_id": handle.request_id,
            "submitted_at": now,
            "deadline_at": now + self.settings.fal_deadline_seconds,
            "inputs": [how for _, how in refs],
            "phase": "submitted",
            "errors": 0,
        }

    # -- poll ---------------------------------------------------------------------------------------------------

    def watch(self, state: dict[str, Any]) -> AsyncIterator[Any] | None:
        """FAL's status stream of this request (`fal_stream`), parsed like a status check."""
        if not self.settings.fal_stream:
            return None
        fal = self.fal
        with self._lock:
            if self._streams is None:
                self._streams = status_stream.StatusStreams(fal, self.settings.fal_stream_stall_seconds)
            streams = self._streams
        return streams.follow(fal.get_handle(state["app_id"], state["request_id"]))

    def poll(
        self,
        request: GenerationRequest,
        state: dict[str, Any],
        progress: ProgressCallback,
        seen: Any = None,
    ) -> Pending | Fetched:
        from fal_client import Completed, InProgress, Queued

        state = dict(state)
        now = time.time()
        if now > float(state["deadline_at"]):
            self.cancel(state)
            waited = round(now - float(state["submitted_at"]), 1)
            raise GenerationError(
                f"FAL did not finish within {waited} s, so the request was cancelled. Try again later.",
                {"fal_request_id": state["request_id"], "phase": state.get("phase")},
            )
        handle = self.fal.get_handle(state["app_id"], state["request_id"])
        status = seen
        if status is None:
            try:
                status = self._status(handle)
            except Exception as exc:
                return self._poll_failed(state, exc, "checking the request")
        # The state changes only when FAL's answer does (phase, errors, first "generating"): the service writes
        # to the job store only then, or when the lease or the shown progress needs it.
        if not isinstance(status, Completed):
            state["errors"] = 0  # failures after completion (result, download) keep counting
        streamed = self.settings.fal_stream_check_interval
        if isinstance(status, Queued):
            state["phase"] = "queued"
            delay = self._poll_delay(self.settings.fal_poll_interval * (1 + max(0, status.position)))
            message = f"queued at FAL, position {status.position}"
            return Pending(0.05, message, streamed if seen is not None else delay, state)
        if isinstance(status, InProgress):
            state["phase"] = "generating"
            state.setdefault("started_at", now)
            message = "generating"
            last = _last_log(status.logs)
            if last:
                message = f"generating: {last}"
            delay = self._poll_delay((now - float(state["started_at"])) * POLL_STRETCH)
            return Pending(_fraction(state, now), message, streamed if seen is not None else delay, state)
        assert isinstance(status, Completed)
        state.setdefault("completed_at", now)
        if status.error:
            raise self._failed_at_fal(handle, status)
        try:
            result = self._result(handle)
        except Exception as exc:
            return self._poll_failed(state, exc, "fetching the result")
        return self._fetch(request, state, result, status.metrics or {}, progress)

    def _poll_failed(self, state: dict[str, Any], exc: Exception, doing: str) -> Pending:
        failure = connection.classify(exc, doing)
        if failure is None:
            raise exc
        details = {
            "fal_request_id": state["request_id"],
            "fal_status": failure.status_code,
            "fal_detail": _jsonable(failure.detail),
        }
        if not failure.transient:
            raise GenerationError(failure.message, details) from exc
        if (
            failure.status_code == 429
        ):  # asked to slow down, not failing: wait as told, bounded by the deadline
            delay = max(
                self.settings.fal_poll_interval, min(failure.retry_after or 1.0, self.retry_max_delay)
            )
            return Pending(_fraction(state, time.time()), f"{failure.message}; waiting", delay, state)
        errors = int(state.get("errors", 0)) + 1
        if errors > self.poll_error_limit:
            raise GenerationError(f"{failure.message}; gave up after {errors} tries.", details) from exc
        state["errors"] = errors
        delay = max(self.settings.fal_poll_interval, self._backoff(errors, failure.retry_after))
        return Pending(_fraction(state, time.time()), f"{failure.message}; retrying", delay, state)

    def _poll_delay(self, stretched: float) -> float:
        """`stretched` seconds, kept between `fal_poll_interval` and `fal_poll_interval_max`: the wait after
        FAL finishes until we notice is at most the latter."""
        shortest = self.settings.fal_poll_interval
        return min(max(shortest, self.settings.fal_poll_interval_max), max(shortest, stretched))

    def _failed_at_fal(self, handle: Any, status: Any) -> GenerationError:
        """FAL completed the request with an error: the result body says why (422 lists the refused input)."""
        detail: Any = status.error
        message = f"FAL could not generate the model: {status.error}"
        try:
            self._result(handle)
        except Exception as exc:
            failure = connection.classify(exc, "fetching the result")
            if failure is not None:
                message = failure.message if failure.status_code == 422 else f"{message} ({failure.message})"
                detail = failure.detail or detail
        return GenerationError(
            message,
            {
                "fal_request_id": handle.request_id,
                "fal_error_type": status.error_type,
                "fal_detail": _jsonable(detail),
            },
        )

    def _fetch(
        self,
        request: GenerationRequest,
        state: dict[str, Any],
        result: Any,
        metrics: dict[str, Any],
        progress: ProgressCallback,
    ) -> Pending | Fetched:
        """Download FAL's mesh (and its rendered preview) into our own files at once (FAL's URLs expire), check
        the mesh, and hand it over as a result already when GLB was asked for: the model first. With FAL's
        preview and nothing but GLB wanted, nothing is left to make."""
        from image2model.core.generators.fal import outputs

        state["phase"] = "downloading"
        picked = outputs.pick_file(result, self.model.mesh_keys)
        if picked is None:
            fields = sorted(result) if isinstance(result, dict) else type(result).__name__
            raise GenerationError(
                f"FAL's result has no model mesh (expected one of {', '.join(self.model.mesh_keys)}; got {fields}).",
                {"fal_request_id": state["request_id"]},
            )
        mesh_field, mesh_file = picked
        progress(0.82, "downloading the model from FAL")
        try:
            glb = self._download(mesh_file["url"], self.max_mesh_bytes, "model file")
        except outputs.TransientDownloadError as exc:
            return self._poll_failed(state, exc, "downloading the model")
        outputs.check_glb(glb)
        figures = outputs.glb_figures(glb)
        out_dir = Path(request.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        glb_path = out_dir / f"{request.basename}.glb"
        glb_path.write_bytes(glb)
        files = [OutputFile(glb_path, "glb", "model")]
        preview_pick = outputs.pick_file(result, self.model.preview_keys)
        if preview_pick is not None:
            try:
                rendered = self._download(preview_pick[1]["url"], self.max_preview_bytes, "preview")
            except (GenerationError, outputs.TransientDownloadError):
                rendered = None  # FAL's own preview is a bonus; without it we render ours
            extra = outputs.write_fal_preview(rendered, out_dir, request.basename) if rendered else None
            if extra is not None:
                files.append(extra)
        done = time.time()
        submitted = float(state["submitted_at"])
        started = float(state.get("started_at", state.get("completed_at", done)))
        state["phase"] = "fetched"
        state["fal_preview"] = len(files) > 1
        state["metadata"] = {
            "generator": self.spec.name,
            "generator_version": state["app_id"],
            "seed": result.get("seed") if isinstance(result, dict) else None,
            "fal": {
                "app_id": state["app_id"],
                "request_id": state["request_id"],
                "task_id": result.get("task_id") if isinstance(result, dict) else None,
                "seed": result.get("seed") if isinstance(result, dict) else None,
                "mesh_field": mesh_field,
                "metrics": _jsonable(metrics),
                "timings": _jsonable(result.get("timings")) if isinstance(result, dict) else None,
                "inputs": state.get("inputs"),
                "preview": "fal" if state["fal_preview"] else "ours",
            },
            "options": dict(request.options),
            "formats": list(request.formats),
            "timings_s": {
                "queued": round(max(0.0, started - submitted), 3),
                "generating": round(max(0.0, float(state.get("completed_at", done)) - started), 3),
                "total": round(done - submitted, 3),
            },
            **figures,
        }
        listed = files if "glb" in request.formats else []
        complete = list(request.formats) == ["glb"] and state["fal_preview"]
        return Fetched(files=files, state=state, outputs=listed, complete=complete)

    def finish(
        self,
        request: GenerationRequest,
        state: dict[str, Any],
        fetched: list[OutputFile],
        progress: ProgressCallback,
        landed: Callable[[OutputFile], None] | None = None,
    ) -> GenerationResult:
        """Make the other requested formats from FAL's GLB, and our previews when FAL sent none (CPU work, on a
        CPU worker); each file is announced through `landed` as soon as it is written."""
        from image2model.core.generators.fal import outputs

        progress(0.9, "converting")
        glb_file = next(f for f in fetched if f.format == "glb")
        previews = not any(f.role == "preview" for f in fetched)
        files, figures = outputs.write_outputs(
            Path(glb_file.path).read_bytes(),
            [f for f in request.formats if f != "glb"],
            Path(request.out_dir),
            request.basename,
            previews=previews,
            landed=landed,
        )
        kept = [f for f in fetched if f.role == "preview"]
        if "glb" in request.formats:
            kept.append(glb_file)
        metadata = {**state.get("metadata", {}), **figures}
        progress(1.0, "done")
        return GenerationResult(files=files + kept, metadata=metadata)

    # -- cancel -------------------------------------------------------------------------------------------------

    def cancel(self, state: dict[str, Any]) -> None:
        """Ask FAL to cancel the request; every error is swallowed (it may be done already)."""
        with contextlib.suppress(Exception):
            self.fal.cancel(state["app_id"], state["request_id"])


def _fraction(state: dict[str, Any], now: float) -> float:
    """Progress shown while FAL works: 5 % until it starts generating, then easing from 10 % towards 80 %."""
    if "started_at" not in state:
        return 0.05
    elapsed = max(0.0, now - float(state["started_at"]))
    return round(0.1 + 0.7 * (1.0 - math.exp(-elapsed / EXPECTED_SECONDS)), 3)


def _last_log(logs: Any) -> str:
    if not isinstance(logs, list):
        return ""
    for entry in reversed(logs):
        if isinstance(entry, dict) and str(entry.get("message", "")).strip():
            return str(entry["message"]).strip().splitlines()[-1][:120]
    return ""


def _jsonable(value: Any) -> Any:
    """Keep a value only if it is plain JSON (details end up in events and the store)."""
    import json

    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def spec_for(model: FalModel) -> GeneratorSpec:
    return GeneratorSpec(
        name=model.name,
        title=model.title,
        description=model.description,
        formats=FORMATS,
        default_formats=("glb",),
        options=model.options,
        max_images_per_item=model.max_images,
        queue="io",
    )


def _make_class(model: FalModel) -> type[FalGenerator]:
    safe = "".join(c if c.isalnum() else "_" for c in model.name)
    return type(
        f"FalGenerator_{safe}",
        (FalGenerator,),
        {"spec": spec_for(model), "model": model, "__module__": __name__},
    )


GENERATORS: dict[str, type[FalGenerator]] = {name: _make_class(m) for name, m in MODELS.items()}
"""One class per known FAL model, by generator name (`fal`, `fal:<app-id>`)."""
