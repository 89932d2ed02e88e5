"""The Gradio web app: `build_app(settings)` returns the `gr.Blocks`; the work is in `handlers`, `history` and
`exports`, the text in `view`, the right-hand side in `result_panel`.

A thin client of the job API: options come from `/models/available`, progress from the job's event stream,
results are downloaded through the API into per-session directories. The API key never reaches the browser.
Tabs: Photos (one model per photo), Multi-view (one model from 2 to 4 views of one object), My models (the jobs
of this UI's API key, newest first). `?job=<id>` opens that job when the page loads.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402 - analytics must be off before gradio is imported

from image2model.core.client.links import JOB_QUERY  # noqa: E402
from image2model.core.errors import Image2ModelError  # noqa: E402
from image2model.core.models import ModelsAvailable  # noqa: E402
from image2model.core.settings import Settings  # noqa: E402

from .catalog import fallback_catalog, fetch_catalog, sample_images  # noqa: E402
from .exports import export_choice, run_export  # noqa: E402
from .handlers import ItemResult, JobRunner, SessionFiles, Update  # noqa: E402
from .history import HistoryPage, Thumbnails, caption  # noqa: E402
from .idle import quiet_queue  # noqa: E402
from .multiview import multiview_generators, ordered_views  # noqa: E402
from .result_panel import EMPTY_SCENE, ResultPanel, job_link_markdown  # noqa: E402
from .tabs import HISTORY_COLUMNS, history_tab, multiview_tab, photos_tab  # noqa: E402
from .view import (  # noqa: E402
    ProgressGate,
    collect_options,
    empty_scene_glb,
    error_text,
    progress_line,
    size_text,
    status_table,
    with_flushes,
)

__all__ = ["EMPTY_SCENE", "build_app", "close_app", "launch_options"]

log = logging.getLogger("image2model.ui")

CONCURRENCY = 32
"""Generate events running at once. Each only waits on the API's stream (the heavy queue is the API's), so this
bounds open streams and downloads, not CPU work."""
QUEUE_SIZE = 128
"""Generate requests waiting beyond CONCURRENCY before new ones are turned away."""
CACHE_SWEEP = (1800, 3600)
"""Gradio's own copies of served files: swept every 30 min, removed after an hour."""
ALL_FORMATS = ("glb", "obj", "stl", "ply")
RESULT_COLUMNS = 6

CSS = f"""
#i2m-stage {{min-height: 32px}}
#i2m-viewer {{border-radius: 8px}}
.i2m-downloads button {{min-width: 120px}}
footer {{display: none !important}}
#i2m-viewer a[href$="/{EMPTY_SCENE}"] {{display: none}}
/* Gradio widens the columns when a gallery has fewer pictures than columns: one old model filled the tab. */
#i2m-history .grid-container {{--grid-cols: {HISTORY_COLUMNS} !important}}
#i2m-results .grid-container {{--grid-cols: {RESULT_COLUMNS} !important}}
"""


