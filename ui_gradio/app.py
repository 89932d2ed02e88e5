"""The Gradio web app: `build_app(settings)` returns the `gr.Blocks`; the work is in `handlers`, the text in `view`.

A thin client of the job API: options come from `/models/available`, progress from the job's event stream,
results are downloaded through the API into per-session directories. The API key never reaches the browser.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402 - analytics must be off before gradio is imported

from image2model.core.client import Client  # noqa: E402
from image2model.core.errors import Image2ModelError  # noqa: E402
from image2model.core.models import GeneratorInfo, ModelsAvailable, OptionInfo  # noqa: E402
from image2model.core.settings import Settings  # noqa: E402

from .handlers import ItemResult, JobRunner, SessionFiles  # noqa: E402
from .idle import quiet_queue  # noqa: E402
from .view import (  # noqa: E402
    PROMINENT,
    ProgressGate,
    collect_options,
    empty_scene_glb,
    error_text,
    progress_line,
    size_text,
    stats_markdown,
    status_table,
)

log = logging.getLogger("image2model.ui")

CONCURRENCY = 32
"""Generate events running at once. Each only waits on the API's stream (the heavy queue is the API's), so this
bounds open streams and downloads, not CPU work."""
QUEUE_SIZE = 128
"""Generate requests waiting beyond CONCURRENCY before new ones are turned away."""
CACHE_SWEEP = (1800, 3600)
"""Gradio's own copies of served files: swept every 30 min, removed after an hour."""
ALL_FORMATS = ("glb", "obj", "stl", "ply")
EMPTY_SCENE = "no-model-yet.glb"
"""What the viewer holds while there is no model: it draws nothing, but keeps the viewer set up (see
`view.empty_scene_glb`). Its download link is hidden."""

CSS = f"""
#i2m-stage {{min-height: 64px}}
#i2m-viewer {{border-radius: 8px}}
.i2m-downloads button {{min-width: 120px}}
footer {{display: none !important}}
#i2m-viewer a[href$="/{EMPTY_SCENE}"] {{display: none}}
"""


def sample_images() -> list[Path]:
    """The sample photos shipped with the local generator (found without importing it)."""
    spec = importlib.util.find_spec("image2model.core.generators.local")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations))) / "samples"
    return sorted(folder.glob("*.png"))


def fetch_catalog(settings: Settings, wait: float = 0.0) -> ModelsAvailable | None:
    """`/models/available`, retried for up to `wait` seconds (the API may still be starting)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with Client(settings.server_url, settings.api_key, timeout=5) as client:
                return client.models()
        except Image2ModelError as exc:
            if time.monotonic() >= deadline:
                log.warning("cannot read the generator list from %s: %s", settings.server_url, exc.message)
                return None
        time.sleep(0.5)


def _fallback_catalog(settings: Settings) -> ModelsAvailable:
    """Used when the API could not be reached at start: the server's defaults, nothing to tune."""
    name = settings.default_generator
    return ModelsAvailable(
        default=name,
        models=[
            GeneratorInfo(
                name=name,
                title=name,
                description="",
                supported_formats=[],
                default_formats=[],
                options=[],
            )
        ],
        limits={},
    )


