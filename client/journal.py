"""The job journal: an append-only JSON-lines file in the result folder, one line per step of every job.

created → submitted (written *before* the request goes out) → results → downloaded → imported, or failed /
cancelled. It is what makes a paid task impossible to lose: a job that was submitted but never imported can
be fetched again by its task UUID after a crash. A line cut short by a crash is skipped, with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE = "journal.jsonl"
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

    @property
    def cost(self) -> float:
        return sum(r.get("cost") or 0.0 for r in self.results)

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
        """Write one line and fsync it: the caller goes on only once it is on disk."""
        line = json.dumps({"time": time.time(), "event": event, "task_uuid": task_uuid, **fields}, default=str)
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            prefix = "\n" if self._ends_mid_line() else ""  # never glue a line onto one a crash cut short
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(prefix + line + "\n")
                f.flush()
                os.fsync(f.fileno())

    def _ends_mid_line(self) -> bool:
        try:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                return f.read(1) != b"\n"
        except OSError:  # missing or empty
            return False

    def read(self) -> tuple[list[dict[str, Any]], int]:
        """(records, number of broken lines skipped)."""
        records: list[dict[str, Any]] = []
        broken = 0
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except ValueError:
                        broken += 1
                        continue
                    if isinstance(record, dict) and record.get("task_uuid"):
                        records.append(record)
                    else:
                        broken += 1
        except FileNotFoundError:
            pass
        if broken:
            log.warning("SAM 3D: skipped %d broken line(s) of %s", broken, self.path)
        return records, broken

    def tasks(self) -> dict[str, TaskRecord]:
        """Every task the journal knows, oldest first, folded from its lines (one pass: `broken` then holds
        the number of broken lines skipped)."""
        tasks: dict[str, TaskRecord] = {}
        records, self.broken = self.read()
        for rec in records:
            task = tasks.setdefault(rec["task_uuid"], TaskRecord(rec["task_uuid"]))
            event = rec.get("event", "")
            task.status = STATUS.get(event, task.status)
            task.time = rec.get("time", task.time)
            if event in ("created", "submitted"):
                task.info.update(rec.get("info") or {})
            if event == "results":
                task.results = list(rec.get("results") or [])
            if event == "downloaded":
                task.files = list(rec.get("files") or [])
            if event == "failed":
                task.code = str(rec.get("code", ""))
                if rec.get("resumable"):  # it failed on our side after it was sent: Resume can still fetch it
                    task.status = "interrupted"
        return tasks
