"""What the web UI shows, as plain functions and small classes: progress text from job events and which
progress updates are worth sending, the per-file status table, mesh stats and quality figures, readable API
errors, the viewer's empty scene. No Gradio here."""

from __future__ import annotations

import io
import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from image2model.core.errors import Image2ModelError, ServerUnavailable
from image2model.core.models import Event, EventType, ModelsAvailable, OptionInfo, UploadResponse


@dataclass
class FileStatus:
    """One input photo's state as the event stream reports it."""

    filename: str
    status: str = "queued"
    progress: float = 0.0
    message: str = ""
    error: str | None = None
    outputs: list[str] = field(default_factory=list)


class ProgressTracker:
    """Folds a job's events into what the UI shows: overall fraction, a one-line stage, a per-file table.

    The overall fraction never goes backwards (the stream guarantees it; a replay after a reconnect must
    not make the bar jump either)."""

    def __init__(self, upload: UploadResponse) -> None:
        self.job_id = upload.job_id
        self.files: list[FileStatus] = [FileStatus(f.filename) for f in upload.uploaded_files]
        self.fraction = 0.0
        self.stage = "Queued: waiting for a worker"
        self.status = upload.status
        self.error: str | None = None
        self.queue_position: int | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    def feed(self, event: Event) -> None:
        data = event.data
        progress = data.get("progress")
        if event.type is not EventType.FILE_UPDATE and isinstance(progress, (int, float)):
            self.fraction = max(self.fraction, min(float(progress), 100.0) / 100.0)
        position = data.get("queue_position")
        if isinstance(position, int):
            self.queue_position = position
        if event.type is EventType.FILE_UPDATE:
            self._file_update(data)
        elif event.type is EventType.TASK_QUEUED:
            self.status = "queued"
            self.stage = self._queued_text()
        elif event.type is EventType.QUEUE_POSITION:
            if self.status == "queued":
                self.stage = self._queued_text()
        elif event.type is EventType.TASK_PROGRESS:
            self.status = str(data.get("status", self.status))
        elif event.type is EventType.TASK_COMPLETED:
            self.status = "completed"
            self.fraction = 1.0
            summary = data.get("summary") or {}
            failed = int(summary.get("failed_files", 0) or 0)
            self.stage = "Done" if not failed else f"Done ({failed} of {len(self.files)} photo(s) failed)"
        elif event.type is EventType.TASK_FAILED:
            self.status = "failed"
            self.error = str(data.get("error") or data.get("message") or "the job failed")
            self.stage = f"Failed: {self.error}"
        elif event.type is EventType.TASK_CANCELLED:
            self.status = "cancelled"
            self.stage = "Cancelled"

    def _queued_text(self) -> str:
        if self.queue_position is not None:
            return f"Queued: #{self.queue_position} in line"
        return "Queued: waiting for a worker"

    def _file_update(self, data: dict[str, Any]) -> None:
        index = data.get("index")
        if not isinstance(index, int) or not 0 <= index < len(self.files):
            return
        f = self.files[index]
        f.status = str(data.get("status", f.status))
        progress = data.get("progress")
        if isinstance(progress, (int, float)):
            f.progress = float(progress)
        f.message = str(data.get("message") or f.message)
        if data.get("error"):
            f.error = str(data["error"])
        if data.get("outputs"):
            f.outputs = [str(o) for o in data["outputs"]]
        if f.status == "processing":
            self.status = "processing"
            prefix = (
                f"{f.filename}: " if len(self.files) == 1 else f"{index + 1}/{len(self.files)} {f.filename}: "
            )
            self.stage = prefix + (f.message or "processing")
        elif f.status == "queued" and self.status == "queued":
            self.stage = self._queued_text() if not f.message else f"Queued: {f.message}"

    def desc(self) -> str:
        """The line under the progress bar."""
        done = sum(f.status in ("completed", "failed", "cancelled") for f in self.files)
        if len(self.files) > 1 and not self.finished:
            return f"{self.stage} · {done} of {len(self.files)} done"
        return self.stage

    def table(self) -> str:
        """Per-file status as a Markdown table."""
        rows = ["| photo | status | progress | note |", "|---|---|---:|---|"]
        for f in self.files:
            note = f.error or (f.message if f.status == "processing" else "")
            rows.append(f"| {_md(f.filename)} | {f.status} | {f.progress:.0f}% | {_md(note)} |")
        return "\n".join(rows)

    def markdown(self) -> str:
        """The status panel: stage line plus the table."""
        return f"**{_md(self.desc())}** — {self.fraction * 100:.0f}%\n\n{self.table()}"


