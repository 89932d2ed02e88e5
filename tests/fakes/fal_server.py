"""A fake FAL.AI on loopback, speaking the queue, storage-upload and file protocols the unmodified fal-client
1.0.3 uses (see ../shared/notes/fal.md §2-3, §8), with scripted latency, injectable faults and a record of
every request.

All FAL hosts live under one base URL: `/queue`, `/run`, `/rest`, `/cdn`, `/files`; point our generator at it
with `IMAGE2MODEL_FAL_BASE_URL`. Control routes under `/__fake__/` let tests in other processes steer it:

    GET  /__fake__/health                 -> {"ok": true}
    POST /__fake__/reset                  forget jobs, files, faults, records; back to the default script
    POST /__fake__/script   {"default": {...}} and/or {"next": [{...}, ...]}   job behaviour (see JobScript)
    POST /__fake__/faults   {"route": "status", "kind": "http", "code": 429, "times": 2, "retry_after": 1}
    POST /__fake__/keys     {"keys": ["k1"]} accepted FAL keys (empty list: any `Key ...`)
    POST /__fake__/settings {"stream_keepalive": 15, "concurrency_limit": 0, "limit_retry_after": 1}
    GET  /__fake__/requests[?route=status]   what the fake saw
    GET  /__fake__/jobs                   submitted jobs (app, arguments with images summarised, polls, cancelled,
                                          created and done_at as epoch seconds)
    POST /__fake__/jobs/{id}/complete     finish a (stuck) job now
    POST /__fake__/complete               finish every open job now

Besides polling, a request's status can be followed on `GET .../requests/{id}/status/stream` (Server-Sent Events,
as FAL serves it: one `data:` status per change, a `: keep-alive` comment every `stream_keepalive` seconds, closed
after COMPLETED). Each status the stream sends counts as a poll, so jobs scripted by polls advance under a stream
too (one step per `stream_tick`). Stream faults: `stall` (the first status, then silence), `close` (the first
status, then the connection ends), `http` (e.g. 404: no stream for this request).

With `concurrency_limit` > 0 the fake behaves like an account at its limit: a submission while that many
requests are unfinished is refused with 429 and `Retry-After: limit_retry_after`.

Run standalone: `python -m tests.fakes.fal_server --port 8765 [--queue-s 1 --run-s 30]`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import io
import json
import math
import socket
import struct
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

ROUTES = (
    "submit",
    "status",
    "stream",
    "result",
    "cancel",
    "run",
    "token",
    "upload",
    "initiate",
    "put",
    "file",
)
"""Route names faults and records use."""

IMAGE_KEYS: dict[str, tuple[str, ...]] = {
    "tripo3d/tripo/v2.5/image-to-3d": ("image_url",),
    "tripo3d/tripo/v2.5/multiview-to-3d": ("front_image_url",),
    "fal-ai/hunyuan3d/v2": ("input_image_url",),
    "fal-ai/hunyuan3d-v3/image-to-3d": ("input_image_url",),
    "fal-ai/trellis": ("image_url",),
    "fal-ai/triposr": ("image_url",),
    "fal-ai/hyper3d/rodin": ("input_image_urls",),
}
"""Required image field(s) per app; other apps need `image_url`."""

OPTIONAL_IMAGE_KEYS = ("left_image_url", "back_image_url", "right_image_url")
MESH_KEY: dict[str, str] = {"fal-ai/hunyuan3d-v3/image-to-3d": "model_glb"}
PREVIEW_KEY: dict[str, str] = {
    "tripo3d/tripo/v2.5/image-to-3d": "rendered_image",
    "tripo3d/tripo/v2.5/multiview-to-3d": "rendered_image",
    "fal-ai/hunyuan3d-v3/image-to-3d": "thumbnail",
}


# -- payloads ---------------------------------------------------------------------------------------------------


def _png(size: int = 8, colour: tuple[int, int, int] = (200, 60, 40)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


def textured_glb() -> bytes:
    """A closed, textured tetrahedron as glTF 2.0 binary (positions, UVs, indices, an embedded PNG texture)."""
    pos = [(0, 0, 1), (0.94, 0, -0.33), (-0.47, 0.82, -0.33), (-0.47, -0.82, -0.33)]
    uv = [(0.5, 0.0), (1.0, 1.0), (0.0, 1.0), (0.5, 0.5)]
    idx = [0, 1, 2, 0, 2, 3, 0, 3, 1, 1, 3, 2]
    p = b"".join(struct.pack("<3f", *v) for v in pos)
    t = b"".join(struct.pack("<2f", *v) for v in uv)
    i = struct.pack("<12H", *idx)
    img = _png()
    views, blob = [], b""
    for chunk, target in ((p, 34962), (t, 34962), (i, 34963), (img, None)):
        view = {"buffer": 0, "byteOffset": len(blob), "byteLength": len(chunk)}
        if target:
            view["target"] = target
        views.append(view)
        blob += chunk + b"\0" * (-len(chunk) % 4)
    lo = [min(v[k] for v in pos) for k in range(3)]
    hi = [max(v[k] for v in pos) for k in range(3)]
    gltf = {
        "asset": {"version": "2.0", "generator": "fake-fal"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [
            {"primitives": [{"attributes": {"POSITION": 0, "TEXCOORD_0": 1}, "indices": 2, "material": 0}]}
        ],
        "materials": [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}],
        "textures": [{"source": 0}],
        "images": [{"bufferView": 3, "mimeType": "image/png"}],
        "buffers": [{"byteLength": len(blob)}],
        "bufferViews": views,
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 4, "type": "VEC3", "min": lo, "max": hi},
            {"bufferView": 1, "componentType": 5126, "count": 4, "type": "VEC2"},
            {"bufferView": 2, "componentType": 5123, "count": 12, "type": "SCALAR"},
        ],
    }
    js = json.dumps(gltf, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 4)
    body = struct.pack("<I4s", len(js), b"JSON") + js + struct.pack("<I4s", len(blob), b"BIN\0") + blob
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


# -- state ------------------------------------------------------------------------------------------------------


@dataclass
class JobScript:
    """How a submitted job behaves. Latency by polls (`queue_polls`, `progress_polls`) unless `queue_s`/`run_s`
    (wall time) are set. `outcome`: ok | error (with `error_code`, `error_detail`) | missing_mesh | malformed |
    mesh_404 | mesh_garbage | mesh_500 (file host fails `mesh_failures` times, then serves the mesh).
    `stuck`: never leaves IN_PROGRESS. `bad_status`: report this status string (e.g. FAILED) when done."""

    queue_polls: int = 1
    progress_polls: int = 1
    queue_s: float | None = None
    run_s: float | None = None
    stuck: bool = False
    outcome: str = "ok"
    error_code: int = 500
    error_detail: Any = "Internal Server Error"
    mesh_failures: int = 1
    bad_status: str | None = None
    logs: list[str] = field(default_factory=lambda: ["Loading model", "Generating mesh"])


@dataclass
class Fault:
    """One injected fault on a route, used `times` times. kind: http (JSON error with `code`, optional
    `retry_after`), ingress (nginx-style text 502/503/504 without x-fal-request-id), hang (sleep `seconds`
    then answer normally), garbage (200 with a non-JSON body); on the status stream also stall (send the
    current status, then nothing at all) and close (send the current status, then end the stream)."""

    route: str
    kind: str = "http"
    code: int = 500
    times: int = 1
    retry_after: float | None = None
    seconds: float = 5.0
    detail: Any = "injected fault"


@dataclass
class Job:
    id: str
    app: str
    owner_alias: str
    arguments: dict[str, Any]
    script: JobScript
    created: float
    auth: str
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: int = 0
    cancelled: bool = False
    forced_done: bool = False
    input_error: Any = None
    result_fetches: int = 0
    result: Any = None
    """The result body, made once: FAL returns the same files on every fetch."""
    forced_at: float | None = None
    seen_done_at: float | None = None
    """When a status check or stream first reported a job scripted by polls as completed."""
    stream_opens: int = 0
    watchers: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)
    """Open status streams of this job, woken when it is completed or cancelled from outside."""

    def phase(self, now: float) -> str:
        if self.cancelled or self.forced_done or self.input_error is not None:
            return "COMPLETED"
        if self.script.stuck:
            return "IN_PROGRESS" if self.polls > self.script.queue_polls else "IN_QUEUE"
        if self.script.queue_s is not None or self.script.run_s is not None:
            age = now - self.created
            q, r = self.script.queue_s or 0.0, self.script.run_s or 0.0
            return "IN_QUEUE" if age < q else "IN_PROGRESS" if age < q + r else "COMPLETED"
        if self.polls <= self.script.queue_polls:
            return "IN_QUEUE"
        if self.polls <= self.script.queue_polls + self.script.progress_polls:
            return "IN_PROGRESS"
        return "COMPLETED"

    def wall_clock(self) -> bool:
        return self.script.queue_s is not None or self.script.run_s is not None

    def done_at(self) -> float | None:
        """When the job became COMPLETED (epoch seconds); None while it is not."""
        if self.forced_at is not None:
            return self.forced_at
        if self.wall_clock() and not self.script.stuck and not self.cancelled:
            return self.created + (self.script.queue_s or 0.0) + (self.script.run_s or 0.0)
        return self.seen_done_at

    def next_change(self, now: float, tick: float) -> float:
        """Seconds until this job's status may change by itself (a stream waits that long, or until woken)."""
        if self.script.stuck:
            return math.inf
        if self.wall_clock():
            q = self.created + (self.script.queue_s or 0.0)
            ahead = [t - now for t in (q, q + (self.script.run_s or 0.0)) if t > now]
            return max(0.001, min(ahead)) if ahead else tick
        return tick

    def wake(self) -> None:
        for loop, event in list(self.watchers):
            loop.call_soon_threadsafe(event.set)

    def summary(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "app": self.app,
            "arguments": _summarise(self.arguments),
            "images": self.images,
            "polls": self.polls,
            "phase": self.phase(now),
            "cancelled": self.cancelled,
            "auth": self.auth,
            "result_fetches": self.result_fetches,
            "input_error": self.input_error,
            "created": self.created,
            "done_at": self.done_at(),
            "stream_opens": self.stream_opens,
        }


