"""What the web UI shows, as plain functions and small classes: a job's `JobView` as the stage line and the
per-file status table, which progress updates are worth sending, mesh stats and quality figures, readable API
errors, the viewer's empty scene. No Gradio here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from image2model.core.client import JobView
from image2model.core.errors import Image2ModelError, ServerUnavailable
from image2model.core.models import ItemStatus, JobStatus, ModelsAvailable, OptionInfo

T = TypeVar("T")


def stage_line(view: JobView) -> str:
    """The one-line stage: the place in the queue, the photo being made and its step, or how the job ended."""
    n = len(view.files)
    if view.status == JobStatus.COMPLETED:
        failed = view.count(ItemStatus.FAILED)
        return "Done" if not failed else f"Done ({failed} of {n} photo(s) failed)"
    if view.status == JobStatus.FAILED:
        return f"Failed: {view.error or 'the job failed'}"
    if view.status == JobStatus.CANCELLED:
        return "Cancelled"
    current = view.current
    if current is not None:
        prefix = f"{current.filename}: " if n == 1 else f"{current.index + 1}/{n} {current.filename}: "
        return prefix + (current.stage or "processing")
    waiting = next((f for f in view.files if f.status == ItemStatus.QUEUED and f.stage), None)
    if view.status == JobStatus.QUEUED and waiting is None:
        if view.queue_position is not None:
            return f"Queued: #{view.queue_position} in line"
        return "Queued: waiting for a worker"
    return f"Queued: {waiting.stage}" if waiting is not None else "Processing"


def progress_line(view: JobView) -> str:
    """The line under the progress bar."""
    if len(view.files) > 1 and not view.finished:
        return f"{stage_line(view)} · {view.done} of {len(view.files)} done"
    return stage_line(view)


def status_table(view: JobView) -> str:
    """Per-file status as a Markdown table."""
    rows = ["| photo | status | progress | note |", "|---|---|---:|---|"]
    for f in view.files:
        note = f.error or (f.stage if f.status == ItemStatus.PROCESSING else "")
        rows.append(f"| {_md(f.filename)} | {f.status.value} | {f.progress:.0f}% | {_md(note or '')} |")
    return "\n".join(rows)


class ProgressGate:
    """Which progress updates are worth a round trip to the page: at most one every `min_interval` seconds. Each
    re-renders the page, and a fast generator reports several stages a second: in a browser without a GPU that
    CPU is taken from the worker (measured: click -> model visible 1.08 -> 0.73-0.81 s). A change held back is sent
    when `due` says, by the caller, unless a newer update came first."""

    def __init__(self, min_interval: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = min_interval
        self._clock = clock
        self._stage: str | None = None
        self._table: str | None = None
        self._sent_at = float("-inf")
        self._held = False

    def changes(self, stage: str, table: str, *, force: bool = False) -> set[str]:
        """The parts ("stage", "table") to send now; both when `force`, none when nothing changed or the change
        is held back for the interval."""
        now = self._clock()
        if force:
            parts = {"stage", "table"}
        else:
            parts = {
                name
                for name, new, old in (("stage", stage, self._stage), ("table", table, self._table))
                if new != old
            }
            self._held = bool(parts) and now - self._sent_at < self.min_interval
            if self._held:
                return set()
        if parts:
            self._held = False
            self._stage, self._table, self._sent_at = stage, table, now
        return parts

    def due(self) -> float | None:
        """Seconds until a held-back change may be sent; None when nothing is held."""
        if not self._held:
            return None
        return max(0.0, self._sent_at + self.min_interval - self._clock())


async def with_flushes(
    updates: AsyncIterator[T], due: Callable[[], float | None], again: Callable[[T], T]
) -> AsyncIterator[T]:
    """`updates` as they come, and `again(last)` whenever `due()` seconds pass without a new one (so a change
    held back by a `ProgressGate` is shown even when the job then goes quiet). The source is advanced in a task of
    its own, never cancelled while waiting; when the consumer stops early, the source is closed."""
    source = aiter(updates)
    pending: asyncio.Future[T] | None = None
    last: T | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({pending}, timeout=due())
            if not done:
                assert last is not None  # nothing is held before the first update
                yield again(last)
                continue
            finished, pending = pending, None
            try:
                last = finished.result()
            except StopAsyncIteration:
                return
            yield last
    finally:
        close = getattr(source, "aclose", None)
        if pending is not None:
            pending.cancel()
        elif close is not None:
            await close()


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
    """A GLB that draws nothing: one zero-area triangle (collinear corners, so the viewer can still frame it),
    written by the service's own GLB writer, so it has the attributes and textured PBR material of every model.

    The viewer shows it while no model is loaded, so its renderer, lighting environment and shaders are ready
    before the first model arrives instead of being set up after it."""
    import numpy as np
    from PIL import Image

    from image2model.core.mesh.export import glb_bytes
    from image2model.core.mesh.model import TexturedMesh

    nothing = TexturedMesh(
        vertices=np.array([[-0.5, 0, 0], [0.5, 0, 0], [0, 0, 0]], float),
        faces=np.array([[0, 1, 2]]),
        uv=np.array([[0, 1], [1, 1], [0.5, 1]], float),
        texture=Image.new("RGB", (1, 1), (255, 255, 255)),
        normals=np.array([[0, 0, 1]] * 3, float),
    )
    return glb_bytes(nothing, generator="image2model-ui")


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
