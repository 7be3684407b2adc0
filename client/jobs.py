"""One reconstruction on a worker thread: prepare the PNGs, submit, poll, download, journal each step.

The worker never touches bpy. It reports through `Job.events`, a queue the main thread drains on its timer
tick (`Job.drain`), and it stops at the next step when `Job.cancel()` is called.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import tasks
from .download import download, save_inline
from .errors import RunwareError
from .runware import DEFAULT_API_URL, RunwareClient

log = logging.getLogger(__name__)

# Where each phase sits on the progress bar (start, end); importing happens on the main thread.
PHASES = {
    "preparing": (0.0, 0.05),
    "uploading": (0.05, 0.15),
    "queued": (0.15, 0.2),
    "processing": (0.2, 0.8),
    "downloading": (0.8, 0.95),
    "importing": (0.95, 1.0),
}


@dataclass
class JobRequest:
    """Everything a job needs, read from Blender on the main thread before the worker starts."""

    api_key: str = field(repr=False)
    prepare: Callable[[], tuple[bytes, bytes]] = field(repr=False)  # -> (photo PNG, mask PNG), on the worker
    result_dir: Path
    name: str = "object"
    image_name: str = ""
    api_url: str = DEFAULT_API_URL
    model: str = tasks.DEFAULT_MODEL
    prompt: str = ""
    seed: int | None = None
    number_results: int = 1
    delivery: str = "async"
    ttl: int = 0
    webhook_url: str = ""
    upload_endpoint: str = ""
    request_timeout: float = 60.0
    job_timeout: float = 900.0
    max_download_bytes: int = 512 * 1024 * 1024
    user_agent: str = "sam3d-blender"
    poll_first_delay: float = 0.5


@dataclass
class Result:
    """One generation on disk, ready to import."""

    path: Path
    task_uuid: str
    index: int
    seed: int | None
    cost: float | None
    url: str | None


@dataclass
class Event:
    kind: str  # "phase", "done" or "failed"
    phase: str = ""
    fraction: float = 0.0
    text: str = ""
    results: list[Result] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: RunwareError | None = None


class Job:
    """A handle the main thread keeps; the worker only writes to `events` and `task_uuid`."""

    def __init__(self, request: JobRequest) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.request = request
        self.events: queue.Queue[Event] = queue.Queue()
        self.cancel_event = threading.Event()
        self.task_uuid: str | None = None
        self.started = time.monotonic()
        # The main thread's view, updated by drain().
        self.phase = "preparing"
        self.fraction = 0.0
        self.text = "Preparing"
        self.outcome: Event | None = None
        self._thread = threading.Thread(target=self._run, name=f"sam3d-job-{self.id}", daemon=True)

    # --- main thread ----------------------------------------------------------------------------------

    def start(self) -> Job:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def drain(self, block: float = 0.0) -> list[Event]:
        """Apply the worker's events; wait up to `block` seconds for the first one."""
        got: list[Event] = []
        try:
            got.append(self.events.get(timeout=block) if block > 0 else self.events.get_nowait())
            while True:
                got.append(self.events.get_nowait())
        except queue.Empty:
            pass
        for event in got:
            if event.kind == "phase":
                self.phase, self.fraction, self.text = event.phase, event.fraction, event.text
            else:
                self.outcome = event
        return got

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- worker thread --------------------------------------------------------------------------------

    def _emit(self, phase: str, within: float = 0.0, text: str = "") -> None:
        start, end = PHASES[phase]
        self.events.put(Event("phase", phase, start + (end - start) * min(max(within, 0.0), 1.0),
                              text or phase.capitalize()))

    def _run(self) -> None:
        req = self.request
        journal = Journal(req.result_dir)
        try:
            self._emit("preparing")
            image_png, mask_png = req.prepare()
            if self.cancel_event.is_set():
                raise RunwareError("cancelled")
            client = RunwareClient(req.api_key, req.api_url, timeout=req.request_timeout,
                                   user_agent=req.user_agent, cancel=self.cancel_event)
            try:
                results, warnings = self._reconstruct(client, journal, image_png, mask_png)
            finally:
                client.close()
            self.events.put(Event("done", results=results, warnings=warnings))
        except RunwareError as exc:
            if self.task_uuid and exc.code != "cancelled":
                _try(journal.append, self, "failed", code=exc.code)
            self.events.put(Event("failed", error=exc))
        except OSError as exc:  # the result folder: missing rights, disk full
            self.events.put(Event("failed", error=RunwareError("diskError", f"{exc.strerror}: {exc.filename}")))
        except Exception as exc:  # a bug of ours: say so plainly, keep the traceback for the console
            log.exception("SAM 3D job %s failed", self.id)
            self.events.put(Event("failed", error=RunwareError("internal", f"unexpected {type(exc).__name__}")))

    def _reconstruct(self, client: RunwareClient, journal: Journal, image_png: bytes,
                     mask_png: bytes) -> tuple[list[Result], list[str]]:
        req = self.request
        task = tasks.inference_task(
            image=tasks.data_uri_png(image_png), mask=tasks.data_uri_png(mask_png), prompt=req.prompt,
            model=req.model, seed=req.seed, number_results=req.number_results, delivery=req.delivery,
            ttl=req.ttl, webhook_url=req.webhook_url, upload_endpoint=req.upload_endpoint)
        self.task_uuid = task["taskUUID"]
        journal.append(self, "submitted")  # written before the request goes out: a paid task is never lost
        self._emit("uploading", text=f"Uploading {(len(image_png) + len(mask_png)) / 1e6:.1f} MB")
        state = client.submit(task)
        deadline = self.started + req.job_timeout
        if len(state.results) < req.number_results:
            self._emit("queued", text="Queued")

            def progress(s: tasks.TaskState) -> None:
                done = len(s.results) / req.number_results
                pct = s.progress if s.progress is not None else None
                within = max(done, (pct or 0) / 100)
                label = f"Processing {pct}%" if pct is not None else "Processing"
                self._emit("processing", within, label if s.processing or s.results else "Queued")

            state = client.wait(self.task_uuid, req.number_results, deadline=deadline, on_progress=progress,
                                first_delay=req.poll_first_delay)
        _try(journal.append, self, "results", results=[{"index": g.index, "url": g.url, "seed": str(g.seed),
                                                  "cost": g.cost} for g in state.results])
        results = self._download(state.results)
        _try(journal.append, self, "downloaded", paths=[str(r.path) for r in results])
        return results, [e.sentence for e in state.errors]

    def _download(self, generations: list[tasks.Generation]) -> list[Result]:
        req = self.request
        folder = req.result_dir / (self.task_uuid or self.id)
        results = []
        for n, gen in enumerate(sorted(generations, key=lambda g: g.index)):
            dest = folder / f"{_safe(req.name)}_{gen.index}.glb"
            label = f"Downloading {n + 1}/{len(generations)}"

            def progress(got: int, total: int | None, n: int = n, label: str = label) -> None:
                within = (n + (got / total if total else 0.5)) / len(generations)
                self._emit("downloading", within, f"{label} ({got / 1e6:.1f} MB)")

            self._emit("downloading", n / len(generations), label)
            if gen.data is not None:
                save_inline(gen.data, dest)
            elif gen.url:
                download(gen.url, dest, max_bytes=req.max_download_bytes, timeout=req.request_timeout,
                         cancel=self.cancel_event, on_progress=progress)
            results.append(Result(dest, gen.task_uuid, gen.index, gen.seed, gen.cost, gen.url))
        return results


def _try(write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """A journal line that cannot be written (disk full) must not turn a paid result into a failure."""
    try:
        write(*args, **kwargs)
    except OSError as exc:
        log.warning("SAM 3D: could not write the job journal: %s", exc)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or "object"


class Journal:
    """An append-only JSON-lines record of every job in the result folder; one line per step.

    A line cut short by a crash is skipped on reading, so every other job stays known."""

    _lock = threading.Lock()
    FILE = "journal.jsonl"

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / self.FILE

    def append(self, job: Job, event: str, **extra: Any) -> None:
        req = job.request
        record = {"time": time.time(), "event": event, "job": job.id, "task_uuid": job.task_uuid,
                  "name": req.name, "image": req.image_name, "model": req.model, "prompt": req.prompt,
                  "seed": None if req.seed is None else str(req.seed), "number_results": req.number_results,
                  **extra}
        line = json.dumps(record, default=str) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._ends_mid_line():  # a crash cut the last line: never glue ours onto it
                line = "\n" + line
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
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
        if not self.path.exists():
            return records, broken
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except ValueError:
                    broken += 1
        return records, broken
