"""The one way to read and write files in a folder the add-on does not own alone: the result folder (shared by
design by every Blender the user runs, on any host) and an asset library's folder.

Whatever is in such a folder is as untrusted as a server's answer. So, below the folder itself (which the user
chose, and may be a link):
- a file is read only if it is a **regular file**, opened **without following a link** (no component below the
  folder may be a link: each is opened with `O_NOFOLLOW` from the one above it where the system allows, else
  checked with `lstat`), **without blocking** (a FIFO never hangs Blender) and **within a byte bound**;
- a path taken from a file of the folder (the journal's) is used only **inside** the folder: a name, never a
  path, and a task's folder only under a task UUID of **UUID form**;
- a file is written through a temporary file of an **unpredictable name** in the same folder, then renamed over
  the target (`os.replace`): readers see the old file or the new one, never half of one, and a link planted
  under the target's name is replaced, never followed; an append never follows a link either.

Refusals are `UnsafeFileError`, an `OSError`: callers that treat an unreadable file as missing keep doing so.
Pure Python (stdlib); never imports bpy.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TypeGuard

# A task UUID as this add-on makes them (uuid4's canonical form); anything else is never a folder name.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A file name the add-on itself gives (results `<name>_<n>.glb`, inputs `photo.png`, locks `<uuid>.lock`).
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_BINARY = getattr(os, "O_BINARY", 0)
# Opening a directory relative to another one, without following links, is race-free on POSIX systems.
_DIR_FD = os.open in os.supports_dir_fd and bool(_NOFOLLOW and _DIRECTORY)
_NOT_A_FOLDER = "a folder on its way is a link or not a folder"


class UnsafeFileError(OSError):
    """A file of a shared folder that is refused: a link, a special file, too large, or outside the folder."""

    def __init__(self, path: str | os.PathLike[str], why: str) -> None:
        super().__init__(errno.EPERM, why, os.fspath(path))
        self.why = why


def is_uuid(text: object) -> bool:
    """A task UUID in the form this add-on makes (lower-case, hyphenated uuid4): safe as a folder name."""
    return isinstance(text, str) and _UUID.fullmatch(text) is not None


LATEST_TIME = 1e11  # seconds since 1970: the year 5138; a time past it cannot be one this add-on wrote


def is_time(value: object) -> TypeGuard[int | float]:
    """A time as the add-on writes it (seconds since 1970, from 0 to LATEST_TIME), never converted before it
    is checked: a huge integer neither overflows a float nor breaks `time.localtime` in a panel."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= LATEST_TIME