class ProgressGate:
    """Which progress updates are worth a round trip to the page: every change of the stage line, but changes
    of the per-file table alone (percentages) at most every `min_interval` seconds. A fast generator sends a
    few events per stage; each update re-renders the page and takes CPU the worker may need."""

    def __init__(self, min_interval: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = min_interval
        self._clock = clock
        self._stage: str | None = None
        self._table: str | None = None
        self._sent_at = float("-inf")

    def changes(self, stage: str, table: str, *, force: bool = False) -> set[str]:
        """The parts ("stage", "table") to send now; both when `force`, none when the update can be dropped."""
        now = self._clock()
        if force:
            parts = {"stage", "table"}
        else:
            parts = {"stage"} if stage != self._stage else set()
            if table != self._table and (parts or now - self._sent_at >= self.min_interval):
                parts.add("table")
        if parts:
            self._stage, self._table, self._sent_at = stage, table, now
        return parts


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def error_text(exc: BaseException) -> str:
    """A sentence for the user: the API's own message for its errors, a hint for transport failures."""
    if isinstance(exc, ServerUnavailable):
        return exc.message
    if isinstance(exc, Image2ModelError):
        text = exc.message or exc.error_code
        errors = exc.details.get("errors") if isinstance(exc.details, dict) else None
        if isinstance(errors, list):
            extra = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
            extra = [e for e in extra if e and e not in text]
            if extra:
                text += " — " + "; ".join(extra)
        return text
    if isinstance(exc, TimeoutError):
        return "The job took too long; it may still finish on the server."
    return f"Unexpected error ({exc.__class__.__name__}). See the UI server's log."


def _fmt_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024 or unit == "MB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} MB"


def size_text(n: int) -> str:
    """A file size for a button label."""
    return _fmt_bytes(n)


def stats_markdown(metadata: dict[str, Any], source_filename: str = "") -> str:
    """Mesh stats and quality figures of one result (the listing's `metadata`), as Markdown."""
    rows: list[tuple[str, str]] = []

    def add(label: str, key: str, fmt: str = "{}") -> None:
        value = metadata.get(key)
        if value is not None:
            rows.append((label, fmt.format(value)))

    add("faces", "faces", "{:,}")
    add("vertices", "vertices", "{:,}")
    watertight = metadata.get("watertight")
    if watertight is not None:
        rows.append(("watertight", "yes" if watertight else "**no**"))
    consistent = metadata.get("winding_consistent")
    if consistent is not None:
        rows.append(("consistent winding", "yes" if consistent else "**no**"))
    iou = metadata.get("silhouette_iou")
    if isinstance(iou, (int, float)):
        threshold = metadata.get("silhouette_iou_threshold")
        mark = ""
        if isinstance(threshold, (int, float)):
            mark = " ✓" if iou >= threshold else f" (below {threshold:.2f})"
        rows.append(("silhouette match (IoU)", f"{iou:.3f}{mark}"))
    extents = metadata.get("extents")
    if isinstance(extents, list) and len(extents) == 3:
        rows.append(("size (w × h × d)", " × ".join(f"{float(e):.2f}" for e in extents)))
    duration = metadata.get("duration_ms")
    if isinstance(duration, (int, float)):
        rows.append(("generation time", f"{duration / 1000:.2f} s"))
    add("generator", "generator")
    if not rows:
        return "_No statistics reported by this generator._"
    head = f"**{_md(source_filename)}**\n\n" if source_filename else ""
    return head + "| figure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def empty_scene_glb() -> bytes:
    """A GLB that draws nothing: one zero-area triangle (collinear corners, so the viewer can still frame it)
    with the attributes and textured PBR material of the API's models.

    The viewer shows it while no model is loaded, so its renderer, lighting environment and shaders are ready
    before the first model arrives instead of being set up after it."""
    from PIL import Image

    jpeg = io.BytesIO()
    Image.new("RGB", (1, 1), (255, 255, 255)).save(jpeg, format="JPEG")
    image = jpeg.getvalue()
    image += b"\0" * (-len(image) % 4)
    positions = struct.pack("<9f", -0.5, 0, 0, 0.5, 0, 0, 0, 0, 0)
    normals = struct.pack("<9f", 0, 0, 1, 0, 0, 1, 0, 0, 1)
    uvs = struct.pack("<6f", 0, 0, 1, 0, 0.5, 0)
    indices = struct.pack("<3I", 0, 1, 2)
    blobs = [positions, normals, uvs, indices, image]
    offsets = [sum(len(b) for b in blobs[:i]) for i in range(len(blobs))]
    views = [
        {"buffer": 0, "byteOffset": o, "byteLength": len(b)} for o, b in zip(offsets, blobs, strict=True)
    ]
    doc = {
        "asset": {"version": "2.0", "generator": "image2model-ui"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "empty"}],
        "meshes": [
            {
                "primitives": [
                    {"attributes": {"POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2}, "indices": 3, "material": 0}
                ]
            }
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": 3,
                "type": "VEC3",
                "min": [-0.5, 0, 0],
                "max": [0.5, 0, 0],
            },
            {"bufferView": 1, "componentType": 5126, "count": 3, "type": "VEC3"},
            {"bufferView": 2, "componentType": 5126, "count": 3, "type": "VEC2"},
            {"bufferView": 3, "componentType": 5125, "count": 3, "type": "SCALAR"},
        ],
        "bufferViews": views,
        "buffers": [{"byteLength": sum(len(b) for b in blobs)}],
        "images": [{"bufferView": 4, "mimeType": "image/jpeg"}],
        "samplers": [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}],
        "textures": [{"sampler": 0, "source": 0}],
        "materials": [
            {
                "pbrMetallicRoughness": {
                    "baseColorTexture": {"index": 0},
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.9,
                }
            }
        ],
    }
    body = json.dumps(doc, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 4)
    binary = b"".join(blobs)
    total = 12 + 8 + len(body) + 8 + len(binary)
    return b"".join(
        [
            struct.pack("<4sII", b"glTF", 2, total),
            struct.pack("<I4s", len(body), b"JSON"),
            body,
            struct.pack("<I4s", len(binary), b"BIN\0"),
            binary,
        ]
    )


