"""The job journal: an append-only JSON-lines file in the result folder, one line per step of every job.

created → submitted (written *before* the request goes out) → results → downloaded → imported, or failed /
cancelled. It is what makes a paid task impossible to lose: a job that was submitted but never imported can
be fetched again by its task UUID after a crash. A line cut short by a crash is skipped, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE = "journal.jsonl"
INDEX = "journal.index.json"
# What each event says about a task; a later step overrides an earlier one.
STATUS = {"created": "created", "submitted": "submitted", "results": "processed", "downloaded": "downloaded",
          "imported": "imported", "failed": "failed", "cancelled": "cancelled"}
UNFINISHED = {"submitted", "processed", "downloaded", "interrupted"}


@dataclass
class TaskRecord:
    """Everything the journal knows about one task."""

    task_uuid: str
    status: str = "created"
    time: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)  # name, image, mask, prompt, seed, model, placement…
    results: list[dict[str, Any]] = field(default_factory=list)  # index, url, seed, cost
    files: list[dict[str, Any]] = field(default_factory=list)  # path, index, seed, cost of each GLB on disk
    code: str = ""
    submitted_at: float = 0.0
    finished_at: float = 0.0  # when its results (or its failure) came

    @property
    def seconds(self) -> float | None:
        """From submission to results, when both are known."""
        return self.finished_at - self.submitted_at if self.submitted_at and self.finished_at else None

    @property
    def cost(self) -> float:
        return sum(r["cost"] for r in self.results if isinstance(r, dict) and isinstance(r.get("cost"), (int, float)))

    @property
    def unfinished(self) -> bool:
        return self.status in UNFINISHED


class Journal:
    _lock = threading.Lock()  # one writer at a time across threads

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / FILE
        self.broken = 0

    def append(self, event: str, task_uuid: str, **fields: Any) -> None:
        """Write one line and fsync it: the caller goes on only once it is on disk. One write() of the whole
        line to a file opened for appending, so lines of several processes never interleave."""
        line = json.dumps({"time": time.time(), "event": event, "task_uuid": task_uuid, **fields}, default=str)
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                _lock_file(fd)  # other Blender processes: the check below and the write are one step
                prefix = "\n" if _ends_mid_line(fd) else ""  # never glue a line onto one a crash cut short
                os.write(fd, (prefix + line + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)  # closing releases the lock

    def read(self) -> tuple[list[dict[str, Any]], int]:
        """(records, number of broken lines skipped)."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return [], 0
        return _parse(text.splitlines(), self.path)

    def tasks(self) -> dict[str, TaskRecord]:
        """Every task the journal knows, oldest first, folded from its lines (one pass: `broken` then holds
        the number of broken lines skipped)."""
        tasks: dict[str, TaskRecord] = {}
        records, self.broken = self.read()
        for rec in records:
            _fold(tasks, rec)
        return tasks


