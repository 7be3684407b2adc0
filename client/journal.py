"""The job journal: an append-only JSON-lines file in the result folder, one line per step of every job.

created → submitted (written *before* the request goes out) → results → downloaded → imported, or failed /
cancelled. It is what makes a paid task impossible to lose: a job that was submitted but never imported can
be fetched again by its task UUID after a crash. A line cut short by a crash is skipped, with a warning.

The result folder is shared (other Blenders, other hosts), so the journal and its index are read as untrusted:
through `client.files` (regular files only, never through a link, within a bound), streamed a bounded piece at
a time, every line checked field by field (a task UUID of UUID form, finite times, prices `money.checked`
passes, texts and lists of the types the add-on writes) and every index rejected (then rebuilt) unless every
field has its type. What a line holds is used only as data: a result's file is looked for by its name in its
task's own folder (`task_files`), never at a path a line gives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from . import files
from .engines import MAX_VIEWS
from .money import checked as checked_cost

log = logging.getLogger(__name__)

FILE = "journal.jsonl"
INDEX = "journal.index.json"
# What each event says about a task; a later step overrides an earlier one.
STATUS = {"created": "created", "submitted": "submitted", "results": "processed", "downloaded": "downloaded",
          "imported": "imported", "failed": "failed", "cancelled": "cancelled"}
UNFINISHED = {"submitted", "processed", "downloaded", "interrupted"}
STATUSES = {*STATUS.values(), "interrupted"}
MAX_LINE = 1 << 20  # a line of ours holds a few KB; a longer one is broken, skipped without being held whole
MAX_INDEX = 64 << 20  # the index holds the unfinished tasks and the latest few: far less than this
PIECE = 1 << 20  # the journal is read this much at a time
MAX_TEXT = 4096  # a name, a prompt, a path in a line: longer is cut
# Runware's error codes are words in lower camel case ("insufficientCredits"); anything else a server puts there
# (an API key it quotes, a path) is never kept.
_CODE = re.compile(r"[a-z][A-Za-z]{0,63}")
_UUID_FIELD = re.compile(rb'"task_uuid"\s*:\s*"([^"\\]{1,64})"')  # a line's task, found without parsing it
_TEXT_INFO = ("name", "image", "mask", "prompt", "model", "caption", "engine",  # caption: what a caption task said
              "refine_of")  # Refine: the object its result is fitted onto
_PLACEMENTS = {"CURSOR", "AS_IS", "CAMERA"}
MAX_SETTINGS = 32  # an engine's settings in a line (Meshy, with the most, documents 14)
_MAX_SEED = 2**63 - 1


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
        return sum(r["cost"] for r in self.results if isinstance(r.get("cost"), float))

    @property
    def unfinished(self) -> bool:
        return self.status in UNFINISHED


def task_files(record: TaskRecord, result_dir: Path) -> list[tuple[Path, dict[str, Any]]] | None:
    """Where the task's GLBs are: each looked for by its own name in the task's own folder, whatever path the
    journal gives (it may point anywhere, or the folder may have moved). None when a file is missing, not a
    regular file, reached through a link, or named otherwise than the add-on names results."""
    if not record.files or not files.is_uuid(record.task_uuid):
        return None
    found = []
    for entry in sorted(record.files, key=lambda f: f["index"]):
        name = Path(str(entry.get("path", ""))).name
        if not (files.is_name(name) and name.endswith(".glb")):
            return None
        path = Path(result_dir) / record.task_uuid / name
        if not files.is_regular(path, root=result_dir):
            return None
        found.append((path, entry))
    return found


class Journal:
    _lock = threading.Lock()  # one writer at a time across threads

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / FILE
        self.broken = 0

    def append(self, event: str, task_uuid: str, **fields: Any) -> None:
        """Write one line and fsync it: the caller goes on only once it is on disk. One write() of the whole
        line to a file opened for appending, so lines of several processes never interleave. The journal is
        opened without following a link (UnsafeFileError, an OSError, when it is one or is not a regular file)."""
        line = json.dumps({"time": time.time(), "event": event, "task_uuid": task_uuid, **fields}, default=str)
        with self._lock:
            fd = files.open_append(self.path, root=self.folder)
            try:
                _lock_file(fd)  # other Blender processes: the check below and the write are one step
                prefix = "\n" if _ends_mid_line(fd) else ""  # never glue a line onto one a crash cut short
                os.write(fd, (prefix + line + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)  # closing releases the lock

    def read(self) -> tuple[list[dict[str, Any]], int]:
        """(records, number of broken lines skipped), streamed."""
        records: list[dict[str, Any]] = []
        broken = 0
        for rec in self._records():
            if rec is None:
                broken += 1
            else:
                records.append(rec)
        if broken:
            log.warning("SAM 3D: skipped %d broken line(s) of %s", broken, self.path)
        return records, broken

    def tasks(self) -> dict[str, TaskRecord]:
        """Every task the journal knows, oldest first, folded from its lines (one streamed pass: `broken` then
        holds the number of broken lines skipped)."""
        tasks: dict[str, TaskRecord] = {}
        self.broken = 0
        for rec in self._records():
            if rec is None:
                self.broken += 1
            else:
                _fold(tasks, rec)
        return tasks

    def _records(self) -> Iterator[dict[str, Any] | None]:
        """Each whole line's record, or None for a broken one."""
        try:
            fd = files.open_regular(self.path, root=self.folder)
        except FileNotFoundError:
            return
        with os.fdopen(fd, "rb") as f:
            for _end, raw in lines(f, 0, os.fstat(f.fileno()).st_size):
                if raw is not None and not raw.strip():
                    continue
                yield parse(raw)


