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


def _profile_polygon(d: ImageDraw.ImageDraw, s: float, cx: float, profile: list[tuple[float, float]]) -> None:
    """A mirror-symmetric outline from (y, half-width) pairs, top to bottom, in unit coordinates."""
    right = [((cx + r) * s, y * s) for y, r in profile]
    left = [((cx - r) * s, y * s) for y, r in reversed(profile)]
    d.polygon(right + left, fill=255)


def _smooth_profile(points: list[tuple[float, float]], steps: int = 60) -> list[tuple[float, float]]:
    """A (y, half-width) profile through the given points, smoothed by cosine interpolation."""
    out = []
    for (y0, r0), (y1, r1) in zip(points[:-1], points[1:], strict=True):
        for k in range(steps):
            t = k / steps
            w = (1 - np.cos(np.pi * t)) / 2
            out.append((y0 + (y1 - y0) * t, r0 + (r1 - r0) * w))
    out.append(points[-1])
    return out


def _label(size: int, box: tuple[float, float, float, float], seed: int) -> np.ndarray:
    """Rows of small dark marks inside `box` (unit coordinates): printed text, which must never show mirrored."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = box

    def draw(d: ImageDraw.ImageDraw, s: float) -> None:
        lines = 3
        for li in range(lines):
            y = y0 + (li + 0.5) * (y1 - y0) / lines
            x = x0 + 0.02 * (x1 - x0)
            while x < x1 - 0.06 * (x1 - x0):
                w = (0.03 + 0.05 * rng.random()) * (x1 - x0)
                d.rectangle([x * s, (y - 0.012) * s, (x + w) * s, (y + 0.012) * s], fill=255)
                x += w + 0.025 * (x1 - x0)

    return _layer(size, draw)


def sneaker(size: int = 1024, noise: float = 2.0, backdrop: str = "white") -> Shot:
    """A red-and-white sneaker: large white leather panels, a thin white midsole line and a grey outsole, on a white
    (or off-white studio) backdrop. The backdrop model sees only the red parts and the outsole."""

    def upper(d: ImageDraw.ImageDraw, s: float) -> None:
        pts = [(0.08, 0.60), (0.12, 0.44), (0.28, 0.38), (0.42, 0.27), (0.56, 0.25), (0.62, 0.38), (0.82, 0.45),
               (0.93, 0.55), (0.92, 0.60)]  # fmt: skip
        d.polygon([(x * s, y * s) for x, y in pts], fill=255)

    def white_panels(d: ImageDraw.ImageDraw, s: float) -> None:
        d.polygon(
            [(0.70 * s, 0.46 * s), (0.93 * s, 0.55 * s), (0.92 * s, 0.60 * s), (0.66 * s, 0.60 * s)], fill=255
        )
        d.polygon(
            [(0.08 * s, 0.60 * s), (0.12 * s, 0.44 * s), (0.24 * s, 0.40 * s), (0.26 * s, 0.60 * s)], fill=255
        )
        d.polygon(
            [(0.30 * s, 0.55 * s), (0.50 * s, 0.42 * s), (0.64 * s, 0.50 * s), (0.40 * s, 0.58 * s)], fill=255
        )

    def midsole(d: ImageDraw.ImageDraw, s: float) -> None:
        d.rectangle([0.08 * s, 0.60 * s, 0.93 * s, 0.625 * s], fill=255)

    def outsole(d: ImageDraw.ImageDraw, s: float) -> None:
        d.rounded_rectangle([0.07 * s, 0.625 * s, 0.94 * s, 0.67 * s], radius=0.015 * s, fill=255)

    if backdrop == "white":
        back = _backdrop(size, (252, 252, 252), (245, 245, 245))
        panel = (244, 244, 241)
    else:
        back = _backdrop(size, (238, 234, 226), (222, 218, 210))
        panel = (247, 246, 243)
    layers = [
        (_layer(size, upper), (200, 36, 40)),
        (_layer(size, white_panels), panel),
        (_layer(size, midsole), (252, 252, 250)),
        (_layer(size, outsole), (96, 96, 100)),
    ]
    img, truth = _compose(back, layers, _shadow(size, 0.5, 0.68, 0.45, 0.025), 11, noise)
    return Shot(f"sneaker_{backdrop}", Image.fromarray(img), truth)


def bottle(size: int = 1024, noise: float = 2.0) -> Shot:
    """A brown glass bottle with a printed label, standing on a grey gradient backdrop with a soft shadow."""
    profile = _smooth_profile([(0.08, 0.045), (0.30, 0.05), (0.44, 0.15), (0.52, 0.16), (0.92, 0.16)])

    def body(d: ImageDraw.ImageDraw, s: float) -> None:
        _profile_polygon(d, s, 0.5, profile)

    def label(d: ImageDraw.ImageDraw, s: float) -> None:
        d.rectangle([0.34 * s, 0.58 * s, 0.66 * s, 0.78 * s], fill=255)

    back = _backdrop(size, (205, 208, 212), (178, 181, 186))
    layers = [
        (_layer(size, body), (92, 50, 22)),
        (_layer(size, label), (236, 226, 196)),
        (_label(size, (0.36, 0.61, 0.64, 0.75), 5), (40, 30, 30)),
    ]
    img, truth = _compose(back, layers, _shadow(size, 0.5, 0.925, 0.2, 0.012), 12, noise)
    return Shot("bottle", Image.fromarray(img), truth)


def vase(size: int = 1024, noise: float = 2.0) -> Shot:
    """A blue vase with a curved profile and painted bands, on a warm backdrop."""
    profile = _smooth_profile(
        [(0.10, 0.10), (0.16, 0.07), (0.30, 0.09), (0.58, 0.25), (0.80, 0.18), (0.90, 0.12)]
    )

    def body(d: ImageDraw.ImageDraw, s: float) -> None:
        _profile_polygon(d, s, 0.5, profile)

    def band(d: ImageDraw.ImageDraw, s: float) -> None:
        _profile_polygon(d, s, 0.5, [(y, r) for y, r in profile if 0.50 <= y <= 0.62])

    back = _backdrop(size, (232, 214, 190), (210, 190, 166))
    layers = [(_layer(size, body), (40, 80, 160)), (_layer(size, band), (230, 200, 60))]
    img, truth = _compose(back, layers, _shadow(size, 0.5, 0.905, 0.16, 0.01), 13, noise)
    return Shot("vase", Image.fromarray(img), truth)


def glass(size: int = 1024, noise: float = 2.0) -> Shot:
    """A tall drinking glass, pale and slightly see-through, on a dark slate backdrop."""
    profile = _smooth_profile([(0.14, 0.17), (0.50, 0.15), (0.86, 0.12)])

    def body(d: ImageDraw.ImageDraw, s: float) -> None:
        _profile_polygon(d, s, 0.5, profile)

    def highlight(d: ImageDraw.ImageDraw, s: float) -> None:
        d.rectangle([0.38 * s, 0.18 * s, 0.41 * s, 0.80 * s], fill=255)

    back = _backdrop(size, (70, 76, 84), (46, 50, 56))
    layers = [(_layer(size, body) * 0.85, (170, 190, 200)), (_layer(size, highlight) * 0.7, (245, 250, 252))]
    img, truth = _compose(back, layers, None, 14, noise)
    return Shot("glass", Image.fromarray(img), truth)


def mug(size: int = 1024, noise: float = 2.0) -> Shot:
    """A mug seen from the side: a cylindrical body and a handle loop on the right, on a light backdrop."""

    def body(d: ImageDraw.ImageDraw, s: float) -> None:
        d.rounded_rectangle([0.28 * s, 0.30 * s, 0.64 * s, 0.76 * s], radius=0.02 * s, fill=255)

    def handle(d: ImageDraw.ImageDraw, s: float) -> None:
        d.ellipse([0.55 * s, 0.38 * s, 0.80 * s, 0.66 * s], fill=255)
        d.ellipse([0.61 * s, 0.44 * s, 0.74 * s, 0.60 * s], fill=0)
        d.rectangle([0.28 * s, 0.30 * s, 0.64 * s, 0.76 * s], fill=0)

    back = _backdrop(size, (226, 230, 234), (200, 204, 210))
    layers = [(_layer(size, body), (30, 110, 90)), (_layer(size, handle), (30, 110, 90))]
    img, truth = _compose(back, layers, _shadow(size, 0.46, 0.765, 0.2, 0.01), 15, noise)
    return Shot("mug", Image.fromarray(img), truth)


def table_cup(size: int = 1024, noise: float = 2.0) -> Shot:
    """A white-and-red cup on a busy wooden table with crumbs around it: only the cup is the object."""
    rng = np.random.default_rng(16)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    grain = 0.5 + 0.5 * np.sin(2 * np.pi * (yy * 9 + 0.6 * np.sin(xx * 7) + 0.15 * np.sin(yy * 41)))
    wood = np.stack([150 + 50 * grain, 96 + 34 * grain, 52 + 20 * grain], axis=-1).astype(np.float32)
    wood += rng.normal(0, 6, wood.shape).astype(np.float32)

    def cup(d: ImageDraw.ImageDraw, s: float) -> None:
        _profile_polygon(d, s, 0.48, _smooth_profile([(0.30, 0.19), (0.60, 0.17), (0.72, 0.12)]))

    def rim(d: ImageDraw.ImageDraw, s: float) -> None:
        d.rectangle([0.29 * s, 0.30 * s, 0.67 * s, 0.36 * s], fill=255)

    def crumbs(d: ImageDraw.ImageDraw, s: float) -> None:
        for _ in range(40):
            x, y = rng.random(), rng.random()
            if 0.22 < x < 0.74 and 0.24 < y < 0.80:
                continue
            r = 0.003 + 0.006 * rng.random()
            d.ellipse([(x - r) * s, (y - r) * s, (x + r) * s, (y + r) * s], fill=255)

    cup_layer = _layer(size, cup)
    img, truth = _compose(
        wood,
        [
            (_layer(size, crumbs), (236, 214, 170)),
            (cup_layer, (236, 236, 232)),
            (_layer(size, rim) * cup_layer, (190, 40, 40)),
        ],
        _shadow(size, 0.5, 0.73, 0.16, 0.02),
        16,
        noise,
    )
    return Shot("table_cup", Image.fromarray(img), cup_layer > 0.5)


def portrait(size: int = 1024, noise: float = 2.0) -> Shot:
    """A head-and-shoulders portrait cut at the chest by the bottom of the frame, on a plain blue-grey backdrop."""

    def person(d: ImageDraw.ImageDraw, s: float) -> None:
        d.ellipse([0.36 * s, 0.12 * s, 0.62 * s, 0.48 * s], fill=255)  # head
        d.rectangle([0.44 * s, 0.44 * s, 0.55 * s, 0.58 * s], fill=255)  # neck
        d.rounded_rectangle([0.14 * s, 0.56 * s, 0.86 * s, 1.2 * s], radius=0.12 * s, fill=255)  # shoulders

    def hair(d: ImageDraw.ImageDraw, s: float) -> None:
        d.chord([0.35 * s, 0.10 * s, 0.63 * s, 0.40 * s], 180, 360, fill=255)

    back = _backdrop(size, (150, 166, 184), (120, 136, 156))
    layers = [(_layer(size, person), (206, 150, 120)), (_layer(size, hair), (70, 46, 30))]
    img, truth = _compose(back, layers, None, 17, noise)
    return Shot("portrait", Image.fromarray(img), truth)


def pet(size: int = 1024, noise: float = 2.0) -> Shot:
    """A ginger cat close up, running off the bottom and the right of the frame."""

    def cat(d: ImageDraw.ImageDraw, s: float) -> None:
        d.ellipse([0.30 * s, 0.22 * s, 0.86 * s, 0.78 * s], fill=255)  # head
        d.polygon([(0.34 * s, 0.36 * s), (0.40 * s, 0.08 * s), (0.55 * s, 0.26 * s)], fill=255)  # ears
        d.polygon([(0.64 * s, 0.26 * s), (0.80 * s, 0.08 * s), (0.84 * s, 0.38 * s)], fill=255)
        d.ellipse([0.22 * s, 0.60 * s, 1.3 * s, 1.4 * s], fill=255)  # body

    def eyes(d: ImageDraw.ImageDraw, s: float) -> None:
        d.ellipse([0.44 * s, 0.42 * s, 0.52 * s, 0.50 * s], fill=255)
        d.ellipse([0.64 * s, 0.42 * s, 0.72 * s, 0.50 * s], fill=255)

    back = _backdrop(size, (200, 206, 196), (176, 184, 172))
    layers = [(_layer(size, cat), (214, 130, 60)), (_layer(size, eyes), (60, 120, 40))]
    img, truth = _compose(back, layers, None, 18, noise)
    return Shot("pet", Image.fromarray(img), truth)


SCENES: dict[str, Callable[..., Shot]] = {
    "sneaker_white": sneaker,
    "sneaker_offwhite": lambda size=1024, noise=2.0: sneaker(size, noise, "offwhite"),
    "bottle": bottle,
    "vase": vase,
    "glass": glass,
    "mug": mug,
    "table_cup": table_cup,
    "portrait": portrait,
    "pet": pet,
}
"""Harder shots for the tests and the quality benchmark: white on white and off-white, labels, a mug, a busy table
with crumbs, a portrait cut by the frame, a close-up pet."""
