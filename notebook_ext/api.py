"""`generate()` and `generate_many()` for notebooks: submit through `image2model.core.client`, show the job's
`JobView` as progress while it runs, and hand back `Result`s whose notebook display is the 3D viewer plus stats."""

from __future__ import annotations

import base64
import concurrent.futures
import html
import io
import os
import queue
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from image2model.core.client import Client, JobView
from image2model.core.client.cli import MAX_VIEWS, MIN_VIEWS
from image2model.core.client.jobview import preview_urls
from image2model.core.client.links import job_link
from image2model.core.errors import Image2ModelError
from image2model.core.models import FileEntry, JobStatus, UploadResponse

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# Stats shown in the display and in `generate_many`'s table, in this order, when the metadata has them.
STAT_KEYS = ("faces", "vertices", "watertight", "volume", "silhouette_iou")


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (where widgets can render), False in a plain Python or IPython shell."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _display(obj: Any) -> None:
    from IPython.display import display

    display(obj)


def _as_upload(image: Any) -> Any:
    """What the client can upload: numpy arrays become PIL images; paths, bytes and PIL images pass through."""
    if type(image).__module__ == "numpy" and hasattr(image, "shape"):
        import numpy as np
        from PIL import Image

        array = np.asarray(image)
        if array.dtype != np.uint8:
            scale = 255.0 if array.size and float(array.max()) <= 1.0 else 1.0
            array = np.clip(array * scale, 0, 255).astype(np.uint8)
        return Image.fromarray(array)
    return image


# --- progress --------------------------------------------------------------------------------------------


class Progress:
    """A progress bar with a stage label: ipywidgets in a kernel, tqdm elsewhere, nothing when disabled.

    Updates are trait assignments (or tqdm writes) made by the thread that calls `update`."""

    def __init__(self, title: str, enabled: bool = True) -> None:
        self.value = 0
        self.message = ""
        self._bar: Any = None
        self._label: Any = None
        self._tqdm: Any = None
        if not enabled:
            return
        if _in_kernel():
            import ipywidgets as widgets

            self._bar = widgets.IntProgress(value=0, min=0, max=100, description=title)
            self._label = widgets.HTML(value="queued")
            _display(widgets.HBox([self._bar, self._label]))
        else:
            from tqdm.auto import tqdm

            self._tqdm = tqdm(total=100, desc=title, leave=True)

    def update(self, value: float, message: str = "") -> None:
        value = max(self.value, min(100, int(round(value))))  # the contract's progress never decreases
        self.message = message or self.message
        if self._bar is not None:
            self._bar.value = value
            self._label.value = html.escape(self.message)
        if self._tqdm is not None:
            self._tqdm.update(value - self.value)
            self._tqdm.set_postfix_str(self.message[:60], refresh=True)
        self.value = value

    def finish(self, ok: bool, message: str) -> None:
        if ok:
            self.update(100, message)
        else:
            self.message = message
            if self._bar is not None:
                self._bar.bar_style = "danger"
                self._label.value = html.escape(message)
        if self._bar is not None and ok:
            self._bar.bar_style = "success"
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(message[:60], refresh=True)
            self._tqdm.close()


def view_text(view: JobView) -> str:
    """A short stage label for a job: its place in the queue, the photo being made and its step, or its end."""
    if view.status == JobStatus.QUEUED:
        return f"queued, position {view.queue_position}" if view.queue_position else "queued"
    current = view.current
    if current is not None and not view.finished:
        return f"{current.filename}: {current.stage or current.status.value}"
    return view.error if view.status == JobStatus.FAILED and view.error else view.status.value


# --- results ---------------------------------------------------------------------------------------------


