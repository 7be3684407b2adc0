"""Results to disk: streamed (never whole in memory), size-capped, re-fetched when cut short, checked to be
a GLB before anything imports it. Download hosts never see the API key: this module never has it."""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import requests

from .errors import RunwareError
from .runware import check_url

CHUNK = 256 * 1024
GLB_MAGIC = b"glTF"


def check_glb(path: Path) -> None:
    """Raise `notGlb` unless the file starts with a GLB 2.0 header whose declared length is the file's."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(12)
    if len(header) < 12 or header[:4] != GLB_MAGIC:
        raise RunwareError("notGlb", f"{path.name} does not start like a GLB file")
    version, length = struct.unpack("<II", header[4:])
    if version != 2:
        raise RunwareError("notGlb", f"GLB version {version}, only version 2 is supported")
    if length != size:
        raise RunwareError("notGlb", f"{path.name} declares {length} bytes but holds {size}", retryable=length > size)


def save_inline(data: bytes, dest: Path) -> Path:
    """A result the server sent inline (`modelBase64Data`): written and checked like a download."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(data)
    try:
        check_glb(part)
    except RunwareError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def download(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout: float = 60.0,
    retries: int = 3,
    cancel: threading.Event | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Stream `url` to `dest` (through `dest.part`, renamed when whole and valid). A transfer cut short or a
    file that is not a GLB yet is fetched again, resuming with a Range request when the host allows it."""
    check_url(url, "result URL")
    cancel = cancel or threading.Event()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.unlink(missing_ok=True)
    last: RunwareError | None = None
    with requests.Session() as session:  # a session of its own: no API headers can leak into it
        for attempt in range(retries + 1):
            if attempt and cancel.wait(min(0.5 * 2**attempt, 5.0)):
                break
            try:
                _fetch(session, url, part, max_bytes, timeout, cancel, on_progress)
                check_glb(part)
                os.replace(part, dest)
                return dest
            except RunwareError as exc:
                if not exc.retryable:
                    part.unlink(missing_ok=True)
                    raise
                last = exc
                if exc.code == "notGlb":  # corrupt, not short: start over rather than append
                    part.unlink(missing_ok=True)
    part.unlink(missing_ok=True)
    if cancel.is_set():
        raise RunwareError("cancelled")
    raise last or RunwareError("downloadFailed")


def _fetch(
    session: requests.Session,
    url: str,
    part: Path,
    max_bytes: int,
    timeout: float,
    cancel: threading.Event,
    on_progress: Callable[[int, int | None], None] | None,
) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        resp = session.get(url, stream=True, timeout=(10.0, timeout), headers=headers)
    except (requests.ConnectionError, requests.Timeout):
        raise RunwareError("downloadFailed", "the download host did not answer", retryable=True) from None
    with resp:
        if resp.status_code in (403, 404, 410):
            raise RunwareError("resultExpired", f"HTTP {resp.status_code}", status=resp.status_code)
        if resp.status_code >= 400:
            raise RunwareError("downloadFailed", f"HTTP {resp.status_code}", status=resp.status_code,
                               retryable=resp.status_code in (408, 429) or resp.status_code >= 500)
        if resp.status_code != 206:
            have = 0  # the host ignored the Range: start over
        declared = resp.headers.get("Content-Length")
        total = have + int(declared) if declared and declared.isdigit() else None
        if total is not None and total > max_bytes:
            raise RunwareError("downloadTooLarge", f"{total / 1e6:.0f} MB")
        got = have
        try:
            with open(part, "ab" if have else "wb") as out:
                for chunk in resp.iter_content(CHUNK):
                    if cancel.is_set():
                        raise RunwareError("cancelled")
                    got += len(chunk)
                    if got > max_bytes:
                        raise RunwareError("downloadTooLarge", f"more than {max_bytes / 1e6:.0f} MB")
                    out.write(chunk)
                    if on_progress:
                        on_progress(got, total)
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            raise RunwareError("downloadFailed", "the transfer was cut short", retryable=True) from None
        if total is not None and got < total:
            raise RunwareError("downloadFailed", "the transfer was cut short", retryable=True)
