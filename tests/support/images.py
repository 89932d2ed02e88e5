"""Images made by the tests themselves."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageDraw


def photo(width: int = 320, height: int = 240, fmt: str = "JPEG", color=(40, 120, 200)) -> bytes:
    """A product-style shot: a coloured ellipse on a light backdrop."""
    im = Image.new("RGB", (width, height), (235, 235, 235))
    ImageDraw.Draw(im).ellipse((width * 0.2, height * 0.2, width * 0.8, height * 0.8), fill=color)
    buf = io.BytesIO()
    im.save(buf, format=fmt, quality=90)
    return buf.getvalue()


def rotated_jpeg(width: int = 300, height: int = 200) -> bytes:
    """A landscape JPEG whose EXIF says 'rotate 90°', so upright it is portrait."""
    im = Image.new("RGB", (width, height), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header claims a huge size (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" + b"\x00" * width
    compressor = zlib.compressobj(9)
    body = compressor.compress(row * 64) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
