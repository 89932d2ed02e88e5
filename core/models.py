"""The job/item domain model and the JSON shapes of the HTTP contract, shared by the API and the client."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

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
