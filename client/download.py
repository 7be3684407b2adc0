"""Results to disk: streamed (never whole in memory), capped on the wire, re-fetched when cut short, checked
to be a GLB before anything imports it. Download hosts never see the API key: this module never has it.

Each download writes its own partial file (`<name>.<pid>-<random>.part`), so two Blender processes that
share a result folder never write into, or delete, each other's partial files.
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Callable
from pathlib import Path

from . import files
from .errors import Code, Sam3dError
from .http import Guard, Transport, declared_length, get_following, read_body

GLB_MAGIC = b"glTF"


def check_glb(path: Path, root: Path | None = None) -> None:
    """Raise `notGlb` unless the file starts with a GLB 2.0 header whose declared length is the file's."""
    with os.fdopen(files.open_regular(path, root=root or path.parent), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        header = f.read(12)
    if len(header) < 12 or header[:4] != GLB_MAGIC:
        raise Sam3dError(Code.NOT_GLB, f"{path.name} does not start like a GLB file")
    version, length = struct.unpack("<II", header[4:])
    if version != 2:
        raise Sam3dError(Code.NOT_GLB, f"GLB version {version}, only version 2 is supported")
    if length != size:
        raise Sam3dError(Code.NOT_GLB, f"{path.name} declares {length} bytes but holds {size}", retryable=length > size)


def partial_path(dest: Path) -> Path:
    """A partial file of this process alone, beside `dest`."""
    return dest.with_name(f"{dest.name}.{os.getpid()}-{secrets.token_hex(4)}.part")


def save_inline(data: bytes, dest: Path, *, max_bytes: int, root: Path | None = None) -> Path:
    """A result the server sent inline (`modelBase64Data`): capped, written and checked like a download."""
    if len(data) > max_bytes:
        raise Sam3dError(Code.DOWNLOAD_TOO_LARGE, f"{len(data) / 1e6:.0f} MB")
    root = root or dest.parent
    part = partial_path(dest)
    try:
        with os.fdopen(files.open_write(part, root=root), "wb") as out:
            out.write(data)
        check_glb(part, root)
        files.rename(part, dest, root=root)
    finally:
        files.remove(part, root=root)
    return dest


def download(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout: float = 60.0,
    retries: int = 3,
    guard: Guard | None = None,
    transport: Transport | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
    api_url: str = "",
    root: Path | None = None,
) -> Path:
    """Stream `url` to `dest` (through a partial file of our own, renamed when whole and valid). A transfer cut
    short, or a file that is not a GLB yet, is fetched again, resuming with a Range request when the host
    honours it (a host that answers a Range with the whole body starts the file over). Without a `transport`,
    `api_url` says whether the result may be on this machine (only when the API is: client/http.py). Every file
    is reached from `root` (the result folder; `dest`'s own folder by default) without following a link: nothing
    is written outside it."""
    guard = guard or Guard()
    own = transport is None
    transport = transport or Transport(api_url=api_url)
    root = root or dest.parent
    part = partial_path(dest)
    last: Sam3dError | None = None
    try:
        for attempt in range(retries + 1):
            if attempt:
                guard.wait(min(0.5 * 2**attempt, 5.0))
            try:
                _fetch(transport, url, part, root, max_bytes, timeout, guard, on_progress)
                check_glb(part, root)
                files.rename(part, dest, root=root)
                return dest
            except Sam3dError as exc:
                if not exc.retryable:
                    raise
                last = exc
                if exc.code == Code.NOT_GLB:  # corrupt, not short: start over rather than append
                    files.remove(part, root=root)
        raise last or Sam3dError(Code.DOWNLOAD_FAILED)
    finally:
        files.remove(part, root=root)
        if own:
            transport.close()


def _fetch(transport: Transport, url: str, part: Path, root: Path, max_bytes: int, timeout: float, guard: Guard,
           on_progress: Callable[[int, int | None], None] | None) -> None:
    try:
        with os.fdopen(files.open_regular(part, root=root), "rb") as f:
            have = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        have = 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with get_following(transport, url, guard=guard, timeout=timeout, headers=headers) as (resp, exchange):
        status = resp.status_code
        if status in (403, 404, 410):
            raise Sam3dError(Code.RESULT_EXPIRED, f"HTTP {status}", status=status)
        if status == 416 and have:  # our partial file is already whole (or bigger): start over
            files.remove(part, root=root)
            raise Sam3dError(Code.DOWNLOAD_FAILED, "HTTP 416", status=status, retryable=True)
        if status >= 400 or status not in (200, 206):
            raise Sam3dError(Code.DOWNLOAD_FAILED, f"HTTP {status}", status=status,
                               retryable=status in (408, 429) or status >= 500)
        if status == 200:
            have = 0  # the host ignored the Range (or there was none): the body is the whole file
        declared = declared_length(resp)
        total = have + declared if declared is not None else None
        with os.fdopen(files.open_write(part, root=root, append=bool(have)), "wb") as out:
            write = out.write if have else _GlbStart(out.write, max_bytes)
            read_body(resp, exchange, max_bytes - have, write, too_large=Code.DOWNLOAD_TOO_LARGE,
                      on_progress=(lambda got: on_progress(have + got, total)) if on_progress else None)


class _GlbStart:
    """A sink that looks at a download's first 12 bytes before keeping more: a body that does not start like a
    GLB, or declares more than the cap, is refused there (an error page, or megabytes of a bomb's zeros)."""

    def __init__(self, write: Callable[[bytes], object], max_bytes: int) -> None:
        self.write, self.max_bytes, self.head, self.got, self.declared = write, max_bytes, b"", 0, max_bytes

    def __call__(self, data: bytes) -> None:
        if len(self.head) < 12:
            self.head += data[:12 - len(self.head)]
            if len(self.head) == 12:
                if self.head[:4] != GLB_MAGIC:
                    raise Sam3dError(Code.NOT_GLB, "the download does not start like a GLB file")
                self.declared = struct.unpack("<I", self.head[8:12])[0]
                if self.declared > self.max_bytes:
                    raise Sam3dError(Code.DOWNLOAD_TOO_LARGE, "the GLB declares more than the limit")
        self.got += len(data)
        if self.got > self.declared:
            raise Sam3dError(Code.NOT_GLB, "the download is longer than the GLB it starts declares")
        self.write(data)