class History:
    """What the Jobs panel, Resume and the spending limit need from the journal, at a cost that does not grow
    with its length: a snapshot (`journal.index.json`: every unfinished task, the latest ones, the total cost,
    and the byte offset it covers) plus the lines appended since. The main thread refreshes it when a job
    ends; the journal itself stays append-only (several Blender processes may append to it at once)."""

    KEEP_RECENT = 64  # finished tasks kept in memory (the panel shows the latest few)
    COMPACT_EVERY = 500  # lines read since the snapshot before a new one is written

    def __init__(self, folder: Path) -> None:
        self.journal = Journal(folder)
        self.tasks: dict[str, TaskRecord] = {}  # every unfinished task and the latest finished ones
        self.total_cost = 0.0
        self.prices: dict[str, float] = {}  # model → the latest cost per result Runware reported
        self.broken = 0
        self._offset = 0
        self._since_snapshot = 0
        self._loaded = False

    @property
    def index_path(self) -> Path:
        return self.journal.folder / INDEX

    def unfinished(self) -> list[TaskRecord]:
        return [t for t in self.tasks.values() if t.unfinished]

    def recent(self, count: int) -> list[TaskRecord]:
        return sorted(self.tasks.values(), key=lambda t: t.time, reverse=True)[:count]

    def typical_seconds(self) -> float | None:
        """The median time of the latest tasks from submission to results (None before the first)."""
        durations = sorted(d for t in self.recent(16) if (d := t.seconds) is not None and d > 0)
        return durations[len(durations) // 2] if durations else None

    def get(self, task_uuid: str) -> TaskRecord | None:
        """A task by its UUID: in memory, else one pass over the journal (an old task: rare)."""
        return self.tasks.get(task_uuid) or self.find({task_uuid}).get(task_uuid)

    def find(self, task_uuids: set[str], until: int | None = None) -> dict[str, TaskRecord]:
        """These tasks as the journal tells them (up to byte `until`), in one streamed pass (other tasks' lines
        are not parsed)."""
        found: dict[str, TaskRecord] = {}
        wanted = [u.encode() for u in task_uuids]
        read = 0
        try:
            with open(self.journal.path, "rb") as f:
                for raw in f:
                    read += len(raw)
                    if until is not None and read > until:
                        break
                    if any(u in raw for u in wanted):
                        records, _ = _parse([raw.decode("utf-8", errors="replace")], self.journal.path, quiet=True)
                        for rec in records:
                            if rec["task_uuid"] in task_uuids:
                                _fold(found, rec)
        except FileNotFoundError:
            pass
        return found

    def refresh(self) -> History:
        if not self._loaded:
            self._loaded = True
            self._load_snapshot()
        path = self.journal.path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < self._offset:  # replaced or cut: start over
            self._reset()
        if size > self._offset:
            self._read_tail(size)
            self._prune()
            if self._since_snapshot >= self.COMPACT_EVERY:
                self.save_snapshot()
        return self

    def _reset(self) -> None:
        self.tasks, self.total_cost, self.prices, self.broken = {}, 0.0, {}, 0
        self._offset = self._since_snapshot = 0

    def _read_tail(self, size: int) -> None:
        path = self.journal.path
        with open(path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read(size - self._offset)
        whole = chunk.rfind(b"\n") + 1  # a line still being written waits for the next look
        lines = chunk[:whole].decode("utf-8", errors="replace").splitlines()
        records, broken = _parse(lines, path)
        start = self._offset
        self._offset += whole
        self._since_snapshot += len(lines)
        self.broken += broken
        for rec in records:
            before = self.tasks.get(rec["task_uuid"])
            if before is None and rec.get("event") != "created":  # an old task (a re-import): what is known of it
                before = self.find({rec["task_uuid"]}, until=start).get(rec["task_uuid"])
                if before is not None:
                    self.tasks[before.task_uuid] = before
            old_cost = before.cost if before is not None else 0.0
            task = _fold(self.tasks, rec)
            if rec.get("event") == "results":
                self.total_cost += task.cost - old_cost
                if task.cost and task.results:
                    self.prices[str(task.info.get("model", ""))] = task.cost / len(task.results)

    def _prune(self) -> None:
        finished = [t for t in self.tasks.values() if not t.unfinished]
        if len(finished) > self.KEEP_RECENT:
            finished.sort(key=lambda t: t.time, reverse=True)
            for task in finished[self.KEEP_RECENT:]:
                del self.tasks[task.task_uuid]

    def save_snapshot(self) -> None:
        """Write the index atomically (a temporary file renamed over it); a failure only costs speed."""
        data = {"version": 1, "offset": self._offset, "marks": self._marks(self._offset), "total_cost": self.total_cost,
                "prices": self.prices, "broken": self.broken, "tasks": [asdict(t) for t in self.tasks.values()]}
        tmp = self.index_path.with_name(f"{INDEX}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self.index_path)
            self._since_snapshot = 0
        except OSError as exc:
            log.warning("SAM 3D: could not write the journal index: %s", exc)
            tmp.unlink(missing_ok=True)

    def _marks(self, offset: int) -> str:
        """What identifies the journal up to `offset`, cheaply: a hash of its first line and of the 4 KB before
        `offset` (an index is trusted only for the journal it was made from)."""
        digest = hashlib.blake2b(digest_size=16)
        try:
            with open(self.journal.path, "rb") as f:
                digest.update(f.readline(4096))
                f.seek(max(0, offset - 4096))
                digest.update(f.read(min(offset, 4096)))
        except OSError:
            return ""
        return digest.hexdigest()

    def _load_snapshot(self) -> None:
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
            offset = int(data["offset"])
            if data.get("version") != 1 or not 0 <= offset <= self.journal.path.stat().st_size:
                return
            if data.get("marks") != self._marks(offset):  # an index of another journal, or of one replaced
                return
            tasks = {t["task_uuid"]: TaskRecord(**t) for t in data["tasks"]}
            total, prices, broken = float(data["total_cost"]), dict(data["prices"]), int(data["broken"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return  # no index, or not one we wrote: read the whole journal once
        self.tasks, self.total_cost, self.prices, self.broken, self._offset = tasks, total, prices, broken, offset


def _lock_file(fd: int) -> None:
    """An exclusive lock on the journal between processes (POSIX); elsewhere appends still never interleave."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock, a crash-cut line may get one spare newline
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


def _ends_mid_line(fd: int) -> bool:
    size = os.fstat(fd).st_size
    if not size:
        return False
    os.lseek(fd, size - 1, os.SEEK_SET)  # a read position only: O_APPEND writes at the end whatever it is
    return os.read(fd, 1) != b"\n"


def _parse(lines: list[str], path: Path, quiet: bool = False) -> tuple[list[dict[str, Any]], int]:
    records: list[dict[str, Any]] = []
    broken = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            broken += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("task_uuid"), str) and \
                isinstance(record.get("time", 0), (int, float)):
            records.append(record)
        else:
            broken += 1
    if broken and not quiet:
        log.warning("SAM 3D: skipped %d broken line(s) of %s", broken, path)
    return records, broken


def _fold(tasks: dict[str, TaskRecord], rec: dict[str, Any]) -> TaskRecord:
    """What one line says about its task; a later step overrides an earlier one."""
    task = tasks.setdefault(rec["task_uuid"], TaskRecord(rec["task_uuid"]))
    event = rec.get("event", "")
    task.status = STATUS.get(event, task.status)
    task.time = rec.get("time", task.time)
    if event in ("created", "submitted", "imported") and isinstance(rec.get("info"), dict):
        task.info.update(rec["info"])
    if event == "submitted":
        task.submitted_at = task.time
    if event == "results":
        task.results = list(rec.get("results") or [])
        task.finished_at = task.time
    if event == "downloaded":
        task.files = list(rec.get("files") or [])
    if event == "failed":
        task.code = str(rec.get("code", ""))
        if rec.get("resumable"):  # it failed on our side after it was sent: Resume can still fetch it
            task.status = "interrupted"
    return task
