"""A scriptable stand-in for the image2model API, served over real HTTP (uvicorn on 127.0.0.1 in a thread).

Each test scripts what the server answers (`fake.*`) and reads back what it received. Stream connections
follow `fake.streams`: one list of actions per connection (bytes to send, "drop" to break the connection,
("sleep", s), or ("status", code, body) to answer an error instead of streaming).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

JOB = "job-1"


class _Drop(Exception):
    """Raised inside a streaming body: uvicorn then closes the connection mid-response."""


def frame(seq: int, event: str, retry: int | None = None, **data: Any) -> bytes:
    """One SSE frame as the contract shapes it."""
    payload = {
        "job_id": JOB,
        "task_id": JOB,
        "seq": seq,
        "timestamp": 0,
        "status": "processing",
        "progress": 0,
    }
    payload.update(data)
    head = f"retry: {retry}\n" if retry is not None else ""
    return f"{head}id: {seq}\nevent: {event}\ndata: {json.dumps(payload)}\n\n".encode()


def envelope(status: int, code: str, message: str, **details: Any) -> tuple[int, dict[str, Any]]:
    return status, {
        "error": True,
        "error_code": code,
        "message": message,
        "status_code": status,
        "details": details,
    }


def snapshot(
    status: str = "completed", files: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    files = files if files is not None else [file_progress("f1", "chair.png", status="completed")]
    body = {
        "job_id": JOB,
        "task_id": JOB,
        "batch_id": JOB,
        "status": status,
        "progress": 100.0 if status == "completed" else 0.0,
        "generator": "test",
        "total_files": len(files),
        "completed_files": sum(f["status"] == "completed" for f in files),
        "failed_files": sum(f["status"] == "failed" for f in files),
        "created_at": 1.0,
        "updated_at": 2.0,
        "files": files,
    }
    body.update(extra)
    return body


def file_progress(file_id: str, filename: str, status: str = "queued", **extra: Any) -> dict[str, Any]:
    return {"file_id": file_id, "filename": filename, "index": 0, "status": status, "progress": 0.0, **extra}


def upload_body(n: int = 1) -> dict[str, Any]:
    return {
        "job_id": JOB,
        "task_id": JOB,
        "batch_id": JOB,
        "status": "queued",
        "total_files": n,
        "generator": "test",
        "uploaded_files": [
            {
                "file_id": f"f{i + 1}",
                "filename": f"img{i + 1}.png",
                "file_size": 1,
                "content_type": "image/png",
                "status": "queued",
            }
            for i in range(n)
        ],
        "message": "queued",
    }


def listing_entry(filename: str, url: str | None = None, fmt: str = "glb") -> dict[str, Any]:
    return {
        "file_id": "f1",
        "source_filename": "chair.png",
        "filename": filename,
        "format": fmt,
        "size": 0,
        "mime_type": "model/gltf-binary",
        "created_time": 1.0,
        "download_url": url or f"/api/v1/download/{JOB}/{filename}",
    }


@dataclass
class FakeAPI:
    uploads: list[dict[str, Any]] = field(default_factory=list)
    upload_answer: tuple[int, Any] = (200, upload_body())
    streams: list[list[Any]] = field(default_factory=list)
    stream_requests: list[dict[str, str | None]] = field(default_factory=list)
    status_answer: tuple[int, Any] = (200, snapshot())
    listing: list[dict[str, Any]] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    truncate: dict[str, int] = field(default_factory=dict)  # filename -> bytes sent before dropping
    redirects: dict[str, str] = field(default_factory=dict)  # filename -> 307 Location (object storage)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # method, path, headers
    cancelled: list[str] = field(default_factory=list)


class _Holder:
    api = FakeAPI()


def _record(request: Request) -> None:
    _Holder.api.requests.append((request.method, request.url.path, dict(request.headers)))


def _answer(answer: tuple[Any, ...]) -> Response:
    """(status, body) or (status, body, headers)."""
    status, body, *rest = answer
    headers = rest[0] if rest else None
    if isinstance(body, (dict, list)):
        return JSONResponse(body, status_code=status, headers=headers)
    return Response(str(body), status_code=status, media_type="text/plain", headers=headers)


async def upload(request: Request) -> Response:
    _record(request)
    form = await request.form()
    files = []
    for item in form.getlist("files"):
        files.append(
            {"filename": item.filename, "content_type": item.content_type, "data": await item.read()}
        )
    fields = {k: v for k, v in form.multi_items() if k != "files"}
    _Holder.api.uploads.append({"files": files, "fields": fields, "headers": dict(request.headers)})
    return _answer(_Holder.api.upload_answer)


async def stream(request: Request) -> Response:
    _record(request)
    api = _Holder.api
    api.stream_requests.append(
        {"last_event_id": request.headers.get("last-event-id"), "accept": request.headers.get("accept")}
    )
    if not api.streams:
        return Response("no stream scripted", status_code=500)
    script = api.streams.pop(0)
    if script and isinstance(script[0], tuple) and script[0][0] == "status":
        return _answer(script[0][1:])

    async def body():  # noqa: ANN202
        for action in script:
            if action == "drop":
                raise _Drop("dropped on purpose")
            if isinstance(action, tuple) and action[0] == "sleep":
                await asyncio.sleep(action[1])
                continue
            yield action

    return StreamingResponse(body(), media_type="text/event-stream")


async def status(request: Request) -> Response:
    _record(request)
    return _answer(_Holder.api.status_answer)


async def progress(request: Request) -> Response:
    _record(request)
    snap = _Holder.api.status_answer[1]
    return JSONResponse(
        {
            "job_id": request.path_params["job_id"],
            "overall_progress": snap["progress"],
            "total_files": snap["total_files"],
            "completed_files": snap["completed_files"],
            "failed_files": snap["failed_files"],
            "files": snap["files"],
        }
    )


async def cancel(request: Request) -> Response:
    _record(request)
    _Holder.api.cancelled.append(request.path_params["job_id"])
    return JSONResponse(snapshot("cancelled"))


async def files(request: Request) -> Response:
    _record(request)
    entries = _Holder.api.listing
    return JSONResponse(
        {
            "job_id": JOB,
            "total_files": len(entries),
            "files": entries,
            "download_urls": [e["download_url"] for e in entries],
        }
    )


async def download(request: Request) -> Response:
    _record(request)
    name = request.path_params["filename"]
    api = _Holder.api
    if name in api.redirects:
        return RedirectResponse(api.redirects[name], status_code=307)
    if name not in api.blobs:
        return _answer(envelope(404, "FILE_NOT_FOUND", f"no file {name}"))
    data = api.blobs[name]
    if name in api.truncate:
        cut = api.truncate[name]

        async def body():  # noqa: ANN202
            yield data[:cut]
            await asyncio.sleep(0.05)
            raise _Drop("dropped on purpose")

        return StreamingResponse(
            body(), headers={"content-length": str(len(data))}, media_type="model/gltf-binary"
        )
    return Response(data, media_type="model/gltf-binary")


async def models(request: Request) -> Response:
    _record(request)
    return JSONResponse(
        {
            "default": "test",
            "models": [
                {
                    "name": "test",
                    "title": "Test",
                    "description": "writes a cube",
                    "supported_formats": ["glb", "obj"],
                    "default_formats": ["glb"],
                    "options": [{"name": "seed", "type": "int", "default": 0}],
                }
            ],
            "limits": {"max_files": 25},
        }
    )


async def health(request: Request) -> Response:
    _record(request)
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/api/v1/upload/", upload, methods=["POST"]),
        Route("/api/v1/status/tasks/{job_id}/stream", stream),
        Route("/api/v1/status/tasks/{job_id}", status),
        Route("/api/v1/status/jobs/{job_id}/progress", progress),
        Route("/api/v1/jobs/{job_id}/cancel", cancel, methods=["POST"]),
        Route("/api/v1/download/{job_id}/all", files),
        Route("/api/v1/download/{job_id}/{filename}", download),
        Route("/api/v1/models/available", models),
        Route("/api/v1/health", health),
    ]
)