def _option_control(info: OptionInfo) -> gr.components.Component:
    label = info.name.replace("_", " ").capitalize()
    if info.name == "face_limit":
        label = "Face limit"
    common: dict[str, Any] = {"label": label, "info": info.description or None}
    if info.type == "bool":
        return gr.Checkbox(value=bool(info.default), **common)
    if info.type == "choice" and info.choices:
        return gr.Radio(choices=list(info.choices), value=info.default, **common)
    if info.type in ("int", "float") and info.minimum is not None and info.maximum is not None:
        return gr.Slider(
            minimum=info.minimum,
            maximum=info.maximum,
            value=info.default,
            step=1 if info.type == "int" else 0.05,
            **common,
        )
    if info.type in ("int", "float"):
        return gr.Number(value=info.default, precision=0 if info.type == "int" else None, **common)
    return gr.Textbox(value="" if info.default is None else str(info.default), **common)


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
    catalog = catalog or _fallback_catalog(settings)
    files_root = files_root or Path(tempfile.mkdtemp(prefix="image2model-ui-"))
    runner = JobRunner(settings.server_url, settings.api_key, SessionFiles(files_root / "sessions"))
    generators = {g.name: g for g in catalog.models}
    default_name = catalog.default if catalog.default in generators else catalog.models[0].name
    formats_union = [f for f in ALL_FORMATS if any(f in g.supported_formats for g in catalog.models)]
    formats_union += sorted({f for g in catalog.models for f in g.supported_formats} - set(formats_union))

    samples_dir = files_root / "samples"
    samples_dir.mkdir(parents=True, exist_ok=True)
    samples = [Path(shutil.copy2(p, samples_dir / p.name)) for p in sample_images()]
    empty_scene = files_root / EMPTY_SCENE
    empty_scene.write_bytes(empty_scene_glb())

    option_keys: list[tuple[str, str]] = []
    option_controls: list[gr.components.Component] = []
    groups: dict[str, gr.Group] = {}

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
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                photos = gr.File(
                    label="Photos (JPEG, PNG or WebP; several photos make several models)",
                    file_count="multiple",
                    file_types=["image"],
                    type="filepath",
                    height=140,
                )
                if samples:
                    gr.Examples(
                        examples=[[[str(p)]] for p in samples],
                        inputs=[photos],
                        label="Or try a sample",
                        example_labels=[p.stem for p in samples],
                    )
                generator = gr.Dropdown(
                    choices=[(g.title or g.name, g.name) for g in catalog.models],
                    value=default_name,
                    label="Generator",
                    info=generators[default_name].description or None,
                    visible=len(catalog.models) > 1,
                )
                formats = gr.CheckboxGroup(
                    choices=generators[default_name].supported_formats,
                    value=generators[default_name].default_formats,
                    label="Formats",
                    visible=bool(generators[default_name].supported_formats),
                )
                for g in catalog.models:
                    with gr.Group(visible=g.name == default_name) as group:
                        groups[g.name] = group
                        prominent = [o for o in g.options if o.name in PROMINENT]
                        rest = [o for o in g.options if o.name not in PROMINENT]
                        for info in prominent:
                            option_controls.append(_option_control(info))
                            option_keys.append((g.name, info.name))
                        if rest:
                            with gr.Accordion("Advanced options", open=False):
                                for info in rest:
                                    option_controls.append(_option_control(info))
                                    option_keys.append((g.name, info.name))
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary", scale=3)
                    cancel_btn = gr.Button("Cancel", variant="stop", interactive=False, scale=1)
                stage = gr.Markdown("Ready.", elem_id="i2m-stage")
                file_table = gr.Markdown("", min_height=40)
            with gr.Column(scale=3, min_width=400):
                viewer = gr.Model3D(
                    value=str(empty_scene),
                    label="3D model",
                    height=420,
                    clear_color=(0.93, 0.94, 0.96, 1.0),
                    elem_id="i2m-viewer",
                    interactive=False,
                )
                with gr.Row(elem_classes="i2m-downloads"):
                    download_buttons = {
                        fmt: gr.DownloadButton(f"Download {fmt.upper()}", visible=False, size="sm")
                        for fmt in formats_union
                    }
                with gr.Row(equal_height=False):
                    turntable = gr.Image(
                        label="Turntable", type="filepath", height=220, interactive=False, buttons=[]
                    )
                    stats = gr.Markdown("")
                gallery = gr.Gallery(
                    label="Results (pick one to view)",
                    columns=6,
                    height=170,
                    visible=False,
                    allow_preview=False,
                )
                job_link = gr.Markdown("")

        item_outputs = [viewer, turntable, stats, *download_buttons.values()]

        def show_item(item: ItemResult | None) -> dict[Any, Any]:
            """The viewer, turntable, stats and download buttons for one result."""
            if item is None:
                return {viewer: str(empty_scene), turntable: None, stats: "", **_buttons({})}
            if item.error:
                return {
                    viewer: str(empty_scene),
                    turntable: None,
                    stats: f"**{item.source_filename}** failed: {item.error}",
                    **_buttons({}),
                }
            return {
                viewer: str(item.model) if item.model else str(empty_scene),
                turntable: str(item.turntable or item.preview) if (item.turntable or item.preview) else None,
                stats: stats_markdown(item.metadata, item.source_filename),
                **_buttons(item.downloads, item.sizes),
            }

        def _buttons(downloads: dict[str, Path], sizes: dict[str, int] | None = None) -> dict[Any, Any]:
            out: dict[Any, Any] = {}
            for fmt, button in download_buttons.items():
                path = downloads.get(fmt)
                if path is None:
                    out[button] = gr.DownloadButton(value=None, visible=False)
                else:
                    size = (sizes or {}).get(fmt)
                    label = f"{fmt.upper()}" + (f" · {size_text(size)}" if size else "")
                    out[button] = gr.DownloadButton(label=label, value=str(path), visible=True)
            return out

        def gallery_value(results: list[ItemResult]) -> Any:
            shown = [(str(r.preview), r.source_filename) for r in results if r.preview]
            return gr.Gallery(value=shown, visible=len(results) > 1)

        async def on_generate(
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 - how Gradio injects progress
            *values: Any,
        ) -> Any:
            files, gen_name, fmt_values, *option_values = values
            paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
            if not paths:
                raise gr.Error("Add a photo first (or pick a sample).", print_exception=False)
            session = request.session_hash or "anonymous"
            face_limit, options = collect_options(catalog, gen_name, option_keys, list(option_values))
            results: list[ItemResult] = []
            shown: ItemResult | None = None
            started = time.monotonic()
            gate = ProgressGate()
            yield {
                generate_btn: gr.Button(interactive=False),
                cancel_btn: gr.Button(interactive=True),
                stage: "Uploading…",
                file_table: "",
                job_link: "",
                results_state: [],
                gallery: gr.Gallery(value=None, visible=False),
                **show_item(None),
            }
            progress(0.0, desc="Uploading")
            try:
                async for update in runner.run(
                    paths,
                    session=session,
                    generator=gen_name if not offline else None,
                    formats=fmt_values or [],
                    face_limit=face_limit,
                    options=options,
                ):
                    view = update.view
                    log.debug("generate job=%s phase=%s", update.upload.job_id, update.kind)
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
                        link = update.upload.links.get("status", "")
                        out[job_state] = update.upload.job_id
                        out[job_link] = f"Job `{update.upload.job_id}`" + (
                            f" · [status]({link})" if link else ""
                        )
                    elif update.kind in ("item", "downloads") and update.item is not None:
                        if update.kind == "item":
                            results.append(update.item)
                            results.sort(key=lambda r: r.index)
                            out[results_state] = list(results)
                            out[gallery] = gallery_value(results)
                        if shown is None or shown is update.item:
                            shown = update.item
                            out.update(show_item(update.item))
                    elif update.kind == "done":
                        elapsed = time.monotonic() - started
                        text = progress_line(view)
                        if view.ok:
                            text = f"{text} in {elapsed:.1f} s"
                        out[stage] = f"**{text}**"
                        if shown is None:
                            failed = [
                                ItemResult(f.index, f.filename, error=f.error or f.status.value)
                                for f in view.files
                            ]
                            shown = failed[0] if failed else None
                        # The last update carries the whole view, so API callers get every output.
                        out.update(show_item(shown))
                        out[gallery] = gallery_value(results)
                        out[job_link] = f"Job `{update.upload.job_id}`" + (
                            f" · [status]({update.upload.links['status']})"
                            if update.upload.links.get("status")
                            else ""
                        )
                        out[generate_btn] = gr.Button(interactive=True)
                        out[cancel_btn] = gr.Button(interactive=False)
                        out[job_state] = ""
                    yield out
                if view.status == "failed":
                    raise gr.Error(view.error or "The job failed.", print_exception=False)
            except Image2ModelError as exc:
                message = error_text(exc)
                yield {
                    stage: f"**Error:** {message}",
                    generate_btn: gr.Button(interactive=True),
                    cancel_btn: gr.Button(interactive=False),
                    job_state: "",
                }
                raise gr.Error(message, print_exception=False) from None

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
            return show_item(with_preview[index] if 0 <= index < len(with_preview) else None)

        def on_generator(name: str) -> Any:
            g = generators.get(name) or generators[default_name]
            out: dict[Any, Any] = {
                formats: gr.CheckboxGroup(
                    choices=g.supported_formats, value=g.default_formats, visible=bool(g.supported_formats)
                ),
                generator: gr.Dropdown(info=g.description or None),
            }
            out.update({group: gr.Group(visible=n == g.name) for n, group in groups.items()})
            return out

        async def on_unload(request: gr.Request) -> None:
            await runner.end_session(request.session_hash or "anonymous")

        all_outputs = [
            stage,
            file_table,
            job_state,
            results_state,
            gallery,
            job_link,
            generate_btn,
            cancel_btn,
            *item_outputs,
        ]
        generate_btn.click(
            on_generate,
            inputs=[photos, generator, formats, *option_controls],
            outputs=all_outputs,
            api_name="generate",
            concurrency_limit=CONCURRENCY,
            concurrency_id="generate",
            show_progress_on=[file_table],
        )
        cancel_btn.click(
            on_cancel,
            inputs=[job_state],
            outputs=[stage, cancel_btn],
            api_name="cancel",
            queue=False,
        )
        gallery.select(on_select, inputs=[results_state], outputs=item_outputs, api_visibility="private")
        generator.change(
            on_generator,
            inputs=[generator],
            outputs=[formats, generator, *groups.values()],
            api_visibility="private",
            queue=False,
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