@dataclass
class Result:
    """One generated model: its files on the server, the GLB's bytes and metadata, and how to see or save it."""

    job_id: str
    source: str
    status: str
    error: str | None = None
    files: list[FileEntry] = field(default_factory=list)
    glb_bytes: bytes = b""
    preview_png: bytes = b""
    metadata: dict[str, Any] = field(default_factory=dict)
    server_url: str = ""
    api_key: str | None = field(default=None, repr=False)
    exports: list[FileEntry] = field(default_factory=list)
    """The listing entries of the exports made through `export()`."""
    _mesh: Any = field(default=None, repr=False)
    _viewer: Any = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "completed" and bool(self.glb_bytes)

    @property
    def mesh(self) -> Any:
        """The model as a `trimesh.Trimesh` (a `trimesh.Scene` when the GLB holds several meshes)."""
        if not self.ok:
            raise ValueError(f"{self.source}: no model ({self.error or self.status})")
        if self._mesh is None:
            import trimesh

            scene = trimesh.load(io.BytesIO(self.glb_bytes), file_type="glb")
            geometries = list(getattr(scene, "geometry", {}).values())
            self._mesh = geometries[0] if len(geometries) == 1 else scene
        return self._mesh

    @property
    def stats(self) -> dict[str, Any]:
        """The headline figures: source, status, faces, watertight, volume, quality and total time."""
        row: dict[str, Any] = {"source": self.source, "status": self.status, "error": self.error}
        for key in STAT_KEYS:
            if key in self.metadata:
                row[key] = self.metadata[key]
        timings = self.metadata.get("timings")
        if isinstance(timings, dict) and isinstance(timings.get("total"), (int, float)):
            row["seconds"] = timings["total"]
        return row

    def save(self, path: str | os.PathLike[str], format: str | None = None) -> Path:  # noqa: A002 - the user's word
        """Write the model to `path`. The format comes from `format` or the suffix (glb, obj, stl, ply, …):
        the server's own file when it made one in that format, else an export of `.mesh` through trimesh."""
        target = Path(path)
        fmt = (format or target.suffix.lstrip(".") or "glb").lower()
        if fmt == "glb":
            target.write_bytes(self.glb_bytes)
            return target
        entry = next((f for f in self.files if f.format == fmt and not f.filename.endswith(".zip")), None)
        if entry is not None and self.server_url:
            with tempfile.TemporaryDirectory() as tmp, Client(self.server_url, self.api_key) as client:
                shutil.move(client.download(entry, dest_dir=tmp), target)
            return target
        self.mesh.export(target, file_type=fmt)
        return target

    @property
    def link(self) -> str:
        """The job in the web UI (`IMAGE2MODEL_WEB_URL/?job=<id>`)."""
        return job_link(self.job_id)

    def export(
        self,
        format: str = "stl",  # noqa: A002 - the user's word
        *,
        height_mm: float | None = None,
        up: str | None = None,
        origin: str | None = None,
        face_limit: int | None = None,
        dest_dir: str | os.PathLike[str] = ".",
    ) -> Path:
        """Have the server make this model in another form, from the full-resolution mesh it kept (no new
        generation), and download it into `dest_dir`: `format` (glb, obj, stl, ply, 3mf), `height_mm` tall along
        `up` (files in millimetres), `up="z"` for printers and CAD, `origin="bottom"` on the build plate,
        `face_limit` faces at most. Returns the saved file's path, e.g.
        `result.export("stl", height_mm=80, up="z")`."""
        if not self.ok or not self.server_url:
            raise ValueError(f"{self.source}: no stored model to export ({self.error or self.status})")
        with Client(self.server_url, self.api_key) as client:
            made = client.export(
                self.job_id,
                [format],
                height_mm=height_mm,
                up=up,
                origin=origin,
                face_limit=face_limit,
                files=[self.files[0].file_id],
            )
            self.exports.extend(made.files)
            (path,) = client.download_export(made, dest_dir)
        return path

    def viewer(self) -> Any:
        """The 3D viewer widget showing this model (one per result, created on first use)."""
        if self._viewer is None:
            from .viewer import GLBViewer

            self._viewer = GLBViewer(glb=self.glb_bytes)
        return self._viewer

    def show(self) -> Any:
        """Display the viewer with the stats under it (in a notebook); returns the viewer."""
        viewer = self.viewer()
        if _in_kernel():
            import ipywidgets as widgets

            _display(widgets.VBox([viewer, widgets.HTML(self._stats_html())]))
        return viewer

    # -- rich display --

    def _stats_html(self) -> str:
        cells = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in self.stats.items()
            if v is not None
        )
        return f"<table class='i2m-stats'>{cells}</table>"

    def static_html(self) -> str:
        """The display where widgets can't render: the PNG preview, the stats and a GLB download link."""
        parts = [f"<div class='i2m-result'><b>{html.escape(self.source)}</b>"]
        if self.preview_png:
            data = base64.b64encode(self.preview_png).decode()
            parts.append(f"<br><img alt='preview' width='256' src='data:image/png;base64,{data}'>")
        parts.append(self._stats_html())
        if self.job_id:
            parts.append(f"<a href='{html.escape(self.link)}' target='_blank'>open in the web UI</a> ")
        if self.glb_bytes:
            data = base64.b64encode(self.glb_bytes).decode()
            name = html.escape(Path(self.source).stem + ".glb")
            parts.append(
                f"<a download='{name}' href='data:model/gltf-binary;base64,{data}'>download {name}</a>"
            )
        parts.append("</div>")
        return "".join(parts)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # Front-ends with a widget manager show the viewer; nbviewer, exported HTML and others fall back to
        # the static HTML (or the PNG) that the same bundle carries.
        bundle: dict[str, Any] = {"text/plain": repr(self), "text/html": self.static_html()}
        if self.preview_png:
            bundle["image/png"] = base64.b64encode(self.preview_png).decode()
        if self.ok and _in_kernel():
            import ipywidgets as widgets

            box = widgets.VBox([self.viewer(), widgets.HTML(self._stats_html())])
            bundle.update(box._repr_mimebundle_() or {})
            bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        faces = self.metadata.get("faces")
        more = f", faces={faces}" if faces is not None else ""
        err = f", error={self.error!r}" if self.error else ""
        return f"Result(source={self.source!r}, status={self.status!r}{more}{err})"