# --- options from /models/available ----------------------------------------------------------------------

PROMINENT = ("face_limit", "background_removal")
"""Options shown outside the 'advanced' accordion when a generator has them."""


def option_value(info: OptionInfo, value: Any) -> Any:
    """A UI value converted to what the option's type expects (sliders give floats, empty boxes None)."""
    if value is None or value == "":
        return None
    if info.type == "int":
        return int(round(float(value)))
    if info.type == "float":
        return float(value)
    if info.type == "bool":
        return bool(value)
    return value


def collect_options(
    catalog: ModelsAvailable, generator: str, keys: list[tuple[str, str]], values: list[Any]
) -> tuple[int | None, dict[str, Any]]:
    """(face_limit, other options) for `generator` from the flat list of every option control's value.

    `keys[i]` is the (generator, option) the i-th value belongs to; values of other generators are ignored,
    and so are values equal to the option's default (the server applies defaults itself)."""
    infos = {o.name: o for g in catalog.models if g.name == generator for o in g.options}
    face_limit: int | None = None
    options: dict[str, Any] = {}
    for (gen, name), raw in zip(keys, values, strict=True):
        if gen != generator or name not in infos:
            continue
        value = option_value(infos[name], raw)
        if value is None:
            continue
        if name == "face_limit":
            face_limit = int(value)
        elif value != infos[name].default:
            options[name] = value
    return face_limit, options