class History:
    """What the Jobs panel, Resume and the spending limit need from the journal, at a cost that does not grow
    with its length: a snapshot (`journal.index.json`: every unfinished task, the latest ones, the total cost,
    and the byte offset it covers) plus the lines appended since. The main thread refreshes it when a job
    ends; the journal itself stays append-only (several Blender processes may append to it at once)."""

    KEEP_RECENT = 64  # finished tasks kept in memory (the panel shows the latest few)
    READ_WINDOW = 1024  # finished tasks held while a long tail is read: memory stays flat however long it is
    COMPACT_EVERY = 500  # lines read since the snapshot before a new one is written
    BATCH = 1024  # lines folded together: one look-up pass for the old tasks they name

    def __init__(self, folder: Path) -> None:
        self.journal = Journal(folder)
        self.tasks: dict[str, TaskRecord] = {}  # every unfinished task and the latest finished ones
        self.total_cost = 0.0
        self.prices: dict[str, float] = {}  # model → the latest cost per result Runware reported
        self.broken = 0
        self._offset = 0
        self._scanned = 0  # how far past _offset an unfinished last line is known to have no newline
        self._identity: tuple[int, int] | None = None  # the journal file read (device, inode)
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
        durations = sorted(d for t in self.recent(16) if (d := t.seconds) is not None and 0 < d < 86400)
        return durations[len(durations) // 2] if durations else None

    def get(self, task_uuid: str) -> TaskRecord | None:
        """A task by its UUID: in memory, else one pass over the journal (an old task: rare)."""
        if not files.is_uuid(task_uuid):
            return None
        return self.tasks.get(task_uuid) or self.find({task_uuid}).get(task_uuid)

    def find(self, task_uuids: set[str], until: int | None = None) -> dict[str, TaskRecord]:
        """These tasks as the journal tells them (up to byte `until`), in one streamed pass (other tasks' lines
        are not parsed)."""
        found: dict[str, TaskRecord] = {}
        wanted = {u.encode() for u in task_uuids if files.is_uuid(u)}
        if not wanted or until == 0:
            return found
        try:
            fd = files.open_regular(self.journal.path, root=self.journal.folder)
        except OSError:
            return found
        with os.fdopen(fd, "rb") as f:
            end = os.fstat(f.fileno()).st_size if until is None else until
            for _end, raw in lines(f, 0, end):
                if raw is not None and not wanted.isdisjoint(_UUID_FIELD.findall(raw)):
                    rec = parse(raw)
                    if rec is not None and rec["task_uuid"] in task_uuids:
                        _fold(found, rec)
        return found

    def refresh(self) -> History:
        if not self._loaded:
            self._loaded = True
            self._load_snapshot()
        try:
            fd = files.open_regular(self.journal.path, root=self.journal.folder)
        except FileNotFoundError:
            if self._offset:
                self._reset()
            return self
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            identity = (info.st_dev, info.st_ino)
            if info.st_size < self._offset or (self._identity is not None and identity != self._identity):
                self._reset()  # replaced or cut: start over
            self._identity = identity
            if info.st_size > self._offset and self._has_new_line(f, info.st_size):
                self._read_tail(f, info.st_size)
                self._prune()
                if self._since_snapshot >= self.COMPACT_EVERY:
                    self.save_snapshot()
        return self

    def _has_new_line(self, f: BinaryIO, size: int) -> bool:
        """Whether a whole line follows what was read: an unfinished last line is looked at once, never again
        at every refresh (only the bytes appended to it since)."""
        start = max(self._offset, self._scanned)
        f.seek(start)
        while start < size:
            piece = f.read(min(PIECE, size - start))
            if not piece:
                break
            if b"\n" in piece:
                return True
            start += len(piece)
        self._scanned = start
        return False

    def _reset(self) -> None:
        self.tasks, self.total_cost, self.prices, self.broken = {}, 0.0, {}, 0
        self._offset = self._since_snapshot = self._scanned = 0
        self._identity = None

    def _read_tail(self, f: BinaryIO, size: int) -> None:
        """The whole lines from the offset, streamed: memory stays within a piece and a line, however long the
        journal (its first read without an index included)."""
        broken, prune_at = 0, 2 * self.READ_WINDOW
        batch: list[dict[str, Any]] = []
        batch_start = self._offset
        for end, raw in lines(f, self._offset, size):
            self._offset = end
            self._since_snapshot += 1
            if raw is not None and not raw.strip():
                continue
            rec = parse(raw)
            if rec is None:
                broken += 1
                continue
            batch.append(rec)
            if len(batch) >= self.BATCH:
                self._apply_batch(batch, batch_start)
                batch, batch_start = [], end
                if len(self.tasks) > prune_at:  # a task pruned and seen again is found by `find` (a re-import)
                    self._prune(self.READ_WINDOW)
                    prune_at = len(self.tasks) + self.READ_WINDOW  # unfinished tasks stay: never at every line
        self._apply_batch(batch, batch_start)
        self._scanned = self._offset
        if broken:
            log.warning("SAM 3D: skipped %d broken line(s) of %s", broken, self.journal.path)
        self.broken += broken

    def _apply_batch(self, batch: list[dict[str, Any]], start: int) -> None:
        """Fold the lines read from byte `start`. A task met first by a later event is an old one (a re-import):
        what the journal knew of it before `start` is looked up for the whole batch in one pass, so lines of
        unknown tasks (planted, or a journal's tail) cost a pass per batch, never one per line."""
        known, old = set(self.tasks), set()
        for rec in batch:
            if rec["task_uuid"] not in known:
                known.add(rec["task_uuid"])
                if rec.get("event") != "created":
                    old.add(rec["task_uuid"])
        if old:
            self.tasks.update(self.find(old, until=start))
        for rec in batch:
            self._apply(rec)

    def _apply(self, rec: dict[str, Any]) -> None:
        before = self.tasks.get(rec["task_uuid"])
        old_cost = before.cost if before is not None else 0.0
        task = _fold(self.tasks, rec)
        if rec.get("event") == "caption":  # the task's caption, paid apart from its results
            self.total_cost += checked_cost(rec.get("cost")) or 0.0
        if rec.get("event") == "results":
            self.total_cost += task.cost - old_cost
            if task.cost and task.results:
                price = checked_cost(task.cost / len(task.results))
                if price is not None:
                    self.prices[str(task.info.get("model", ""))] = price

    def _prune(self, keep: int = KEEP_RECENT) -> None:
        finished = [t for t in self.tasks.values() if not t.unfinished]
        if len(finished) > keep:
            finished.sort(key=lambda t: t.time, reverse=True)
            for task in finished[keep:]:
                del self.tasks[task.task_uuid]

    def save_snapshot(self) -> None:
        """Write the index atomically (a temporary file of an unpredictable name, renamed over it; never
        through a link); a failure only costs speed."""
        data = {"version": 1, "offset": self._offset, "marks": self._marks(self._offset), "total_cost": self.total_cost,
                "prices": self.prices, "broken": self.broken, "tasks": [asdict(t) for t in self.tasks.values()]}
        try:
            files.write_atomically(self.index_path, json.dumps(data).encode("utf-8"), root=self.journal.folder)
            self._since_snapshot = 0
        except OSError as exc:
            log.warning("SAM 3D: could not write the journal index: %s", exc)

    def _marks(self, offset: int) -> str:
        """What identifies the journal up to `offset`, cheaply: a hash of its first line and of the 4 KB before
        `offset` (an index is trusted only for the journal it was made from)."""
        digest = hashlib.blake2b(digest_size=16)
        try:
            fd = files.open_regular(self.journal.path, root=self.journal.folder)
        except OSError:
            return ""
        with os.fdopen(fd, "rb") as f:
            digest.update(f.readline(4096))
            f.seek(max(0, offset - 4096))
            digest.update(f.read(min(offset, 4096)))
        return digest.hexdigest()

    def _load_snapshot(self) -> None:
        try:
            raw = files.read_bytes(self.index_path, max_bytes=MAX_INDEX, root=self.journal.folder)
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("version") != 1:
                return
            offset = _int(data.get("offset"))
            size = os.stat(self.journal.path).st_size
            if not 0 <= offset <= size:
                return
            if data.get("marks") != self._marks(offset):  # an index of another journal, or of one replaced
                return
            records = data.get("tasks")
            prices = data.get("prices")
            if not isinstance(records, list) or not isinstance(prices, dict):
                raise ValueError("tasks and prices")
            tasks = {}
            for t in records:
                record = record_from_index(t)
                tasks[record.task_uuid] = record
            total = float(data.get("total_cost"))  # type: ignore[arg-type]  # checked below: a TypeError is caught
            if not math.isfinite(total) or total < 0:
                raise ValueError("total_cost")
            learnt = {}
            for model, price in prices.items():
                checked = checked_cost(price)
                if not isinstance(model, str) or checked is None:
                    raise ValueError("prices")
                learnt[model] = checked
            broken = _int(data.get("broken"))
            if broken < 0:
                raise ValueError("broken")
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, OverflowError):
            return  # no index, or not one we wrote: read the whole journal once (streamed)
        self.tasks, self.total_cost, self.prices, self.broken, self._offset = tasks, total, learnt, broken, offset
        self._scanned = offset


