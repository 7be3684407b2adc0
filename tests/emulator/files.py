"""The FILE host, the CDN stand-in on its own host name: results and images as stored `File`s, served with the
file faults applied (redirects, truncation, corruption, expiry, ranges); mixed into the Emulator as `FileHost`."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .hostile import Faults, Style
from .plumbing import Handler, Headers, Recorded

try:
    from .. import glb
except ImportError:  # imported with tests/ on sys.path
    import glb


@dataclass
class File:
    data: bytes
    content_type: str
    available_at: float = 0.0
    expires_at: float | None = None
    kind: str = "glb"  # "glb" (a result) | "upload" | "cutout" (removeBackground output)
    engine: bool = False  # another engine's result: `engine_result`, served as made


class FileHost:
    """The FILE host's half of the Emulator: what it serves, and how (the Emulator's state, under its lock; the
    hostile answers are HostileSender's)."""

    faults: Faults
    style: Style
    lock: threading.RLock
    files_url: str
    result_bytes: bytes
    result_factory: Callable[[dict, int], bytes] | None
    file_requests: list[Recorded]
    file_bytes_sent: int
    _files: dict[str, File]
    _padded: tuple[int | None, bytes, bytes]

    def _count_file_bytes(self, n: int) -> None:
        with self.lock:
            self.file_bytes_sent += n

    def _glb_bytes(self) -> bytes:
        size = self.faults.download_size
        if not size:
            return self.result_bytes
        cached_size, source, padded = self._padded
        if cached_size != size or source is not self.result_bytes:  # padding per download would be slow
            padded = glb.pad_glb(self.result_bytes, size)
            self._padded = (size, self.result_bytes, padded)
        return padded

    def _serve_file(self, h: Handler) -> None:
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

    def _pick_file_answer(self, stored: File | None):
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
