"""The bot's pure logic, free of Discord and of I/O: attachment checks, a job's view → progress text, edit
throttling, the attach-or-link decision, component custom ids, per-user limits and the wording of API errors."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from image2model.core.client.jobview import JobView
from image2model.core.models import ItemStatus, JobStatus

# What the API recognises by content; Discord's declared type is checked first so nothing else is fetched.
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
FORMATS = ("glb", "obj", "stl", "ply")
# Room left in an upload for the JSON payload and multipart framing.
UPLOAD_MARGIN = 64 * 1024


# --- attachments ------------------------------------------------------------------------------------------


def attachment_problem(filename: str, content_type: str | None, size: int, max_size: int) -> str | None:
    """Why an attachment cannot be used (a sentence for the user), or None when it can."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind not in IMAGE_TYPES:
        shown = kind or "an unknown type"
        return f"`{filename}` is {shown}; attach a PNG, JPEG or WebP photo."
    if size <= 0:
        return f"`{filename}` is empty."
    if size > max_size:
        return f"`{filename}` is {human_size(size)}; photos up to {human_size(max_size)} are accepted."
    return None


def human_size(size: float) -> str:
    """1536 → '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


# --- progress ---------------------------------------------------------------------------------------------


class Stage(StrEnum):
    QUEUED = "queued"
    CUTTING_OUT = "cutting out"
    SHAPING = "shaping"
    TEXTURING = "texturing"
    EXPORTING = "exporting"
    GENERATING = "generating"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Generator progress messages (the local generator's words, then others') mapped to the user's stages.
_STAGE_WORDS: tuple[tuple[str, Stage], ...] = (
    ("reading", Stage.CUTTING_OUT),
    ("cutting", Stage.CUTTING_OUT),
    ("background", Stage.CUTTING_OUT),
    ("shaping", Stage.SHAPING),
    ("checking", Stage.TEXTURING),  # the local generator checks the textured model before exporting it
    ("textur", Stage.TEXTURING),
    ("export", Stage.EXPORTING),
    ("render", Stage.EXPORTING),
    ("preview", Stage.EXPORTING),
    ("turntable", Stage.EXPORTING),
    ("done", Stage.EXPORTING),
)

_STAGE_TEXT = {
    Stage.CUTTING_OUT: "✂️ Cutting out the subject…",
    Stage.SHAPING: "🧱 Shaping the model…",
    Stage.TEXTURING: "🎨 Texturing…",
    Stage.EXPORTING: "📦 Exporting and rendering the preview…",
    Stage.GENERATING: "⚙️ Generating…",
    Stage.RETRYING: "🔁 The worker stopped; trying again…",
    Stage.COMPLETED: "✅ Done.",
    Stage.FAILED: "❌ Failed.",
    Stage.CANCELLED: "🛑 Cancelled.",
}
_ENDED = {
    JobStatus.COMPLETED: Stage.COMPLETED,
    JobStatus.FAILED: Stage.FAILED,
    JobStatus.CANCELLED: Stage.CANCELLED,
}


def stage_for(message: str) -> Stage | None:
    """The stage a generator's progress message belongs to, or None when it names none."""
    lowered = message.lower()
    for word, stage in _STAGE_WORDS:
        if word in lowered:
            return stage
    return None


def stage_text(stage: Stage, position: int | None = None) -> str:
    """The progress line for a stage. It holds no percentage, so it changes only when the stage does."""
    if stage == Stage.QUEUED:
        return f"⏳ Queued (position {position})…" if position else "⏳ Queued…"
    return _STAGE_TEXT[stage]


def job_stage(view: JobView) -> Stage:
    """The stage a job is at: how it ended, waiting, or what the file being processed is doing."""
    if view.finished:
        return _ENDED[view.status]
    if view.status == JobStatus.QUEUED:
        return Stage.QUEUED
    current = view.current
    if current is not None:
        return stage_for(current.stage) or Stage.GENERATING
    if any(f.status == ItemStatus.QUEUED and f.stage.startswith("retrying") for f in view.files):
        return Stage.RETRYING
    if view.files and view.done == len(view.files):
        return Stage.EXPORTING  # every file made: the job's own end follows in the same breath
    return Stage.GENERATING


def progress_text(view: JobView) -> str:
    """The reply's progress line for a job."""
    return stage_text(job_stage(view), view.queue_position)


@dataclass
class EditThrottle:
    """Decides when a reply may be edited: only for new text, and at most once per `interval` seconds."""

    interval: float
    last_text: str | None = None
    last_at: float | None = None

    def wait_for(self, text: str, now: float) -> float | None:
        """None: nothing to send (text already shown); 0: send now; >0: seconds to wait before sending."""
        if text == self.last_text:
            return None
        if self.last_at is None:
            return 0.0
        return max(0.0, self.last_at + self.interval - now)

    def sent(self, text: str, now: float) -> None:
        self.last_text, self.last_at = text, now