def lines(f: BinaryIO, start: int, end: int, max_line: int = MAX_LINE) -> Iterator[tuple[int, bytes | None]]:
    """(offset after the line, the line without its newline, or None when it is longer than `max_line`) for every
    whole line of `f` between `start` and `end`, reading a piece at a time; a last line without its newline
    is left for later. Memory stays within a piece and `max_line`."""
    f.seek(start)
    pos = start
    pending = bytearray()
    too_long = False
    while pos < end:
        piece = f.read(min(PIECE, end - pos))
        if not piece:
            break
        at = 0
        while True:
            newline = piece.find(b"\n", at)
            if newline < 0:
                if not too_long:
                    pending += piece[at:]
                    if len(pending) > max_line:
                        too_long, pending = True, bytearray()
                break
            if too_long:
                line: bytes | None = None
            else:
                pending += piece[at:newline]
                line = bytes(pending) if len(pending) <= max_line else None
            yield pos + newline + 1, line
            pending, too_long = bytearray(), False
            at = newline + 1
        pos += len(piece)


def parse(raw: bytes | None) -> dict[str, Any] | None:
    """One journal line as a record, or None when it is broken: not JSON, not an object, no task UUID of UUID
    form, a time that is not a finite number."""
    if raw is None:
        return None
    try:
        record = json.loads(raw.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or not files.is_uuid(record.get("task_uuid")):
        return None
    stamp = record.get("time", 0.0)
    if not files.is_time(stamp):
        return None
    record["time"] = float(stamp)
    if not isinstance(record.get("event", ""), str):
        return None
    return record


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


# --- what a line may say, field by field ------------------------------------------------------------------


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("not an integer")
    return value


def _text(value: object) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) else None


