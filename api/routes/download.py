"""File listing and downloads of a job's results."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from image2model.api.deps import AppState, access, app_state, base_url
from image2model.api.downloads import file_response
from image2model.api.service import Access
from image2model.core.generators.base import MIME_TYPES
from image2model.core.models import FileListing

router = APIRouter(prefix="/api/v1", tags=["files"])

_MEDIA_TYPES = sorted(set(MIME_TYPES.values()))
"""What a download can be: every output format's and preview's media type."""


@router.get(
    "/download/{job_id}/all", response_model=FileListing, responses={404: {"description": "JOB_NOT_FOUND"}}
)
@router.head(
    "/download/{job_id}/all", response_model=FileListing, responses={404: {"description": "JOB_NOT_FOUND"}}
)
async def list_files(
    job_id: str, request: Request, state: AppState = Depends(app_state), how: Access = Depends(access)
) -> FileListing:
    """Every model file of the job's completed items, with signed download and preview links (HEAD: headers only)."""
    return state.service.listing(state.service.job(job_id, how), base_url(request))


_DOWNLOAD_RESPONSES: dict[int | str, dict] = {
    200: {
        "description": "The file, as an attachment (HEAD: its headers only)",
        "content": {mime: {"schema": {"type": "string", "format": "binary"}} for mime in _MEDIA_TYPES},
        "headers": {
            "ETag": {"schema": {"type": "string"}},
            "Accept-Ranges": {"schema": {"type": "string"}},
        },
    },
    206: {
        "description": "The requested Range of the file",
        "content": {
            mime: {"schema": {"type": "string", "format": "binary"}}
            for mime in (*_MEDIA_TYPES, "multipart/byteranges")
        },
    },
    304: {"description": "Not Modified: the If-None-Match matches the file's ETag"},
    307: {
        "description": "With object storage: a presigned URL of the file, valid for a few minutes",
        "headers": {"Location": {"schema": {"type": "string"}}},
    },
    400: {"description": "VALIDATION_ERROR: a malformed Range header"},
    404: {"description": "JOB_NOT_FOUND / FILE_NOT_FOUND"},
    416: {"description": "RANGE_NOT_SATISFIABLE: the Range starts past the end of the file"},
}


@router.get("/download/{job_id}/{filename}", response_class=FileResponse, responses=_DOWNLOAD_RESPONSES)
@router.head("/download/{job_id}/{filename}", response_class=FileResponse, responses=_DOWNLOAD_RESPONSES)
async def download(
    job_id: str,
    filename: str,
    request: Request,
    state: AppState = Depends(app_state),
    how: Access = Depends(access),
) -> Response:
    """One output file (Range requests, ETag and If-None-Match supported), or a redirect to it in object storage."""
    out = state.service.output(state.service.job(job_id, how), filename)
    if isinstance(out["source"], str):
        return RedirectResponse(out["source"], status_code=307, headers={"Cache-Control": "no-store"})
    return await file_response(
        request,
        out["source"],
        out["mime_type"],
        filename,
        {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