def safe_name(name: str, limit: int = 60) -> str:
    """`name` as a file name of this add-on (a result, a baked texture): letters, digits, `-`, `_` and `.` kept,
    anything else `_`, no leading or trailing dot, at most `limit` characters; "object" when nothing is left."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:limit].strip("._")
    return safe or "object"


def is_name(text: object) -> bool:
    """A plain file name (no separator, not `.` or `..`), safe to join to a folder."""
    return isinstance(text, str) and _NAME.fullmatch(text) is not None and text not in (".", "..")


def _parts(path: Path, root: Path) -> list[str]:
    """The components of `path` below `root`, lexically (no `..`, no absolute escape), or UnsafeFileError."""
    try:
        relative = Path(os.path.normpath(path)).relative_to(os.path.normpath(root))
    except ValueError:
        raise UnsafeFileError(path, "it is outside the folder") from None
    parts = list(relative.parts)
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise UnsafeFileError(path, "it is outside the folder")
    return parts


@contextlib.contextmanager
def _parent(path: Path, root: Path | None, create: bool = False) -> Iterator[tuple[int | None, str, str]]:
    """(a descriptor of the folder holding `path`, or None where the system cannot open relative to one; the
    name to use with that descriptor; the full path). No component below `root` may be a link; with
    `create`, missing folders are made (never through a link)."""
    path = Path(path)
    if root is None:
        yield None, str(path), str(path)
        return
    root = Path(root)
    parts = _parts(path, root)
    if not _DIR_FD:
        current = root
        for part in parts[:-1]:
            current = current / part
            if create:
                with contextlib.suppress(FileExistsError):
                    current.mkdir()
            info = os.lstat(current)
            if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
                raise UnsafeFileError(current, _NOT_A_FOLDER)
        yield None, str(path), str(path)
        return
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a file where the folder should be: not "this file exists"
            raise NotADirectoryError(errno.ENOTDIR, "it is not a folder", str(root)) from None
    fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)  # the folder the user chose: a link is theirs
    try:
        for part in parts[:-1]:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            try:
                inner = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeFileError(os.path.join(root, part), _NOT_A_FOLDER) from None
                raise
            os.close(fd)
            fd = inner
        yield fd, parts[-1], str(path)
    finally:
        os.close(fd)


def _open_regular(dir_fd: int | None, name: str, full: str, flags: int, mode: int = 0o644) -> int:
    """Open without following a link and without blocking; keep the descriptor only for a regular file."""
    try:
        fd = os.open(name, flags | _NOFOLLOW | _NONBLOCK | _CLOEXEC | _BINARY, mode,
                     **({"dir_fd": dir_fd} if dir_fd is not None else {}))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFileError(full, "it is a link") from None
        if exc.errno == errno.ENXIO:  # a FIFO with no reader, opened for writing
            raise UnsafeFileError(full, "it is not a regular file") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFileError(full, "it is not a regular file")
        if not _NOFOLLOW and os.path.islink(full):  # a system without O_NOFOLLOW: checked after the fact
            raise UnsafeFileError(full, "it is a link")
        if _NONBLOCK and hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file: blocking reads are plain reads
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None,
                 max_bytes: int | None = None, follow_links: bool = False) -> int:
    """A read-only descriptor of the regular file at `path` (inside `root` when given), or UnsafeFileError / the
    OSError of opening it. `follow_links` only for a file the user chose (a photo): it must still be regular."""
    if follow_links:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC | _BINARY)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnsafeFileError(path, "it is not a regular file")
            if _NONBLOCK and hasattr(os, "set_blocking"):
                os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
    else:
        with _parent(Path(path), None if root is None else Path(root)) as (dir_fd, name, full):
            fd = _open_regular(dir_fd, name, full, os.O_RDONLY)
    if max_bytes is not None and os.fstat(fd).st_size > max_bytes:
        os.close(fd)
        raise UnsafeFileError(path, f"it is larger than {max_bytes:,} bytes")
    return fd


def read_bytes(path: str | os.PathLike[str], *, max_bytes: int, root: str | os.PathLike[str] | None = None,
               follow_links: bool = False) -> bytes:
    """The whole regular file at `path`, at most `max_bytes` (a file that grows past it while read is refused)."""
    fd = open_regular(path, root=root, max_bytes=max_bytes, follow_links=follow_links)
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnsafeFileError(path, f"it is larger than {max_bytes:,} bytes")
    return data


def is_regular(path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> bool:
    """Whether `path` is a regular file reached without a link (inside `root` when given)."""
    try:
        os.close(open_regular(path, root=root))
    except OSError:
        return False
    return True


def ensure_dir(root: str | os.PathLike[str], *names: str) -> Path:
    """`root/names…` as a real folder (made when missing), no component below `root` a link."""
    path = Path(root).joinpath(*names)
    with _parent(path / "_", Path(root), create=True):
        pass
    return path


def write_atomically(path: str | os.PathLike[str], data: bytes, *, root: str | os.PathLike[str] | None = None,
                     sync: bool = False) -> None:
    """Replace the file at `path` with `data` at once: written to a temporary file of an unpredictable name in
    the same folder, then renamed over it. A link at `path` is replaced, never written through."""
    path = Path(path)
    if root is not None:
        with _parent(path, Path(root), create=True):
            pass  # every folder on the way is real (or refused) before anything is written
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:60]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def open_append(path: str | os.PathLike[str], *, root: str | os.PathLike[str]) -> int:
    """A descriptor for appending to the regular file at `path` inside `root` (made when missing), opened
    without following a link: a journal planted as a link to a shell start-up file is refused."""
    with _parent(Path(path), Path(root), create=True) as (dir_fd, name, full):
        return _open_regular(dir_fd, name, full, os.O_RDWR | os.O_APPEND | os.O_CREAT)


def open_write(path: str | os.PathLike[str], *, root: str | os.PathLike[str], append: bool = False) -> int:
    """A descriptor for writing the regular file at `path` inside `root` (made when missing; emptied unless
    `append`), no component below `root` a link: a task folder swapped for a link mid-download is refused."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    with _parent(Path(path), Path(root), create=True) as (dir_fd, name, full):
        return _open_regular(dir_fd, name, full, flags)


def rename(source: str | os.PathLike[str], target: str | os.PathLike[str], *, root: str | os.PathLike[str]) -> None:
    """Rename `source` over `target`, both inside `root`, each reached without following a link."""
    with _parent(Path(source), Path(root)) as (src_fd, src, _), _parent(Path(target), Path(root)) as (dst_fd, dst, _):
        os.replace(src, dst, **({"src_dir_fd": src_fd, "dst_dir_fd": dst_fd} if src_fd is not None else {}))


def remove(path: str | os.PathLike[str], *, root: str | os.PathLike[str]) -> None:
    """Remove the file at `path` inside `root` if it is there (a link itself, never what it points to)."""
    with contextlib.suppress(FileNotFoundError), _parent(Path(path), Path(root)) as (dir_fd, name, _full):
        os.unlink(name, **({"dir_fd": dir_fd} if dir_fd is not None else {}))


def create_exclusive(path: str | os.PathLike[str], *, root: str | os.PathLike[str]) -> int:
    """A new file at `path` inside `root`, for writing; FileExistsError when anything (a link too) is there."""
    with _parent(Path(path), Path(root), create=True) as (dir_fd, name, _full):
        return os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW | _CLOEXEC | _BINARY, 0o644,
                       **({"dir_fd": dir_fd} if dir_fd is not None else {}))
