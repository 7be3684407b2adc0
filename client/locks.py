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
import socket
import time
from pathlib import Path

FOLDER = "locks"
STALE = 24 * 3600.0


def _start_time(pid: int) -> str:
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
    return not start or _start_time(pid) in ("", start)


ME = {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid())}


class TaskLocks:
    def __init__(self, result_dir: Path) -> None:
        self.folder = Path(result_dir) / FOLDER

    def path(self, task_uuid: str) -> Path:
        return self.folder / f"{task_uuid}.lock"

    def acquire(self, task_uuid: str) -> bool:
        """Take the task's lock (or keep it, when this process holds it). False when a live holder has it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(task_uuid)
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder(task_uuid)
                if holder is None:
                    continue  # released meanwhile: try again
                if _is_me(holder):
                    return True
                if not self._dead(holder):
                    return False
                try:  # a dead holder's lock: only one taker can rename it away
                    os.rename(path, path.with_name(f"{path.name}.{os.getpid()}.stale"))
                    path.with_name(f"{path.name}.{os.getpid()}.stale").unlink(missing_ok=True)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({**ME, "time": time.time()}, f)
            return True
        return False

    def release(self, task_uuid: str) -> None:
        """Give the lock back, if this process holds it (a folder that cannot be read has none to give)."""
        with contextlib.suppress(OSError):
            holder = self.holder(task_uuid)
            if holder is not None and _is_me(holder):
                self.path(task_uuid).unlink(missing_ok=True)

    def holder(self, task_uuid: str) -> dict | None:
        path = self.path(task_uuid)
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                return data
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError):
            pass
        try:  # being written, or broken: another's, as old as the file
            return {"host": "?", "pid": -1, "start": "", "time": path.stat().st_mtime}
        except OSError:
            return None

    def held_elsewhere(self, task_uuid: str) -> bool:
        """Another live process holds this task: do not offer or start it here."""
        holder = self.holder(task_uuid)
        return holder is not None and not _is_me(holder) and not self._dead(holder)

    @staticmethod
    def _dead(holder: dict) -> bool:
        if holder.get("host") != ME["host"]:
            return time.time() - float(holder.get("time") or 0.0) > STALE
        pid = holder.get("pid")
        return not isinstance(pid, int) or pid <= 0 or not _alive(pid, str(holder.get("start") or ""))


def _is_me(holder: dict) -> bool:
    return holder.get("host") == ME["host"] and holder.get("pid") == ME["pid"]
