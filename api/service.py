"""The job service: what the routes delegate to. Creates jobs from staged uploads, enqueues their items,
reads snapshots and listings, cancels. Knows nothing of HTTP beyond building links."""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from image2model.api.context import Services
from image2model.api.security import Caller, LinkSigner
from image2model.api.store import ItemRecord, JobRecord, JobState
from image2model.api.uploads import StagedUpload
from image2model.core.errors import (
    FileNotFound,
    Image2ModelError,
    JobNotFound,
    NotReady,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from image2model.core.generators import GeneratorSpec, generator_classes
from image2model.core.images import ImageInfo, inspect_image
from image2model.core.models import (
    FileEntry,
    FileListing,
    FileProgress,
    ItemStatus,
    JobProgress,
    JobSnapshot,
    ModelsAvailable,
    UploadedFile,
    UploadResponse,
)

log = logging.getLogger("image2model.api")

RESERVED_FIELDS = ("generator", "formats", "multiview")
_TRUE = ("1", "true", "yes", "on")
PRESIGNED_URL_SECONDS = 300
"""Lifetime of the object-storage URL a download redirects to: the client follows it at once."""
_JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass
class Access:
    """How a request may reach a job: as its owner, or through a signed link."""

    caller: Caller
    token: str | None = None


def output_basename(filename: str, taken: set[str]) -> str:
    """A file-system and URL safe stem for an item's outputs, unique within the job."""
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[:60] or "model"
    name, n = base, 2
    while name.lower() in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name.lower())
    return name


