"""The failures to inject (`Faults`), Runware's documented alternatives (`Style`), and what plays a broken or
malicious server: gzip bombs, absurd resultIndex values, and answers that stall or trickle (`HostileSender`)."""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from .plumbing import Handler

HUGE_RESULT_INDEXES = (10**30, -5, "7", 2**64)  # Style.result_index "huge": generation i reports the i-th
STALL_AFTER = 64 * 1024  # Faults.declared_length: bytes sent before the body stalls


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


class HostileSender:
    """Answers of a broken or malicious server, mixed into the Emulator (whose state they use)."""

    faults: Faults
    lock: threading.RLock
    trickle_open: int
    trickle_bytes_sent: int
    file_bytes_sent: int
    _stopping: threading.Event
    _count_file_bytes: Callable[[int], None]  # the FileHost's

    def _send_bomb(self, h: Handler, content_type: str, file_host: bool) -> None:
        """A compressed bomb, whatever the client's Accept-Encoding said."""
        faults = self.faults
        data = bomb_bytes(faults.bomb_size, faults.bomb_encoding)
        headers = {"Content-Type": content_type, "Content-Encoding": faults.bomb_encoding}
        h.send(200, data, headers, h.command != "HEAD", self._count_file_bytes if file_host else None)

    def _send_stalled(self, h: Handler, body: bytes, headers: dict) -> None:
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

    def _send_trickled(self, h: Handler, status: int, body: bytes, headers: dict, file_host: bool) -> None:
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
