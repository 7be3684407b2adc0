"""Per-task locks in the result folder, so that several Blender processes sharing it (the default folder is
shared by every Blender the user runs) never fetch, download or import one task twice.

A lock is a small JSON file `locks/<task uuid>.lock` made with O_EXCL (atomic on every local file system),
holding the holder's host, pid and process start time. It is held from submission to import. A lock whose
holder is dead (same host, and no such process, or another process now has that pid) is taken over; a lock
of another host is respected unless it is older than STALE seconds (we cannot see that host's processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from pathlib import Path

from . import files

FOLDER = "locks"
STALE = 24 * 3600.0
MAX_LOCK_BYTES = 4096  # what a holder writes is a hundred bytes: a lock file larger than this is not one of ours


def start_time(pid: int) -> str:
    """The process's start time (Linux: /proc), so a reused pid is not mistaken for the holder."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return True
    return not start or start_time(pid) in ("", start)


ME = {"host": socket.gethostname(), "pid": os.getpid(), "start": start_time(os.getpid())}


class TaskLocks:
    """The locks of one result folder. Lock files are read as everything in the shared folder is (client.files):
    regular files only, never through a link, a few KB at most; a task UUID of another form has no lock."""

    def __init__(self, result_dir: Path) -> None:
        self.root = Path(result_dir)
        self.folder = self.root / FOLDER

    def path(self, task_uuid: str) -> Path:
        if not files.is_uuid(task_uuid):
            raise files.UnsafeFileError(task_uuid, "it is not a task UUID")
        return self.folder / f"{task_uuid}.lock"

    def acquire(self, task_uuid: str) -> bool:
        """Take the task's lock (or keep it, when this process holds it). False when a live holder has it."""
        path = self.path(task_uuid)
        for _ in range(3):
            try:
                fd = files.create_exclusive(path, root=self.root)  # never through a link (the folder's either)
            except FileExistsError:
                holder = self.holder(task_uuid)
                if holder is None:
                    continue  # released meanwhile: try again
                if _is_me(holder):
                    return True
                if not self._dead(holder):
                    return False
                try:  # a dead holder's lock: only one taker can rename it away
                    stale = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.stale")
                    os.rename(path, stale)
                    stale.unlink(missing_ok=True)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({**ME, "time": time.time()}, f)
            return True
        return False

    def release(self, task_uuid: str) -> None:
        """Give the lock back, if this process holds it (a folder that cannot be read has none to give)."""
        with contextlib.suppress(OSError):  # UnsafeFileError too: a task UUID of another form holds no lock
            holder = self.holder(task_uuid)
            if holder is not None and _is_me(holder):
                self.path(task_uuid).unlink(missing_ok=True)

    def holder(self, task_uuid: str) -> dict | None:
        """Who holds the task's lock: its host, pid, start and time (each of its type), or None when free. A lock
        being written, broken, too large or not a regular file counts as another's, as old as the file."""
        path = self.path(task_uuid)
        try:
            data = json.loads(files.read_bytes(path, max_bytes=MAX_LOCK_BYTES, root=self.root))
            if isinstance(data, dict):
                return _holder(data)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError, RecursionError):
            pass
        try:
            return {"host": "?", "pid": -1, "start": "", "time": os.lstat(path).st_mtime}
        except OSError:
            return None

    def held_elsewhere(self, task_uuid: str) -> bool:
        """Another live process holds this task: do not offer or start it here."""
        try:
            holder = self.holder(task_uuid)
        except OSError:  # a folder on the way that is a link: nobody can hold the task through it
            return False
        return holder is not None and not _is_me(holder) and not self._dead(holder)

    @staticmethod
    def _dead(holder: dict) -> bool:
        if holder.get("host") != ME["host"]:
            return time.time() - holder["time"] > STALE
        pid = holder.get("pid")
        return not isinstance(pid, int) or pid <= 0 or not _alive(pid, holder["start"])


def _holder(data: dict) -> dict:
    """A lock's fields, each of its type (a lock another host wrote is data, never trusted for more)."""
    stamp = data.get("time")
    pid = data.get("pid")
    return {"host": data["host"] if isinstance(data.get("host"), str) else "?",
            "pid": pid if isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31 else -1,
            "start": data["start"] if isinstance(data.get("start"), str) else "",
            "time": float(stamp) if files.is_time(stamp) else 0.0}


def _is_me(holder: dict) -> bool:
    return holder.get("host") == ME["host"] and holder.get("pid") == ME["pid"]