def _summarise(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("data:"):
        return value[: value.find(",") + 1] + f"...({len(value)} chars)"
    if isinstance(value, list):
        return [_summarise(v) for v in value]
    if isinstance(value, dict):
        return {k: _summarise(v) for k, v in value.items()}
    return value


class FakeFal:
    """The fake's state and its Starlette app. Thread-safe: tests read and script it while uvicorn serves."""

    def __init__(self) -> None:
        self.base_url = ""
        self._lock = threading.Lock()
        self.reset()
        self.app = Starlette(routes=self._routes())
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- scripting (in-process API; the control routes call these) ----------------------------------------------

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.jobs: dict[str, Job] = {}
            self.files: dict[str, tuple[bytes, str, str]] = {}
            self.faults: dict[str, collections.deque[Fault]] = collections.defaultdict(collections.deque)
            self.records: list[dict[str, Any]] = []
            self.default_script = JobScript()
            self.next_scripts: collections.deque[JobScript] = collections.deque()
            self.keys: set[str] = set()
            self.file_failures: dict[str, int] = {}
            self.stream_keepalive = 15.0
            """Seconds between the status stream's keep-alive comments (FAL sends one every 15 s)."""
            self.stream_tick = 0.05
            """Seconds between the stream's steps for jobs scripted by polls."""
            self.concurrency_limit = 0
            """Unfinished requests beyond which a submission is refused with 429 (0: no limit)."""
            self.limit_retry_after = 1.0
            self.refused = 0
            """Submissions refused for the concurrency limit."""

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change `stream_keepalive`, `stream_tick`, `concurrency_limit` or `limit_retry_after`; returns them all."""
        names = ("stream_keepalive", "stream_tick", "concurrency_limit", "limit_retry_after")
        unknown = set(settings) - set(names)
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)}; one of {names}")
        with self._lock:
            for name, value in settings.items():
                setattr(self, name, type(getattr(self, name))(value))
            return {name: getattr(self, name) for name in names} | {"refused": self.refused}

    def script(
        self, default: dict[str, Any] | JobScript | None = None, next: list[Any] | None = None
    ) -> None:
        """Set the default job behaviour and/or queue behaviours for the next submissions."""
        with self._lock:
            if default is not None:
                self.default_script = default if isinstance(default, JobScript) else JobScript(**default)
            for item in next or []:
                self.next_scripts.append(item if isinstance(item, JobScript) else JobScript(**item))

    def fault(self, route: str, kind: str = "http", **kwargs: Any) -> None:
        """Inject a fault on one route (see `Fault`)."""
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; one of {ROUTES}")
        with self._lock:
            self.faults[route].append(Fault(route, kind, **kwargs))

    def accept_keys(self, keys: list[str]) -> None:
        with self._lock:
            self.keys = set(keys)

    def requests(self, route: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.records if route is None or r["route"] == route]

    def job_list(self) -> list[dict[str, Any]]:
        now = time.time()
        with self._lock:
            return [j.summary(now) for j in self.jobs.values()]

    def complete(self, job_id: str) -> None:
        with self._lock:
            job = self.jobs[job_id]
            if job.phase(time.time()) != "COMPLETED":
                job.forced_at = time.time()
            job.forced_done = True
            job.script.stuck = False
        job.wake()

    def complete_all(self) -> None:
        """Finish every open job now (their streams send COMPLETED at once)."""
        now = time.time()
        with self._lock:
            jobs = list(self.jobs.values())
            for job in jobs:
                if job.phase(now) != "COMPLETED":
                    job.forced_at = now
                job.forced_done = True
        for job in jobs:
            job.wake()

    # -- serving ------------------------------------------------------------------------------------------------

    def start(self, port: int = 0, host: str = "127.0.0.1") -> FakeFal:
        """Serve in a daemon thread; returns once it accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self.base_url = f"http://{host}:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake FAL did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Finish open jobs (releasing any waiting client) and stop serving; the port then refuses connections."""
        self.complete_all()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- plumbing -----------------------------------------------------------------------------------------------

    def _record(self, route: str, request: Request, body: Any = None) -> None:
        entry = {
            "route": route,
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "auth": request.headers.get("authorization"),
            "user_agent": request.headers.get("user-agent"),
            "fal_headers": {k: v for k, v in request.headers.items() if k.lower().startswith("x-fal-")},
            "json": _summarise(body),
            "time": time.time(),
        }
        with self._lock:
            self.records.append(entry)

    def _take_fault(self, route: str) -> Fault | None:
        with self._lock:
            queue = self.faults.get(route)
            fault = queue[0] if queue else None
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    queue.popleft()  # type: ignore[union-attr]
        return fault

    async def _fault(self, route: str) -> Response | None:
        fault = self._take_fault(route)
        return None if fault is None else await self._answer(fault)

    async def _answer(self, fault: Fault) -> Response | None:
        if fault.kind == "hang":
            await asyncio.sleep(fault.seconds)
            return None
        if fault.kind == "garbage":
            return PlainTextResponse("<html>not json</html>", 200)
        if fault.kind == "ingress":
            return PlainTextResponse(
                f"<html><body><center><h1>{fault.code} Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
                fault.code,
            )
        headers = {"x-fal-request-id": uuid.uuid4().hex}
        if fault.retry_after is not None:
            headers["retry-after"] = str(int(fault.retry_after))
        return JSONResponse({"detail": fault.detail}, fault.code, headers=headers)

    def _authorised(self, request: Request) -> bool:
        value = request.headers.get("authorization", "")
        if not value.startswith("Key ") or not value[4:]:
            return False
        return not self.keys or value[4:] in self.keys

    def _file_url(self, data: bytes, name: str, content_type: str) -> dict[str, Any]:
        file_id = uuid.uuid4().hex
        with self._lock:
            self.files[file_id] = (data, content_type, name)
        return {
            "url": f"{self.base_url}/files/{file_id}/{name}",
            "content_type": content_type,
            "file_name": name,
            "file_size": len(data),
        }

    def _resolve_image(self, ref: Any) -> dict[str, Any] | None:
        """What an image reference carried: data URI decoded, or a file uploaded here; None if unusable."""
        if not isinstance(ref, str):
            return None
        if ref.startswith("data:"):
            head, _, payload = ref.partition(",")
            try:
                data = base64.b64decode(payload, validate=True)
            except ValueError:
                return None
            return {"source": "data_uri", "content_type": head[5:].split(";")[0], "bytes": len(data)}
        prefix = f"{self.base_url}/files/"
        if ref.startswith(prefix):
            file_id = ref[len(prefix) :].split("/")[0]
            with self._lock:
                stored = self.files.get(file_id)
            if stored is None:
                return None
            return {"source": "upload", "content_type": stored[1], "bytes": len(stored[0])}
        return {"source": "url", "bytes": None}

    def _check_input(self, app: str, args: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        images: dict[str, Any] = {}
        missing = []
        for key in IMAGE_KEYS.get(app, ("image_url",)) + OPTIONAL_IMAGE_KEYS:
            required = key not in OPTIONAL_IMAGE_KEYS
            if key not in args:
                if required:
                    missing.append({"loc": ["body", key], "msg": "field required", "type": "missing"})
                continue
            refs = args[key] if isinstance(args[key], list) else [args[key]]
            for n, ref in enumerate(refs):
                seen = self._resolve_image(ref)
                if seen is None:
                    missing.append(
                        {"loc": ["body", key], "msg": "could not read the image", "type": "image_load_error"}
                    )
                else:
                    images[f"{key}[{n}]" if isinstance(args[key], list) else key] = seen
        return images, (missing or None)

    def _result_for(self, job: Job) -> Any:
        script = job.script
        if script.outcome == "malformed":
            return None
        glb = textured_glb()
        mesh_key = MESH_KEY.get(job.app, "model_mesh")
        result: dict[str, Any] = {"seed": 42}
        if job.app.startswith("tripo3d/"):
            result = {"task_id": uuid.uuid4().hex}
        if job.app == "fal-ai/trellis":
            result["timings"] = {"prepare": 0.1, "generation": 1.0}
        if script.outcome == "mesh_garbage":
            result[mesh_key] = self._file_url(
                b"<html>not a mesh</html>", "model.glb", "application/octet-stream"
            )
        elif script.outcome == "mesh_404":
            result[mesh_key] = {"url": f"{self.base_url}/files/{uuid.uuid4().hex}/model.glb", "file_size": 1}
        elif script.outcome != "missing_mesh":
            result[mesh_key] = self._file_url(glb, "model.glb", "application/octet-stream")
            if script.outcome == "mesh_500":
                file_id = result[mesh_key]["url"].split("/files/")[1].split("/")[0]
                with self._lock:
                    self.file_failures[file_id] = script.mesh_failures
        if job.app in PREVIEW_KEY:
            result[PREVIEW_KEY[job.app]] = self._file_url(
                _png(64, (90, 140, 220)), "preview.png", "image/png"
            )
        return result

    def _status_body(self, job: Job, logs: bool) -> tuple[dict[str, Any], int]:
        phase = job.phase(time.time())
        urls = self._urls(job)
        body: dict[str, Any] = {
            "status": phase,
            "request_id": job.id,
            "response_url": urls["response_url"],
            "logs": None,
        }
        if phase == "IN_QUEUE":
            body["queue_position"] = (
                max(0, job.script.queue_polls - job.polls) if job.script.queue_s is None else 0
            )
        if logs and phase != "IN_QUEUE":
            began = datetime.fromtimestamp(job.created + (job.script.queue_s or 0.0), UTC)
            body["logs"] = [
                {
                    "message": m,
                    "level": "INFO",
                    "source": "user",
                    "timestamp": (began + timedelta(seconds=0.1 * n)).isoformat(),
                }
                for n, m in enumerate(job.script.logs)
            ]
        if phase == "COMPLETED":
            if job.seen_done_at is None:
                job.seen_done_at = time.time()
            body["metrics"] = {"inference_time": 1.25}
            if job.cancelled:
                body["error"], body["error_type"] = "Request was cancelled", "cancelled"
            elif job.input_error is not None:
                body["error"], body["error_type"] = "Validation error", "validation_error"
            elif job.script.outcome == "error":
                body["error"], body["error_type"] = str(job.script.error_detail), "runner_failure"
            if job.script.bad_status:
                body["status"] = job.script.bad_status
        return body, 200 if phase == "COMPLETED" else 202

    def _urls(self, job: Job) -> dict[str, str]:
        base = f"{self.base_url}/queue/{job.owner_alias}/requests/{job.id}"
        return {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}

    def _job(self, request: Request) -> Job | None:
        with self._lock:
            return self.jobs.get(request.path_params["rid"])

    # -- FAL routes ---------------------------------------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        app = request.path_params["app"].strip("/")
        try:
            args = await request.json()
        except ValueError:
            args = None
        self._record("submit", request, args)
        if (faulted := await self._fault("submit")) is not None:
            return faulted
        if not self._authorised(request):
            return JSONResponse({"detail": "Invalid Key Authorization header format"}, 401)
        if not isinstance(args, dict):
            return JSONResponse({"detail": [{"loc": ["body"], "msg": "a JSON object is required"}]}, 422)
        if (refused := self._over_limit()) is not None:
            return refused
        images, input_error = self._check_input(app, args)
        parts = app.split("/")
        with self._lock:
            script = (
                self.next_scripts.popleft() if self.next_scripts else JobScript(**asdict(self.default_script))
            )
            job = Job(
                id=str(uuid.uuid4()),
                app=app,
                owner_alias="/".join(parts[:2]),
                arguments=args,
                script=script,
                created=time.time(),
                auth=request.headers.get("authorization", ""),
                images=images,
                input_error=input_error,
            )
            self.jobs[job.id] = job
        return JSONResponse(
            {
                "status": "IN_QUEUE",
                "request_id": job.id,
                "queue_position": job.script.queue_polls,
                **self._urls(job),
            }
        )

    def _over_limit(self) -> Response | None:
        now = time.time()
        with self._lock:
            limit = self.concurrency_limit
            if not limit or sum(j.phase(now) != "COMPLETED" for j in self.jobs.values()) < limit:
                return None
            self.refused += 1
            after = self.limit_retry_after
        return JSONResponse(
            {"detail": f"Too many requests in flight (limit {limit}); retry later."},
            429,
            headers={"retry-after": str(max(1, math.ceil(after))), "x-fal-request-id": uuid.uuid4().hex},
        )

    async def status(self, request: Request) -> Response:
        self._record("status", request)
        if (faulted := await self._fault("status")) is not None:
            return faulted
        job = self._job(request)
        if job is None:
            return JSONResponse({"detail": "Request not found"}, 404)
        with self._lock:
            job.polls += 1
        body, code = self._status_body(job, request.query_params.get("logs") in ("true", "1"))
        return JSONResponse(body, code)

    async def stream(self, request: Request) -> Response:
        """The status stream: each change as an SSE `data:` line, keep-alive comments, closed after COMPLETED."""
        self._record("stream", request)
        fault = self._take_fault("stream")
        if fault is not None and fault.kind not in ("stall", "close"):
            answered = await self._answer(fault)
            if answered is not None:
                return answered
        job = self._job(request)
        if job is None:
            return JSONResponse({"detail": "Request not found"}, 404)
        with self._lock:
            job.stream_opens += 1
        logs = request.query_params.get("logs") in ("true", "1")
        events = self._status_events(job, logs, fault.kind if fault is not None else None)
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )

    async def _status_events(self, job: Job, logs: bool, fault: str | None):
        wake = asyncio.Event()
        watcher = (asyncio.get_running_loop(), wake)
        with self._lock:
            job.watchers.append(watcher)
        try:
            sent: dict[str, Any] | None = None
            keepalive_at = time.monotonic() + self.stream_keepalive
            while True:
                wake.clear()
                with self._lock:
                    job.polls += 1
                    body, _ = self._status_body(job, logs)
                if body != sent:
                    yield f"data: {json.dumps(body)}\n\n"
                    sent = body
                    if fault == "close":
                        return
                    if fault == "stall":
                        await asyncio.Event().wait()  # silent until the client gives up
                if body["status"] not in ("IN_QUEUE", "IN_PROGRESS"):
                    return
                now = time.monotonic()
                if now >= keepalive_at:
                    yield ": keep-alive\n\n"
                    keepalive_at = now + self.stream_keepalive
                wait = min(keepalive_at - now, job.next_change(time.time(), self.stream_tick))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), wait)
        finally:
            with self._lock:
                job.watchers.remove(watcher)

    async def result(self, request: Request) -> Response:
        self._record("result", request)
        if (faulted := await self._fault("result")) is not None:
            return faulted
        job = self._job(request)
        if job is None:
            return JSONResponse({"detail": "Request not found"}, 404)
        if job.phase(time.time()) != "COMPLETED":
            return JSONResponse({"detail": "Request is still in progress"}, 400)
        with self._lock:
            job.result_fetches += 1
        headers = {"x-fal-request-id": job.id}
        if job.cancelled:
            return JSONResponse({"detail": "Request was cancelled"}, 400, headers=headers)
        if job.input_error is not None:
            return JSONResponse({"detail": job.input_error}, 422, headers=headers)
        if job.script.outcome == "error":
            body = {"detail": job.script.error_detail, "error_type": "runner_failure"}
            return JSONResponse(body, job.script.error_code, headers=headers)
        if job.script.outcome == "malformed":
            return PlainTextResponse("{not json", 200, headers=headers)
        with self._lock:
            result = job.result
        if result is None:
            result = self._result_for(job)
            with self._lock:
                job.result = result
        return JSONResponse(result, 200, headers=headers)

    async def cancel(self, request: Request) -> Response:
        self._record("cancel", request)
        if (faulted := await self._fault("cancel")) is not None:
            return faulted
        job = self._job(request)
        if job is None:
            return JSONResponse({"status": "NOT_FOUND"}, 404)
        if job.phase(time.time()) == "COMPLETED":
            return JSONResponse({"status": "ALREADY_COMPLETED"}, 400)
        with self._lock:
            job.cancelled = True
            job.forced_at = time.time()
        job.wake()
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, 202)

    async def run(self, request: Request) -> Response:
        self._record("run", request)
        if (faulted := await self._fault("run")) is not None:
            return faulted
        if not self._authorised(request):
            return JSONResponse({"detail": "Unauthorized"}, 401)
        args = await request.json()
        app = request.path_params["app"].strip("/")
        job = Job("run-" + uuid.uuid4().hex, app, "", args, JobScript(), time.time(), "")
        return JSONResponse(self._result_for(job))

    async def token(self, request: Request) -> Response:
        self._record("token", request)
        if (faulted := await self._fault("token")) is not None:
            return faulted
        if not self._authorised(request):
            return JSONResponse({"detail": "Unauthorized"}, 401)
        expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        return JSONResponse(
            {
                "token": "cdn-" + uuid.uuid4().hex,
                "token_type": "Bearer",
                "base_url": f"{self.base_url}/cdn",
                "expires_at": expires,
            }
        )

    async def upload(self, request: Request) -> Response:
        data = await request.body()
        self._record("upload", request, {"bytes": len(data)})
        if (faulted := await self._fault("upload")) is not None:
            return faulted
        if not request.headers.get("authorization", "").startswith("Bearer cdn-"):
            return JSONResponse({"detail": "Unauthorized"}, 401)
        name = request.headers.get("x-fal-file-name") or "upload.bin"
        stored = self._file_url(data, name, request.headers.get("content-type", "application/octet-stream"))
        return JSONResponse({"access_url": stored["url"]})

    async def initiate(self, request: Request) -> Response:
        body = await request.json()
        self._record("initiate", request, body)
        if (faulted := await self._fault("initiate")) is not None:
            return faulted
        file_id = uuid.uuid4().hex
        name = body.get("file_name") or "upload.bin"
        with self._lock:
            self.files[file_id] = (b"", body.get("content_type", "application/octet-stream"), name)
        return JSONResponse(
            {
                "upload_url": f"{self.base_url}/files-put/{file_id}",
                "file_url": f"{self.base_url}/files/{file_id}/{name}",
            }
        )

    async def put_file(self, request: Request) -> Response:
        data = await request.body()
        self._record("put", request, {"bytes": len(data)})
        if (faulted := await self._fault("put")) is not None:
            return faulted
        file_id = request.path_params["fid"]
        with self._lock:
            _, content_type, name = self.files.get(file_id, (b"", "application/octet-stream", "upload.bin"))
            self.files[file_id] = (data, request.headers.get("content-type", content_type), name)
        return Response(status_code=200)

    async def file(self, request: Request) -> Response:
        self._record("file", request)
        if (faulted := await self._fault("file")) is not None:
            return faulted
        file_id = request.path_params["fid"]
        with self._lock:
            stored = self.files.get(file_id)
            failures = self.file_failures.get(file_id, 0)
            if failures:
                self.file_failures[file_id] = failures - 1
        if failures:
            return PlainTextResponse("upstream storage error", 503)
        if stored is None:
            return PlainTextResponse("Not Found", 404)
        return Response(stored[0], 200, media_type=stored[1])

    # -- control routes -----------------------------------------------------------------------------------------

    async def c_health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "base_url": self.base_url})

    async def c_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})

    async def c_script(self, request: Request) -> Response:
        body = await request.json()
        try:
            self.script(body.get("default"), body.get("next"))
        except TypeError as exc:
            return JSONResponse({"detail": str(exc)}, 400)
        return JSONResponse({"ok": True})

    async def c_faults(self, request: Request) -> Response:
        body = await request.json()
        try:
            for item in body if isinstance(body, list) else [body]:
                self.fault(**item)
        except (TypeError, ValueError) as exc:
            return JSONResponse({"detail": str(exc)}, 400)
        return JSONResponse({"ok": True})

    async def c_keys(self, request: Request) -> Response:
        self.accept_keys(list((await request.json()).get("keys", [])))
        return JSONResponse({"ok": True})

    async def c_settings(self, request: Request) -> Response:
        try:
            return JSONResponse(self.configure(**(await request.json())))
        except (TypeError, ValueError) as exc:
            return JSONResponse({"detail": str(exc)}, 400)

    async def c_requests(self, request: Request) -> Response:
        return JSONResponse(self.requests(request.query_params.get("route")))

    async def c_jobs(self, request: Request) -> Response:
        return JSONResponse(self.job_list())

    async def c_complete(self, request: Request) -> Response:
        if request.path_params["rid"] not in self.jobs:
            return JSONResponse({"detail": "no such job"}, 404)
        self.complete(request.path_params["rid"])
        return JSONResponse({"ok": True})

    async def c_complete_all(self, request: Request) -> Response:
        self.complete_all()
        return JSONResponse({"ok": True})

    def _routes(self) -> list[Route]:
        req = "/queue/{owner}/{alias}/requests/{rid}"
        return [
            Route("/__fake__/health", self.c_health, methods=["GET"]),
            Route("/__fake__/reset", self.c_reset, methods=["POST"]),
            Route("/__fake__/script", self.c_script, methods=["POST"]),
            Route("/__fake__/faults", self.c_faults, methods=["POST"]),
            Route("/__fake__/keys", self.c_keys, methods=["POST"]),
            Route("/__fake__/settings", self.c_settings, methods=["POST"]),
            Route("/__fake__/requests", self.c_requests, methods=["GET"]),
            Route("/__fake__/jobs", self.c_jobs, methods=["GET"]),
            Route("/__fake__/jobs/{rid}/complete", self.c_complete, methods=["POST"]),
            Route("/__fake__/complete", self.c_complete_all, methods=["POST"]),
            Route(req + "/status", self.status, methods=["GET"]),
            Route(req + "/status/stream", self.stream, methods=["GET"]),
            Route(req + "/cancel", self.cancel, methods=["PUT"]),
            Route(req, self.result, methods=["GET"]),
            Route("/queue/{app:path}", self.submit, methods=["POST"]),
            Route("/run/{app:path}", self.run, methods=["POST"]),
            Route("/rest/storage/auth/token", self.token, methods=["POST"]),
            Route("/rest/storage/upload/initiate", self.initiate, methods=["POST"]),
            Route("/cdn/files/upload", self.upload, methods=["POST"]),
            Route("/files-put/{fid}", self.put_file, methods=["PUT"]),
            Route("/files/{fid}/{name:path}", self.file, methods=["GET"]),
        ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake FAL.AI queue/storage/file server on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--queue-polls", type=int, default=1)
    parser.add_argument("--progress-polls", type=int, default=1)
    parser.add_argument("--queue-s", type=float, default=None, help="wall-time latency mode: seconds queued")
    parser.add_argument(
        "--run-s", type=float, default=None, help="wall-time latency mode: seconds generating"
    )
    parser.add_argument(
        "--key", action="append", default=[], help="accepted FAL key (repeatable; default any)"
    )
    parser.add_argument("--stream-keepalive", type=float, default=15.0, help="status stream keep-alive (s)")
    parser.add_argument(
        "--concurrency-limit", type=int, default=0, help="429 beyond this many unfinished jobs"
    )
    args = parser.parse_args(argv)
    fake = FakeFal()
    fake.script(
        {
            "queue_polls": args.queue_polls,
            "progress_polls": args.progress_polls,
            "queue_s": args.queue_s,
            "run_s": args.run_s,
        }
    )
    fake.accept_keys(args.key)
    fake.configure(stream_keepalive=args.stream_keepalive, concurrency_limit=args.concurrency_limit)
    fake.start(args.port, args.host)
    print(f"fake FAL listening on {fake.base_url}", flush=True)
    try:
        while fake._thread is not None and fake._thread.is_alive():
            fake._thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
