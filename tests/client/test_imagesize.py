"""Image sizes from headers: real files written by Blender, hand-made headers of every format, and hostile
bytes that must give None (or the declared size), never an exception, never a hang."""

from __future__ import annotations

import io
import random
import struct
import time
import zlib
from pathlib import Path

import pytest

from client.imagesize import dimensions, file_dimensions, kind, reader_dimensions, stream_dimensions

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests" / "data" / "images"


# -- builders ---------------------------------------------------------------------------------------


def png(width: int, height: int, *, pixels: bool = True) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    if pixels:
        out += chunk(b"IDAT", zlib.compress(b"".join(b"\0" + b"\x80" * width for _ in range(height))))
        out += chunk(b"IEND", b"")
    return out


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def sof(width: int, height: int, marker: int = 0xC0) -> bytes:
    return segment(marker, struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01")


def jpeg(width: int, height: int, *, before: bytes = b"", marker: int = 0xC0) -> bytes:
    jfif = segment(0xE0, b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    dqt = segment(0xDB, b"\x00" + bytes(range(64)))
    return b"\xff\xd8" + jfif + before + dqt + sof(width, height, marker) + segment(0xC4, b"\x00" * 17) + \
        segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + b"\x12\x34" + b"\xff\xd9"


def exif_app1(size: int) -> bytes:
    return segment(0xE1, b"Exif\0\0" + b"II*\0\x08\0\0\0" + b"\xab" * (size - 14))


def bmp(width: int, height: int, *, core: bool = False) -> bytes:
    if core:
        info = struct.pack("<IHHHH", 12, width, height, 1, 24)
    else:
        info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    row = (3 * width + 3) // 4 * 4
    pixels = b"\0" * row * abs(height)
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 14 + len(info)) + info + pixels


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b",\0\0\0\0" + \
        struct.pack("<HH", width, height) + b"\0\x02\x02\x44\x01\0;"


def riff(chunk: bytes, data: bytes) -> bytes:
    body = b"WEBP" + chunk + struct.pack("<I", len(data)) + data + b"\0" * (len(data) % 2)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_vp8(width: int, height: int) -> bytes:
    return riff(b"VP8 ", b"\x50\x02\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\0" * 10)


def webp_vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14) | (1 << 28)
    return riff(b"VP8L", b"\x2f" + struct.pack("<I", bits) + b"\0" * 8)


def webp_vp8x(width: int, height: int) -> bytes:
    data = b"\x10\0\0\0" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(data)) + data + webp_vp8(width, height)[12:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tiff(width: int, height: int, *, order: str = "<", short: bool = True, ifd_at_end: bool = False) -> bytes:
    typ, fmt = (3, "H") if short else (4, "I")

    def entry(tag: int, value: int) -> bytes:
        packed = struct.pack(order + fmt, value).ljust(4, b"\0")
        return struct.pack(order + "HHI", tag, typ, 1) + packed

    entries = [entry(254, 0), entry(256, width), entry(257, height), entry(258, 8)]
    ifd = struct.pack(order + "H", len(entries)) + b"".join(entries) + b"\0\0\0\0"
    magic = b"II*\0" if order == "<" else b"MM\0*"
    pixels = b"\0" * (width * height)
    if ifd_at_end:
        return magic + struct.pack(order + "I", 8 + len(pixels)) + pixels + ifd
    return magic + struct.pack(order + "I", 8) + ifd + pixels


def bigtiff(width: int, height: int) -> bytes:
    def entry(tag: int, typ: int, value: int) -> bytes:
        return struct.pack("<HHQQ", tag, typ, 1, value)

    ifd = struct.pack("<Q", 2) + entry(256, 16, width) + entry(257, 4, height) + struct.pack("<Q", 0)
    return b"II+\0" + struct.pack("<HHQ", 8, 0, 16) + ifd


def exr_attribute(name: bytes, typ: bytes, value: bytes) -> bytes:
    return name + b"\0" + typ + b"\0" + struct.pack("<i", len(value)) + value


def exr(width: int, height: int, *, xmin: int = 0, ymin: int = 0, preview: int = 0, parts: int = 0) -> bytes:
    window = exr_attribute(b"dataWindow", b"box2i", struct.pack("<iiii", xmin, ymin, xmin + width - 1,
                                                                  ymin + height - 1))
    header = exr_attribute(b"channels", b"chlist", b"R\0" + struct.pack("<iBBBBii", 1, 0, 0, 0, 0, 1, 1) + b"\0")
    header += exr_attribute(b"compression", b"compression", b"\0")
    if preview:
        header += exr_attribute(b"preview", b"preview", struct.pack("<II", preview, 1) + b"\0" * 4 * preview)
    header += window + exr_attribute(b"lineOrder", b"lineOrder", b"\0")
    if parts:
        flags = 2 | 0x1000
        body = b"".join(header + exr_attribute(b"name", b"string", b"part%d" % i) + b"\0" for i in range(parts))
        return b"\x76\x2f\x31\x01" + struct.pack("<I", flags) + body + b"\0"
    return b"\x76\x2f\x31\x01" + struct.pack("<I", 2) + header + b"\0" + b"\0" * 64


def hdr(width: int, height: int, *, order: bytes = b"-Y %d +X %d") -> bytes:
    numbers = (height, width) if order.startswith((b"-Y", b"+Y")) else (width, height)
    return b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\nEXPOSURE=1.0\n\n" + order % numbers + b"\n" + b"\x80" * 16


def tga(width: int, height: int) -> bytes:
    return struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, width, height, 24, 0x20) + b"\0" * 3 * width * height


