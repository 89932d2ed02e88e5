"""Texture for the inflated solid: the photo cropped to the object, edge-bled, and planar front-projection UVs.

Back faces use the same UVs, so the back shows the front mirrored."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class TextureBox:
    """The texture's extent in working-image pixel coordinates (pixel k covers [k − 0.5, k + 0.5))."""

    left: float
    top: float
    width: float
    height: float


def make_texture(
    rgb: np.ndarray, inside: np.ndarray, max_size: int, erode_px: int = 2
) -> tuple[Image.Image, TextureBox]:
    """Crop `rgb` to the object (1 % margin), replace everything outside the slightly eroded mask by the nearest
    inside colour (so no backdrop halo bleeds into the rim), and bound the long side to `max_size`."""
    import cv2

    h, w = inside.shape
    ys, xs = np.nonzero(inside)
    if len(xs) == 0:
        ys, xs = np.array([0, h - 1]), np.array([0, w - 1])
    margin = max(2, round(0.01 * max(h, w)))
    x0, y0 = max(int(xs.min()) - margin, 0), max(int(ys.min()) - margin, 0)
    x1, y1 = min(int(xs.max()) + margin + 1, w), min(int(ys.max()) + margin + 1, h)
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    keep: np.ndarray = inside[y0:y1, x0:x1].astype(np.uint8)
    if erode_px > 0 and min(keep.shape) > 4 * erode_px:
        eroded = cv2.erode(keep, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1,) * 2))
        if eroded.any():
            keep = eroded
    if keep.any() and not keep.all():
        # Label of the nearest inside pixel for every outside pixel; labels number inside pixels in scan order.
        _, labels = cv2.distanceTransformWithLabels(
            (keep == 0).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
        )
        colours = crop[keep > 0]
        crop = colours[np.clip(labels - 1, 0, len(colours) - 1)]
    image = Image.fromarray(crop)
    long_side = max(image.size)
    if long_side > max_size:
        scale = max_size / long_side
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.BILINEAR,
        )
    return image, TextureBox(x0 - 0.5, y0 - 0.5, float(x1 - x0), float(y1 - y0))


def planar_uv(x_px: np.ndarray, y_px_down: np.ndarray, box: TextureBox) -> np.ndarray:
    """Front projection: (u, v) with v = 0 at the bottom of the texture (OBJ convention)."""
    u = (x_px - box.left) / box.width
    v = 1.0 - (y_px_down - box.top) / box.height
    return np.clip(np.column_stack([u, v]), 0.0, 1.0)
