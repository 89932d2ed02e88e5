"""The job service: what the routes delegate to. Creates jobs from staged uploads, enqueues their items,
reads snapshots and listings, cancels. Knows nothing of HTTP beyond building links."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from image2model.api.context import Services
from image2model.api.exports import export_entries, export_output
from image2model.api.security import Caller, LinkSigner
from image2model.api.store import ExportRecord, ItemRecord, JobRecord, JobState
from image2model.api.store.base import HistoryCursor, HistoryEntry, IdempotencyAnswer
from image2model.api.uploads import StagedUpload
from image2model.api.webhooks.records import Subscription
from image2model.api.webhooks.targets import WebhookTarget, allow_list, parse_target
from image2model.core import recipes
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
    JobPage,
    JobProgress,
    JobSnapshot,
    JobStatus,
    JobSummary,
    ModelsAvailable,
    UploadedFile,
    UploadResponse,
    WebhookConfig,
)

log = logging.getLogger("image2model.api")

RESERVED_FIELDS = ("generator", "formats", "multiview", "webhook_url", "webhook_events")
_TRUE = ("1", "true", "yes", "on")
PRESIGNED_URL_SECONDS = 300
"""Lifetime of the object-storage URL a download redirects to: the client follows it at once."""
_JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


AnswerRecorder = Callable[[UploadResponse], IdempotencyAnswer]
"""Builds the idempotency record of an upload's answer (see `api.idempotency.Idempotency.recorder`)."""


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

    def submit(
        self, caller: Caller, upload: StagedUpload, base_url: str, record: AnswerRecorder | None = None
    ) -> UploadResponse:
        """Validate a staged upload and turn it into a queued job. On any error nothing is kept. `record` turns the
        answer into an idempotency record stored with the job (an upload with an Idempotency-Key)."""
        try:
            if not upload.files:
                raise ValidationFailed(
                    "No images received; attach one or more files in the 'files' field.",
                    {"errors": [{"field": "files", "message": "no files"}]},
                )
            spec, options, formats = self._options(upload)
            multiview = self._multiview(upload, spec)
            webhook = self._webhook(upload)
            infos = self._inspect(upload)
            return self._create(
                caller, upload, spec, options, formats, infos, multiview, base_url, record, webhook
            )
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

    def _webhook(self, upload: StagedUpload) -> WebhookTarget | None:
        """The webhook the upload asks for, checked (form, events, and the addresses its host resolves to)."""
        return parse_target(
            upload.field("webhook_url"),
            upload.field("webhook_events"),
            allow_list(self.settings.webhook_allow_hosts),
        )

    def _store_job(
        self,
        job: JobRecord,
        items: list[ItemRecord],
        webhook: WebhookTarget | None,
        answer: IdempotencyAnswer | None,
    ) -> None:
        """Store the job (with its Idempotency-Key's answer), its webhook's subscription first: the deliverer must
        know of it by the job's first event. Either both are stored or neither."""
        if webhook is not None:
            subscription = Subscription(job.job_id, webhook.url, list(webhook.events), job.created_at)
            self.services.webhooks.subscribe(subscription)
        try:
            self.store.create_job(job, items, answer)
        except BaseException:
            if webhook is not None:
                self.services.webhooks.forget([job.job_id])
            raise

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
        record: AnswerRecorder | None,
        webhook: WebhookTarget | None = None,
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
            response = UploadResponse(
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
                webhook=WebhookConfig(url=webhook.url, events=list(webhook.events)) if webhook else None,
                message=f"{len(items)} file(s) uploaded; processing started",
                links=self.links(job_id, base_url),
            )
            self._store_job(job, items, webhook, record(response) if record is not None else None)
        except BaseException:
            self.blobs.delete_prefix(job_id)
            raise
        try:
            for item in items:
                self._enqueue(job_id, item.index, spec.queue)
        except Exception as exc:
            log.exception("event=enqueue_failed job_id=%s", job_id)
            self.store.delete([job_id])
            self.services.webhooks.forget([job_id])
            self.blobs.delete_prefix(job_id)
            raise NotReady("The job queue is not available right now; try again in a moment.") from exc
        log.info("event=job_created job_id=%s files=%d generator=%s", job_id, len(items), spec.name)
        return response

    # ---- reads ----------------------------------------------------------------------------------------

    def job(self, job_id: str, access: Access) -> JobState:
        """Load a job the caller may see; anyone else gets JOB_NOT_FOUND, as if it did not exist. A signed link is
        checked before it is known whether the job exists, so a bad token answers the same for every job id."""
        if access.caller.owner is None and not access.token:
            raise Unauthorized("An API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key'.")
        missing = JobNotFound(f"Job {job_id} was not found (or it belongs to another API key).")
        state = self.store.load(job_id) if _JOB_ID.match(job_id) else None
        if state is not None and access.caller.owner is not None and access.caller.owner == state.job.owner:
            return state
        if access.token:
            self.signer.verify(job_id, access.token)
        if state is None or not access.token:
            raise missing
        return state

    def links(self, job_id: str, base_url: str, token: str | None = None) -> dict[str, str]:
        token = token or self.signer.token(job_id)
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
            return download_url(base_url, job_id, name, token)

        entries: list[FileEntry] = []
        for item in state.items:
            # A remote model is listed as soon as it is fetched, while its other formats are still being made.
            if item.status != ItemStatus.COMPLETED and not (
                item.status == ItemStatus.PROCESSING and item.outputs
            ):
                continue
            previews = {o["format"]: url(o["filename"]) for o in item.outputs if o["role"] == "preview"}
            preview_url = previews.get("png") or next(iter(previews.values()), None)
            cutout = next((o for o in item.outputs if o["role"] == "cutout"), None)
            if cutout is not None:  # the generator's cut-out of the photo (an RGBA PNG), not a thumbnail
                previews["cutout"] = url(cutout["filename"])
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
                        metadata=self._with_commands(item.metadata, state, item, base_url),
                    )
                )
        entries += self._export_entries(state, url, base_url)
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
        exported = export_output(self.store.exports_of(state.job.job_id), filename)
        if exported is not None:
            source = self.blobs.serve(exported["key"], filename, exported["mime_type"], PRESIGNED_URL_SECONDS)
            return {**exported, "source": source}
        raise FileNotFound(f"Job {state.job.job_id} has no file called {filename!r}.")

    # ---- recipes and exports in the listing ----------------------------------------------------------

    def _with_commands(
        self,
        metadata: dict[str, Any],
        state: JobState,
        item: ItemRecord,
        base_url: str,
        export: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A model's metadata with `recipe.commands` (the strings that make it again from this server)."""
        recipe = metadata.get("recipe")
        if not isinstance(recipe, dict):
            return metadata
        spec = self.specs().get(state.job.generator)
        commands = recipes.commands(
            recipe,
            base_url=base_url,
            images=recipes.source_names(item.filename, item.inputs),
            formats=state.job.formats,
            auth=self.settings.auth_enabled,
            defaults={o.name: o.default for o in spec.options} if spec else {},
            export=export,
        )
        return {**metadata, "recipe": {**recipe, "commands": commands}}

    def _export_entries(self, state: JobState, url: Callable[[str], str], base_url: str) -> list[FileEntry]:
        """Listing entries of the job's completed exports, each with the commands that make it again."""
        items = {item.file_id: item for item in state.items}

        def metadata(out: dict[str, Any], record: ExportRecord) -> dict[str, Any]:
            item = items.get(out["file_id"])
            if item is None:
                return out["metadata"]
            export = {"formats": [out["format"]], **record.shaping}
            return self._with_commands(out["metadata"], state, item, base_url, export)

        return export_entries(self.store.exports_of(state.job.job_id), state, url, metadata)

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

    # ---- job API v1.1: history, waiting ----------------------------------------------------------------

    def history(
        self, caller: Caller, limit: int, status: JobStatus | None, cursor: str | None, base_url: str
    ) -> JobPage:
        """A page of the caller's jobs, newest first, and the cursor of the next page."""
        before = decode_cursor(cursor) if cursor else None
        entries = self.store.list_jobs(caller.owner or "", limit + 1, status=status, before=before)
        page = entries[:limit]
        return JobPage.model_construct(  # built from the store's typed records: nothing to validate
            jobs=[self.summary(entry, base_url) for entry in page],
            next_cursor=encode_cursor(page[-1].created_at, page[-1].job_id) if len(entries) > limit else None,
        )

    def summary(self, entry: HistoryEntry, base_url: str) -> JobSummary:
        """One line of the caller's history: the job, its first model's preview, its signed links."""
        token = self.signer.token(entry.job_id)
        preview = entry.preview
        return JobSummary.model_construct(
            job_id=entry.job_id,
            status=entry.status,
            created_at=entry.created_at,
            total_files=entry.total,
            generator=entry.generator,
            face_limit=entry.face_limit,
            preview_url=download_url(base_url, entry.job_id, preview, token) if preview else None,
            links=self.links(entry.job_id, base_url, token),
        )

    def waited(self, response: UploadResponse, state: JobState | None, base_url: str) -> UploadResponse:
        """The upload's answer after `Prefer: wait`: the job's status now and, once it ended, its files."""
        if state is None:
            return response
        files = self.listing(state, base_url).files if state.job.status.terminal else None
        return response.model_copy(update={"status": state.job.status.value, "files": files})


def download_url(base_url: str, job_id: str, filename: str, token: str) -> str:
    """The signed link of one of a job's files."""
    return f"{base_url.rstrip('/')}/api/v1/download/{job_id}/{quote(filename)}?token={token}"


def encode_cursor(created_at: float, job_id: str) -> str:
    """The opaque `next_cursor` after a job: its (created_at, job_id), base64url JSON."""
    raw = json.dumps([created_at, job_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> HistoryCursor:
    """The position a `next_cursor` names; VALIDATION_ERROR for anything this server did not hand out."""
    try:
        created, job_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(created, (int, float)) or isinstance(created, bool) or not isinstance(job_id, str):
            raise ValueError(cursor)
        return float(created), job_id
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error):
        raise ValidationFailed(
            "The cursor is not one this server handed out; pass the `next_cursor` of the previous page as it is.",
            {"errors": [{"field": "cursor", "message": "not a valid cursor"}]},
        ) from None


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