def _seed(value: object) -> str | None:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19 and int(value) <= _MAX_SEED:
        return value
    return None


def clean_code(value: object) -> str:
    """An error code as Runware writes them, else "unknown" (never a key or a path a server put there)."""
    return value if isinstance(value, str) and _CODE.fullmatch(value) else "unknown"


def _is_setting_value(value: object) -> bool:
    return isinstance(value, bool | str) or isinstance(value, int | float) and math.isfinite(value)


def clean_info(info: dict[str, Any]) -> dict[str, Any]:
    """What the add-on writes in a job's info, each of its type; anything else is dropped."""
    clean: dict[str, Any] = {}
    for key in _TEXT_INFO:
        text = _text(info.get(key))
        if text is not None:
            clean[key] = text
    if "seed" in info:
        clean["seed"] = _seed(info["seed"])
    number = info.get("number_results")
    if isinstance(number, int) and not isinstance(number, bool) and 1 <= number <= 4:
        clean["number_results"] = number
    if info.get("text_only") is True:
        clean["text_only"] = True
    if info.get("placement") in _PLACEMENTS:
        clean["placement"] = info["placement"]
    views = info.get("views")
    if isinstance(views, list):  # the other views' image names
        clean["views"] = [text for v in views[:MAX_VIEWS] if (text := _text(v)) is not None]
    values = info.get("engine_values")
    if isinstance(values, dict):  # an engine's settings: names and scalars only (engines.request checks them)
        clean["engine_values"] = {k[:64]: v[:MAX_TEXT] if isinstance(v, str) else v
                                  for k, v in list(values.items())[:MAX_SETTINGS]
                                  if isinstance(k, str) and _is_setting_value(v)}
    source = info.get("source")
    if isinstance(source, dict):
        clean["source"] = {k: v[:MAX_TEXT] for k, v in source.items() if isinstance(k, str) and isinstance(v, str)}
    return clean


