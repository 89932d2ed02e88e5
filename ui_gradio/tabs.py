"""The left-hand tabs' components, each built where it is called (inside the app's `gr.Tab`): Photos (photos,
samples, generator and its options), Multi-view (four labelled drop zones) and My models (the history gallery)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from image2model.core.models import GeneratorInfo, ModelsAvailable

from .catalog import option_control
from .multiview import HINTS, VIEWS
from .view import PROMINENT

HISTORY_COLUMNS = 3


@dataclass
class PhotosTab:
    photos: gr.File
    generator: gr.Dropdown
    formats: gr.CheckboxGroup
    button: gr.Button
    groups: dict[str, gr.Group] = field(default_factory=dict)
    """Each generator's options, shown while it is picked."""
    option_keys: list[tuple[str, str]] = field(default_factory=list)
    """(generator, option) of each control in `option_controls`."""
    option_controls: list[gr.components.Component] = field(default_factory=list)


def photos_tab(catalog: ModelsAvailable, default_name: str, samples: list[Path]) -> PhotosTab:
    """Photos, sample thumbnails (`gr.Examples` over a hidden image: a click puts the sample in the photos), the
    generator, its formats and options, and Generate."""
    generators = {g.name: g for g in catalog.models}
    photos = gr.File(
        label="Photos (JPEG, PNG or WebP; several photos make several models)",
        file_count="multiple",
        file_types=["image"],
        type="filepath",
        height=140,
    )
    if samples:
        sample = gr.Image(type="filepath", visible=False, label="Sample")
        gr.Examples(
            examples=[[str(p)] for p in samples],
            inputs=[sample],
            outputs=[photos],
            fn=lambda path: [path] if path else None,
            run_on_click=True,
            cache_examples=False,
            label="Or try a sample",
            examples_per_page=len(samples),
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
    tab = PhotosTab(photos, generator, formats, gr.Button("Generate", variant="primary", render=False))
    for g in catalog.models:
        with gr.Group(visible=g.name == default_name) as group:
            tab.groups[g.name] = group
            prominent = [o for o in g.options if o.name in PROMINENT]
            rest = [o for o in g.options if o.name not in PROMINENT]
            for info in prominent:
                tab.option_controls.append(option_control(info))
                tab.option_keys.append((g.name, info.name))
            if rest:
                with gr.Accordion("Advanced options", open=False):
                    for info in rest:
                        tab.option_controls.append(option_control(info))
                        tab.option_keys.append((g.name, info.name))
    tab.button.render()
    return tab


@dataclass
class MultiviewTab:
    views: list[gr.Image]
    """One drop zone per side, in `VIEWS` order."""
    generator: gr.Dropdown
    button: gr.Button


def multiview_tab(choices: list[GeneratorInfo]) -> MultiviewTab:
    """How to shoot the views, the four zones in two rows, the generator and "Generate from views" (off when no
    generator takes several views)."""
    gr.Markdown(
        "Two to four photos of **one** object from different sides make **one** model. "
        "Turn the object a quarter turn clockwise (seen from above) between shots:\n\n"
        + "\n".join(f"- **{name.capitalize()}**: {HINTS[name]}" for name in VIEWS)
    )
    views = []
    for row in (VIEWS[:2], VIEWS[2:]):
        with gr.Row():
            for name in row:
                views.append(
                    gr.Image(
                        label=name.capitalize(),
                        type="filepath",
                        sources=["upload", "clipboard"],
                        height=180,
                        elem_id=f"i2m-view-{name}",
                    )
                )
    generator = gr.Dropdown(
        choices=[(g.title or g.name, g.name) for g in choices],
        value=choices[0].name if choices else None,
        label="Generator",
        visible=bool(choices),
    )
    if not choices:
        gr.Markdown("⚠️ None of this server's generators makes one model from several views.")
    button = gr.Button("Generate from views", variant="primary", interactive=bool(choices))
    return MultiviewTab(views, generator, button)


@dataclass
class HistoryTab:
    note: gr.Markdown
    gallery: gr.Gallery
    more: gr.Button
    refresh: gr.Button


def history_tab() -> HistoryTab:
    """A line saying how many models, the gallery of thumbnails, More and Refresh."""
    note = gr.Markdown("", elem_id="i2m-history-note")
    gallery = gr.Gallery(
        label="My models (newest first; pick one to open it)",
        columns=HISTORY_COLUMNS,
        height=560,
        allow_preview=False,
        object_fit="contain",
        elem_id="i2m-history",
    )
    with gr.Row():
        more = gr.Button("More", visible=False, size="sm")
        refresh = gr.Button("Refresh", size="sm")
    return HistoryTab(note, gallery, more, refresh)
