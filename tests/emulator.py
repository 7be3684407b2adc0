"""A faithful emulator of the Runware REST API as far as the add-on needs it (stdlib only).

Follows the team's notes on the Runware API (runware-api.md, beside the repository in CI; tests/README.md says
how the emulator is kept true to Runware): where the documentation admits two forms, `Style` picks one, and
`Faults` injects the failures a client must survive. Two servers run: the API on 127.0.0.1 and a separate
FILE host on "localhost" (the CDN stand-in), so a test can prove the API key never reaches the second host.

    with Emulator() as emu:            # or: python tests/emulator.py --port 8765
        emu.faults.status_sequence = [429]
        ... point a client at emu.api_url ...

Beyond the documented forms, `Faults` also plays a broken or malicious server (gzip bombs, trickling and
stalling bodies, redirects, lying Content-Length, absurd resultIndex values) and `Style` the ways Runware may
legitimately disagree with our client (Range ignored, the docs' literal result items, Retry-After as a date,
forgotten tasks). `Emulator(tls=(cert, key))` serves both hosts over HTTPS (tests/tls.py makes a throw-away
CA); tests/proxy.py is an HTTP CONNECT proxy to put in front of it.

All times (Recorded.time, TaskState.created) are time.monotonic() seconds.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import math
import random
import re
import select
import signal
import socket
import ssl
import struct
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

try:
    from . import glb
except ImportError:  # run as a script, or imported with tests/ on sys.path
    import glb

SAM3D = "meta:sam@3d"
MAX_SEED = 2**63 - 1
COST_PER_GENERATION = 0.0038
DOCS = "https://runware.ai/docs"
ERRORS_DOC = f"{DOCS}/platform/errors"
SAM3D_DOC = f"{DOCS}/models/meta-sam-3d-objects"


def _b() -> Callable[[object], bool]:
    return lambda v: isinstance(v, bool)


def _i(low: int, high: int) -> Callable[[object], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _e(*values: object) -> Callable[[object], bool]:
    return lambda v: any(v == c and type(v) is type(c) for c in values)


# The other image-to-3D models on 3dInference, as their pages (docs/engines.md gives each source) describe them,
# written apart from client/engines.py so each checks the other: the input key and how many images, whether a
# prompt alone may drive it, a seed, the settings it documents (any other is refused: unsupportedParameter), and
# what a result costs here.
ENGINE_MODELS = {
    "microsoft:trellis-2@4b": {"input": "image", "max": 1, "text": False, "seed": True, "cost": 0.0256,
                               "settings": {"textureSize": lambda v: _i(1024, 4096)(v) and v % 1024 == 0,
                                            "decimationTarget": _i(100_000, 1_000_000),
                                            "resolution": _e(512, 1024, 1536), "remesh": _b()}},
    "tencent:hunyuan-3d@3.1-pro": {"input": "images", "max": 8, "text": True, "seed": False, "cost": 0.3,
                                   "settings": {"generateType": _e("Normal", "LowPoly", "Geometry", "Sketch"),
                                                "pbr": _b(), "polygonType": _e("triangle", "quadrilateral"),
                                                "faceCount": _i(3_000, 1_500_000)}},
    "tencent:hunyuan-3d@3.1-rapid": {"input": "image", "max": 1, "text": True, "seed": False, "cost": 0.15,
                                     "settings": {"pbr": _b(), "geometryOnly": _b()}},
    "tripo:v3.1@0": {"input": "images", "max": 4, "text": True, "seed": True, "cost": 0.3,
                     "settings": {"faceLimit": _i(500, 20_000), "quad": _b(), "texture": _b(), "pbr": _b(),
                                  "textureQuality": _e("standard", "detailed"),
                                  "geometryQuality": _e("standard", "detailed"), "autoSize": _b(),
                                  "orientation": _e("default", "align_image"), "smartLowPoly": _b(),
                                  "generateParts": _b()}},
    "hyper3d:rodin@gen-2": {"input": "images", "max": 5, "text": True, "seed": True, "seed_max": 65_535,
                            "cost": 0.4,
                            "settings": {"meshMode": _e("Quad", "Raw"), "polyCount": _i(500, 1_000_000),
                                         "quality": _e("high", "medium", "low", "extra-low"),
                                         "material": _e("PBR", "Shaded", "All"), "taPose": _b(),
                                         "hdTexture": _b()}},
    "meshy:meshy@6": {"input": "images", "max": 4, "text": True, "seed": False, "cost": 0.8,
                      "settings": {"meshType": _e("standard", "lowpoly"), "topology": _e("quad", "triangle"),
                                   "polyCount": _i(100, 300_000), "decimation": _i(1, 4), "remesh": _b(),
                                   "symmetry": _e("auto", "on", "off"), "pose": _e("a-pose", "t-pose"),
                                   "texture": _b(), "pbr": _b(), "hdTexture": _b(), "removeLighting": _b(),
                                   "autoSize": _b(), "imageEnhancement": _b(),
                                   "origin": _e("bottom", "center")}},
}
ENGINE_KEYS = {"taskType", "taskUUID", "model", "positivePrompt", "inputs", "numberResults", "outputType",
               "outputFormat", "deliveryMethod", "includeCost", "seed", "ttl", "webhookURL", "uploadEndpoint",
               "settings"}
REMBG_MODELS = {"runware:109@1", "bria:2@1", *(f"runware:112@{i}" for i in range(1, 11))}
REMBG_MASK_MODELS = {"runware:109@1"}  # the models whose docs list settings.returnOnlyMask (RemBG v1.4)
REMBG_DOC = f"{DOCS}/models/rembg-v1-4"
# Caption models (their pages, and the SDK's curated models): the model pages' `caption` task with inputs.image,
# or the utility page's older `imageCaption` with inputImage. Either way the answer says "imageCaption".
CAPTION_MODELS = {"runware:150@1": 0.0019, "runware:150@2": 0.0019, "runware:151@1": 0.0019,
                  "runware:152@1": 0.0026, "runware:152@2": 0.0019}
CAPTION_KEYS = {"taskType", "taskUUID", "model", "prompt", "inputs", "inputImage", "deliveryMethod", "includeCost",
                "webhookURL"}
HUGE_RESULT_INDEXES = (10**30, -5, "7", 2**64)  # Style.result_index "huge": generation i reports the i-th
STALL_AFTER = 64 * 1024  # Faults.declared_length: bytes sent before the body stalls
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TRANSIENT_CODES = {401: "invalidApiKey", 402: "insufficientCredits", 403: "insufficientPermissions",
                    404: "notFound", 408: "timeout", 429: "rateLimitExceeded",
                    502: "serviceUnavailable", 503: "serviceUnavailable", 504: "serviceUnavailable"}
_TASK_ERROR_MESSAGES = {
    "timeoutProvider": "The provider did not answer in time.",
    "contentPolicyViolation": "The input was flagged by the content policy.",
    "inferenceError": "Inference failed for this task.",
}


@dataclass
class Faults:
    """Failures to inject; tests flip fields between calls. Counters count down as they fire."""

    # -- the API host
    status_sequence: list[int] = field(default_factory=list)  # next API answers, in order
    retry_after: float = 1  # seconds, sent as Retry-After with status_sequence answers (Style.retry_after_form)
    insufficient_credits: bool = False  # 402 for 3dInference submissions; accountManagement reports balance 0
    empty_401: bool = False  # an invalid key gets a 401 without a body
    forget_tasks: bool = False  # getResponse answers taskFailedOrNotFound for every task, known or not
    # -- tasks
    task_error: str | None = None  # every generation fails with this code after processing
    task_error_form: str = "errors"  # "errors": in the errors array | "data": {"status": "error", "error"}
    fail_generations: int = 0  # the last N generations of a task fail (code task_error or inferenceError)
    drop_after_submit: int = 0  # accept the next N 3dInference submissions, then close without answering
    # -- the FILE host
    truncate_downloads: int = 0  # full Content-Length, half the bytes, close
    no_content_length: bool = False  # close-delimited file bodies
    corrupt_downloads: int = 0  # serve an HTML error page with 200
    file_status: int | None = None  # the file host answers only this status
    download_size: int | None = None  # GLB results (downloads and inline base64 forms) padded to about this size
    redirect: str | None = None  # GET/HEAD answered 302 with Location: this URL (after redirect_chain hops)
    redirect_chain: int = 0  # N hops of 302, each to a new path on the file host, before serving the file
    declared_length: int | None = None  # GLBs declare this Content-Length, send 64 KiB, stall till hang-up
    # -- hostile: a broken or malicious server
    gzip_bomb: str | None = None  # "file" (GLB downloads) | "api" (getResponse answers) | "cutout" (rembg URL)
    bomb_encoding: str = "gzip"  # the bomb's Content-Encoding: "gzip" | "deflate" (sent whatever was asked)
    bomb_size: int = 2 * 1024**3  # bytes the bomb inflates to (zeros); on the wire about 1/1000 of it
    trickle: float | None = None  # FILE host answers: headers, then one body byte every `trickle` seconds
    trickle_api: bool = False  # with `trickle`: the API host's answers trickle too
    cost: float | str | None = None  # the `cost` of every success item (with includeCost): a float (NaN and
    #                                  infinities go out as JSON's NaN/Infinity), or raw JSON text such as "1e309"


@dataclass
class Style:
    """The documented alternatives for response shapes, and the ways Runware may disagree with our client."""

    # -- result items
    result_form: str = "files"  # "files": outputs.files[{uuid, url}] | "modelURL": modelUUID + modelURL
    #                             | "base64": modelUUID + modelBase64Data | "dataURI": modelUUID + modelDataURI
    multi_form: str = "items"  # "items": one item per generation | "files": one item, several outputs.files
    result_index: str = "normal"  # "normal": 0, 1, … | "duplicate": all 0 | "huge": HUGE_RESULT_INDEXES | "absent"
    literal_results: bool = False  # items exactly like the docs' example: no resultIndex anywhere
    status_on_success: bool = True  # False: success items carry no "status": "success"
    # -- acknowledgements and polls
    ack_form: str = "item"  # "item": {"data": [{taskType, taskUUID}]} | "empty": {"data": []}
    status_word: str = "processing"  # or "pending" (older docs)
    include_progress: bool = False  # an integer "progress" on processing items (Runware does not document it)
    list_finished_only: bool = False  # polls list finished generations only: {"data": []} until one finishes
    upload_data_form: str = "array"  # imageUpload/mediaStorage "data": "array" | "object"
    echo_task_type: str = "original"  # poll items' taskType: "original" | "getResponse"
    # -- errors
    error_envelope: str = "errors"  # request-level errors: "errors" array | legacy "error" | "bare" object
    retry_after_form: str = "seconds"  # Retry-After: "seconds" | "date" (an HTTP-date) | "none" (no header)
    # -- the FILE host
    range_ignored: bool = False  # Range is ignored: 200 with the whole body (else 206, or 416)


class Headers(dict):
    """Request headers with case-insensitive lookup (keys stored lower-case)."""

    def __init__(self, items=()):
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


@dataclass
class Recorded:
    method: str
    path: str
    headers: Headers
    body: object  # parsed JSON, or the raw bytes when the body is not JSON
    time: float
    status: int | None = None  # None: answered by closing the connection
    response: object = None  # the parsed JSON answer, if any


@dataclass
class Generation:
    """One result of a 3dInference task."""

    index: int
    seed: int
    done_at: float
    error: str | None = None  # the error code when this generation fails
    file_uuid: str = ""
    url: str = ""


@dataclass
class TaskState:
    task_type: str
    payload: dict
    created: float
    results: list = field(default_factory=list)  # Generation (3dInference) or ready item dicts
    submissions: int = 1
    upload_results: list = field(default_factory=list)  # uploadEndpoint PUTs: {"url", "status"|"error"}
    webhook_results: list = field(default_factory=list)  # webhook POSTs: {"url", "attempts", "ok"}


@dataclass
class _File:
    data: bytes
    content_type: str
    available_at: float = 0.0
    expires_at: float | None = None
    kind: str = "glb"  # "glb" (a result) | "upload" | "cutout" (removeBackground output)
    engine: bool = False  # another engine's result: `engine_result`, served as made


class ApiError(Exception):
    """A task or request failure; becomes one error object."""

    def __init__(self, status: int, code: str, message: str, parameter=None, **extra):
        super().__init__(message)
        self.status, self.code, self.parameter, self.extra = status, code, parameter, extra

    def to_json(self, task: dict | None = None) -> dict:
        err = {"code": self.code, "message": str(self)}
        if self.parameter is not None:
            err["parameter"] = self.parameter
        err.update(self.extra)
        if task:
            err["taskType"] = task.get("taskType")
            err["taskUUID"] = task.get("taskUUID")
        err.setdefault("documentation", ERRORS_DOC)
        return err


@dataclass
class _Outcome:
    """What one API request produces, gathered task by task."""

    data: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # (http status, error object)
    sync: list = field(default_factory=list)  # 3dInference TaskStates to answer after processing
    data_object: bool = False  # answer "data" as a single object (upload style)
    drop: bool = False


# ---------------------------------------------------------------- images


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


# ---------------------------------------------------------------- gzip bombs

_BOMBS: dict[tuple[int, str], bytes] = {}
_BOMBS_LOCK = threading.Lock()
_BOMB_CHUNK = 1 << 20


def _crc32_of_zeros(n: int) -> int:
    """zlib.crc32(bytes(n)) in O(log n), without the bytes (zlib's crc32_combine, in GF(2))."""
    def times(mat, vec):
        out, i = 0, 0
        while vec:
            if vec & 1:
                out ^= mat[i]
            vec >>= 1
            i += 1
        return out

    def square(mat):
        return [times(mat, m) for m in mat]

    # The register's update for one zero bit (a 32x32 matrix over GF(2), one column per bit), squared twice:
    # the update for 4 zero bits. crc32(zeros(n)) is the update for n zero bytes applied to the initial
    # 0xFFFFFFFF, inverted; n's binary digits pick which of the squarings (1, 2, 4, … bytes) to apply.
    odd = [0xEDB88320] + [1 << i for i in range(31)]
    even = square(odd)
    odd = square(even)
    crc = 0xFFFFFFFF
    while n:
        even = square(odd)  # even: the update for 1, 4, 16 … bytes; odd below: for 2, 8, 32 … bytes
        if n & 1:
            crc = times(even, crc)
        n >>= 1
        if not n:
            break
        odd = square(even)
        if n & 1:
            crc = times(odd, crc)
        n >>= 1
    return crc ^ 0xFFFFFFFF


def bomb_bytes(size: int, encoding: str = "gzip") -> bytes:
    """`size` zero bytes compressed as an HTTP `encoding` ("gzip" or "deflate", the zlib format), made without
    ever holding the inflated data: one 1 MiB block of zeros is compressed after a full flush (so every block
    is byte-aligned and identical) and repeated. About size / 1000 bytes; cached."""
    if encoding not in ("gzip", "deflate"):
        raise ValueError(f"unknown bomb encoding {encoding!r}")
    key = (size, encoding)
    with _BOMBS_LOCK:
        if key in _BOMBS:
            return _BOMBS[key]
        whole, rest = divmod(size, _BOMB_CHUNK)
        raw = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = raw.compress(bytes(_BOMB_CHUNK)) + raw.flush(zlib.Z_FULL_FLUSH) if whole else b""
        last = raw.compress(bytes(rest)) + raw.flush(zlib.Z_FULL_FLUSH) if rest else b""
        body = block * whole + last + raw.flush(zlib.Z_FINISH)
        if encoding == "gzip":
            data = (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + body
                    + struct.pack("<II", _crc32_of_zeros(size), size & 0xFFFFFFFF))
        else:  # adler32 of zeros: a stays 1, b adds 1 per byte
            data = b"\x78\xda" + body + struct.pack(">I", (size % 65521) << 16 | 1)
        _BOMBS[key] = data
        return data


def _decode_base64(text: str) -> bytes | None:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


# ---------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, emulator: Emulator, ssl_context: ssl.SSLContext | None = None):
        self.emulator = emulator
        self.ssl_context = ssl_context
        self.connections: set[socket.socket] = set()
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context:  # the handshake happens in the handler's thread, never in the accept loop
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        if self.emulator.verbose:  # clients hanging up mid-answer is normal here
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API: Content-Length on every answer
    server_version = "RunwareEmulator/1.0"
    timeout = 30

    def setup(self):
        super().setup()
        self.server.connections.add(self.connection)
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except BaseException:
                self.server.connections.discard(self.connection)
                raise

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.connections.discard(self.connection)

    def log_message(self, format, *args):  # noqa: A002 (the stdlib's name)
        if self.server.emulator.verbose:
            super().log_message(format, *args)

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send(self, status: int, body: bytes, headers: dict | None = None, send_body: bool = True,
             on_sent: Callable[[int], None] | None = None):
        """Answer; `on_sent(n)` is told of the body bytes as they go out."""
        self.send_head(status, body, headers)
        if send_body and body:
            view = memoryview(body)
            for start in range(0, len(body), 256 * 1024):
                piece = view[start:start + 256 * 1024]
                self.wfile.write(piece)
                if on_sent:
                    on_sent(len(piece))

    def send_head(self, status: int, body: bytes, headers: dict | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            if value is not None:  # None: leave the header out
                self.send_header(name, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()

    def peer_gone(self, wait: float, stopping: threading.Event) -> bool:
        """Wait up to `wait` seconds; True when the emulator stops or the client hung up (its socket turned
        readable mid-answer: an EOF, a TLS close_notify, or anything else we will not read)."""
        if stopping.wait(wait):
            return True
        try:
            return bool(select.select([self.connection], [], [], 0)[0])
        except (OSError, ValueError):
            return True


class _ApiHandler(_Handler):
    def do_POST(self):
        self.server.emulator._serve_api(self)

    def do_GET(self):  # answered with 405, and recorded
        self.server.emulator._serve_api(self)


class _FileHandler(_Handler):
    def do_GET(self):
        self.server.emulator._serve_file(self)

    def do_HEAD(self):
        self.server.emulator._serve_file(self)


# ---------------------------------------------------------------- the emulator


class Emulator:
    """Two servers (API and FILE host) and everything they remember.

    Besides `faults` and `style` (both restored by reset()), tests may set: `result_bytes`, `result_factory`,
    `balance` (accountManagement, default 12.5), `rembg_shape` (the object removeBackground finds, a `Shape`) and
    `caption_text` (what a caption says: a text, or a function of the task).
    They may read: `requests`, `file_requests`, `tasks`, `uploads`, `billed()`, `file_bytes_sent` (body bytes the
    FILE host sent), `trickle_bytes_sent` (bytes sent by trickling answers) and `trickle_open` (trickling or
    stalled answers whose client has not hung up yet: a live count, never reset).
    """

    def __init__(self, api_key="test-key", processing_time=0.3, result_glb=None, host="127.0.0.1",
                 verbose=False, tls: tuple[str, str] | None = None):
        self.api_key = api_key
        self.processing_time = processing_time
        self.result_bytes = Path(result_glb).read_bytes() if result_glb else glb.canonical_glb()
        # Tests may make each result from its task (e.g. a shape matching the mask): (task, index) -> GLB bytes.
        self.result_factory: Callable[[dict, int], bytes] | None = None
        self.engine_result = glb.pbr_glb()  # what the other engines send: a textured PBR mesh
        self.host = host
        self.verbose = verbose
        self.tls = tls  # (certificate file, key file): serve both hosts over HTTPS (see tests/tls.py)
        self.organization_uuid = str(uuid.uuid4())
        self.api_url = self.files_url = ""
        self.lock = threading.RLock()
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self._timers: list[threading.Timer] = []
        self._stopping = threading.Event()
        self.trickle_open = 0
        self.reset()

    # ---- lifecycle

    def start(self, port: int = 0, files_port: int = 0, tls: tuple[str, str] | None = None) -> Emulator:
        """Listen; with `tls` (or the constructor's) both hosts speak HTTPS only."""
        self._stopping.clear()
        self.tls = tls or self.tls
        context = None
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
        api = _Server((self.host, port), _ApiHandler, self, context)
        files = _Server((self.host, files_port), _FileHandler, self, context)
        # A different host NAME for files, so "the key went to a second host" is observable.
        files_host = "localhost" if self.host == "127.0.0.1" else self.host
        scheme = "https" if context else "http"
        self.api_url = f"{scheme}://{self.host}:{api.server_address[1]}/v1"
        self.files_url = f"{scheme}://{files_host}:{files.server_address[1]}"
        for server in (api, files):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      daemon=True, name="runware-emulator")
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes sync submissions that are waiting, and trickling or stalled answers
        with self.lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        for server in self._servers:
            server.shutdown()
            for conn in list(server.connections):  # idle keep-alive connections would linger
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=1)
        self._servers, self._threads = [], []

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def reset(self) -> None:
        self.result_factory = None  # a test's own results end with it
        with self.lock:
            for timer in getattr(self, "_timers", []):
                timer.cancel()
            self._timers = []
            self.faults = Faults()
            self.style = Style()
            self.requests: list[Recorded] = []
            self.file_requests: list[Recorded] = []
            self.tasks: dict[str, TaskState] = {}
            self.uploads: dict[str, bytes] = {}
            self._files: dict[str, _File] = {}
            self._padded: tuple[int | None, bytes, bytes] = (None, b"", b"")
            self._forgotten: set[str] = set()
            self.balance = 12.5  # USD, what accountManagement getDetails reports
            self.rembg_shape: Shape = None  # the object removeBackground finds (None: a centred ellipse)
            # What a caption says: a text, or made from the task (a test's own captions)
            self.caption_text: str | Callable[[dict], object] = "A wooden chair with a red cushion."
            self.file_bytes_sent = 0
            self.trickle_bytes_sent = 0

    def billed_tasks(self) -> int:
        with self.lock:
            return sum(1 for t in self.tasks.values() if t.task_type == "3dInference")

    def billed(self, task_type: str = "3dInference") -> int:
        """How many tasks of `task_type` were accepted (and so billed): "3dInference", "removeBackground"."""
        names = {"caption", "imageCaption"} if task_type == "caption" else {task_type}
        with self.lock:
            return sum(1 for t in self.tasks.values() if t.task_type in names)

    def forget(self, task_uuid: str) -> None:
        """From now on getResponse answers taskFailedOrNotFound for this task, as Runware does once its
        retention period is over (the task still counts as billed, and its taskUUID still conflicts)."""
        with self.lock:
            self._forgotten.add(task_uuid)

    def finish(self) -> None:
        """Every 3dInference task finishes now (its results listed, its files served): a test that needs the
        server to be done waits on nothing."""
        now = time.monotonic()
        with self.lock:
            for state in self.tasks.values():
                for gen in state.results if state.task_type == "3dInference" else []:
                    gen.done_at = min(gen.done_at, now)
            for stored in self._files.values():
                stored.available_at = min(stored.available_at, now)

    def _count_file_bytes(self, n: int) -> None:
        with self.lock:
            self.file_bytes_sent += n

    # ---- API host

    def _serve_api(self, h: _Handler) -> None:
        raw = h.read_body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        rec = Recorded(h.command, h.path, Headers(h.headers.items()), body, time.monotonic())
        with self.lock:
            self.requests.append(rec)
        answer = self._answer(rec)
        if answer is None:  # accepted, then the connection "drops": no status line at all
            h.close_connection = True
            return
        status, payload, headers = answer
        rec.status, rec.response = status, payload
        data = b"" if payload is None else json.dumps(payload).encode()
        if isinstance(self.faults.cost, str):  # raw JSON text in place of the cost (a number no float holds)
            data = data.replace(json.dumps(self.faults.cost).encode(), self.faults.cost.encode())
        headers = dict(headers)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        polls = isinstance(body, list) and any(
            isinstance(t, dict) and t.get("taskType") in ("getResponse", "getTaskDetails") for t in body)
        if self.faults.gzip_bomb == "api" and status == 200 and polls:
            self._send_bomb(h, "application/json", file_host=False)
        elif self.faults.trickle and self.faults.trickle_api:
            self._send_trickled(h, status, data, headers, file_host=False)
        else:
            h.send(status, data, headers)

    def _answer(self, rec: Recorded):
        """(status, JSON body or None, headers), or None to drop the connection."""
        with self.lock:
            if self.faults.status_sequence:
                return self._transient(self.faults.status_sequence.pop(0))
        if urlsplit(rec.path).path.rstrip("/") != "/v1":
            return self._request_error(ApiError(404, "notFound", "Unknown endpoint: use POST /v1."))
        if rec.method != "POST":
            return self._request_error(ApiError(405, "invalidMethod", "Only POST is supported."))
        tasks = rec.body
        if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
            return self._request_error(ApiError(
                400, "invalidRequestBody", "The body must be a JSON array of task objects."))
        tasks, failure = self._authenticate(rec.headers, tasks)
        if failure:
            return failure
        out = _Outcome()
        for task in tasks:
            self._dispatch(task, out)
        if out.drop:
            return None
        if out.sync:  # sync delivery holds the request open until the work is done
            wait = max(g.done_at for t in out.sync for g in t.results) - time.monotonic()
            self._stopping.wait(max(wait, 0))
            for state in out.sync:
                data, errors = self._render(state, "sync")
                out.data += data
                out.errors += [(200, e) for e in errors]
        return self._compose(out)

    def _transient(self, status: int):
        code = _TRANSIENT_CODES.get(status, "internalServerError" if status >= 500 else "invalidRequest")
        err = ApiError(status, code, f"Emulated HTTP {status}: try again later.")
        value, form = self.faults.retry_after, self.style.retry_after_form
        status, body, headers = self._request_error(err)
        if form == "none":
            return status, body, headers
        if form == "date":  # HTTP-dates have whole seconds: round up, so the wait is never shorter
            return status, body, {**headers, "Retry-After": formatdate(math.ceil(time.time() + value), usegmt=True)}
        return status, body, {**headers, "Retry-After": f"{value:g}"}

    def _request_error(self, err: ApiError, task: dict | None = None):
        return err.status, self._envelope([err.to_json(task)]), {}

    def _envelope(self, errors: list[dict]) -> dict:
        form = self.style.error_envelope
        if form == "bare":
            return errors[0]
        if form == "error":  # legacy: {"error": {...}, "taskUUID", "taskType"}
            first = errors[0]
            return {"error": first, **{k: first[k] for k in ("taskUUID", "taskType") if k in first}}
        return {"errors": errors}

    def _compose(self, out: _Outcome):
        errors = [e for _, e in out.errors]
        if errors and not out.data:
            status = out.errors[0][0]
            return status, (self._envelope(errors) if status >= 400 else {"errors": errors}), {}
        body: dict = {"data": out.data[0] if out.data_object and len(out.data) == 1 else out.data}
        if errors:  # a 2xx that is still an error for some tasks
            body["errors"] = errors
        return 200, body, {}

    def _authenticate(self, headers: Headers, tasks: list):
        """(tasks without the authentication element, failure answer or None)."""
        first = next((t for t in tasks if t.get("taskType") != "authentication"), None)
        if tasks and tasks[0].get("taskType") == "authentication":
            key, tasks = tasks[0].get("apiKey"), tasks[1:]
        else:
            auth = headers.get("Authorization") or ""
            key = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if not key:
            return tasks, self._request_error(
                ApiError(401, "missingApiKey", "No API key: send Authorization: Bearer <key>."), first)
        if key != self.api_key:  # never echo the key back
            if self.faults.empty_401:
                return tasks, (401, None, {})
            return tasks, self._request_error(ApiError(401, "invalidApiKey", "Invalid API key."), first)
        return tasks, None

    def _dispatch(self, task: dict, out: _Outcome) -> None:
        handlers = {
            "accountManagement": self._account_management,
            "3dInference": self._submit_3d,
            "getResponse": self._poll,
            "getTaskDetails": self._poll,
            "imageUpload": self._image_upload,
            "mediaStorage": self._media_storage,
            "removeBackground": self._remove_background,
            "caption": self._caption,
            "imageCaption": self._caption,
        }
        task_type = task.get("taskType")
        try:
            if task_type == "authentication":
                return
            if not task_type:
                raise ApiError(400, "missingTaskType", "Every task needs a taskType.", "taskType")
            if not isinstance(task_type, str) or task_type not in handlers:
                raise ApiError(400, "invalidTaskType", f"Unsupported taskType {task_type!r}.", "taskType")
            handlers[task_type](task, out)
        except ApiError as err:
            out.errors.append((err.status, err.to_json(task)))

    # ---- tasks

    def _check_uuid(self, task: dict, name: str = "taskUUID") -> str:
        value = task.get(name)
        if value is None:
            raise ApiError(400, "missingTaskUUID", f"{name} is required.", name)
        if not isinstance(value, str) or not _UUID_RE.match(value):
            raise ApiError(400, "invalidTaskUUID", f"{name} must be a UUID v4 string.", name)
        return value

    def _refuse_reuse(self, task_uuid: str) -> None:
        """A reused taskUUID is a conflict: counted, never created or billed again. Call under the lock."""
        existing = self.tasks.get(task_uuid)
        if existing:
            existing.submissions += 1
            raise ApiError(400, "conflictTaskUUID",
                           "This taskUUID was already used: poll it with getResponse.", "taskUUID")

    def _create(self, task: dict, results: list) -> TaskState:
        with self.lock:
            self._refuse_reuse(task["taskUUID"])
            state = TaskState(task["taskType"], task, time.monotonic(), results)
            self.tasks[task["taskUUID"]] = state
            return state

    def _submit_3d(self, task: dict, out: _Outcome) -> None:
        self._check_uuid(task)
        self._validate_3d(task)
        with self.lock:  # conflict, credits and creation happen atomically
            self._refuse_reuse(task["taskUUID"])
            if self.faults.insufficient_credits:
                raise ApiError(402, "insufficientCredits", "Insufficient credits: top up your balance.")
            state = self._create(task, self._generations(task))
            self._schedule_delivery(state)
            if self.faults.drop_after_submit > 0:
                self.faults.drop_after_submit -= 1
                out.drop = True
        if task.get("deliveryMethod", "async") == "sync":
            out.sync.append(state)
        elif self.style.ack_form == "item":
            out.data.append({"taskType": "3dInference", "taskUUID": task["taskUUID"]})

    def _validate_3d(self, task: dict) -> None:
        def bad(code, message, param, **extra):
            anchor = param.replace(".", "-").lower()
            return ApiError(400, code, message, param, documentation=f"{SAM3D_DOC}#request-{anchor}", **extra)

        def is_int(value):
            return isinstance(value, int) and not isinstance(value, bool)

        model = task.get("model")
        if not model:
            raise bad("missingModel", "model is required.", "model")
        if model in ENGINE_MODELS:
            return self._validate_engine(task, ENGINE_MODELS[model])
        if model != SAM3D:
            raise bad("invalidModel", f"Model {model!r} does not support 3dInference.", "model")
        prompt = task.get("positivePrompt")
        if prompt is None:
            raise bad("missingPositivePrompt", "positivePrompt is required.", "positivePrompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad("invalidPositivePrompt", "positivePrompt must be a non-empty string.", "positivePrompt")
        inputs = task.get("inputs")
        if not isinstance(inputs, dict):
            raise bad("missingInputs", "inputs with image and mask is required.", "inputs")
        images = {}
        for name in ("image", "mask"):
            if not inputs.get(name):
                raise bad(f"missing{name.title()}", f"inputs.{name} is required.", f"inputs.{name}")
            images[name] = self._resolve_image(inputs[name], f"inputs.{name}")
        sizes = [image_size(images[n]) for n in ("image", "mask")]
        if all(sizes) and sizes[0] != sizes[1]:  # the reference code hard-fails on this (issue #127)
            (iw, ih), (mw, mh) = sizes
            raise bad("invalidMask", f"The mask is {mw}x{mh} but the image is {iw}x{ih}: they must match.",
                      "inputs.mask")
        checks = [
            ("outputType", lambda v: v == "URL", "unsupportedParameter", {"allowedValues": ["URL"]}),
            ("outputFormat", lambda v: v == "GLB", "unsupportedParameter", {"allowedValues": ["GLB"]}),
            ("numberResults", lambda v: is_int(v) and 1 <= v <= 4, "invalidNumberResults",
             {"min": 1, "max": 4}),
            ("seed", lambda v: is_int(v) and 0 <= v <= MAX_SEED, "invalidSeed", {"min": 0, "max": MAX_SEED}),
            ("ttl", lambda v: is_int(v) and v >= 60, "invalidTtl", {"min": 60}),
            ("deliveryMethod", lambda v: v in ("async", "sync"), "invalidDeliveryMethod",
             {"allowedValues": ["async", "sync"]}),
            ("includeCost", lambda v: isinstance(v, bool), "invalidIncludeCost", {}),
            ("webhookURL", lambda v: isinstance(v, str) and v.startswith(("http://", "https://")),
             "invalidWebhookURL", {}),
            ("uploadEndpoint", lambda v: isinstance(v, str) and v.startswith(("http://", "https://")),
             "invalidUploadEndpoint", {}),
        ]
        for name, ok, code, extra in checks:
            if name in task and not ok(task[name]):
                raise bad(code, f"Invalid value for {name}: {task[name]!r}.", name, **extra)

    def _validate_engine(self, task: dict, spec: dict) -> None:
        """Another model's request: its own input key, a prompt or images (not both), only what it documents."""
        model = task["model"]

        def refuse(param, message, code="unsupportedParameter"):
            raise ApiError(400, code, message, param)

        for key in task:
            if key not in ENGINE_KEYS or (key == "seed" and not spec["seed"]):
                refuse(key, f"Parameter {key} is not supported by {model}.")
        inputs = task.get("inputs") or {}
        if not isinstance(inputs, dict) or set(inputs) - {spec["input"]}:
            refuse("inputs", f"{model} takes inputs.{spec['input']} only.")
        given = inputs.get(spec["input"])
        pictures = [given] if spec["input"] == "image" and given else list(given or [])
        if len(pictures) > spec["max"]:
            refuse(f"inputs.{spec['input']}", f"{model} takes at most {spec['max']} image(s).", "invalidInputs")
        for n, picture in enumerate(pictures):
            if not image_size(self._resolve_image(picture, f"inputs.{spec['input']}")):
                refuse(f"inputs.{spec['input']}", f"Image {n} is not an image.", "invalidImage")
        prompt = task.get("positivePrompt")
        if pictures and prompt is not None:
            refuse("positivePrompt", f"positivePrompt cannot be used with inputs on {model}.")
        if not pictures and not (spec["text"] and isinstance(prompt, str) and prompt.strip()):
            refuse("inputs", f"{model} needs inputs.{spec['input']}" + (" or a positivePrompt." if spec["text"]
                                                                         else "."), "missingInputs")
        if "seed" in task and not _i(0, spec.get("seed_max", MAX_SEED))(task["seed"]):
            refuse("seed", f"Invalid seed for {model}.", "invalidSeed")
        settings = task.get("settings", {})
        if not isinstance(settings, dict):
            refuse("settings", "settings must be an object.", "invalidSettings")
        for name, value in settings.items():
            if name not in spec["settings"]:
                refuse(f"settings.{name}", f"settings.{name} is not supported by {model}.")
            if not spec["settings"][name](value):
                refuse(f"settings.{name}", f"Invalid value for settings.{name}: {value!r}.", "invalidSettings")
        if task.get("outputFormat", "GLB") != "GLB" or task.get("outputType", "URL") != "URL":
            refuse("outputFormat", "Only GLB at a URL is emulated.")

    def _resolve_image(self, value, parameter: str) -> bytes:
        """Bytes of an image given as upload UUID, data URI, bare base64 or URL (the documented forms)."""
        def bad(message):
            code = {"inputs.mask": "invalidMask", "media": "invalidMedia"}.get(parameter, "invalidImage")
            return ApiError(400, code, message, parameter)

        if not isinstance(value, str):
            raise bad(f"{parameter} must be a string.")
        if _UUID_RE.match(value):
            with self.lock:
                data = self.uploads.get(value)
            if data is None:
                raise bad(f"No uploaded image with UUID {value}.")
        elif value.startswith(("http://", "https://")):
            data = self._fetch(value)
            if data is None:
                raise bad(f"Could not download {parameter} from its URL.")
        elif value.startswith("data:"):
            head, _, payload = value.partition(",")
            data = _decode_base64(payload) if head.endswith(";base64") else None
        else:
            data = _decode_base64(value)
        if not data or not sniff_image(data):
            raise bad(f"{parameter} is not a PNG, JPEG, WEBP, BMP or GIF image.")
        return data

    def _fetch(self, url: str) -> bytes | None:
        with self.lock:
            local = self._files.get(urlsplit(url).path) if url.startswith(self.files_url) else None
        if local:
            return local.data
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.read()
        except (OSError, ValueError):
            return None

    def _generations(self, task: dict) -> list[Generation]:
        n = task.get("numberResults", 1)
        seed = task.get("seed")
        if seed is None:  # unsigned 32-bit, usually >= 2**31 so 64-bit-safe handling gets exercised
            seeds = random.sample(range(2**31, 2**32), n)
        else:
            seeds = [(seed + i) % (MAX_SEED + 1) for i in range(n)]
        failing = n if self.faults.task_error else min(self.faults.fail_generations, n)
        code = self.faults.task_error or "inferenceError"
        done_at = time.monotonic() + self.processing_time
        ttl = task.get("ttl")
        gens = []
        for i, s in enumerate(seeds):
            gen = Generation(i, s, done_at, error=code if i >= n - failing else None)
            if not gen.error:
                gen.file_uuid = str(uuid.uuid4())
                gen.url = f"{self.files_url}/files/{gen.file_uuid}.glb"
                engine = task.get("model") in ENGINE_MODELS and self.result_factory is None
                data = self.result_factory(task, i) if self.result_factory else \
                    self.engine_result if engine else self.result_bytes
                self._files[f"/files/{gen.file_uuid}.glb"] = _File(
                    data, "model/gltf-binary", done_at, done_at + ttl if ttl else None, engine=engine)
            gens.append(gen)
        return gens

    def _poll(self, task: dict, out: _Outcome) -> None:
        task_uuid = self._check_uuid(task)
        with self.lock:
            state = self.tasks.get(task_uuid)
            forgotten = self.faults.forget_tasks or task_uuid in self._forgotten
        if state is None or forgotten:
            raise ApiError(404, "taskFailedOrNotFound", f"No task {task_uuid}.", "taskUUID")
        data, errors = self._render(state, "poll")
        out.data += data
        out.errors += [(200, e) for e in errors]

    def _account_management(self, task: dict, out: _Outcome) -> None:
        """accountManagement getDetails, shaped like runware.ai/docs/platform/account-management."""
        self._check_uuid(task)
        operation = task.get("operation")
        if operation is None:
            raise ApiError(400, "missingOperation", "operation is required.", "operation",
                           allowedValues=["getDetails"])
        if operation != "getDetails":
            raise ApiError(400, "unsupportedParameter", f"Unknown operation {operation!r}.", "operation",
                           allowedValues=["getDetails"])
        out.data.append({
            "taskType": "accountManagement", "taskUUID": task["taskUUID"], "operation": "getDetails",
            "organizationUUID": self.organization_uuid, "organizationName": "Emulated Org",
            "AIRSource": "emulated",
            "balance": 0 if self.faults.insufficient_credits else self.balance,
            "team": [{"name": "Emulated Owner", "email": "owner@example.invalid", "roles": ["Owner"],
                      "joinedAt": "2024-01-15T10:30:00Z"}],
            # Never the key itself: a name and dates only.
            "apiKeys": [{"name": "Emulated key", "description": "The key these tests use", "enabled": True,
                         "createdAt": "2024-01-15T10:35:00Z", "lastUsedAt": "2025-01-01T00:00:00Z"}],
        })

    def _render(self, state: TaskState, mode: str) -> tuple[list, list]:
        """(data items, error objects) describing a task now; mode is "poll", "sync" or "webhook"."""
        echo = "getResponse" if mode == "poll" and self.style.echo_task_type == "getResponse" else None
        task_type = echo or state.task_type
        if state.task_type != "3dInference":
            return [self._success_status({**item, "taskType": task_type, "status": "success"})
                    for item in state.results], []
        listed = not (mode == "poll" and self.style.list_finished_only)  # list unfinished generations?
        gens: list[Generation] = state.results
        if len(gens) > 1 and self.style.multi_form == "files" and self.style.result_form == "files":
            return self._render_grouped(state, task_type, listed)
        data, errors = [], []
        for gen in gens:
            if time.monotonic() < gen.done_at:
                if listed:
                    data.append(self._processing_item(state, task_type, gen.index))
            elif gen.error:
                self._add_failure(state, task_type, gen, data, errors)
            else:
                data.append(self._success_item(state, task_type, gen.seed, [gen], gen.index))
        return data, errors

    def _render_grouped(self, state: TaskState, task_type: str, listed: bool = True) -> tuple[list, list]:
        """numberResults > 1 as one item carrying several outputs.files."""
        gens: list[Generation] = state.results
        if time.monotonic() < max(g.done_at for g in gens):
            return ([self._processing_item(state, task_type, None)] if listed else []), []
        data, errors = [], []
        ok = [g for g in gens if not g.error]
        if ok:
            data.append(self._success_item(state, task_type, ok[0].seed, ok))
        for gen in gens:
            if gen.error:
                self._add_failure(state, task_type, gen, data, errors)
        return data, errors

    def _set_index(self, item: dict, index: int | None) -> None:
        """resultIndex as Style.result_index and literal_results say."""
        form = self.style.result_index
        if index is None or form == "absent" or self.style.literal_results:
            return
        item["resultIndex"] = {"duplicate": 0, "huge": HUGE_RESULT_INDEXES[index % len(HUGE_RESULT_INDEXES)]
                               }.get(form, index)

    def _success_status(self, item: dict) -> dict:
        if not self.style.status_on_success:
            item.pop("status", None)
        return item

    def _processing_item(self, state: TaskState, task_type: str, index: int | None) -> dict:
        item = {"taskType": task_type, "taskUUID": state.payload["taskUUID"],
                "status": self.style.status_word}
        self._set_index(item, index)
        if self.style.include_progress:
            elapsed = time.monotonic() - state.created
            item["progress"] = min(99, int(100 * elapsed / max(self.processing_time, 1e-6)))
        return item

    def _success_item(self, state: TaskState, task_type: str, seed: int, gens: list[Generation],
                      index: int | None = None) -> dict:
        item = {"taskType": task_type, "taskUUID": state.payload["taskUUID"], "status": "success"}
        self._set_index(item, index)  # the SDK tells generations apart by resultIndex first
        item["seed"] = seed
        if state.payload.get("includeCost"):
            price = ENGINE_MODELS.get(state.payload.get("model"), {}).get("cost", COST_PER_GENERATION)
            item["cost"] = round(price * len(gens), 6) if self.faults.cost is None else self.faults.cost
        form = self.style.result_form
        if form == "modelURL":
            item.update(modelUUID=gens[0].file_uuid, modelURL=gens[0].url)
        elif form in ("base64", "dataURI"):
            encoded = base64.b64encode(self._result_data(gens[0])).decode()
            item["modelUUID"] = gens[0].file_uuid
            if form == "base64":
                item["modelBase64Data"] = encoded
            else:
                item["modelDataURI"] = "data:model/gltf-binary;base64," + encoded
        else:
            item["outputs"] = {"files": [{"uuid": g.file_uuid, "url": g.url} for g in gens]}
        return self._success_status(item)

    def _result_data(self, gen: Generation) -> bytes:
        """The GLB bytes of a generation, exactly as the FILE host would serve them now."""
        with self.lock:
            stored = self._files.get(urlsplit(gen.url).path)
            if stored is None or (self.result_factory is None and not stored.engine):
                return self._glb_bytes()
            return stored.data

    def _add_failure(self, state: TaskState, task_type: str, gen: Generation, data: list, errors: list):
        message = _TASK_ERROR_MESSAGES.get(gen.error, f"The task failed ({gen.error}).")
        base = {"taskType": task_type, "taskUUID": state.payload["taskUUID"], "status": "error"}
        self._set_index(base, gen.index)
        if self.faults.task_error_form == "data":
            data.append({**base, "error": {"code": gen.error, "message": message}})
        else:
            errors.append({"code": gen.error, "message": message, **base, "documentation": ERRORS_DOC})

    # ---- uploads and masks

    def _store_image(self, data: bytes, kind: str = "upload") -> tuple[str, str]:
        """Keep an uploaded (or made) image; returns (uuid, URL on the file host)."""
        image_uuid = str(uuid.uuid4())
        path = f"/images/{image_uuid}.{sniff_image(data)}"
        with self.lock:
            self.uploads[image_uuid] = data
            self._files[path] = _File(data, f"image/{sniff_image(data)}", kind=kind)
        return image_uuid, self.files_url + path

    def _upload_reply(self, task: dict, out: _Outcome, item: dict) -> None:
        self._create(task, [item])
        out.data.append({"taskType": task["taskType"], "taskUUID": task["taskUUID"], **item})
        out.data_object = self.style.upload_data_form == "object"

    def _image_upload(self, task: dict, out: _Outcome) -> None:
        self._check_uuid(task)
        if not task.get("image"):
            raise ApiError(400, "missingImage", "image is required.", "image")
        image_uuid, url = self._store_image(self._resolve_image(task["image"], "image"))
        self._upload_reply(task, out, {"imageUUID": image_uuid, "imageURL": url})

    def _media_storage(self, task: dict, out: _Outcome) -> None:
        self._check_uuid(task)
        operation = task.get("operation", "upload")
        if operation == "delete":
            with self.lock:
                found = self.uploads.pop(task.get("mediaUUID") or "", None)
            if found is None:
                raise ApiError(404, "mediaNotFound", "No such media.", "mediaUUID")
            self._upload_reply(task, out, {"mediaUUID": task["mediaUUID"]})
            return
        if operation != "upload":
            raise ApiError(400, "unsupportedParameter", f"Unknown operation {operation!r}.", "operation",
                           allowedValues=["upload", "delete"])
        if not task.get("media"):
            raise ApiError(400, "missingMedia", "media is required.", "media")
        media_uuid, url = self._store_image(self._resolve_image(task["media"], "media"))
        self._upload_reply(task, out, {"mediaUUID": media_uuid, "mediaURL": url})

    def _remove_background(self, task: dict, out: _Outcome) -> None:
        self._check_uuid(task)
        model = task.get("model")
        if model not in REMBG_MODELS:
            raise ApiError(400, "invalidModel" if model else "missingModel",
                           f"Model {model!r} cannot remove backgrounds.", "model")
        value = (task.get("inputs") or {}).get("image") or task.get("inputImage")
        if not value:
            raise ApiError(400, "missingImage", "inputs.image is required.", "inputs.image")
        size = image_size(self._resolve_image(value, "inputs.image"))
        if not size:
            raise ApiError(400, "invalidImage", "Unsupported image format.", "inputs.image")
        output_type = task.get("outputType", "URL")
        if output_type not in ("URL", "base64Data", "dataURI"):
            raise ApiError(400, "unsupportedParameter", "Invalid outputType.", "outputType",
                           allowedValues=["URL", "base64Data", "dataURI"])
        if task.get("outputFormat", "PNG") != "PNG":  # emulator limit: only PNG keeps the alpha we make
            raise ApiError(400, "unsupportedParameter", "Only PNG is emulated.", "outputFormat",
                           allowedValues=["PNG"])
        settings = task.get("settings", {})
        if not isinstance(settings, dict):
            raise ApiError(400, "invalidSettings", "settings must be an object.", "settings")
        only_mask = settings.get("returnOnlyMask", False)
        if not isinstance(only_mask, bool):
            raise ApiError(400, "invalidReturnOnlyMask", "settings.returnOnlyMask must be a boolean.",
                           "settings.returnOnlyMask")
        if only_mask and model not in REMBG_MASK_MODELS:
            raise ApiError(400, "unsupportedParameter", f"Model {model} does not support returnOnlyMask.",
                           "settings.returnOnlyMask", documentation=f"{REMBG_DOC}#request-settings-returnonlymask")
        png = (mask_png if only_mask else cutout_png)(*size, self.rembg_shape)
        image_uuid, url = self._store_image(png, kind="cutout")
        item = {"imageUUID": image_uuid}
        if output_type == "URL":
            item["imageURL"] = url
        elif output_type == "base64Data":
            item["imageBase64Data"] = base64.b64encode(png).decode()
        else:
            item["imageDataURI"] = "data:image/png;base64," + base64.b64encode(png).decode()
        self._create(task, [item])
        if task.get("deliveryMethod", "sync") == "async":
            if self.style.ack_form == "item":
                out.data.append({"taskType": "removeBackground", "taskUUID": task["taskUUID"]})
        else:
            out.data.append({"taskType": "removeBackground", "taskUUID": task["taskUUID"], **item})

    def _caption(self, task: dict, out: _Outcome) -> None:
        self._check_uuid(task)
        model = task.get("model")
        if model not in CAPTION_MODELS:
            raise ApiError(400, "invalidModel" if model else "missingModel", f"Model {model!r} cannot caption.",
                           "model")
        for key in task:
            if key not in CAPTION_KEYS:
                raise ApiError(400, "unsupportedParameter", f"Parameter {key} is not supported by {model}.", key)
        if task["taskType"] == "caption":
            value, name = (task.get("inputs") or {}).get("image"), "inputs.image"
        else:
            value, name = task.get("inputImage"), "inputImage"
        if not value:
            raise ApiError(400, "missingImage", f"{name} is required.", name)
        if not image_size(self._resolve_image(value, name)):
            raise ApiError(400, "invalidImage", "Unsupported image format.", name)
        text = self.caption_text(task) if callable(self.caption_text) else self.caption_text
        item = {"taskType": "imageCaption", "taskUUID": task["taskUUID"], "text": text}
        if task.get("includeCost"):
            item["cost"] = CAPTION_MODELS[model]
        self._create(task, [item])
        out.data.append(item)

    # ---- webhooks and upload endpoints (the server calls out)

    def _schedule_delivery(self, state: TaskState) -> None:
        if not (state.payload.get("webhookURL") or state.payload.get("uploadEndpoint")):
            return
        finish = max(g.done_at for g in state.results) - time.monotonic()
        timer = threading.Timer(max(finish, 0) + 0.01, self._deliver, (state,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _deliver(self, state: TaskState) -> None:
        data, errors = self._render(state, "webhook")
        hook = state.payload.get("webhookURL")
        if hook:
            for body in [{"data": [d]} for d in data] + [{"errors": [e]} for e in errors]:
                state.webhook_results.append(self._post_webhook(hook, body))
        endpoint = state.payload.get("uploadEndpoint")
        if endpoint:
            for gen in state.results:
                if not gen.error:
                    state.upload_results.append(self._put(endpoint, self._glb_bytes()))

    def _post_webhook(self, url: str, body: dict, attempts: int = 3) -> dict:
        """POST with a couple of retries on non-2xx, like the real server."""
        result = {"url": url, "attempts": [], "ok": False}
        for attempt in range(attempts):
            status = self._call(url, "POST", json.dumps(body).encode(), "application/json")
            result["attempts"].append(status)
            if isinstance(status, int) and 200 <= status < 300:
                result["ok"] = True
                break
            if self._stopping.wait(0.2 * 2**attempt):
                break
        return result

    def _put(self, url: str, data: bytes) -> dict:
        status = self._call(url, "PUT", data, "model/gltf-binary")
        return {"url": url, "status" if isinstance(status, int) else "error": status}

    @staticmethod
    def _call(url: str, method: str, data: bytes, content_type: str):
        """HTTP status, or the error text when there was no answer."""
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code
        except (OSError, ValueError) as err:
            return str(err)

    # ---- FILE host (the CDN stand-in)

    def _glb_bytes(self) -> bytes:
        size = self.faults.download_size
        if not size:
            return self.result_bytes
        cached_size, source, padded = self._padded
        if cached_size != size or source is not self.result_bytes:  # padding per download would be slow
            padded = glb.pad_glb(self.result_bytes, size)
            self._padded = (size, self.result_bytes, padded)
        return padded

    def _serve_file(self, h: _Handler) -> None:
        rec = Recorded(h.command, h.path, Headers(h.headers.items()), None, time.monotonic())
        with self.lock:
            self.file_requests.append(rec)
            location, path = self._hop(urlsplit(h.path).path)
            if location is None:
                status, body, ctype, mode = self._pick_file_answer(self._files.get(path))
        if location is not None:
            rec.status = 302
            h.send(302, b"", {"Location": location})
            return
        rec.status = status
        head = h.command == "HEAD"
        if mode == "bomb":
            self._send_bomb(h, ctype, file_host=True)
            return
        headers = {"Content-Type": ctype, "Accept-Ranges": None if self.style.range_ignored else "bytes"}
        if mode == "stall":
            self._send_stalled(h, body, headers)
            return
        if status == 200 and "Range" in h.headers and not self.style.range_ignored:  # resuming
            status, body, extra = self._range(h.headers["Range"], body)  # faults then apply to the range
            headers.update(extra)
            rec.status = status
        if self.faults.trickle:
            self._send_trickled(h, status, body, headers, file_host=True)
        elif mode:  # "truncate": promise everything, deliver half, hang up; "no_length": close-delimited
            h.close_connection = True
            length = None if "no_length" in mode else str(len(body))
            sent = body[:len(body) // 2] if "truncate" in mode else body
            h.send(status, sent, {**headers, "Content-Length": length, "Connection": "close"}, not head,
                   self._count_file_bytes)
        else:
            h.send(status, body, headers, not head, self._count_file_bytes)

    def _hop(self, path: str) -> tuple[str | None, str]:
        """(the Location to answer 302 with, or None to serve; the file's path), under the lock.
        With redirect_chain N a file's path answers 302 to /hop/N-1/<path>, which answers 302 to
        /hop/N-2/<path> … until /hop/0/<path>, which serves the file (or redirects to Faults.redirect)."""
        match = re.fullmatch(r"/hop/(\d+)(/.*)", path)
        left, real = (int(match.group(1)), match.group(2)) if match else (self.faults.redirect_chain, path)
        if left > 0:
            return f"{self.files_url}/hop/{left - 1}{real}", real
        return self.faults.redirect, real

    def _send_bomb(self, h: _Handler, content_type: str, file_host: bool) -> None:
        """A compressed bomb, whatever the client's Accept-Encoding said."""
        faults = self.faults
        data = bomb_bytes(faults.bomb_size, faults.bomb_encoding)
        headers = {"Content-Type": content_type, "Content-Encoding": faults.bomb_encoding}
        h.send(200, data, headers, h.command != "HEAD", self._count_file_bytes if file_host else None)

    def _send_stalled(self, h: _Handler, body: bytes, headers: dict) -> None:
        """Declare Faults.declared_length, send the first 64 KiB of the real body, then nothing until the
        client hangs up (or the fault is cleared, or the emulator stops)."""
        declared = self.faults.declared_length
        h.close_connection = True
        h.send_head(200, b"", {**headers, "Content-Length": str(declared), "Connection": "close"})
        if h.command == "HEAD":
            return
        with self.lock:
            self.trickle_open += 1
        try:
            first = body[:min(STALL_AFTER, declared)]
            h.wfile.write(first)
            self._count_file_bytes(len(first))
            while self.faults.declared_length is not None and not h.peer_gone(0.05, self._stopping):
                pass
        except OSError:
            pass
        finally:
            with self.lock:
                self.trickle_open -= 1

    def _send_trickled(self, h: _Handler, status: int, body: bytes, headers: dict, file_host: bool) -> None:
        """Headers at once, then one body byte every Faults.trickle seconds until the body is done (which
        takes forever in practice), the client hangs up, the fault is cleared, or the emulator stops."""
        h.close_connection = True
        h.send_head(status, body, {**headers, "Connection": "close"})
        if h.command == "HEAD" or not body:
            return
        with self.lock:
            self.trickle_open += 1
        try:
            for i in range(len(body)):
                wait = self.faults.trickle
                if not wait or not (file_host or self.faults.trickle_api) or h.peer_gone(wait, self._stopping):
                    break
                h.wfile.write(body[i:i + 1])
                with self.lock:
                    self.trickle_bytes_sent += 1
                    if file_host:
                        self.file_bytes_sent += 1
        except OSError:
            pass
        finally:
            with self.lock:
                self.trickle_open -= 1

    def _pick_file_answer(self, stored: _File | None):
        """(status, body, content type, delivery mode) with the file faults applied; under the lock.
        Modes: "bomb", "stall", or "no_length" and/or "truncate"."""
        faults, now = self.faults, time.monotonic()
        if faults.file_status:
            return faults.file_status, b"<html><body>Error</body></html>", "text/html", None
        if stored is None or now < stored.available_at:
            return 404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml", None
        if stored.expires_at is not None and now > stored.expires_at:  # like an expired signed URL
            expired = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
            return 403, expired, "application/xml", None
        body, ctype = stored.data, stored.content_type
        if ctype == "model/gltf-binary" and self.result_factory is None and not stored.engine:
            body = self._glb_bytes()
        if faults.corrupt_downloads > 0:
            faults.corrupt_downloads -= 1
            return 200, b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "text/html", None
        if faults.gzip_bomb and {"file": "glb", "cutout": "cutout"}.get(faults.gzip_bomb) == stored.kind:
            return 200, b"", ctype, "bomb"
        if faults.declared_length is not None and stored.kind == "glb":
            return 200, body, ctype, "stall"
        mode = "no_length" if faults.no_content_length else ""
        if faults.truncate_downloads > 0:
            faults.truncate_downloads -= 1
            mode += " truncate"
        return 200, body, ctype, mode.strip() or None

    @staticmethod
    def _range(header: str, body: bytes):
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", header.strip())
        if not match:
            return 200, body, {}
        start = int(match.group(1))
        end = min(int(match.group(2) or len(body) - 1), len(body) - 1)
        if start >= len(body) or start > end:
            return 416, b"", {"Content-Range": f"bytes */{len(body)}"}
        return 206, body[start:end + 1], {"Content-Range": f"bytes {start}-{end}/{len(body)}"}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Emulate the Runware REST API on loopback.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--files-port", type=int, default=0)
    parser.add_argument("--key", default="test-key")
    parser.add_argument("--glb", help="GLB file to serve as every result (default: a generated mesh)")
    parser.add_argument("--processing", type=float, default=3.0, help="seconds per task")
    parser.add_argument("--progress", action="store_true", help="report an integer progress while processing")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS with this certificate")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    emu = Emulator(args.key, args.processing, args.glb, verbose=args.verbose, tls=args.tls)
    emu.style.include_progress = args.progress
    emu.start(args.port, args.files_port)
    print(emu.api_url, flush=True)
    print(f"files on {emu.files_url}; key {args.key!r}; Ctrl-C to stop", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    emu.stop()


if __name__ == "__main__":
    main()