# -- real files --------------------------------------------------------------------------------------

BLENDER_FILES = {
    "blender_13x7.png": "png", "blender_13x7.jpg": "jpeg", "blender_13x7.bmp": "bmp", "blender_13x7.tif": "tiff",
    "blender_13x7.exr": "exr", "blender_13x7.hdr": "hdr", "blender_13x7.tga": None, "blender_13x7.raw.tga": None,
    "blender_13x7.webp": "webp", "blender_13x7.lossless.webp": "webp",
}


@pytest.mark.parametrize("name", sorted(BLENDER_FILES))
def test_files_written_by_Blender(name):
    path = IMAGES / name
    data = path.read_bytes()
    assert kind(data) == BLENDER_FILES[name]
    assert file_dimensions(path) == (13, 7)
    hint = "tga" if name.endswith(".tga") else None
    assert dimensions(data, kind=hint) == (13, 7)


def test_the_examples_photos():
    human = ROOT / "examples" / "human_object" / "image.png"
    socrates = ROOT / "examples" / "socrates" / "image.png"
    assert file_dimensions(human) == (1600, 898)
    assert kind(human.read_bytes()[:64]) == "png"
    # JPEG data despite its name: the signature decides, not the suffix.
    assert file_dimensions(socrates) == (2560, 1681)
    assert kind(socrates.read_bytes()[:64]) == "jpeg"
    assert dimensions(socrates.read_bytes()[:65536]) == (2560, 1681)


# -- each format, by hand ------------------------------------------------------------------------------

CASES = [
    ("png", png(300, 17)),
    ("jpeg", jpeg(300, 17)),
    ("jpeg", jpeg(300, 17, marker=0xC2)),  # progressive
    ("jpeg", jpeg(300, 17, marker=0xCF)),  # SOF15
    ("gif", gif(300, 17)),
    ("bmp", bmp(300, 17)),
    ("bmp", bmp(300, -17)),  # top-down rows
    ("bmp", bmp(300, 17, core=True)),
    ("webp", webp_vp8(300, 17)),
    ("webp", webp_vp8l(300, 17)),
    ("webp", webp_vp8x(300, 17)),
    ("tiff", tiff(300, 17)),
    ("tiff", tiff(300, 17, order=">")),
    ("tiff", tiff(300, 17, short=False)),
    ("tiff", tiff(300, 17, order=">", short=False, ifd_at_end=True)),
    ("tiff", bigtiff(300, 17)),
    ("exr", exr(300, 17)),
    ("exr", exr(300, 17, xmin=-40, ymin=12, preview=500)),
    ("exr", exr(300, 17, parts=1)),
    ("hdr", hdr(300, 17)),
    ("hdr", hdr(300, 17, order=b"+X %d -Y %d")),
]


@pytest.mark.parametrize(("expected_kind", "data"), CASES, ids=[f"{k}{i}" for i, (k, _) in enumerate(CASES)])
def test_each_format(expected_kind, data, tmp_path):
    assert kind(data) == expected_kind
    assert dimensions(data) == (300, 17)
    path = tmp_path / "image.bin"
    path.write_bytes(data)
    assert file_dimensions(path) == (300, 17)
    assert stream_dimensions(io.BytesIO(b"junk" + data + b"tail"), 4, len(data)) == (300, 17)
    assert stream_dimensions(io.BytesIO(data)) is None  # no length given, and no file to ask it of
    with open(path, "rb") as f:
        assert stream_dimensions(f) == (300, 17)


def test_an_image_inside_a_larger_file(tmp_path):
    data = jpeg(640, 480, before=exif_app1(5000))
    path = tmp_path / "container.bin"
    path.write_bytes(b"x" * 1000 + data + b"y" * 1000)
    with open(path, "rb") as f:
        assert stream_dimensions(f, 1000, len(data)) == (640, 480)
        assert stream_dimensions(f, 1000, 100) is None  # cut short within its bounds


