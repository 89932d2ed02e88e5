"""Procedural product shots (drawn once per session) and a helper to run the local generator on an image."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from image2model.core.generators.base import GenerationRequest, GenerationResult
from image2model.core.generators.local import LocalGenerator, studio

SHOT_SIZE = 512


@pytest.fixture(scope="session")
def shots() -> dict[str, studio.Shot]:
    return {name: draw(SHOT_SIZE) for name, draw in studio.SHOTS.items()}


@pytest.fixture(scope="session")
def scenes() -> dict[str, studio.Shot]:
    return {name: draw(SHOT_SIZE) for name, draw in studio.SCENES.items()}


def jpeg(image: Image.Image, quality: int = 80) -> Image.Image:
    """The image after a round trip through JPEG at `quality` (what most uploads are)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


@pytest.fixture(scope="session")
def generator() -> LocalGenerator:
    gen = LocalGenerator()
    gen.warm_up()
    return gen


def run_generator(
    generator: LocalGenerator,
    image: Image.Image,
    out_dir: Path,
    options: dict | None = None,
    formats: tuple[str, ...] = ("glb", "obj", "stl", "ply"),
    name: str = "input.png",
) -> tuple[GenerationResult, list[tuple[float, str]]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    image.save(path)
    options = generator.spec.validate(options or {}, list(formats))[0]
    calls: list[tuple[float, str]] = []
    request = GenerationRequest([path], options, list(formats), out_dir, "item")
    result = generator.generate(request, lambda f, s: calls.append((f, s)))
    return result, calls
