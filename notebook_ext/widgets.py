"""`Studio`: upload a photo, pick a generator and its options, Generate/Cancel, watch progress, see the model
and download its files, all in one widget. The job is followed on a background thread that touches the UI
through trait assignments only."""

from __future__ import annotations

import html
import io
import threading
from typing import Any

import ipywidgets as widgets

from image2model.core.client import Client, JobView
from image2model.core.errors import Image2ModelError
from image2model.core.models import GeneratorInfo, ModelsAvailable

from .api import Result, fetch_result, follow, view_text
from .viewer import GLBViewer


class Studio(widgets.VBox):
    """The notebook studio. `server_url`/`api_key` default to the settings (IMAGE2MODEL_SERVER_URL /
    IMAGE2MODEL_API_KEY). After a run, `result` holds the `Result` (or None)."""

    def __init__(self, server_url: str | None = None, api_key: str | None = None, **kwargs: Any) -> None:
        self._client = Client(server_url, api_key)
        self._api_key = api_key
        self.catalog: ModelsAvailable = self._client.models()
        self.result: Result | None = None
        self.job_id: str | None = None
        self._thread: threading.Thread | None = None
        self._cancel_requested = threading.Event()

        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Photo")
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
        self.generator.observe(lambda _change: self._build_options(), names="value")
        self.generate_button.on_click(lambda _button: self.start())
        self.cancel_button.on_click(lambda _button: self.cancel())
        self._build_options()
        super().__init__(
            [
                widgets.HBox([self.upload, self.generator]),
                widgets.HBox([self.formats, self.options_box]),
                widgets.HBox([self.generate_button, self.cancel_button]),
                widgets.HBox([self.progress, self.stage]),
                self.viewer,
                self.downloads,
            ],
            **kwargs,
        )

    # -- options --

    def _info(self) -> GeneratorInfo:
        return next(m for m in self.catalog.models if m.name == self.generator.value)

    def _build_options(self) -> None:
        """One input per option the selected generator declares (bounded by its minimum/maximum)."""
        info = self._info()
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

    def _on_upload(self, change: dict[str, Any]) -> None:
        has_file = bool(change["new"])
        self.generate_button.disabled = not has_file or self.running
        if has_file:
            self.stage.value = html.escape(f"Ready: {change['new'][0]['name']}")

    # -- running --

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Submit the uploaded photo with the chosen options and follow the job on a background thread."""
        if self.running or not self.upload.value:
            return
        upload = self.upload.value[0]
        content, name = bytes(upload["content"]), upload["name"]
        self.result, self.job_id = None, None
        self._cancel_requested.clear()
        self.progress.value, self.progress.bar_style = 0, ""
        self.stage.value = "Uploading…"
        self.downloads.value = ""
        self.viewer.glb = b""
        self.generate_button.disabled, self.cancel_button.disabled = True, False
        self._thread = threading.Thread(
            target=self._run, args=(content, name, self.chosen_options()), name="i2m-studio", daemon=True
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

    def _run(self, content: bytes, name: str, fields: dict[str, Any]) -> None:
        # Runs on the background thread: only trait assignments from here, never `with Output()`.
        try:
            photo = io.BytesIO(content)
            photo.name = name  # the part's file name, so outputs are named after the photo
            submitted = self._client.submit(photo, **fields)
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
                self.downloads.value = self._links(result)
            else:
                self.progress.bar_style = "danger" if result.status == "failed" else "warning"
                why = "" if result.error in (None, result.status) else f": {result.error}"
                self.stage.value = html.escape(f"{result.status}{why}")
        except (Image2ModelError, OSError, TimeoutError, ValueError) as exc:
            self.progress.bar_style = "danger"
            self.stage.value = html.escape(f"Error: {exc}")
        finally:
            self.cancel_button.disabled = True
            self.generate_button.disabled = not self.upload.value

    def _show(self, view: JobView) -> None:
        if not view.finished:  # a cancelled job's files count as done: its bar does not jump to 100
            self.progress.value = int(view.progress)
        self.stage.value = html.escape(view_text(view))

    @staticmethod
    def _links(result: Result) -> str:
        # The listing's links carry a signed, expiring token, so a plain <a href> works without the API key.
        items = "".join(
            f"<li><a href='{html.escape(f.download_url)}' target='_blank' download>{html.escape(f.filename)}</a>"
            f" ({f.size // 1024} KiB)</li>"
            for f in result.files
        )
        return f"<ul class='i2m-downloads'>{items}</ul>"

    def close(self) -> None:
        self._client.close()
        super().close()
