"""Procedurally drawn product photos with their true object masks: for tests, the benchmark and shipped samples.

Each shot is drawn at 4× and downsampled (soft, photo-like edges), then gets lighting, a soft shadow and sensor
noise, so the cut-out is tested on something closer to a photo than a flat-coloured polygon."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SS = 4  # supersampling factor


@dataclass
class Shot:
    """A drawn photo (RGB or RGBA) and the object's true mask (bool, same size)."""

    name: str
    image: Image.Image
    truth: np.ndarray


def _layer(size: int, draw: Callable[[ImageDraw.ImageDraw, float], None]) -> np.ndarray:
    """A 0..1 coverage map of shapes drawn in unit coordinates (0..1 across the image)."""
    big = Image.new("L", (size * SS, size * SS), 0)
    draw(ImageDraw.Draw(big), size * SS)
    return np.asarray(big.resize((size, size), Image.Resampling.BOX), np.float32) / 255.0


def _compose(
    backdrop: np.ndarray,
    layers: list[tuple[np.ndarray, tuple[int, int, int]]],
    shadow: np.ndarray | None,
    seed: int,
    noise: float,
) -> tuple[np.ndarray, np.ndarray]:
    size = backdrop.shape[0]
    img = backdrop.copy()
    if shadow is not None:
        img *= 1.0 - 0.25 * shadow[..., None]
    cover = np.zeros((size, size), np.float32)
    shade = np.linspace(1.08, 0.82, size, dtype=np.float32)[:, None, None]  # light from above
    for alpha, colour in layers:
        obj = np.asarray(colour, np.float32)[None, None, :] * shade
        img = img * (1 - alpha[..., None]) + obj * alpha[..., None]
        cover = np.maximum(cover, alpha)
    rng = np.random.default_rng(seed)
    if noise > 0:
        img += rng.normal(0.0, noise, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), cover > 0.5


def _backdrop(size: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> np.ndarray:
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    return (np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t) * np.ones(
        (1, size, 1), np.float32
    )


def _shadow(size: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    def draw(d: ImageDraw.ImageDraw, s: float) -> None:
        d.ellipse([(cx - rx) * s, (cy - ry) * s, (cx + rx) * s, (cy + ry) * s], fill=255)

    blurred = Image.fromarray((_layer(size, draw) * 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(size * 0.02)
    )
    return np.asarray(blurred, np.float32) / 255.0


def shoe(size: int = 1024, noise: float = 2.0) -> Shot:
    """A red shoe with a near-white sole on a white backdrop, with a soft shadow (the hard case for backdrops)."""

    def upper(d: ImageDraw.ImageDraw, s: float) -> None:
        pts = [
            (0.12, 0.62),
            (0.16, 0.45),
            (0.30, 0.40),
            (0.42, 0.30),
            (0.55, 0.28),
            (0.60, 0.40),
            (0.80, 0.47),
            (0.90, 0.55),
            (0.89, 0.62),
        ]
        d.polygon([(x * s, y * s) for x, y in pts], fill=255)
        d.ellipse([0.70 * s, 0.45 * s, 0.92 * s, 0.64 * s], fill=255)

    def sole(d: ImageDraw.ImageDraw, s: float) -> None:
        d.rounded_rectangle([0.10 * s, 0.60 * s, 0.92 * s, 0.67 * s], radius=0.03 * s, fill=255)

    back = _backdrop(size, (252, 252, 252), (244, 244, 244))
    img, truth = _compose(
        back,
        [(_layer(size, upper), (196, 42, 38)), (_layer(size, sole), (238, 238, 232))],
        _shadow(size, 0.51, 0.68, 0.42, 0.03),
        1,
        noise,
    )
    return Shot("shoe", Image.fromarray(img), truth)


def chair(size: int = 1024, noise: float = 2.0) -> Shot:
    """A brown chair seen from the front: a backrest with two openings, a seat and four thin legs."""

    def frame(d: ImageDraw.ImageDraw, s: float) -> None:
        d.rounded_rectangle([0.30 * s, 0.08 * s, 0.70 * s, 0.50 * s], radius=0.03 * s, fill=255)
        d.rectangle([0.35 * s, 0.14 * s, 0.48 * s, 0.44 * s], fill=0)  # backrest openings
        d.rectangle([0.52 * s, 0.14 * s, 0.65 * s, 0.44 * s], fill=0)
        d.rectangle([0.24 * s, 0.50 * s, 0.76 * s, 0.58 * s], fill=255)  # seat
        for x in (0.26, 0.36, 0.62, 0.72):
            d.rectangle([x * s, 0.58 * s, (x + 0.025) * s, 0.92 * s], fill=255)
        d.rectangle([0.26 * s, 0.76 * s, 0.745 * s, 0.785 * s], fill=255)  # stretcher

    back = _backdrop(size, (214, 216, 220), (190, 192, 196))
    img, truth = _compose(
        back, [(_layer(size, frame), (120, 72, 40))], _shadow(size, 0.5, 0.93, 0.3, 0.02), 2, noise
    )
    return Shot("chair", Image.fromarray(img), truth)


def toy(size: int = 1024, noise: float = 2.0) -> Shot:
    """A yellow teddy bear on a blue studio backdrop."""

    def bear(d: ImageDraw.ImageDraw, s: float) -> None:
        def disk(cx: float, cy: float, rx: float, ry: float | None = None) -> None:
            ry = rx if ry is None else ry
            d.ellipse([(cx - rx) * s, (cy - ry) * s, (cx + rx) * s, (cy + ry) * s], fill=255)

        disk(0.5, 0.30, 0.15)  # head
        disk(0.38, 0.17, 0.06)
        disk(0.62, 0.17, 0.06)  # ears
        disk(0.5, 0.60, 0.20, 0.22)  # body
        disk(0.30, 0.52, 0.07, 0.12)
        disk(0.70, 0.52, 0.07, 0.12)  # arms
        disk(0.38, 0.82, 0.09, 0.07)
        disk(0.62, 0.82, 0.09, 0.07)  # feet

    back = _backdrop(size, (40, 90, 170), (24, 62, 130))
    img, truth = _compose(
        back, [(_layer(size, bear), (226, 178, 52))], _shadow(size, 0.5, 0.9, 0.25, 0.02), 3, noise
    )
    return Shot("toy", Image.fromarray(img), truth)


def cutout_png(size: int = 1024, noise: float = 2.0) -> Shot:
    """An RGBA product cut-out (a green bottle) whose transparent pixels hold junk colour, as exporters leave it."""

    def bottle(d: ImageDraw.ImageDraw, s: float) -> None:
        d.rounded_rectangle([0.32 * s, 0.35 * s, 0.68 * s, 0.92 * s], radius=0.08 * s, fill=255)
        d.polygon(
            [(0.32 * s, 0.40 * s), (0.44 * s, 0.22 * s), (0.56 * s, 0.22 * s), (0.68 * s, 0.40 * s)], fill=255
        )
        d.rectangle([0.44 * s, 0.08 * s, 0.56 * s, 0.24 * s], fill=255)

    alpha = _layer(size, bottle)
    junk = np.zeros((size, size, 3), np.float32)
    junk[..., 2] = 255  # pure blue under the transparent pixels: must not bleed into the texture
    img, truth = _compose(junk, [(alpha, (48, 150, 70))], None, 4, noise)
    rgba = np.dstack([img, (alpha * 255).round().astype(np.uint8)])
    return Shot("cutout", Image.fromarray(rgba, "RGBA"), truth)


SHOTS: dict[str, Callable[..., Shot]] = {"shoe": shoe, "chair": chair, "toy": toy, "cutout": cutout_png}
