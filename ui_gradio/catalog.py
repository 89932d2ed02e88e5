"""What the Photos tab offers, from the API's `/models/available`: the generator list (read once at start, retried
while the API comes up), a control per generator option, and the sample photos."""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path
from typing import Any

import gradio as gr

from image2model.core.client import Client
from image2model.core.errors import Image2ModelError
from image2model.core.models import GeneratorInfo, ModelsAvailable, OptionInfo
from image2model.core.settings import Settings

log = logging.getLogger("image2model.ui")


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


def fallback_catalog(settings: Settings) -> ModelsAvailable:
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


def option_control(info: OptionInfo) -> gr.components.Component:
    """The control for one generator option: checkbox, radio, slider, number or text box by its type."""
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