class JobService:
    def __init__(self, services: Services, signer: LinkSigner, enqueue, revoke) -> None:
        self.services = services
        self.settings = services.settings
        self.store = services.store
        self.blobs = services.blobs
        self.signer = signer
        self._enqueue = enqueue
        self._revoke = revoke

    # ---- generators -----------------------------------------------------------------------------------

    def specs(self) -> dict[str, GeneratorSpec]:
        return {name: cls.spec for name, cls in generator_classes(self.settings).items()}

    def models_available(self) -> ModelsAvailable:
        specs = self.specs()
        return ModelsAvailable.model_validate(
            {
                "default": self.settings.default_generator,
                "models": [s.describe() for s in specs.values()],
                "limits": {
                    "max_files": self.settings.max_files,
                    "max_file_size": self.settings.max_file_size,
                    "max_image_pixels": self.settings.max_image_pixels,
                },
            }
        )

    def _options(self, upload: StagedUpload) -> tuple[GeneratorSpec, dict[str, Any], list[str]]:
        specs = self.specs()
        name = (upload.field("generator") or "").strip() or self.settings.default_generator
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(sorted(specs)) or "none"
            raise ValidationFailed(
                f"Unknown generator {name!r}; this server offers: {known}.",
                {"errors": [{"field": "generator", "message": f"unknown generator {name!r}"}]},
            )
        raw_formats = ",".join(upload.fields.get("formats", [])).split(",")
        raw = {k: v[-1] for k, v in upload.fields.items() if k not in RESERVED_FIELDS}
        options, formats = spec.validate(raw, raw_formats)
        return spec, options, formats

    # ---- submit ---------------------------------------------------------------------------------------

    def submit(self, caller: Caller, upload: StagedUpload, base_url: str) -> UploadResponse:
        """Validate a staged upload and turn it into a queued job. On any error nothing is kept."""
        try:
            if not upload.files:
                raise ValidationFailed(
                    "No images received; attach one or more files in the 'files' field.",
                    {"errors": [{"field": "files", "message": "no files"}]},
                )
            spec, options, formats = self._options(upload)
            multiview = self._multiview(upload, spec)
            infos = self._inspect(upload)
            return self._create(caller, upload, spec, options, formats, infos, multiview, base_url)
        finally:
            upload.discard()

    def _multiview(self, upload: StagedUpload, spec: GeneratorSpec) -> bool:
        """Whether the files are views of one object (one item), checked against the generator."""
        raw = (upload.field("multiview") or "").strip().lower()
        if raw in ("", "0", "false", "no", "off"):
            return False
        if raw not in _TRUE:
            raise ValidationFailed(
                f"multiview must be true or false, got {raw!r}.",
                {"errors": [{"field": "multiview", "message": "must be true or false"}]},
            )
        most = spec.max_images_per_item
        if most < 2:
            raise ValidationFailed(
                f"The generator '{spec.name}' makes a model from one photo; it does not take several views.",
                {"errors": [{"field": "multiview", "message": "not supported by this generator"}]},
            )
        if not 2 <= len(upload.files) <= most:
            raise ValidationFailed(
                f"A multi-view upload needs 2 to {most} views of one object; got {len(upload.files)}.",
                {"errors": [{"field": "files", "message": f"2..{most} views for multiview"}]},
            )
        return True

    def _inspect(self, upload: StagedUpload) -> list[ImageInfo]:
        infos: list[ImageInfo] = []
        failures: list[Image2ModelError] = []
        for staged in upload.files:
            try:
                infos.append(
                    inspect_image(staged.path, staged.filename, self.settings.max_image_pixels, staged.size)
                )
            except Image2ModelError as exc:
                failures.append(exc)
        if not failures:
            return infos
        errors = [e for f in failures for e in f.details.get("errors", [])]
        kinds = {type(f) for f in failures}
        if len(kinds) == 1 and len(failures) == 1:
            raise failures[0]
        cls = kinds.pop() if len(kinds) == 1 else ValidationFailed
        if cls is UnsupportedMediaType:
            message = f"{len(failures)} file(s) are not JPEG, PNG or WebP images: " + ", ".join(
                e["field"] for e in errors
            )
        else:
            message = "; ".join(f.message for f in failures)
        raise cls(message, {"errors": errors})

    def _create(
        self,
        caller: Caller,
        upload: StagedUpload,
        spec: GeneratorSpec,
        options: dict[str, Any],
        formats: list[str],
        infos: list[ImageInfo],
        multiview: bool,
        base_url: str,
    ) -> UploadResponse:
        job_id = str(uuid.uuid4())
        t = time.time()
        taken: set[str] = set()
        items: list[ItemRecord] = []
        try:
            keys, sizes = [], []
            for n, (staged, info) in enumerate(zip(upload.files, infos, strict=True)):
                staged.path.rename(upload.staging / f"{n}{info.extension}")
                keys.append(f"{job_id}/in/{n}{info.extension}")
                sizes.append(staged.size)
            self.blobs.adopt_dir(f"{job_id}/in", upload.staging)
            groups = [list(range(len(keys)))] if multiview else [[n] for n in range(len(keys))]
            for index, members in enumerate(groups):
                first = upload.files[members[0]]
                items.append(
                    ItemRecord(
                        index=index,
                        file_id=str(uuid.uuid4()),
                        filename=first.filename,
                        basename=output_basename(first.filename, taken),
                        inputs=[keys[n] for n in members],
                        content_type=infos[members[0]].content_type,
                        size=sum(sizes[n] for n in members),
                    )
                )
            face_limit = options.get("face_limit")
            job_options = {k: v for k, v in options.items() if k != "face_limit"}
            job = JobRecord(
                job_id=job_id,
                owner=caller.owner or "",
                generator=spec.name,
                face_limit=face_limit,
                formats=formats,
                options=job_options,
                total=len(items),
                created_at=t,
                updated_at=t,
            )
            self.store.create_job(job, items)
        except BaseException:
            self.blobs.delete_prefix(job_id)
            raise
        try:
            for item in items:
                self._enqueue(job_id, item.index, spec.queue)
        except Exception as exc:
            log.exception("event=enqueue_failed job_id=%s", job_id)
            self.store.delete([job_id])
            self.blobs.delete_prefix(job_id)
            raise NotReady("The job queue is not available right now; try again in a moment.") from exc
        log.info("event=job_created job_id=%s files=%d generator=%s", job_id, len(items), spec.name)
        return UploadResponse(
            job_id=job_id,
            task_id=job_id,
            batch_id=job_id,
            status="queued",
            total_files=len(items),
            face_limit=face_limit,
            generator=spec.name,
            formats=formats,
            options=job_options,
            uploaded_files=[
                UploadedFile(
                    file_id=items[0 if multiview else n].file_id,
                    filename=staged.filename,
                    file_size=sizes[n],
                    content_type=infos[n].content_type,
                    status="queued",
                )
                for n, staged in enumerate(upload.files)
            ],
            multiview=multiview,
            message=f"{len(items)} file(s) uploaded; processing started",
            links=self.links(job_id, base_url),
        )

    # ---- reads ----------------------------------------------------------------------------------------

    def job(self, job_id: str, access: Access) -> JobState:
        """Load a job the caller may see; anyone else gets JOB_NOT_FOUND, as if it did not exist."""
        if access.caller.owner is None and not access.token:
            raise Unauthorized("An API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key'.")
        missing = JobNotFound(f"Job {job_id} was not found (or it belongs to another API key).")
        if not _JOB_ID.match(job_id):
            raise missing
        state = self.store.load(job_id)
        if state is None:
            raise missing
        if access.caller.owner is not None and access.caller.owner == state.job.owner:
            return state
        if access.token:
            self.signer.verify(job_id, access.token)
            return state
        raise missing

    def links(self, job_id: str, base_url: str) -> dict[str, str]:
        token = self.signer.token(job_id)
        api = f"{base_url.rstrip('/')}/api/v1"
        q = f"?token={token}"
        return {
            "status": f"{api}/status/tasks/{job_id}{q}",
            "stream": f"{api}/status/tasks/{job_id}/stream{q}",
            "progress": f"{api}/status/jobs/{job_id}/progress{q}",
            "files": f"{api}/download/{job_id}/all{q}",
        }

    def snapshot(self, state: JobState, base_url: str) -> JobSnapshot:
        job = state.job
        counts = state.counts()
        return JobSnapshot(
            job_id=job.job_id,
            task_id=job.job_id,
            batch_id=job.job_id,
            status=job.status,
            progress=job.progress,
            message=job.message,
            error=job.error,
            generator=job.generator,
            face_limit=job.face_limit,
            formats=job.formats,
            options=job.options,
            total_files=job.total,
            completed_files=counts[ItemStatus.COMPLETED],
            failed_files=counts[ItemStatus.FAILED],
            cancelled_files=counts[ItemStatus.CANCELLED],
            created_at=job.created_at,
            updated_at=job.updated_at,
            files=_file_progress(state),
            links=self.links(job.job_id, base_url),
        )

    def progress(self, state: JobState) -> JobProgress:
        counts = state.counts()
        return JobProgress(
            job_id=state.job.job_id,
            overall_progress=state.job.progress,
            total_files=state.job.total,
            completed_files=counts[ItemStatus.COMPLETED],
            failed_files=counts[ItemStatus.FAILED],
            cancelled_files=counts[ItemStatus.CANCELLED],
            files=_file_progress(state),
        )

    def listing(self, state: JobState, base_url: str) -> FileListing:
        job_id = state.job.job_id
        token = self.signer.token(job_id)

        def url(name: str) -> str:
            return f"{base_url.rstrip('/')}/api/v1/download/{job_id}/{quote(name)}?token={token}"

        entries: list[FileEntry] = []
        for item in state.items:
            # A remote model is listed as soon as it is fetched, while its other formats are still being made.
            if item.status != ItemStatus.COMPLETED and not (
                item.status == ItemStatus.PROCESSING and item.outputs
            ):
                continue
            previews = {o["format"]: url(o["filename"]) for o in item.outputs if o["role"] == "preview"}
            preview_url = previews.get("png") or next(iter(previews.values()), None)
            for out in item.outputs:
                if out["role"] != "model":
                    continue
                entries.append(
                    FileEntry(
                        file_id=item.file_id,
                        source_filename=item.filename,
                        filename=out["filename"],
                        format=out["format"],
                        size=out["size"],
                        mime_type=out["mime_type"],
                        created_time=item.finished_at or state.job.updated_at,
                        download_url=url(out["filename"]),
                        preview_url=preview_url,
                        previews=previews,
                        metadata=item.metadata,
                    )
                )
        return FileListing(
            job_id=job_id,
            total_files=len(entries),
            files=entries,
            download_urls=[e.download_url for e in entries],
        )

    def output(self, state: JobState, filename: str) -> dict[str, Any]:
        """The stored output called `filename`, with its `source`: a local path to send, or a presigned URL."""
        for item in state.items:
            for out in item.outputs:
                if out["filename"] == filename:
                    source = self.blobs.serve(out["key"], filename, out["mime_type"], PRESIGNED_URL_SECONDS)
                    return {**out, "source": source}
        raise FileNotFound(f"Job {state.job.job_id} has no file called {filename!r}.")

    # ---- cancel ---------------------------------------------------------------------------------------

    def cancel(self, state: JobState) -> JobState:
        job_id = state.job.job_id
        for index in self.store.cancel(job_id):
            try:
                self._revoke(job_id, index)
            except Exception:
                log.warning("event=revoke_failed job_id=%s index=%s", job_id, index)
        log.info("event=job_cancel_requested job_id=%s", job_id)
        fresh = self.store.load(job_id)
        assert fresh is not None
        return fresh


def _file_progress(state: JobState) -> list[FileProgress]:
    return [
        FileProgress(
            file_id=i.file_id,
            filename=i.filename,
            index=i.index,
            status=i.status,
            progress=i.progress,
            message=i.message,
            error=i.error,
            attempts=i.attempt,
            outputs=i.output_names,
        )
        for i in state.items
    ]
