"""POST /upload/: stream images to staging, validate, create a job."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Depends, Request

from image2model.api.deps import AppState, app_state, base_url, rate_limited_uploader
from image2model.api.security import Caller
from image2model.api.uploads import receive_upload
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
                    },
                    "additionalProperties": {
                        "type": "string",
                        "description": "Generator options listed by /models/available.",
                    },
                }
            }
        },
    }
}

_ERRORS = {
    400: {
        "description": "VALIDATION_ERROR: bad option, damaged image or refused webhook_url (details.errors per "
        "file/field)"
    },
    401: {"description": "UNAUTHORIZED"},
    413: {"description": "FILE_TOO_LARGE / TOO_MANY_FILES"},
    415: {"description": "UNSUPPORTED_MEDIA_TYPE: not a JPEG, PNG or WebP image"},
    422: {"description": "VALIDATION_ERROR: not a multipart body"},
    429: {"description": "RATE_LIMITED (see Retry-After)"},
}


@router.post("/upload/", response_model=UploadResponse, openapi_extra=_BODY, responses=_ERRORS)
@router.post("/upload", response_model=UploadResponse, include_in_schema=False)
async def upload(
    request: Request, state: AppState = Depends(app_state), who: Caller = Depends(rate_limited_uploader)
) -> UploadResponse:
    """Create one job with one item per image. The body streams to disk; a rejected request leaves nothing."""
    settings = state.services.settings
    staged = await receive_upload(
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
        settings.staging_dir,
        settings.max_files,
        settings.max_file_size,
    )
    return await anyio.to_thread.run_sync(
        state.service.submit, who, staged, base_url(request), limiter=_SUBMIT_THREADS
    )
