"""POST /upload/: stream images to staging, validate, create a job."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from image2model.api.deps import AppState, app_state, base_url, prefer_wait, rate_limited_uploader
from image2model.api.idempotency import Answer, IdempotencyKeyDep, fingerprint
from image2model.api.security import Caller
from image2model.api.uploads import StagedUpload, receive_upload
from image2model.api.waiting import wait_until_ended
from image2model.core.models import UploadResponse

router = APIRouter(prefix="/api/v1", tags=["jobs"])

# Validation and storage of uploads run in threads (image decoding releases the GIL); a few are enough to keep
# both cores busy, more only queue on the store's write lock.
_SUBMIT_THREADS = anyio.CapacityLimiter(4)

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "minItems": 1,
                            "description": "1..25 JPEG/PNG/WebP images (recognised by content), one item each.",
                        },
                        "face_limit": {"type": "integer", "description": "Most faces of each model."},
                        "generator": {
                            "type": "string",
                            "description": "Generator name from /models/available.",
                        },
                        "formats": {
                            "type": "string",
                            "description": "Comma-separated output formats, e.g. glb,obj.",
                        },
                        "webhook_url": {
                            "type": "string",
                            "format": "uri",
                            "description": "http(s) URL that receives the job's events as signed POSTs "
                            "(Standard Webhooks); loopback, private and link-local targets are refused.",
                        },
                        "webhook_events": {
                            "type": "string",
                            "description": "Comma-separated event names to send (default: task_completed,"
                            "task_failed,task_cancelled).",
                        },
                        "multiview": {
                            "type": "string",
                            "enum": ["true", "false"],
                            "description": "true: the 2..4 files are views of one object (front, left, back, right).",
                        },
                    },
                }
            }
        },
    }
}

_ERRORS = {
    200: {
        "description": "The job was created (or, with an Idempotency-Key already used for this request, the first "
        "answer again). With `Prefer: wait=N`: the job as it stands once it ended or after N seconds, with `files` "
        "once it ended.",
        "headers": {
            "Idempotent-Replayed": {
                "description": "`true` when this is the stored answer of an earlier request with the same key",
                "schema": {"type": "string", "enum": ["true"]},
            },
            "Preference-Applied": {
                "description": "`wait=N` when a `Prefer: wait=N` was honoured",
                "schema": {"type": "string"},
            },
        },
    },
    400: {
        "description": "VALIDATION_ERROR: bad option, damaged image or refused webhook_url (details.errors per "
        "file/field)"
    },
    409: {
        "description": "IDEMPOTENCY_IN_PROGRESS: the first request with this Idempotency-Key is still running"
    },
    413: {"description": "FILE_TOO_LARGE / TOO_MANY_FILES"},
    415: {"description": "UNSUPPORTED_MEDIA_TYPE: not a JPEG, PNG or WebP image"},
    422: {
        "description": "VALIDATION_ERROR: not a multipart body, or a bad Idempotency-Key / Prefer header; "
        "IDEMPOTENCY_MISMATCH: the key was used with a different request"
    },
    429: {"description": "RATE_LIMITED (see Retry-After)"},
}


@router.post("/upload/", response_model=UploadResponse, openapi_extra=_BODY, responses=_ERRORS)
@router.post("/upload", response_model=UploadResponse, include_in_schema=False)
async def upload(
    request: Request,
    key: IdempotencyKeyDep = None,
    wait: int | None = Depends(prefer_wait),
    state: AppState = Depends(app_state),
    who: Caller = Depends(rate_limited_uploader),
) -> Response:
    """Create one job with one item per image. The body streams to disk; a rejected request leaves nothing."""
    settings = state.services.settings
    staged = await receive_upload(
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
        settings.staging_dir,
        settings.max_files,
        settings.max_file_size,
        digest=key is not None,
    )
    base = base_url(request)
    try:
        answer = await anyio.to_thread.run_sync(
            _submit, state, who, staged, base, key, limiter=_SUBMIT_THREADS
        )
    finally:
        staged.discard()
    headers = answer.headers()
    body = answer.body
    if wait is not None:
        job = await wait_until_ended(state.hub, state.services.store, answer.job_id, wait)
        waited = state.service.waited(UploadResponse.model_validate(body), job, base)
        body = waited.model_dump(mode="json", exclude={"files"} if waited.files is None else None)
        headers["Preference-Applied"] = f"wait={wait}"
    return JSONResponse(body, status_code=answer.status_code, headers=headers)


def _submit(state: AppState, who: Caller, staged: StagedUpload, base: str, key: str | None) -> Answer:
    """Create the job, once per Idempotency-Key and request when a key was sent (runs in a worker thread)."""

    owner = who.owner or ""
    fp = fingerprint("POST /api/v1/upload/", staged.request_parts()) if key is not None else ""
    record = state.idempotency.recorder(owner, key, fp, 200) if key is not None else None

    def create() -> Answer:
        response = state.service.submit(who, staged, base, record)
        body = response.model_dump(mode="json", exclude={"files"})
        return Answer(200, body, response.job_id, recorded=record is not None)

    return state.idempotency.run_sync(owner, key, fp, create)
