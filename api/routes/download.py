"""File listing and downloads of a job's results."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from image2model.api.deps import AppState, access, app_state, base_url
from image2model.api.service import Access
from image2model.core.models import FileListing

router = APIRouter(prefix="/api/v1", tags=["files"])


@router.get(
    "/download/{job_id}/all", response_model=FileListing, responses={404: {"description": "JOB_NOT_FOUND"}}
)
async def list_files(
    job_id: str, request: Request, state: AppState = Depends(app_state), how: Access = Depends(access)
) -> FileListing:
    """Every model file of the job's completed items, with signed download and preview links."""
    return state.service.listing(state.service.job(job_id, how), base_url(request))


@router.get(
    "/download/{job_id}/{filename}",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        307: {"description": "With object storage: a presigned URL of the file, valid for a few minutes"},
        404: {"description": "JOB_NOT_FOUND / FILE_NOT_FOUND"},
    },
)
async def download(
    job_id: str, filename: str, state: AppState = Depends(app_state), how: Access = Depends(access)
) -> Response:
    """One output file (Range requests and ETag supported), or a redirect to it in object storage."""
    out = state.service.output(state.service.job(job_id, how), filename)
    if isinstance(out["source"], str):
        return RedirectResponse(out["source"], status_code=307, headers={"Cache-Control": "no-store"})
    return FileResponse(
        out["source"],
        media_type=out["mime_type"],
        filename=filename,
        content_disposition_type="attachment",
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