def fetch_result(
    client: Client, upload: UploadResponse, view: JobView, source: str, api_key: str | None = None
) -> Result:
    """The `Result` of a finished job's view: its listing, GLB bytes, PNG preview and the GLB's metadata."""
    result = Result(
        job_id=view.job_id,
        source=source,
        status=view.status.value,
        error=view.error,
        server_url=client.server_url,
        api_key=api_key,
    )
    if not view.ok:
        failed = next((f.error for f in view.failures if f.error), None)
        result.error = result.error or failed or view.status.value
        return result
    parameters = {"generator": upload.generator, "face_limit": upload.face_limit, **upload.options}
    return load_model(client, result, view.entries(), parameters)


def load_model(client: Client, result: Result, files: list[FileEntry], parameters: dict[str, Any]) -> Result:
    """Fill `result` from a model's listing entries: the GLB's bytes and metadata, and the PNG preview."""
    result.files = files
    glb = next((f for f in files if f.format == "glb"), None)
    if glb is None:
        result.status, result.error = "failed", "the server made no GLB (ask for formats including 'glb')"
        return result
    with tempfile.TemporaryDirectory() as tmp:
        result.glb_bytes = client.download(glb, dest_dir=tmp).read_bytes()
        if "png" in preview_urls(glb):
            result.preview_png = client.download_preview(glb, "png", tmp).read_bytes()
    result.metadata = {**glb.metadata, "job_id": result.job_id, "parameters": parameters}
    return result


def follow(
    client: Client, upload: UploadResponse, timeout: float | None, on_view: Callable[[JobView], object]
) -> JobView:
    """Watch the job to its end, calling `on_view` with each new view (the upload's first); the final view.
    Interrupting (Ctrl-C, the kernel's stop button) cancels the job on the server."""
    view = start = JobView.from_upload(upload)
    on_view(view)
    try:
        for view in client.watch(upload.job_id, start, timeout=timeout):
            on_view(view)
    except KeyboardInterrupt:
        client.cancel(upload.job_id)
        raise
    return view


