"""`Studio`: upload a photo (or, for generators that take them, up to four labelled views of one object), pick a
generator and its options, Generate/Cancel, watch progress, see the model, download its files and export it
(format, height in mm, up axis, face budget; a preset for printing), all in one widget. Jobs and exports run on a
background thread that touches the UI through trait assignments only."""

from __future__ import annotations

import html
import io
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from image2model.core.client import Client, JobView
from image2model.core.errors import Image2ModelError
from image2model.core.models import FileEntry, GeneratorInfo, ModelsAvailable

from .api import Result, fetch_result, follow, view_text
from .viewer import GLBViewer

VIEW_NAMES = ("front", "left", "back", "right")
EXPORT_FORMATS = ("stl", "3mf", "obj", "ply", "glb")
PRINT_HEIGHT_MM = 80.0


class Studio(widgets.VBox):
    """The notebook studio. `server_url`/`api_key` default to the settings (IMAGE2MODEL_SERVER_URL /
    IMAGE2MODEL_API_KEY). After a run, `result` holds the `Result` (or None)."""

    def __init__(
        self,
        server_url: str | None = None,
        api_key: str | None = None,
        export_dir: str | Path = ".",
        **kwargs: Any,
    ) -> None:
        self._client = Client(server_url, api_key)
        self.export_dir = Path(export_dir)
        self._api_key = api_key
        self.catalog: ModelsAvailable = self._client.models()
        self.result: Result | None = None
        self.job_id: str | None = None
        self._thread: threading.Thread | None = None
        self._export_thread: threading.Thread | None = None
        self._cancel_requested = threading.Event()

        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Photo")
        self.mode = widgets.ToggleButtons(
            options=[("One photo", "single"), ("Views of one object", "multiview")],
            value="single",
            tooltips=["One model from one photo", "One model from 2 to 4 views: front, left, back, right"],
        )
        self.views = {
            name: widgets.FileUpload(accept="image/*", multiple=False, description=name.capitalize())
            for name in VIEW_NAMES
        }
        self.views_box = widgets.VBox(
            [
                widgets.HTML(
                    "Views of one object, the object turned a quarter turn clockwise (seen from above) between "
                    "shots: front, then left, back, right. Two views at least, in that order."
                ),
                widgets.HBox(list(self.views.values())),
            ],
            layout=widgets.Layout(display="none"),
        )
        self.export_format = widgets.Dropdown(options=EXPORT_FORMATS, value="stl", description="Export")
        self.export_height = widgets.BoundedFloatText(
            value=0.0, min=0.0, max=100_000.0, description="Height mm", tooltip="0 keeps the model's size"
        )
        self.export_up = widgets.Dropdown(options=[("Y up", "y"), ("Z up", "z")], value="y", description="Up")
        self.export_faces = widgets.BoundedIntText(
            value=0, min=0, max=10_000_000, description="Faces", tooltip="most faces; 0 keeps them all"
        )
        self.print_button = widgets.Button(description="For printing: STL, mm, Z up", disabled=True)
        self.export_button = widgets.Button(description="Export", button_style="info", disabled=True)
        self.exports = widgets.HTML(value="")
        self.generator = widgets.Dropdown(
            options=[(m.title, m.name) for m in self.catalog.models],
            value=self.catalog.default,
            description="Generator",
        )
        self.formats = widgets.SelectMultiple(description="Formats", rows=4)
        self.options_box = widgets.VBox()
        self.generate_button = widgets.Button(description="Generate", button_style="primary", disabled=True)
        self.cancel_button = widgets.Button(description="Cancel", button_style="warning", disabled=True)
        self.progress = widgets.IntProgress(value=0, min=0, max=100, description="Progress")
        self.stage = widgets.HTML(value="Upload a photo to start.")
        self.viewer = GLBViewer()
        self.downloads = widgets.HTML(value="")
        self.option_widgets: dict[str, widgets.ValueWidget] = {}

        self.upload.observe(self._on_upload, names="value")
        for view in self.views.values():
            view.observe(self._on_upload, names="value")
        self.mode.observe(self._on_mode, names="value")
        self.print_button.on_click(lambda _button: self.for_printing())
        self.export_button.on_click(lambda _button: self.export())
        self.generator.observe(lambda _change: self._build_options(), names="value")
        self.generate_button.on_click(lambda _button: self.start())
        self.cancel_button.on_click(lambda _button: self.cancel())
        self._build_options()
        super().__init__(
            [
                widgets.HBox([self.mode, self.generator]),
                self.upload,
                self.views_box,
                widgets.HBox([self.formats, self.options_box]),
                widgets.HBox([self.generate_button, self.cancel_button]),
                widgets.HBox([self.progress, self.stage]),
                self.viewer,
                self.downloads,
                widgets.HBox([self.export_format, self.export_height, self.export_up, self.export_faces]),
                widgets.HBox([self.print_button, self.export_button]),
                self.exports,
            ],
            **kwargs,
        )

    # -- options --

    def _info(self) -> GeneratorInfo:
        return next(m for m in self.catalog.models if m.name == self.generator.value)

    def _build_options(self) -> None:
        """One input per option the selected generator declares (bounded by its minimum/maximum)."""
        info = self._info()
        takes_views = info.max_images_per_item > 1
        if not takes_views:
            self.mode.value = "single"
        self.mode.disabled = not takes_views
        self.formats.options = info.supported_formats
        self.formats.value = tuple(f for f in info.default_formats if f in info.supported_formats)
        self.option_widgets = {}
        for option in info.options:
            style = {"description_width": "initial"}
            common: dict[str, Any] = {
                "description": option.name,
                "tooltip": option.description,
                "style": style,
            }
            w: widgets.ValueWidget
            if option.choices:
                w = widgets.Dropdown(options=option.choices, value=option.default, **common)
            elif option.type == "bool":
                w = widgets.Checkbox(value=bool(option.default), **common)
            elif option.type == "int":
                w = widgets.BoundedIntText(
                    value=int(option.default or 0),
                    min=int(option.minimum if option.minimum is not None else -(2**31)),
                    max=int(option.maximum if option.maximum is not None else 2**31),
                    **common,
                )
            elif option.type == "float":
                w = widgets.BoundedFloatText(
                    value=float(option.default or 0.0),
                    min=option.minimum if option.minimum is not None else -1e12,
                    max=option.maximum if option.maximum is not None else 1e12,
                    **common,
                )
            else:
                w = widgets.Text(value="" if option.default is None else str(option.default), **common)
            self.option_widgets[option.name] = w
        self.options_box.children = tuple(self.option_widgets.values())

    def chosen_options(self) -> dict[str, Any]:
        """The upload's fields from the form: generator, formats (always with glb for the viewer) and options."""
        formats = list(self.formats.value)
        if "glb" not in formats:
            formats.append("glb")
        values = {name: w.value for name, w in self.option_widgets.items()}
        return {"generator": self.generator.value, "formats": formats, **values}

    def _on_mode(self, change: dict[str, Any]) -> None:
        several = change["new"] == "multiview"
        self.upload.layout.display = "none" if several else None
        self.views_box.layout.display = None if several else "none"
        self._on_upload({})

    def photos(self) -> list[tuple[str, bytes]]:
        """The photos the job will upload, (name, bytes): the one photo, or the views in order."""
        if self.mode.value == "single":
            return [(f["name"], bytes(f["content"])) for f in self.upload.value[:1]]
        return [(f["name"], bytes(f["content"])) for name in VIEW_NAMES for f in self.views[name].value[:1]]

    def _views_problem(self) -> str | None:
        """Why the labelled views cannot go as they are (a sentence), or None."""
        given = [bool(self.views[name].value) for name in VIEW_NAMES]
        count = sum(given)
        if count < 2:
            return "Add at least the front and left views."
        if given[:count] != [True] * count:
            missing = VIEW_NAMES[given.index(False)]
            return f"The views go in order (front, left, back, right): add the {missing} view."
        return None

    def _on_upload(self, change: dict[str, Any]) -> None:
        problem = self._views_problem() if self.mode.value == "multiview" else None
        photos = self.photos()
        ready = bool(photos) and problem is None
        self.generate_button.disabled = not ready or self.running
        if problem is not None and photos:
            self.stage.value = html.escape(problem)
        elif ready:
            names = ", ".join(name for name, _ in photos)
            self.stage.value = html.escape(f"Ready: {names}")

    # -- running --

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Submit the uploaded photo with the chosen options and follow the job on a background thread."""
        photos = self.photos()
        if self.running or not photos or self.generate_button.disabled:
            return
        self.result, self.job_id = None, None
        self._cancel_requested.clear()
        self.progress.value, self.progress.bar_style = 0, ""
        self.stage.value = "Uploading…"
        self.downloads.value = self.exports.value = ""
        self.viewer.glb = b""
        self.generate_button.disabled, self.cancel_button.disabled = True, False
        self.export_button.disabled = self.print_button.disabled = True
        fields = self.chosen_options()
        if self.mode.value == "multiview":
            fields["multiview"] = True
        self._thread = threading.Thread(
            target=self._run, args=(photos, fields), name="i2m-studio", daemon=True
        )
        self._thread.start()

    def cancel(self) -> None:
        """Cancel the running job on the server (the stream then ends with `task_cancelled`)."""
        self._cancel_requested.set()
        self.cancel_button.disabled = True
        if self.job_id is not None:
            try:
                self._client.cancel(self.job_id)
            except Image2ModelError as exc:  # already finished: nothing to stop
                self.stage.value = html.escape(f"Cancel: {exc}")

    def wait(self, timeout: float = 120.0) -> Result | None:
        """Block until the current run ends (for scripts and tests); returns `result`."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the studio's job did not finish in {timeout} s")
        return self.result

    def _run(self, photos: list[tuple[str, bytes]], fields: dict[str, Any]) -> None:
        # Runs on the background thread: only trait assignments from here, never `with Output()`.
        try:
            files = []
            for name, content in photos:
                photo = io.BytesIO(content)
                photo.name = name  # the part's file name, so outputs are named after the photo
                files.append(photo)
            name = photos[0][0] if len(photos) == 1 else f"{photos[0][0]} (+{len(photos) - 1} views)"
            submitted = self._client.submit(files, **fields)
            self.job_id = submitted.job_id
            if self._cancel_requested.is_set():
                self._client.cancel(submitted.job_id)
            view = follow(self._client, submitted, 600, self._show)
            result = fetch_result(self._client, submitted, view, name, self._api_key)
            self.result = result
            if result.ok:
                self.progress.value, self.progress.bar_style = 100, "success"
                self.viewer.glb = result.glb_bytes
                self.stage.value = html.escape(f"Done: {result.metadata.get('faces', '?')} faces")
                self.downloads.value = self._links(result.files)
                self.export_button.disabled = self.print_button.disabled = False
            else:
                self.progress.bar_style = "danger" if result.status == "failed" else "warning"
                why = "" if result.error in (None, result.status) else f": {result.error}"
                self.stage.value = html.escape(f"{result.status}{why}")
        except (Image2ModelError, OSError, TimeoutError, ValueError) as exc:
            self.progress.bar_style = "danger"
            self.stage.value = html.escape(f"Error: {exc}")
        finally:
            self.cancel_button.disabled = True
            self.generate_button.disabled = not self.photos()

    def _show(self, view: JobView) -> None:
        if not view.finished:  # a cancelled job's files count as done: its bar does not jump to 100
            self.progress.value = int(view.progress)
        self.stage.value = html.escape(view_text(view))

    # -- exports --

    def for_printing(self) -> None:
        """Set the export form for a 3D printer: STL, in millimetres, Z up."""
        self.export_format.value, self.export_up.value = "stl", "z"
        if not self.export_height.value:
            self.export_height.value = PRINT_HEIGHT_MM

    def export(self) -> None:
        """Have the server make the shown model as the export form says (on a background thread); the file is
        saved under `export_dir` and linked below."""
        result = self.result
        if (
            result is None
            or not result.ok
            or (self._export_thread is not None and self._export_thread.is_alive())
        ):
            return
        options = {
            "format": self.export_format.value,
            "height_mm": self.export_height.value or None,
            "up": self.export_up.value,
            "origin": "bottom" if self.export_up.value == "z" else None,
            "face_limit": self.export_faces.value or None,
        }
        self.export_button.disabled = True
        self.exports.value = "Exporting…"
        self._export_thread = threading.Thread(
            target=self._export, args=(result, options), name="i2m-studio-export", daemon=True
        )
        self._export_thread.start()

    def wait_export(self, timeout: float = 120.0) -> None:
        """Block until the current export ends (for scripts and tests)."""
        if self._export_thread is not None:
            self._export_thread.join(timeout)
            if self._export_thread.is_alive():
                raise TimeoutError(f"the studio's export did not finish in {timeout} s")

    def _export(self, result: Result, options: dict[str, Any]) -> None:
        try:
            path = result.export(**options, dest_dir=self.export_dir)
            self.exports.value = f"Saved {html.escape(str(path))}" + self._links(result.exports[-1:])
        except (Image2ModelError, OSError, TimeoutError, ValueError) as exc:
            self.exports.value = html.escape(f"Export failed: {exc}")
        finally:
            self.export_button.disabled = False

    @staticmethod
    def _links(files: list[FileEntry]) -> str:
        # The listing's links carry a signed, expiring token, so a plain <a href> works without the API key.
        items = "".join(
            f"<li><a href='{html.escape(f.download_url)}' target='_blank' download>{html.escape(f.filename)}</a>"
            f" ({f.size // 1024} KiB)</li>"
            for f in files
        )
        return f"<ul class='i2m-downloads'>{items}</ul>"

    def close(self) -> None:
        self._client.close()
        super().close()