# --- the result -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """What the final message carries: the preview image attached, the model attached or linked."""

    attach_preview: bool
    attach_model: bool

    @property
    def link_model(self) -> bool:
        return not self.attach_model


def choose_delivery(
    model_size: int, preview_size: int | None, limit: int, margin: int = UPLOAD_MARGIN
) -> Delivery:
    """Attach what fits in `limit` (the interaction's `filesize_limit`), the preview first: Discord cannot show
    a model inline, so the turntable is what people see; the model goes as a link when it does not fit too."""
    budget = limit - margin
    attach_preview = preview_size is not None and 0 < preview_size <= budget
    used = preview_size if attach_preview and preview_size is not None else 0
    return Delivery(attach_preview, 0 < model_size <= budget - used)


def pick_preview(previews: Iterable[str]) -> str | None:
    """The kind of preview to show (of those made): the animated GIF turntable, else a still."""
    made = set(previews)
    return next((kind for kind in ("gif", "png", "webp") if kind in made), None)


def stats_fields(
    metadata: dict[str, Any], fmt: str, size: int, seconds: float | None
) -> list[tuple[str, str]]:
    """(name, value) pairs for the result embed, from the entry's `metadata` and the file."""
    fields: list[tuple[str, str]] = []
    if isinstance(metadata.get("faces"), int):
        fields.append(("Faces", f"{metadata['faces']:,}"))
    if isinstance(metadata.get("vertices"), int):
        fields.append(("Vertices", f"{metadata['vertices']:,}"))
    if isinstance(metadata.get("watertight"), bool):
        fields.append(("Watertight", "yes" if metadata["watertight"] else "no"))
    fields.append(("File", f"{fmt.upper()}, {human_size(size)}"))
    if seconds is not None:
        fields.append(("Time", f"{seconds:.1f} s"))
    return fields


def face_limit_presets(current: int | None, minimum: int, maximum: int) -> list[int]:
    """Other face limits offered by the 'run again' menu: a few round numbers in range, not the current one."""
    candidates = (500, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000)
    return [n for n in candidates if minimum <= n <= maximum and n != current][:6]


def fit_count(sizes: Iterable[int], budget: int) -> int:
    """How many of the files (in order) fit together in `budget` bytes."""
    used = count = 0
    for size in sizes:
        if size <= 0 or used + size > budget:
            break
        used += size
        count += 1
    return count


# --- exports ----------------------------------------------------------------------------------------------

EXPORT_FORMATS = ("stl", "3mf", "obj", "ply", "glb")
PRINT = "print"
"""The export menu's printing preset: STL in millimetres, `PRINT_HEIGHT_MM` tall, Z up, origin on the plate."""
PRINT_HEIGHT_MM = 80
FACE_BUDGETS = (0, 50_000, 20_000, 5_000, 1_000)
"""The export menu's face budgets; 0 keeps every face of the stored model."""


@dataclass(frozen=True)
class ExportChoice:
    """What the export menu asks the exports endpoint for."""

    formats: list[str]
    face_limit: int | None = None
    height_mm: float | None = None
    up: str | None = None
    origin: str | None = None


def export_choice(kind: str, faces: int) -> ExportChoice:
    """The request for a menu entry (`print` or a format) and a face budget (0: all faces)."""
    budget = faces or None
    if kind == PRINT:
        return ExportChoice(["stl"], budget, PRINT_HEIGHT_MM, "z", "bottom")
    if kind not in EXPORT_FORMATS:
        raise ValueError(f"unknown export {kind!r}")
    return ExportChoice([kind], budget)


def export_label(kind: str) -> str:
    """The menu's words for an entry."""
    if kind == PRINT:
        return f"For printing: STL, mm ({PRINT_HEIGHT_MM} mm tall), Z up"
    return "3MF (printers, colour)" if kind == "3mf" else kind.upper()


def budget_label(faces: int) -> str:
    return "All faces" if faces == 0 else f"{faces:,} faces"


# --- component custom ids ---------------------------------------------------------------------------------

# `i2m:<action>:<job_id>:<owner_id>[:<arg>]`; job ids are the API's (letters, digits, '-', '_'); ≤100 chars.
ACTIONS = ("fmt", "rerun", "del", "exp")
JOB_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
_OWNER = r"(?P<owner>[0-9]{1,20})"


def custom_id_template(action: str) -> str:
    """The regex `DynamicItem` templates use for one action (named groups `job` and `owner`)."""
    return rf"i2m:{action}:(?P<job>{JOB_ID_PATTERN}):{_OWNER}"


EXPORT_TEMPLATE = rf"i2m:xf:(?P<job>{JOB_ID_PATTERN}):{_OWNER}:(?P<kind>{'|'.join((PRINT, *EXPORT_FORMATS))}):(?P<faces>[0-9]{{1,7}})"
"""A face-budget button of the export menu: job, requester, entry (`print` or a format), budget."""
VIEWS_TEMPLATE = rf"i2m:mv:(?P<job>{JOB_ID_PATTERN}):{_OWNER}:(?P<mode>one|each)"
"""The multi-view choice of a `/model` with several photos (`job` is the pending request's id)."""
PICK_TEMPLATE = rf"i2m:pick:{_OWNER}"
"""`/models`' menu of the requester's models."""