def test_jpeg_markers_read_as_libjpeg_reads_them():
    fill = b"\xff\xff\xff"  # fill bytes before a marker
    standalone = b"\xff\x01\xff\xd0"  # TEM and RST0: no length field
    garbage = b"\x00\x12\x34"  # skipped with a warning by libjpeg
    data = jpeg(321, 123, before=exif_app1(70) + fill + standalone + garbage + segment(0xFE, b"comment"))
    assert dimensions(data) == (321, 123)
    # The first frame header counts; DHT (C4), JPG (C8) and DAC (CC) are not frame headers.
    not_frames = segment(0xC4, b"\x00" * 17) + segment(0xCC, b"\x00\x00") + segment(0xC8, b"\x55\x55\x55")
    assert dimensions(b"\xff\xd8" + not_frames + sof(5, 6) + sof(7000, 8000)) == (5, 6)
    # A scan, the end of the image or a second SOI before any frame header: no size.
    assert dimensions(b"\xff\xd8" + segment(0xDA, b"\x00\x00") + sof(5, 6)) is None
    assert dimensions(b"\xff\xd8\xff\xd9" + sof(5, 6)) is None
    assert dimensions(b"\xff\xd8\xff\xd8" + sof(5, 6)) is None
    # Height 0 (defined later by a DNL marker) is not a size.
    assert dimensions(b"\xff\xd8" + sof(5, 0)) is None


def test_jpeg_frame_header_after_megabytes_of_metadata(tmp_path):
    """Large EXIF/ICC blocks are skipped by their lengths, with seeks: only a few bytes are read."""
    blocks = b"".join(exif_app1(65533) for _ in range(40))  # ~2.6 MB of APP1 segments
    data = jpeg(4000, 3000, before=blocks)
    path = tmp_path / "big-exif.jpg"
    path.write_bytes(data)
    assert file_dimensions(path) == (4000, 3000)
    read_bytes = []

    def read(offset: int, n: int) -> bytes:
        chunk = data[offset:offset + n]
        read_bytes.append(len(chunk))
        return chunk

    assert reader_dimensions(read, len(data)) == (4000, 3000)
    assert sum(read_bytes) < 40_000  # not the 2.6 MB
    # Past the scanning bound, it gives up rather than read on.
    assert file_dimensions(path, max_header_bytes=1_000_000) is None


def test_tga_only_when_asked_for(tmp_path):
    data = tga(300, 17)
    assert kind(data) is None
    assert dimensions(data) is None
    assert dimensions(data, kind="tga") == (300, 17)
    (tmp_path / "a.tga").write_bytes(data)
    (tmp_path / "a.bin").write_bytes(data)
    assert file_dimensions(tmp_path / "a.tga") == (300, 17)
    assert file_dimensions(tmp_path / "a.bin") is None
    assert file_dimensions(tmp_path / "a.bin", kind="tga") == (300, 17)
    # A signature wins over the suffix, as decoders sniff content.
    (tmp_path / "b.tga").write_bytes(png(4, 5))
    assert file_dimensions(tmp_path / "b.tga") == (4, 5)
    # Fields TGA does not allow: not a TGA.
    assert dimensions(b"\x00\x05\x02" + data[3:], kind="tga") is None
    assert dimensions(data[:2] + b"\x07" + data[3:], kind="tga") is None
    assert dimensions(data[:16] + b"\x07" + data[17:], kind="tga") is None


def test_exr_multipart_with_several_parts_is_not_one_size():
    assert dimensions(exr(30, 20, parts=1)) == (30, 20)
    assert dimensions(exr(30, 20, parts=2)) is None


# -- hostile bytes -------------------------------------------------------------------------------------


def test_a_png_declaring_a_huge_size_gives_the_declared_size_or_none():
    assert dimensions(png(2**31 - 1, 50000, pixels=False)) == (2**31 - 1, 50000)
    assert dimensions(png(50000, 50000, pixels=False)) == (50000, 50000)
    assert dimensions(png(2**32 - 1, 1, pixels=False)) is None  # beyond PNG's range: broken
    assert dimensions(png(0, 5, pixels=False)) is None


def test_jpeg_segments_that_loop_or_run_past_the_end():
    start = b"\xff\xd8"
    assert dimensions(start + b"\xff\xe0\x00\x00" * 1000) is None  # length 0: would not advance
    assert dimensions(start + b"\xff\xe0\x00\x01" + sof(5, 6)) is None  # length 1: shorter than itself
    assert dimensions(start + b"\xff\xe1\xff\xff" + b"\0" * 100) is None  # runs past the end
    assert dimensions(start + segment(0xE1, b"\0" * 10)) is None  # ends before any frame header
    assert dimensions(start + b"\xff\x02\x00\x04" + sof(5, 6)) is None  # reserved marker: libjpeg stops
    assert dimensions(start + sof(5, 6)[:6]) is None  # frame header cut short


