"""The right-hand side of the page, shared by every tab: the 3D viewer with the shown model's downloads, its
turntable and figures, the job's other results, the link to the job and the Export panel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from image2model.core.client.links import job_query

from .exports import FORMATS
from .handlers import ItemResult
from .view import size_text, stats_markdown

EMPTY_SCENE = "no-model-yet.glb"
"""What the viewer holds while there is no model: it draws nothing, but keeps the viewer set up (see
`view.empty_scene_glb`). Its download link is hidden."""


def job_link_markdown(job_id: str, status_link: str = "") -> str:
    """The line naming the job: its id, a link that reopens it in this UI (`?job=<id>`, the link every client
    prints) and, when the API gave one, its status link."""
    if not job_id:
        return ""
    text = f"Job `{job_id}` · [link to this model]({job_query(job_id)})"
    return text + (f" · [status]({status_link})" if status_link else "")


class ResultPanel:
    """Builds the panel's components where it is called (inside the app's `gr.Blocks`) and renders results
    into them."""

    def __init__(self, formats: list[str], empty_scene: Path) -> None:
        self.empty_scene = empty_scene
        self.viewer = gr.Model3D(
            value=str(empty_scene),
            label="3D model",
            height=420,
            clear_color=(0.93, 0.94, 0.96, 1.0),
            elem_id="i2m-viewer",
            interactive=False,
        )
        with gr.Row(elem_classes="i2m-downloads"):
            self.buttons = {
                fmt: gr.DownloadButton(f"Download {fmt.upper()}", visible=False, size="sm") for fmt in formats
            }
        with gr.Row(equal_height=False):
            self.turntable = gr.Image(
                label="Turntable", type="filepath", height=220, interactive=False, buttons=[]
            )
            self.stats = gr.Markdown("")
        self.gallery = gr.Gallery(
            label="Results (pick one to view)",
            columns=6,
            height=170,
            visible=False,
            allow_preview=False,
            object_fit="contain",
            elem_id="i2m-results",
        )
        self.job_link = gr.Markdown("", elem_id="i2m-job-link")
        # Always there (closed until opened): mounting it with the first model would delay that model's first frame.
        with gr.Accordion(
            "Export: another format, a face budget, a size in mm, Z up", open=False, elem_id="i2m-export"
        ):
            with gr.Row():
                self.export_format = gr.Radio(
                    choices=[(f.upper(), f) for f in FORMATS], value="stl", label="Format", scale=3
                )
                self.export_faces, self.export_height = (
                    gr.Number(
                        value=None, label=label, info=info, placeholder=hint, precision=precision, scale=1
                    )
                    for label, info, hint, precision in (
                        ("Face count", "0 or empty: keep all", "all", 0),
                        ("Height (mm)", "0 or empty: no units", "unitless", None),
                    )
                )
            with gr.Row():
                self.export_z_up = gr.Checkbox(label="Z up (printers, CAD)", value=True)
                self.export_bottom = gr.Checkbox(label="Origin at the bottom centre", value=True)
                self.export_button = gr.Button("Export", variant="secondary")
            self.export_status = gr.Markdown("", elem_id="i2m-export-status")
            self.export_file = gr.DownloadButton("Download export", visible=False, size="sm")
        self.shown = gr.State(None)
        """The `ItemResult` in the viewer (what Export works on)."""

    @property
    def item_outputs(self) -> list[Any]:
        """The components `show` updates."""
        return [
            self.viewer,
            self.turntable,
            self.stats,
            *self.buttons.values(),
            self.export_status,
            self.export_file,
            self.shown,
        ]

    def show(self, item: ItemResult | None) -> dict[Any, Any]:
        """The viewer, turntable, stats, downloads and Export panel for one result (nothing when None)."""
        if item is None or item.error or item.model is None:
            stats = f"**{item.source_filename}** failed: {item.error}" if item and item.error else ""
            return self._shown(None, str(self.empty_scene), None, stats, {})
        preview = item.turntable or item.preview
        return self._shown(
            item,
            str(item.model),
            str(preview) if preview else None,
            stats_markdown(item.metadata, item.source_filename),
            item.downloads,
            item.sizes,
        )

    def _shown(
        self,
        item: ItemResult | None,
        model: str,
        turntable: str | None,
        stats: str,
        downloads: dict[str, Path],
        sizes: dict[str, int] | None = None,
    ) -> dict[Any, Any]:
        out: dict[Any, Any] = {
            self.viewer: model,
            self.turntable: turntable,
            self.stats: stats,
            self.export_status: "",
            self.export_file: gr.DownloadButton(value=None, visible=False),
            self.shown: item,
        }
        for fmt, button in self.buttons.items():
            path = downloads.get(fmt)
            if path is None:
                out[button] = gr.DownloadButton(value=None, visible=False)
            else:
                size = (sizes or {}).get(fmt)
                label = f"{fmt.upper()}" + (f" · {size_text(size)}" if size else "")
                out[button] = gr.DownloadButton(label=label, value=str(path), visible=True)
        return out

    def gallery_value(self, results: list[ItemResult]) -> Any:
        """The job's results as thumbnails (shown when there is more than one)."""
        shown = [(str(r.preview), r.source_filename) for r in results if r.preview]
        return gr.Gallery(value=shown, visible=len(results) > 1)