def export_custom_id(job_id: str, owner_id: int, kind: str, faces: int) -> str:
    return _checked(f"i2m:xf:{job_id}:{owner_id}:{kind}:{faces}", EXPORT_TEMPLATE)


def views_custom_id(pending_id: str, owner_id: int, mode: str) -> str:
    return _checked(f"i2m:mv:{pending_id}:{owner_id}:{mode}", VIEWS_TEMPLATE)


def pick_custom_id(owner_id: int) -> str:
    return _checked(f"i2m:pick:{owner_id}", PICK_TEMPLATE)


def _checked(value: str, template: str) -> str:
    if len(value) > 100 or not re.fullmatch(template, value):
        raise ValueError(f"{value!r} cannot be a custom id")
    return value


@dataclass(frozen=True)
class ComponentId:
    action: str
    job_id: str
    owner_id: int

    def __str__(self) -> str:
        return f"i2m:{self.action}:{self.job_id}:{self.owner_id}"


def picked(data: Any) -> str:
    """The option a select menu's interaction data says was picked ("" when none, or not a select's data)."""
    values = data.get("values") if isinstance(data, dict) else None
    return str(values[0]) if isinstance(values, list) and values else ""


def make_custom_id(action: str, job_id: str, owner_id: int) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    value = str(ComponentId(action, job_id, owner_id))
    if not re.fullmatch(custom_id_template(action), value):
        raise ValueError(f"job id {job_id!r} cannot go in a custom id")
    return value


def parse_custom_id(value: str) -> ComponentId | None:
    """The parts of one of our custom ids, or None for anything else."""
    for action in ACTIONS:
        match = re.fullmatch(custom_id_template(action), value)
        if match:
            return ComponentId(action, match["job"], int(match["owner"]))
    return None


# --- per-user limits --------------------------------------------------------------------------------------


@dataclass
class UserLimits:
    """At most `max_jobs` unfinished jobs per user, and `cooldown` seconds between two starts."""

    max_jobs: int
    cooldown: float
    running: dict[int, int] = field(default_factory=dict)
    last_start: dict[int, float] = field(default_factory=dict)

    def refusal(self, user_id: int, now: float) -> str | None:
        """Why this user may not start a job now (a sentence), or None."""
        if self.max_jobs > 0 and self.running.get(user_id, 0) >= self.max_jobs:
            return (
                "You already have a model in the making; wait for it to finish."
                if self.max_jobs == 1
                else f"You already have {self.max_jobs} models in the making; wait for one to finish."
            )
        last = self.last_start.get(user_id)
        if self.cooldown > 0 and last is not None and now - last < self.cooldown:
            return f"Slow down: you can start another model in {self.cooldown - (now - last):.0f} s."
        return None

    def start(self, user_id: int, now: float) -> float | None:
        """Count a job as started; returns the previous start time, for `forget_start`."""
        previous = self.last_start.get(user_id)
        self.running[user_id] = self.running.get(user_id, 0) + 1
        self.last_start[user_id] = now
        return previous

    def forget_start(self, user_id: int, previous: float | None) -> None:
        """Undo the cooldown of a start the API refused (the running count is undone by `finish`)."""
        if previous is None:
            self.last_start.pop(user_id, None)
        else:
            self.last_start[user_id] = previous

    def finish(self, user_id: int) -> None:
        left = self.running.get(user_id, 0) - 1
        if left > 0:
            self.running[user_id] = left
        else:
            self.running.pop(user_id, None)


# --- errors -----------------------------------------------------------------------------------------------

_ERROR_TEXT = {
    "SERVER_UNAVAILABLE": "The model service is not reachable right now; try again in a few minutes.",
    "UNAUTHORIZED": "The bot is not allowed to use the model service (its API key was refused). Tell the bot's owner.",
    "RATE_LIMITED": "The model service is busy; try again in a minute.",
    "NOT_READY": "The model service is starting up; try again in a minute.",
    "JOB_NOT_FOUND": "That model is no longer kept by the service.",
    "FILE_NOT_FOUND": "That file is no longer kept by the service.",
}


def error_text(error_code: str, message: str) -> str:
    """A sentence for the user about an API error. Validation messages are the API's own (they name the
    field); transport and auth messages are replaced, since they can carry server addresses."""
    if error_code in _ERROR_TEXT:
        return _ERROR_TEXT[error_code]
    if error_code in ("VALIDATION_ERROR", "FILE_TOO_LARGE", "TOO_MANY_FILES", "UNSUPPORTED_MEDIA_TYPE"):
        return f"The model service refused the request: {message}"
    return "The model service failed to take the request; try again later."