def clean_entries(values: object, kind: str) -> list[dict[str, Any]]:
    """A line's results or files: dicts only, each field of its type (a cost `money.checked` passes)."""
    if not isinstance(values, list):
        return []
    clean = []
    for n, value in enumerate(values[:64]):
        if not isinstance(value, dict):
            continue
        index = value.get("index")
        entry: dict[str, Any] = {
            "index": index if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < 2**16 else n,
            "seed": _seed(value.get("seed")), "cost": checked_cost(value.get("cost"))}
        if kind == "files":
            entry["path"] = _text(value.get("path")) or ""
        else:
            entry["url"] = _text(value.get("url"))
        clean.append(entry)
    return clean


def record_from_index(t: object) -> TaskRecord:
    """A task of the index, each field of the type the add-on writes (ValueError otherwise: the index is then
    rebuilt from the journal), its contents checked as a journal line's are."""
    if not isinstance(t, dict) or not files.is_uuid(t.get("task_uuid")):
        raise ValueError("task_uuid")
    if t.get("status") not in STATUSES or not isinstance(t.get("code", ""), str):
        raise ValueError("status")
    stamps = [t.get(k, 0.0) for k in ("time", "submitted_at", "finished_at")]
    if not all(files.is_time(s) for s in stamps):
        raise ValueError("time")
    if not isinstance(t.get("info", {}), dict) or not all(isinstance(t.get(k, []), list) for k in ("results", "files")):
        raise ValueError("info, results or files")
    if any(not isinstance(v, dict) for k in ("results", "files") for v in t.get(k, [])):
        raise ValueError("results or files")
    code = t.get("code", "")
    return TaskRecord(t["task_uuid"], t["status"], float(stamps[0]), clean_info(t.get("info", {})),
                      clean_entries(t.get("results", []), "results"), clean_entries(t.get("files", []), "files"),
                      clean_code(code) if code else "", float(stamps[1]), float(stamps[2]))


def _fold(tasks: dict[str, TaskRecord], rec: dict[str, Any]) -> TaskRecord:
    """What one (parsed) line says about its task; a later step overrides an earlier one."""
    task = tasks.setdefault(rec["task_uuid"], TaskRecord(rec["task_uuid"]))
    event = rec.get("event", "")
    task.status = STATUS.get(event, task.status)
    task.time = rec.get("time", task.time)
    if event in ("created", "submitted", "imported", "caption") and isinstance(rec.get("info"), dict):
        task.info.update(clean_info(rec["info"]))
    if event == "submitted":
        task.submitted_at = task.time
    if event == "results":
        task.results = clean_entries(rec.get("results"), "results")
        task.finished_at = task.time
    if event == "downloaded":
        task.files = clean_entries(rec.get("files"), "files")
    if event == "failed":
        task.code = clean_code(rec.get("code", ""))
        if rec.get("resumable") is True:  # it failed on our side after it was sent: Resume can still fetch it
            task.status = "interrupted"
    return task
