"""The job/item domain model and the JSON shapes of the HTTP contract, shared by the API and the client."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class ItemStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (ItemStatus.COMPLETED, ItemStatus.FAILED, ItemStatus.CANCELLED)


class EventType(StrEnum):
    TASK_QUEUED = "task_queued"
    TASK_PROGRESS = "task_progress"
    FILE_UPDATE = "file_update"
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
    TASK_CANCELLED = "task_cancelled"
    QUEUE_POSITION = "queue_position"
    """Not stored and without an SSE `id:`: while a job waits, its stream says where it stands in the queue
    (`queue_position`, 1 = next) when that changes (every step within the first ten places, further back when
    it improves by a tenth). Its `seq` is the last stored event's; replays never repeat it."""

    @property
    def terminal(self) -> bool:
        return self in (EventType.TASK_COMPLETED, EventType.TASK_FAILED, EventType.TASK_CANCELLED)


class ExportStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (ExportStatus.COMPLETED, ExportStatus.FAILED)


EXPORT_FORMATS: tuple[str, ...] = ("glb", "obj", "stl", "ply", "3mf")
"""What `POST /jobs/{job_id}/exports` makes from a stored model."""
EXPORT_FACE_LIMIT = (12, 10_000_000)
EXPORT_HEIGHT_MM = (0.0, 100_000.0)
"""Exclusive lower, inclusive upper bound of `height_mm` (up to 100 m)."""
EXPORT_MAX_FILES = 1000
"""Most `files` one export request may name."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Event(_Model):
    """One event of a job's stream: `seq` is the SSE `id:`, `type` the SSE `event:`, `data` its JSON."""

    seq: int
    type: EventType
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.type.terminal


class UploadedFile(_Model):
    file_id: str
    filename: str
    file_size: int
    content_type: str
    status: str


class WebhookConfig(_Model):
    """The webhook a job was created with: where its events go and which events."""

    url: str
    events: list[str]


class UploadResponse(_Model):
    job_id: str
    task_id: str
    batch_id: str
    status: str
    total_files: int
    face_limit: int | None = None
    generator: str
    formats: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    multiview: bool = False
    webhook: WebhookConfig | None = None
    uploaded_files: list[UploadedFile]
    message: str
    links: dict[str, str] = Field(default_factory=dict)
    files: list[FileEntry] | None = None
    """Only with `Prefer: wait=N` once the job ended: the listing's entries (absent otherwise)."""


class FileProgress(_Model):
    file_id: str
    filename: str
    index: int
    status: ItemStatus
    progress: float
    message: str = ""
    error: str | None = None
    attempts: int = 0
    outputs: list[str] = Field(default_factory=list)


class JobProgress(_Model):
    job_id: str
    overall_progress: float
    total_files: int
    completed_files: int
    failed_files: int
    cancelled_files: int = 0
    files: list[FileProgress]


class JobSnapshot(_Model):
    job_id: str
    task_id: str
    batch_id: str
    status: JobStatus
    progress: float
    message: str = ""
    error: str | None = None
    generator: str
    face_limit: int | None = None
    formats: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    total_files: int
    completed_files: int
    failed_files: int
    cancelled_files: int = 0
    created_at: float
    updated_at: float
    files: list[FileProgress]
    links: dict[str, str] = Field(default_factory=dict)


class FileEntry(_Model):
    file_id: str
    source_filename: str
    filename: str
    format: str
    size: int
    mime_type: str
    created_time: float
    download_url: str
    preview_url: str | None = None
    previews: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class FileListing(_Model):
    job_id: str
    total_files: int
    files: list[FileEntry]
    download_urls: list[str]


class OptionInfo(_Model):
    name: str
    type: str
    default: Any = None
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: list[Any] | None = None


class GeneratorInfo(_Model):
    name: str
    title: str
    description: str
    type: str = "image_to_3d"
    supported_formats: list[str]
    default_formats: list[str]
    options: list[OptionInfo]
    max_images_per_item: int = 1


class ModelsAvailable(_Model):
    default: str
    models: list[GeneratorInfo]
    limits: dict[str, int]


class ExportRequest(BaseModel):
    """The body of `POST /jobs/{job_id}/exports`: what to make from the job's stored models."""

    model_config = ConfigDict(extra="forbid")

    formats: list[Literal["glb", "obj", "stl", "ply", "3mf"]] = Field(
        min_length=1, max_length=len(EXPORT_FORMATS), description="Formats to write (each once)."
    )
    face_limit: int | None = Field(
        None,
        ge=EXPORT_FACE_LIMIT[0],
        le=EXPORT_FACE_LIMIT[1],
        description="Most faces; the model is decimated to it and stays a closed solid.",
    )
    height_mm: float | None = Field(
        None,
        gt=EXPORT_HEIGHT_MM[0],
        le=EXPORT_HEIGHT_MM[1],
        description="Scale so the height along `up` is this many millimetres (files then in millimetres; GLB in "
        "metres). Without it the model keeps its unitless size (largest extent 1).",
    )
    up: Literal["y", "z"] = Field("y", description="`z` turns the Y-up model Z-up (printers, CAD).")
    origin: Literal["center", "bottom"] = Field(
        "center", description="`bottom`: the origin at the bottom centre (on the build plate)."
    )
    files: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None,
        min_length=1,
        max_length=EXPORT_MAX_FILES,
        description="`file_id`s of the job's listing to export; all completed ones when absent.",
    )

    def shaping(self) -> dict[str, Any]:
        """`metadata.export` of the files it makes."""
        return {
            "height_mm": self.height_mm,
            "up": self.up,
            "origin": self.origin,
            "face_limit": self.face_limit,
        }


class ExportResponse(_Model):
    """An export: 201 once its files are written, 202 while a worker is still at it."""

    export_id: str
    job_id: str
    status: ExportStatus
    formats: list[str]
    export: dict[str, Any] = Field(description="`{height_mm, up, origin, face_limit}` as applied.")
    files: list[FileEntry] = Field(default_factory=list, description="The new listing entries.")
    error: str | None = None
    created_at: float
    finished_at: float | None = None


class WebhookDelivery(_Model):
    """One event's delivery to a job's webhook. `webhook_id` (`<job_id>:<seq>`) is the `webhook-id` header every
    attempt carries: receivers de-duplicate on it. `status` is pending (will be tried again at
    `next_attempt_at`), delivered (a 2xx at `delivered_at`) or failed (given up after the retry window); times
    are Unix seconds."""

    webhook_id: str
    event: str
    status: str
    attempts: int
    last_status: int | None = None
    last_error: str | None = None
    created_at: float
    delivered_at: float | None = None
    next_attempt_at: float | None = None


class WebhookLog(_Model):
    """`GET /jobs/{job_id}/webhooks`: the job's webhook (null `url` without one) and its deliveries."""

    job_id: str
    url: str | None = None
    events: list[str] = Field(default_factory=list)
    deliveries: list[WebhookDelivery]


# ---- job history (GET /jobs) ----------------------------------------------------------------------------


class JobSummary(_Model):
    """One job of the caller's history: what a table of jobs shows, with the job's signed links."""

    job_id: str
    status: JobStatus
    created_at: float
    total_files: int
    generator: str
    face_limit: int | None = None
    preview_url: str | None = None
    links: dict[str, str] = Field(default_factory=dict)


class JobPage(_Model):
    """A page of the caller's jobs, newest first; `next_cursor` fetches the next page (None on the last)."""

    jobs: list[JobSummary]
    next_cursor: str | None = None
