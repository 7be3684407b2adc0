"""Images: sniffing and sizing by magic bytes, 8-bit PNG encoders, the object's coverage (`Shape`), the
cut-outs and masks removeBackground returns, and base64 decoding of images sent inline."""

from __future__ import annotations

import base64
import binascii
import math
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator


def sniff_image(data: bytes) -> str | None:
    """The image format by magic bytes (never trust names or MIME types)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) for PNG, JPEG, GIF and BMP; None when unknown."""
    kind = sniff_image(data)
    try:
        if kind == "png":
            return struct.unpack(">II", data[16:24])
        if kind == "gif":
            return struct.unpack("<HH", data[6:10])
        if kind == "bmp":
            w, h = struct.unpack("<ii", data[18:26])
            return w, abs(h)
        if kind == "jpg":
            return _jpeg_size(data)
    except struct.error:
        pass
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def encode_png(width: int, height: int, rows, color_type: int = 6) -> bytes:
    """An 8-bit PNG from an iterable of raw rows: colour type 6 RGBA (4 bytes a pixel), 2 RGB (3), 0 gray (1)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\0" + row for row in rows)  # filter type 0 on every row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def encode_png_rgba(width: int, height: int, rows) -> bytes:
    """An 8-bit RGBA PNG from an iterable of raw rows (4 bytes per pixel)."""
    return encode_png(width, height, rows, 6)


# What the object covers in a removeBackground input: None (a centred ellipse of ~40 % of the frame), a box
# (x0, y0, x1, y1) in fractions of the width and height, or a callable (width, height) -> `height` rows of
# `width` bytes each (0 background, 255 object; values between make a soft edge).
Shape = tuple[float, float, float, float] | Callable[[int, int], Iterable[bytes]] | None


def coverage_rows(width: int, height: int, shape: Shape = None) -> Iterator[bytes]:
    """The object's coverage, row by row (`width` bytes each, 255 = object), for a `Shape`."""
    if callable(shape):
        count = 0
        for row in shape(width, height):
            row = bytes(row)
            if len(row) != width:
                raise ValueError(f"rembg_shape gave a row of {len(row)} bytes for a width of {width}")
            count += 1
            yield row
        if count != height:
            raise ValueError(f"rembg_shape gave {count} rows for a height of {height}")
        return
    if shape is not None:  # a box in fractions
        fx0, fy0, fx1, fy1 = (float(v) for v in shape)
        x0, x1 = max(0, min(width, round(fx0 * width))), max(0, min(width, round(fx1 * width)))
        inside = b"\0" * x0 + b"\xff" * max(0, x1 - x0) + b"\0" * (width - max(x0, x1))
        empty = b"\0" * width
        for y in range(height):
            yield inside if fy0 * height <= y + 0.5 < fy1 * height else empty
        return
    k = math.sqrt(1.6 / math.pi)  # pi/4 * k^2 = 0.4: the ellipse's share of the frame
    a, b = k * width / 2, k * height / 2
    empty = b"\0" * width
    for y in range(height):
        dy = (y + 0.5 - height / 2) / b
        if abs(dy) >= 1:
            yield empty
            continue
        half = a * math.sqrt(1 - dy * dy)
        x0, x1 = max(0, round(width / 2 - half)), min(width, round(width / 2 + half))
        yield b"\0" * x0 + b"\xff" * (x1 - x0) + b"\0" * (width - x1)


_GRAY_OF_COVERAGE = bytes([0] + [0x80] * 255)  # the cut-out's colour: mid-grey wherever there is any object


def _cutout_row(coverage: bytes) -> bytes:
    rgba = bytearray(4 * len(coverage))
    gray = coverage.translate(_GRAY_OF_COVERAGE)
    rgba[0::4] = rgba[1::4] = rgba[2::4] = gray
    rgba[3::4] = coverage
    return bytes(rgba)


def cutout_png(width: int, height: int, shape: Shape = None) -> bytes:
    """What removeBackground returns for our inputs: an RGBA cut-out whose alpha is the object (`shape`,
    default a centred ellipse of ~40 % of the frame), mid-grey inside, transparent black outside."""
    return encode_png(width, height, (_cutout_row(r) for r in coverage_rows(width, height, shape)), 6)


def mask_png(width: int, height: int, shape: Shape = None) -> bytes:
    """removeBackground with settings.returnOnlyMask: the mask itself, an opaque 8-bit grayscale PNG, white
    object on black."""
    return encode_png(width, height, coverage_rows(width, height, shape), 0)


def decode_base64(text: str) -> bytes | None:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