def _source_name(image: Any, index: int = 1) -> str:
    if isinstance(image, (str, os.PathLike)):
        return Path(image).name
    name = getattr(image, "filename", None) or getattr(image, "name", None)
    return Path(str(name)).name if name else f"image{index}"


def _inputs(image: Any, multiview: bool) -> tuple[Any, str]:
    """What `generate` uploads and the name its Result goes by; TypeError/ValueError for the wrong shape."""
    several = isinstance(image, (list, tuple))
    if not multiview:
        if several:
            raise TypeError(
                "generate() makes one model from one image: pass multiview=True for 2 to 4 views of one object, "
                "or use generate_many() for one model per image"
            )
        return _as_upload(image), _source_name(image)
    views = list(image) if several else [image]
    if not MIN_VIEWS <= len(views) <= MAX_VIEWS:
        raise ValueError(
            f"multiview=True takes {MIN_VIEWS} to {MAX_VIEWS} views of one object (front, left, back, right); "
            f"got {len(views)}"
        )
    return [_as_upload(v) for v in views], f"{_source_name(views[0])} (+{len(views) - 1} views)"


def generate(
    image: Any,
    *,
    server_url: str | None = None,
    api_key: str | None = None,
    progress: bool = True,
    timeout: float | None = 600.0,
    face_limit: int | None = None,
    generator: str | None = None,
    formats: str | Sequence[str] | None = None,
    multiview: bool = False,
    **options: Any,
) -> Result:
    """Make a 3D model from one image (a path, bytes, a PIL image or a numpy array) and return its `Result`.
    With `multiview=True`, `image` is a list of 2 to 4 views of one object in the order front, left, back,
    right (the object turned a quarter turn clockwise between shots), which make one model together.

    Shows a progress bar and the current stage while the job runs. Extra keyword arguments are the
    generator's options (see `/models/available`). `server_url`/`api_key` default to the settings
    (IMAGE2MODEL_SERVER_URL / IMAGE2MODEL_API_KEY). A failed job returns a Result with `.ok == False`;
    interrupting the cell cancels the job on the server."""
    upload_images, source = _inputs(image, multiview)
    if formats is not None and "glb" not in ([formats] if isinstance(formats, str) else list(formats)):
        formats = [formats, "glb"] if isinstance(formats, str) else [*formats, "glb"]
    bar = Progress("generate", enabled=progress)
    with Client(server_url, api_key) as client:
        upload = client.submit(
            upload_images,
            face_limit=face_limit,
            generator=generator,
            formats=formats,
            multiview=True if multiview else None,
            **options,
        )
        try:
            view = follow(client, upload, timeout, lambda v: bar.update(v.progress, view_text(v)))
        except KeyboardInterrupt:
            bar.finish(False, "cancelled")
            raise
        result = fetch_result(client, upload, view, source, api_key)
    bar.finish(result.ok, "done" if result.ok else (result.error or result.status))
    return result


# --- batches ---------------------------------------------------------------------------------------------


class Batch(list):
    """`generate_many`'s results, one `Result` per input in input order (failures included)."""

    @property
    def failures(self) -> list[Result]:
        return [r for r in self if not r.ok]

    def stats(self) -> list[dict[str, Any]]:
        return [r.stats for r in self]

    def to_dataframe(self) -> Any:
        """The stats as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("to_dataframe() needs pandas: pip install pandas") from exc
        return pd.DataFrame(self.stats())


def image_paths(paths_or_folder: str | os.PathLike[str] | Iterable[Any]) -> list[Any]:
    """The inputs of a batch: a folder's images (sorted by name), or the given items as they are."""
    if isinstance(paths_or_folder, (str, os.PathLike)):
        folder = Path(paths_or_folder)
        if folder.is_dir():
            return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return [folder]
    return list(paths_or_folder)