def build_app(
    settings: Settings | None = None,
    *,
    catalog: ModelsAvailable | None = None,
    wait: float = 0.0,
    files_root: Path | None = None,
) -> gr.Blocks:
    """The web app for the API at `settings.server_url` (key `settings.api_key`, kept server side).

    `catalog` skips asking the API for its generators; `wait` is how long to keep asking when it is not up
    yet; `files_root` is where sessions' downloads go (a fresh temp directory by default)."""
    settings = settings or Settings()
    catalog = catalog or fetch_catalog(settings, wait)
    offline = catalog is None
    catalog = catalog or fallback_catalog(settings)
    files_root = files_root or Path(tempfile.mkdtemp(prefix="image2model-ui-"))
    runner = JobRunner(settings.server_url, settings.api_key, SessionFiles(files_root / "sessions"))
    thumbnails = Thumbnails(files_root / "thumbs")
    # Served as they are: a page of thumbnails is not hashed and copied into Gradio's cache on every render.
    gr.set_static_paths([thumbnails.root])
    generators = {g.name: g for g in catalog.models}
    default_name = catalog.default if catalog.default in generators else catalog.models[0].name
    multiview_choices = multiview_generators(catalog)
    formats_union = [f for f in ALL_FORMATS if any(f in g.supported_formats for g in catalog.models)]
    formats_union += sorted({f for g in catalog.models for f in g.supported_formats} - set(formats_union))

    samples_dir = files_root / "samples"
    samples_dir.mkdir(parents=True, exist_ok=True)
    samples = [Path(shutil.copy2(p, samples_dir / p.name)) for p in sample_images()]
    empty_scene = files_root / EMPTY_SCENE
    empty_scene.write_bytes(empty_scene_glb())

    with gr.Blocks(title="image2model", analytics_enabled=False, delete_cache=CACHE_SWEEP) as demo:
        gr.Markdown(
            "# image2model\nDrop one or more photos of an object (plain background or transparent PNG), "
            "press **Generate**, spin the textured, watertight 3D model and download it."
        )
        if offline:
            gr.Markdown(
                f"⚠️ The API at `{settings.server_url}` could not be reached when this page was built, so "
                "its options are not shown; jobs use the server's defaults. Reload once it is up."
            )
        job_state = gr.State("")
        results_state = gr.State([])
        history_state = gr.State(HistoryPage())
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320), gr.Tabs(elem_id="i2m-tabs"):
                with gr.Tab("Photos", id="photos"):
                    photos_ui = photos_tab(catalog, default_name, samples)
                with gr.Tab("Multi-view", id="multiview"):
                    views_ui = multiview_tab(multiview_choices)
                with gr.Tab("My models", id="history") as history_tab_ui:
                    history_ui = history_tab()
            with gr.Column(scale=3, min_width=400):
                with gr.Row(equal_height=True):
                    stage = gr.Markdown("Ready.", elem_id="i2m-stage")
                    cancel_btn = gr.Button(
                        "Cancel", variant="stop", interactive=False, scale=0, size="sm", min_width=110
                    )
                file_table = gr.Markdown("", min_height=20)
                panel = ResultPanel(formats_union, empty_scene)

        def busy(on: bool) -> dict[Any, Any]:
            """The buttons while a job is followed (on) and after."""
            return {
                photos_ui.button: gr.Button(interactive=not on),
                views_ui.button: gr.Button(interactive=not on and bool(multiview_choices)),
                cancel_btn: gr.Button(interactive=on),
            }

        async def follow(
            first: str, updates: AsyncIterator[Update], progress: gr.Progress, *, timed: bool
        ) -> AsyncIterator[dict[Any, Any]]:
            """The page's updates while a job is followed, from the runner's updates: the page cleared with the
            stage line `first`, then the job as it goes."""
            yield starting(first)
            results: list[ItemResult] = []
            shown: ItemResult | None = None
            started = time.monotonic()
            gate = ProgressGate()
            status_link = ""
            try:
                async for update in with_flushes(updates, gate.due, lambda u: Update("progress", u.view)):
                    view = update.view
                    log.debug("generate job=%s phase=%s", update.job_id, update.kind)
                    text, table = progress_line(view), status_table(view)
                    parts = gate.changes(text, table, force=update.kind != "progress")
                    if not parts:
                        continue
                    progress(view.progress / 100, desc=text)
                    out: dict[Any, Any] = {}
                    if "stage" in parts:
                        out[stage] = f"**{text}**"
                    if "table" in parts:
                        out[file_table] = table
                    if update.kind == "submitted":
                        out[job_state] = update.job_id
                        out[panel.job_link] = job_link_markdown(update.job_id, status_link)
                    elif update.kind in ("item", "previews", "downloads") and update.item is not None:
                        if update.kind == "item":
                            results.append(update.item)
                            results.sort(key=lambda r: r.index)
                        if update.kind != "downloads":
                            out[results_state] = list(results)
                            out[panel.gallery] = panel.gallery_value(results)
                        if shown is None or shown is update.item:
                            shown = update.item
                            out.update(panel.show(update.item))
                            if update.kind != "item":  # the model is on screen already: not loaded again
                                del out[panel.viewer]
                    elif update.kind == "done":
                        text = progress_line(view)
                        if view.ok and timed:
                            text = f"{text} in {time.monotonic() - started:.1f} s"
                        out[stage] = f"**{text}**"
                        if shown is None:
                            failed = [
                                ItemResult(
                                    f.index,
                                    f.filename,
                                    view.job_id,
                                    f.file_id,
                                    error=f.error or f.status.value,
                                )
                                for f in view.files
                            ]
                            shown = failed[0] if failed else None
                        # The last update carries the whole view, so API callers get every output.
                        out.update(panel.show(shown))
                        out[results_state] = list(results)  # what a click on the gallery below picks from
                        out[panel.gallery] = panel.gallery_value(results)
                        out[panel.job_link] = job_link_markdown(view.job_id, status_link)
                        out.update(busy(False))
                        out[job_state] = ""
                    yield out
                    if update.kind == "done" and view.status == "failed":
                        raise gr.Error(view.error or "The job failed.", print_exception=False)
            except Image2ModelError as exc:
                message = error_text(exc)
                yield {stage: f"**Error:** {message}", job_state: "", **busy(False)}
                raise gr.Error(message, print_exception=False) from None

        def starting(text: str) -> dict[Any, Any]:
            return {
                stage: text,
                file_table: "",
                panel.job_link: "",
                results_state: [],
                panel.gallery: gr.Gallery(value=None, visible=False),
                **busy(True),
                **panel.show(None),
            }

        def refused(message: str) -> gr.Error:
            return gr.Error(message, print_exception=False)

        async def submit(
            paths: list[str], request: gr.Request, progress: gr.Progress, **job: Any
        ) -> AsyncIterator[Any]:
            """Upload `paths` as one job (`job`: `JobRunner.run`'s options) and follow it."""
            progress(0.0, desc="Uploading")
            first = f"Uploading {len(paths)} {'views' if job.get('multiview') else 'photo(s)'}…"
            updates = runner.run(paths, session=request.session_hash or "anonymous", **job)
            async for out in follow(first, updates, progress, timed=True):
                yield out

        async def on_generate(
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 - how Gradio injects progress
            *values: Any,
        ) -> Any:
            files, gen_name, fmt_values, *option_values = values
            paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
            if not paths:
                raise refused("Add a photo first (or pick a sample).")
            face_limit, options = collect_options(
                catalog, gen_name, photos_ui.option_keys, list(option_values)
            )
            async for out in submit(
                paths,
                request,
                progress,
                generator=gen_name if not offline else None,
                formats=fmt_values or [],
                face_limit=face_limit,
                options=options,
            ):
                yield out

        async def on_multiview(
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 - how Gradio injects progress
            *values: Any,
        ) -> Any:
            *views, gen_name = values
            info = generators.get(gen_name)
            if info is None:
                raise refused("None of this server's generators makes one model from several views.")
            try:
                paths = ordered_views(views, info.max_images_per_item)
            except ValueError as exc:
                gr.Warning(str(exc))
                yield {stage: f"⚠️ **{exc}**"}
                return
            async for out in submit(
                paths,
                request,
                progress,
                generator=gen_name,
                formats=[],
                face_limit=None,
                options={},
                multiview=True,
            ):
                yield out

        async def open_job(job_id: str, request: gr.Request, progress: gr.Progress) -> AsyncIterator[Any]:
            updates = runner.open(job_id, session=request.session_hash or "anonymous")
            async for out in follow(f"Opening job `{job_id}`…", updates, progress, timed=False):
                yield out

        async def on_page_load(
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 - how Gradio injects progress
        ) -> Any:
            job_id = (request.query_params.get(JOB_QUERY) or "").strip()
            if not job_id:
                yield {stage: gr.skip()}
                return
            async for out in open_job(job_id, request, progress):
                yield out

        async def on_history_select(
            page: HistoryPage,
            evt: gr.SelectData,
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 - how Gradio injects progress
        ) -> Any:
            index = evt.index if isinstance(evt.index, int) else -1
            if not 0 <= index < len(page.jobs):
                yield {stage: gr.skip()}
                return
            async for out in open_job(page.jobs[index].job_id, request, progress):
                yield out

        async def load_history(page: HistoryPage, more: bool) -> dict[Any, Any]:
            try:
                async with runner.client() as client:
                    page = await thumbnails.page(
                        client, page if more else HistoryPage(), page.next_cursor if more else None
                    )
            except Image2ModelError as exc:
                return {history_ui.note: f"**Could not list your models:** {error_text(exc)}"}
            note = "" if page.jobs else "No models yet: make one in the Photos or Multi-view tab."
            if page.jobs:
                note = f"{len(page.jobs)} model{'s' if len(page.jobs) != 1 else ''}" + (
                    " (more below)" if page.next_cursor else ""
                )
            return {
                history_state: page,
                history_ui.note: note,
                history_ui.gallery: gr.Gallery(
                    value=[(str(t), caption(j)) for j, t in zip(page.jobs, page.thumbs, strict=True)],
                    selected_index=None,
                ),
                history_ui.more: gr.Button(visible=page.next_cursor is not None),
            }

        async def on_history_open(page: HistoryPage) -> dict[Any, Any]:
            return await load_history(page, more=False)

        async def on_history_more(page: HistoryPage) -> dict[Any, Any]:
            return await load_history(page, more=True)

        async def on_export(
            item: ItemResult | None,
            fmt: str,
            faces: float | None,
            height_mm: float | None,
            z_up: bool,
            bottom: bool,
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 - how Gradio injects progress
        ) -> Any:
            if item is None or not item.file_id:
                raise refused("Open a model first: generate one or pick one in My models.")
            try:
                choice = export_choice(fmt, faces, height_mm, z_up, bottom)
            except ValueError as exc:
                gr.Warning(str(exc))
                yield {panel.export_status: f"⚠️ **{exc}**"}
                return
            yield {
                panel.export_status: f"Exporting {choice.describe()}…",
                panel.export_file: gr.DownloadButton(value=None, visible=False),
                panel.export_button: gr.Button(interactive=False),
            }
            progress(None, desc=f"Exporting {choice.format.upper()}")
            dest = runner.files.job_dir(request.session_hash or "anonymous", item.job_id) / "exports"
            started = time.monotonic()
            try:
                async with runner.client() as client:
                    path, entry = await run_export(client, item.job_id, item.file_id, choice, dest)
            except (Image2ModelError, TimeoutError) as exc:
                message = error_text(exc)
                yield {
                    panel.export_status: f"**Export failed:** {message}",
                    panel.export_button: gr.Button(interactive=True),
                }
                raise refused(message) from None
            faces_made = entry.metadata.get("faces")
            yield {
                panel.export_status: f"Exported {choice.describe()} in {time.monotonic() - started:.1f} s"
                + (f" · {faces_made:,} faces" if isinstance(faces_made, int) else ""),
                panel.export_file: gr.DownloadButton(
                    label=f"Download {entry.filename} · {size_text(entry.size)}",
                    value=str(path),
                    visible=True,
                ),
                panel.export_button: gr.Button(interactive=True),
            }

        async def on_cancel(job_id: str) -> Any:
            if not job_id:
                return {stage: "Nothing to cancel."}
            try:
                status = await runner.cancel(job_id)
            except Image2ModelError as exc:
                return {stage: f"**Could not cancel:** {error_text(exc)}"}
            return {stage: f"**Cancelling…** (job {status})", cancel_btn: gr.Button(interactive=False)}

        def on_select(results: list[ItemResult], evt: gr.SelectData) -> Any:
            with_preview = [r for r in results if r.preview]
            index = evt.index if isinstance(evt.index, int) else 0
            return panel.show(with_preview[index] if 0 <= index < len(with_preview) else None)

        def on_generator(name: str) -> Any:
            g = generators.get(name) or generators[default_name]
            out: dict[Any, Any] = {
                photos_ui.formats: gr.CheckboxGroup(
                    choices=g.supported_formats, value=g.default_formats, visible=bool(g.supported_formats)
                ),
                photos_ui.generator: gr.Dropdown(info=g.description or None),
            }
            out.update({group: gr.Group(visible=n == g.name) for n, group in photos_ui.groups.items()})
            return out

        async def on_unload(request: gr.Request) -> None:
            await runner.end_session(request.session_hash or "anonymous")

        job_outputs = [
            stage,
            file_table,
            job_state,
            results_state,
            panel.gallery,
            panel.job_link,
            photos_ui.button,
            views_ui.button,
            cancel_btn,
            *panel.item_outputs,
        ]
        photos_ui.button.click(
            on_generate,
            inputs=[photos_ui.photos, photos_ui.generator, photos_ui.formats, *photos_ui.option_controls],
            outputs=job_outputs,
            api_name="generate",
            concurrency_limit=CONCURRENCY,
            concurrency_id="generate",
            show_progress_on=[file_table],
        )
        views_ui.button.click(
            on_multiview,
            inputs=[*views_ui.views, views_ui.generator],
            outputs=job_outputs,
            api_name="generate_multiview",
            concurrency_id="generate",
            show_progress_on=[file_table],
        )
        history_outputs = [history_state, history_ui.note, history_ui.gallery, history_ui.more]
        history_tab_ui.select(
            on_history_open, inputs=[history_state], outputs=history_outputs, api_visibility="private"
        )
        history_ui.refresh.click(
            on_history_open, inputs=[history_state], outputs=history_outputs, api_name="my_models"
        )
        history_ui.more.click(
            on_history_more, inputs=[history_state], outputs=history_outputs, api_visibility="private"
        )
        history_ui.gallery.select(
            on_history_select,
            inputs=[history_state],
            outputs=job_outputs,
            concurrency_id="generate",
            show_progress_on=[file_table],
            api_visibility="private",
        )
        panel.export_button.click(
            on_export,
            inputs=[
                panel.shown,
                panel.export_format,
                panel.export_faces,
                panel.export_height,
                panel.export_z_up,
                panel.export_bottom,
            ],
            outputs=[panel.export_status, panel.export_file, panel.export_button],
            api_visibility="private",
            show_progress_on=[panel.export_status],
        )
        cancel_btn.click(
            on_cancel,
            inputs=[job_state],
            outputs=[stage, cancel_btn],
            api_name="cancel",
            queue=False,
        )
        panel.gallery.select(
            on_select, inputs=[results_state], outputs=panel.item_outputs, api_visibility="private"
        )
        photos_ui.generator.change(
            on_generator,
            inputs=[photos_ui.generator],
            outputs=[photos_ui.formats, photos_ui.generator, *photos_ui.groups.values()],
            api_visibility="private",
            queue=False,
        )
        demo.load(
            on_page_load,
            outputs=job_outputs,
            api_visibility="private",
            concurrency_id="generate",
            show_progress="hidden",
        )
        demo.unload(on_unload)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    quiet_queue(demo)
    demo.image2model_runner = runner  # type: ignore[attr-defined] - for tests
    demo.image2model_root = files_root  # type: ignore[attr-defined] - removed by close_app
    return demo


def launch_options() -> dict[str, Any]:
    """`demo.launch()` arguments for an offline, local-only app (run_ui, tests and the bench use them)."""
    return {
        "quiet": True,
        "show_error": False,
        "footer_links": [],
        "css": CSS,
        "ssr_mode": False,
        "pwa": False,
        "mcp_server": False,
        "enable_monitoring": False,
    }


def close_app(demo: gr.Blocks) -> None:
    """Stop the server and delete every session's files."""
    demo.close()
    root = getattr(demo, "image2model_root", None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
