"""An image's pixel size from its header, without decoding a pixel (stdlib only).

Used to refuse images too large to decode before anything decodes them: a GLB's embedded textures, photos
picked by the user. Every parser here reads only the few bytes its format declares the size in, and treats
the bytes as hostile: a broken, truncated or looping header gives None, never an exception, never a hang.

Formats: PNG, JPEG, GIF, BMP, WEBP (VP8, VP8L, VP8X), TIFF (and BigTIFF), OpenEXR, Radiance HDR, and TGA,
which has no signature and so is read only when asked for by name (`kind="tga"`, or a `.tga` file).
The size returned is the one a decoder would allocate for: JPEG's first frame header (as libjpeg reads
it), TIFF's first image, EXR's data window, WEBP's canvas.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from . import files

# How far into a file the parsers may look (JPEG frame headers can follow megabytes of EXIF and ICC data).
MAX_HEADER_BYTES = 16 * 2**20
# Hops between JPEG segments / EXR attributes / HDR header lines before giving up (each one reads a little).
_MAX_STEPS = 20_000
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXR_MAGIC = b"\x76\x2f\x31\x01"

Size = tuple[int, int]
# read(offset, n) -> up to n bytes at offset (fewer at the end of the data, b"" past it).
Reader = Callable[[int, int], bytes]


def kind(head: bytes) -> str | None:
    """The format named by the signature at the start of `head` ("png", "jpeg", "gif", "bmp", "webp",
    "tiff", "exr", "hdr"), or None. TGA has no signature and is never guessed."""
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"BM") and len(head) >= 18:
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "tiff"
    if head.startswith(_EXR_MAGIC):
        return "exr"
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        return "hdr"
    return None


_detect = kind  # for the functions below, whose `kind` argument hides this function


def dimensions(head: bytes, kind: str | None = None) -> Size | None:
    """(width, height) declared by the image whose first bytes are `head`, or None when the format is
    unknown or the header is broken or cut short. `kind` matters only for "tga" (no signature); a format
    with a signature is always read as what its signature says, as decoders do."""
    data = bytes(head)

    def read(offset: int, n: int) -> bytes:
        return data[offset:offset + n] if offset >= 0 and n > 0 else b""

    return reader_dimensions(read, len(data), kind=kind)


def file_dimensions(path: str | os.PathLike[str], max_header_bytes: int = MAX_HEADER_BYTES,
                    *, kind: str | None = None) -> Size | None:
    """(width, height) of the image file at `path` from its header, or None. Reads only what the header
    needs, seeking over JPEG segments and EXR attributes, never further than `max_header_bytes` into the
    file (TIFF's first directory excepted: it may sit anywhere, and is one small read). A `.tga` suffix
    means TGA when no signature matches."""
    if kind is None and Path(path).suffix.lower() == ".tga":
        kind = "tga"
    try:  # a regular file only (the user's pick may be a link; a FIFO or a device never blocks or streams)
        with os.fdopen(files.open_regular(path, follow_links=True), "rb") as f:
            return stream_dimensions(f, max_header_bytes=max_header_bytes, kind=kind)
    except OSError:
        return None


def stream_dimensions(f: BinaryIO, offset: int = 0, length: int | None = None, *, kind: str | None = None,
                      max_header_bytes: int = MAX_HEADER_BYTES) -> Size | None:
    """(width, height) of an image stored in the open binary file `f` from `offset`, `length` bytes long
    (to the end of the file when None), or None. Reads as `file_dimensions` does."""
    try:
        if length is None:
            length = max(0, os.fstat(f.fileno()).st_size - offset)
    except (OSError, AttributeError, ValueError):
        return None
    if offset < 0 or length < 0:
        return None

    def read(at: int, n: int) -> bytes:
        if at < 0 or n <= 0 or at >= length:
            return b""
        try:
            f.seek(offset + at)
            return f.read(min(n, length - at))
        except (OSError, ValueError, OverflowError):
            return b""

    return reader_dimensions(read, length, kind=kind, max_scan=max_header_bytes)


def reader_dimensions(read: Reader, size: int, *, kind: str | None = None,
                      max_scan: int = MAX_HEADER_BYTES) -> Size | None:
    """(width, height) of an image of `size` bytes served by `read(offset, n)`, or None. The parsers look no
    further than `max_scan` bytes in (TIFF's directory excepted). Never raises for any bytes served."""
    try:
        head = read(0, 64)
        found = _detect(head)
        limit = min(size, max(0, max_scan))
        if found is None:
            return _tga(head) if kind == "tga" else None
        size_found = _PARSERS[found](read, size, limit, head)
    except (struct.error, ValueError, IndexError, OverflowError, RecursionError, MemoryError):
        return None
    if size_found is None:
        return None
    w, h = size_found
    return (w, h) if w > 0 and h > 0 else None


def _png(read: Reader, size: int, limit: int, head: bytes) -> Size | None:
    if len(head) < 24 or head[12:16] != b"IHDR" or struct.unpack(">I", head[8:12])[0] != 13:
        return None
    w, h = struct.unpack(">II", head[16:24])
    if not (0 < w < 2**31 and 0 < h < 2**31):  # the spec's limit; larger is a broken header
        return None
    return w, h


# JPEG markers with no length field (TEM and the restart markers).
_STANDALONE = {0x01, *range(0xD0, 0xD8)}
# Frame headers: SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
_SOF = {m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC)}


def _jpeg(read: Reader, size: int, limit: int, head: bytes) -> Size | None:
    """Walk the markers as libjpeg does: bytes before a marker are skipped, 0xFF fill bytes too; the first
    frame header gives the size; a scan, the end of the image or a second SOI before it means none."""
    pos = 2  # after SOI
    for _ in range(_MAX_STEPS):
        # The next 0xFF, then past the fill bytes: the marker follows (FF 00 is stuffing, not a marker).
        pos = _find(read, pos, limit, want_ff=True)
        if pos < 0:
            return None
        pos = _find(read, pos, limit, want_ff=False)
        if pos < 0:
            return None
        marker = read(pos, 1)[0]
        pos += 1
        if marker == 0 or marker in _STANDALONE:
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # SOI again, EOI or a scan before any frame header
            return None
        if 0x02 <= marker <= 0xBF:  # reserved: libjpeg stops there
            return None
        seg = read(pos, 2)
        if len(seg) < 2:
            return None
        seg_len = struct.unpack(">H", seg)[0]
        if seg_len < 2:
            return None
        if marker in _SOF:
            frame = read(pos + 2, 5)
            if len(frame) < 5:
                return None
            _precision, h, w = struct.unpack(">BHH", frame)
            return (w, h) if h else None  # height 0: defined later by DNL, which nothing here reads
        pos += seg_len
    return None


def _find(read: Reader, pos: int, limit: int, *, want_ff: bool) -> int:
    """The first position from `pos` (before `limit`) whose byte is 0xFF (`want_ff`) or is not; -1 if none."""
    step = 256  # markers usually follow at once; long runs of garbage are read in growing blocks
    while pos < limit:
        block = read(pos, min(step, limit - pos))
        step = min(step * 4, 65536)
        if not block:
            return -1
        if want_ff:
            at = block.find(b"\xff")
        else:
            at = len(block) - len(block.lstrip(b"\xff"))
            at = at if at < len(block) else -1
        if at >= 0:
            return pos + at
        pos += len(block)
    return -1


def _gif(read: Reader, size: int, limit: int, head: bytes) -> Size | None:
    if len(head) < 10:
        return None
    w, h = struct.unpack("<HH", head[6:10])
    return w, h


def _bmp(read: Reader, size: int, limit: int, head: bytes) -> Size | None:
    if len(head) < 26:
        return None
    header_size = struct.unpack("<I", head[14:18])[0]
    if header_size == 12:  # BITMAPCOREHEADER (OS/2 1.x): unsigned 16-bit
        w, h = struct.unpack("<HH", head[18:22])
        return w, h
    if header_size in (16, 40, 52, 56, 64, 108, 124):  # INFO, OS/2 2.x, V2..V5: signed 32-bit
        w, h = struct.unpack("<ii", head[18:26])
        if w <= 0 or h == 0 or h == -(2**31):
            return None
        return w, abs(h)  # a negative height means top-down rows
    return None


def _webp(read: Reader, size: int, limit: int, head: bytes) -> Size | None:
    if len(head) < 30:
        return None
    chunk = head[12:16]
    data = head[20:30]
    if chunk == b"VP8 ":
        # Frame tag (3 bytes, keyframe when bit 0 is clear), start code, then 14-bit sizes (+2-bit scale).
        if data[0] & 1 or data[3:6] != b"\x9d\x01\x2a":
            return None
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        if data[0] != 0x2F:
            return None
        bits = struct.unpack("<I", data[1:5])[0]
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8X":
        w = int.from_bytes(data[4:7], "little") + 1
        h = int.from_bytes(data[7:10], "little") + 1
        return w, h
    return None


def _tiff(read: Reader, size: int, limit: int, head: bytes) -> Size | None:
    order = "<" if head[:2] == b"II" else ">"
    big = head[2:4] in (b"+\0", b"\0+")
    if big:  # BigTIFF: offset size 8, a zero, then the first directory's 64-bit offset
        if len(head) < 16:
            return None
        offset_size, zero, ifd = struct.unpack(order + "HHQ", head[4:16])
        if offset_size != 8 or zero != 0:
            return None
        count_fmt, entry_size, value_size = "Q", 20, 8
    else:
        if len(head) < 8:
            return None
        ifd = struct.unpack(order + "I", head[4:8])[0]
        count_fmt, entry_size, value_size = "H", 12, 4
    count_size = struct.calcsize(count_fmt)
    if ifd < 8 or ifd + count_size > size:
        return None
    raw_count = read(ifd, count_size)
    if len(raw_count) < count_size:
        return None
    count = struct.unpack(order + count_fmt, raw_count)[0]
    if count == 0 or count > 4096:
        return None
    entries = read(ifd + count_size, count * entry_size)
    if len(entries) < count * entry_size:
        return None
    found: dict[int, int] = {}
    for i in range(count):
        entry = entries[i * entry_size:(i + 1) * entry_size]
        tag, typ = struct.unpack(order + "HH", entry[:4])
        if tag not in (256, 257) or tag in found:
            continue
        n = struct.unpack(order + ("Q" if big else "I"), entry[4:4 + value_size])[0]
        value = entry[4 + value_size:]
        if n != 1:
            return None
        if typ == 3:  # SHORT, left-justified in the value field
            found[tag] = struct.unpack(order + "H", value[:2])[0]
        elif typ == 4:  # LONG
            found[tag] = struct.unpack(order + "I", value[:4])[0]
        elif typ == 16 and big:  # LONG8
            found[tag] = struct.unpack(order + "Q", value[:8])[0]
        else:
            return None
    if 256 not in found or 257 not in found:
        return None
    return found[256], found[257]


def _exr(read: Reader, size: int, limit: int, head: bytes) -> Size | None:
    """The dataWindow (box2i) of the header. A multi-part file answers only when it has a single part."""
    if len(head) < 8:
        return None
    flags = struct.unpack("<I", head[4:8])[0]
    if flags & 0xFF != 2:
        return None
    multipart = bool(flags & 0x1000)
    max_name = 256 if flags & 0x400 else 32
    pos = 8
    windows: list[Size] = []
    window: Size | None = None
    for _ in range(_MAX_STEPS):
        if pos >= limit:
            return None
        chunk = read(pos, 2 * max_name + 4)
        name_end = chunk.find(b"\0", 0, max_name)
        if name_end < 0:
            return None
        if name_end == 0:  # end of a header
            pos += 1
            if window is None:
                if multipart and windows:  # the empty header closing the list of parts
                    break
                return None
            windows.append(window)
            window = None
            if not multipart:
                break
            continue
        name = chunk[:name_end]
        type_end = chunk.find(b"\0", name_end + 1, name_end + 1 + max_name)
        if type_end < 0 or type_end + 5 > len(chunk):
            return None
        typ = chunk[name_end + 1:type_end]
        attr_size = struct.unpack("<i", chunk[type_end + 1:type_end + 5])[0]
        if attr_size < 0:
            return None
        value_at = pos + type_end + 5
        if name == b"dataWindow":
            if typ != b"box2i" or attr_size != 16:
                return None
            value = read(value_at, 16)
            if len(value) < 16:
                return None
            xmin, ymin, xmax, ymax = struct.unpack("<iiii", value)
            window = (xmax - xmin + 1, ymax - ymin + 1)
        pos = value_at + attr_size
    else:
        return None
    if len(windows) != 1:
        return None
    return windows[0]


def _hdr(read: Reader, size: int, limit: int, head: bytes) -> Size | None:
    """Header lines up to an empty line, then the resolution line: `-Y h +X w` (any signs, either order)."""
    text = read(0, min(limit, 65536))
    end = text.find(b"\n\n")
    if end < 0:
        return None
    line_end = text.find(b"\n", end + 2)
    if line_end < 0:
        return None
    parts = text[end + 2:line_end].split()
    if len(parts) != 4:
        return None
    sizes: dict[bytes, int] = {}
    for axis, number in ((parts[0], parts[1]), (parts[2], parts[3])):
        if axis not in (b"-Y", b"+Y", b"-X", b"+X") or not number.isdigit() or len(number) > 10:
            return None
        sizes[axis[1:]] = int(number)
    if set(sizes) != {b"X", b"Y"}:
        return None
    return sizes[b"X"], sizes[b"Y"]


def _tga(head: bytes) -> Size | None:
    """TGA's 18-byte header, accepted only when every field is one the format allows."""
    if len(head) < 18:
        return None
    (_id_len, cmap_type, image_type, _cmap_first, _cmap_len, cmap_bits, _x, _y, w, h, depth,
     descriptor) = struct.unpack("<BBBHHBHHHHBB", head[:18])
    if cmap_type not in (0, 1) or image_type not in (1, 2, 3, 9, 10, 11):
        return None
    if image_type in (1, 9) and cmap_type != 1:
        return None
    if cmap_type == 1 and cmap_bits not in (15, 16, 24, 32):
        return None
    if depth not in (8, 15, 16, 24, 32) or descriptor & 0xC0:
        return None
    return w, h


_PARSERS: dict[str, Callable[[Reader, int, int, bytes], Size | None]] = {
    "png": _png, "jpeg": _jpeg, "gif": _gif, "bmp": _bmp, "webp": _webp, "tiff": _tiff, "exr": _exr,
    "hdr": _hdr,
}


# --- EXIF orientation ---------------------------------------------------------------------------------------
# A phone stores a photo as its sensor saw it and says in EXIF's Orientation tag (1–8) how to show it upright;
# every viewer and mask tool applies it, Blender's image loader does not. 5–8 swap width and height.

MAX_ORIENTATION_BYTES = 1 << 20  # EXIF sits in the first segments of a JPEG, before IDAT in a PNG


def _tiff_orientation(data: bytes) -> int:
    """The Orientation tag (0x0112) of IFD0 of TIFF-structured EXIF data, or 1."""
    if len(data) < 8 or data[:4] not in (b"II*\0", b"MM\0*"):
        return 1
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", data[4:8])[0]
    if ifd + 2 > len(data):
        return 1
    count = struct.unpack(order + "H", data[ifd:ifd + 2])[0]
    for n in range(min(count, 512)):
        at = ifd + 2 + 12 * n
        entry = data[at:at + 12]
        if len(entry) < 12:
            return 1
        tag, kind_, _count = struct.unpack(order + "HHI", entry[:8])
        if tag == 0x0112 and kind_ == 3:  # SHORT
            value = struct.unpack(order + "H", entry[8:10])[0]
            return value if 1 <= value <= 8 else 1
    return 1


def orientation(head: bytes) -> int:
    """The EXIF orientation (1–8) a JPEG (APP1 Exif) or PNG (eXIf) declares in `head`, else 1 (as stored)."""
    if head.startswith(b"\xff\xd8"):
        pos = 2
        while pos + 4 <= len(head) and head[pos] == 0xFF:
            marker = head[pos + 1]
            if marker in (0xD9, 0xDA) or marker in _SOF:  # the image data starts: no EXIF after it counts
                return 1
            length = struct.unpack(">H", head[pos + 2:pos + 4])[0]
            segment = head[pos + 4:pos + 2 + length]
            if marker == 0xE1 and segment.startswith(b"Exif\0\0"):
                return _tiff_orientation(segment[6:])
            pos += 2 + length
        return 1
    if head.startswith(_PNG_SIGNATURE):
        pos = 8
        while pos + 8 <= len(head):
            length, chunk = struct.unpack(">I4s", head[pos:pos + 8])
            if chunk == b"eXIf":
                return _tiff_orientation(head[pos + 8:pos + 8 + length])
            if chunk in (b"IDAT", b"IEND"):
                return 1
            pos += 12 + length
    return 1


def file_orientation(path: str | os.PathLike[str]) -> int:
    """`orientation` of the image file at `path` (its first megabyte, a regular file only), else 1."""
    try:
        with os.fdopen(files.open_regular(path, follow_links=True), "rb") as f:
            return orientation(f.read(MAX_ORIENTATION_BYTES))
    except (OSError, struct.error):
        return 1