class BatchBoard:
    """The batch's progress table and thumbnail grid (ipywidgets), updated only from the calling thread."""

    def __init__(self, names: list[str], enabled: bool) -> None:
        self.rows = {
            i: {"name": n, "progress": 0, "status": "queued", "faces": ""} for i, n in enumerate(names)
        }
        self._table: Any = None
        self._grid: Any = None
        self._tqdm: Any = None
        if not enabled:
            return
        if _in_kernel():
            import ipywidgets as widgets

            self._table = widgets.HTML(self._html())
            self._grid = widgets.GridBox(
                [], layout=widgets.Layout(grid_template_columns="repeat(auto-fill, 140px)")
            )
            _display(widgets.VBox([self._table, self._grid]))
        else:
            from tqdm.auto import tqdm

            self._tqdm = tqdm(total=len(names), desc="generate_many")

    def _html(self) -> str:
        head = "<tr><th>#</th><th>image</th><th>progress</th><th>status</th><th>faces</th></tr>"
        body = "".join(
            f"<tr><td>{i + 1}</td><td>{html.escape(r['name'])}</td><td>{r['progress']}%</td>"
            f"<td>{html.escape(str(r['status']))}</td><td>{r['faces']}</td></tr>"
            for i, r in self.rows.items()
        )
        return f"<table class='i2m-batch'>{head}{body}</table>"

    def update(self, index: int, progress: float, status: str) -> None:
        row = self.rows[index]
        row["progress"] = max(row["progress"], int(round(progress)))
        row["status"] = status
        if self._table is not None:
            self._table.value = self._html()

    def done(self, index: int, result: Result) -> None:
        row = self.rows[index]
        row["status"] = "completed" if result.ok else f"failed: {result.error}"
        row["progress"] = 100 if result.ok else row["progress"]
        row["faces"] = result.metadata.get("faces", "")
        if self._table is not None:
            self._table.value = self._html()
        if self._grid is not None and result.preview_png:
            import ipywidgets as widgets

            thumb = widgets.VBox(
                [
                    widgets.Image(value=result.preview_png, format="png", width=128),
                    widgets.Label(result.source),
                ]
            )
            self._grid.children = (*self._grid.children, thumb)
        if self._tqdm is not None:
            self._tqdm.update(1)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()


def generate_many(
    paths_or_folder: str | os.PathLike[str] | Iterable[Any],
    *,
    max_concurrency: int = 2,
    server_url: str | None = None,
    api_key: str | None = None,
    progress: bool = True,
    timeout: float | None = 600.0,
    **options: Any,
) -> Batch:
    """Make one model per image (a folder, or a list of paths/bytes/PIL images/arrays), `max_concurrency` jobs
    at a time. Shows a progress table and a thumbnail grid; returns a `Batch` (a list of `Result`s in input
    order, with `.failures` and `.to_dataframe()`). A failing image becomes a failed Result; nothing raises
    for the batch."""
    items = image_paths(paths_or_folder)
    names = [_source_name(item, i + 1) for i, item in enumerate(items)]
    board = BatchBoard(names, enabled=progress)
    updates: queue.Queue[tuple[int, float, str]] = queue.Queue()
    results: list[Result | None] = [None] * len(items)

    def run_one(index: int) -> Result:
        try:
            with Client(server_url, api_key) as client:
                upload = client.submit(_as_upload(items[index]), **options)
                view = follow(
                    client, upload, timeout, lambda v: updates.put((index, v.progress, view_text(v)))
                )
                return fetch_result(client, upload, view, names[index], api_key)
        except (Image2ModelError, OSError, TimeoutError, ValueError, TypeError) as exc:
            return Result(job_id="", source=names[index], status="failed", error=str(exc))

    def drain() -> None:
        while True:
            try:
                index, value, text = updates.get_nowait()
            except queue.Empty:
                return
            board.update(index, value, text)

    # Workers only enqueue; this thread owns every widget update.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, max_concurrency)) as pool:
        pending = {pool.submit(run_one, i): i for i in range(len(items))}
        deadline = None if timeout is None else time.monotonic() + timeout * max(1, len(items))
        while pending:
            done, _ = concurrent.futures.wait(
                pending, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED
            )
            drain()
            for future in done:
                index = pending.pop(future)
                results[index] = future.result()
                board.done(index, results[index])
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("generate_many did not finish in time")
    drain()
    board.close()
    return Batch(r for r in results if r is not None)
