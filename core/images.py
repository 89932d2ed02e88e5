"""Recognising and loading input images: by decoding, never by name; EXIF orientation applied."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from image2model.core.errors import FileTooLarge, UnsupportedMediaType, ValidationFailed

FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("image/jpeg", ".jpg"),
    "PNG": ("image/png", ".png"),
    "WEBP": ("image/webp", ".webp"),
}


@dataclass(frozen=True)
class ImageInfo:
    """What decoding an upload told us."""

    format: str
    content_type: str
    extension: str
    width: int
    height: int
    """Size after EXIF orientation."""


def inspect_image(path: Path, filename: str, max_pixels: int) -> ImageInfo:
    """Decode `path` fully enough to prove it is an intact JPEG/PNG/WebP within the pixel ceiling.

    Raises UnsupportedMediaType (not an image we take), FileTooLarge (pixel ceiling) or
    ValidationFailed (empty, truncated or corrupt)."""
    if path.stat().st_size == 0:
        raise ValidationFailed(
            f"{filename} is empty.", {"errors": [{"field": filename, "message": "empty file"}]}
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                if im.format not in FORMATS:
                    raise UnsupportedMediaType(
                        f"{filename} is a {im.format} image; upload JPEG, PNG or WebP.",
                        {"errors": [{"field": filename, "message": f"unsupported image format {im.format}"}]},
                    )
                width, height = im.size
                if width * height > max_pixels:
                    raise _too_many_pixels(filename, width, height, max_pixels)
                orientation = im.getexif().get(0x0112, 1)
                if im.format == "JPEG":
                    # Decoding at 1/8 scale still reads every entropy-coded byte, so truncation is caught cheaply.
                    im.draft(im.mode, (max(1, width // 8), max(1, height // 8)))
                im.load()
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            if isinstance(exc, UnidentifiedImageError):
                raise UnsupportedMediaType(
                    f"{filename} is not an image we can read; upload JPEG, PNG or WebP.",
                    {"errors": [{"field": filename, "message": "not a JPEG, PNG or WebP image"}]},
                ) from None
            raise _too_many_pixels(filename, 0, 0, max_pixels) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ValidationFailed(
                f"{filename} is damaged or truncated and cannot be decoded.",
                {"errors": [{"field": filename, "message": f"corrupt image: {exc}"}]},
            ) from None
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    content_type, extension = FORMATS[im.format]
    return ImageInfo(im.format, content_type, extension, width, height)


def _too_many_pixels(filename: str, width: int, height: int, max_pixels: int) -> FileTooLarge:
    size = f"{width}x{height} pixels" if width else "too many pixels"
    return FileTooLarge(
        f"{filename} has {size}; the limit is {max_pixels / 1e6:g} megapixels. Downscale it and try again.",
        {"errors": [{"field": filename, "message": "pixel ceiling exceeded"}], "max_pixels": max_pixels},
    )


def load_image(path: Path) -> Image.Image:
    """Open an input image upright (EXIF orientation applied), keeping its alpha channel when it has one."""
    with Image.open(path) as im:
        im.load()
        upright = ImageOps.exif_transpose(im)
    mode = "RGBA" if upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info else "RGB"
    return upright.convert(mode)