def test_long_runs_of_fill_bytes_stuffing_and_garbage_finish_fast():
    started = time.perf_counter()
    big = 8 * 2**20
    assert dimensions(b"\xff\xd8" + b"\xff" * big) is None
    assert dimensions(b"\xff\xd8" + b"\xff\x00" * (big // 2)) is None
    comment = segment(0xFE, b"hi")
    assert dimensions(b"\xff\xd8" + comment + b"\x00" * big + sof(5, 6)) == (5, 6)  # garbage: skipped, as libjpeg
    assert dimensions(b"\xff\xd8\xff" + b"\x00" * 20 + sof(5, 6)) == (5, 6)  # FF 00 is stuffing, not a marker
    assert dimensions(exr(5, 5)[:8] + b"a" * big) is None  # an attribute name that never ends
    assert dimensions(b"#?RADIANCE\n" + b"X" * big) is None  # a header that never ends
    assert time.perf_counter() - started < 10  # seconds, on a slow machine: no quadratic scans


def test_tiff_directories_that_point_anywhere():
    assert dimensions(b"II*\0" + struct.pack("<I", 2**32 - 1)) is None
    assert dimensions(b"II*\0" + struct.pack("<I", 4)) is None  # into the header itself
    assert dimensions(b"II*\0" + struct.pack("<IH", 8, 0xFFFF)) is None  # 65535 entries, not there
    short = tiff(5, 6)
    assert dimensions(short[:20]) is None  # cut within the directory
    no_height = tiff(5, 6).replace(struct.pack("<H", 257), struct.pack("<H", 999), 1)
    assert dimensions(no_height) is None
    count_two = tiff(5, 6).replace(struct.pack("<HHI", 256, 3, 1), struct.pack("<HHI", 256, 3, 2), 1)
    assert dimensions(count_two) is None


def test_exr_hostile_attributes():
    assert dimensions(exr(5, 5).replace(b"box2i\0\x10", b"box2i\0\x08", 1)) is None  # wrong box size
    huge = exr_attribute(b"junk", b"opaque", b"")[:-4] + struct.pack("<i", 2**31 - 1)
    assert dimensions(b"\x76\x2f\x31\x01" + struct.pack("<I", 2) + huge + b"\0" * 64) is None
    negative = exr_attribute(b"junk", b"opaque", b"")[:-4] + struct.pack("<i", -5)
    assert dimensions(b"\x76\x2f\x31\x01" + struct.pack("<I", 2) + negative + b"\0" * 64) is None
    assert dimensions(exr(5, 5, xmin=10).replace(struct.pack("<i", 14), struct.pack("<i", 3), 1)) is None


def test_every_truncation_gives_none_or_the_true_size():
    samples = [data for _kind, data in CASES] + [(IMAGES / name).read_bytes() for name in BLENDER_FILES]
    for data in samples:
        expected = dimensions(data) or dimensions(data, kind="tga")
        for cut in range(0, min(len(data), 400)):
            assert dimensions(data[:cut]) in (None, expected)
            assert dimensions(data[:cut], kind="tga") in (None, expected)


def test_random_bytes_never_raise():
    rng = random.Random(20261125)
    prefixes = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"RIFF\0\0\0\0WEBPVP8 ",
                b"RIFF\0\0\0\0WEBPVP8L", b"RIFF\0\0\0\0WEBPVP8X", b"II*\0", b"MM\0*", b"II+\0",
                b"\x76\x2f\x31\x01\x02\0\0\0", b"\x76\x2f\x31\x01\x02\x10\0\0", b"#?RADIANCE\n"]
    for _ in range(3000):
        data = rng.choice(prefixes) + rng.randbytes(rng.choice([0, 1, 7, 30, 200, 3000]))
        result = dimensions(data, kind=rng.choice([None, "tga", "png"]))
        assert result is None or (isinstance(result, tuple) and result[0] > 0 and result[1] > 0)


def test_mutated_real_headers_never_raise():
    rng = random.Random(7)
    samples = [data for _kind, data in CASES] + [(IMAGES / name).read_bytes() for name in BLENDER_FILES]
    for _ in range(3000):
        data = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(min(len(data), 200))
            data[at] = rng.randrange(256)
        result = dimensions(bytes(data), kind="tga")
        assert result is None or (result[0] > 0 and result[1] > 0)


def test_unreadable_files_give_none(tmp_path):
    assert file_dimensions(tmp_path / "missing.png") is None
    assert file_dimensions(tmp_path) is None  # a directory
    (tmp_path / "empty.png").write_bytes(b"")
    assert file_dimensions(tmp_path / "empty.png") is None
