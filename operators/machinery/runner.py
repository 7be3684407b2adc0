"""The jobs of this Blender session, on the main thread: the runner starts them within the concurrency limit,
steps them, cancels them, and keeps the money and the history they add up to (outcomes.py imports what
they bring).

Module-level state, never on an operator (Blender frees operators, and loading a file drops their modal
handlers: the app timer then adopts their jobs). Only names are held here, no bpy data, so a file load or an
undo can never leave a dangling reference.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from ... import preferences
from ...client import Job, TaskRecord
from ...client.journal import History
from ...client.locks import TaskLocks
from ...client.money import Ledger, Limit
from ...translations import iface_

log = logging.getLogger(__name__)
TICK = 0.1  # seconds between steps while jobs run
IDLE = 0.5
MESSAGES = 6  # recent messages of background jobs kept for the Jobs panel
Report = Callable[..., object]  # Operator.report(type, message)


@dataclass
class SceneJob:
    """A job, and what its import into the scene needs beyond its request."""

    job: Job
    warnings: list[str] = field(default_factory=list)
    owned: bool = False  # a modal or blocking operator imports it (one undo step); else the app timer does
    photo_collection: bool = False  # one of several masks of a photo: all land in the photo's collection
    mask_box: tuple[float, float, float, float] | None = None  # for placement 'CAMERA' (photo_camera.py)
    mask_lowres: str = ""  # the mask at a low resolution, for the photo camera's calibration
    fingerprint: str = ""  # what makes two requests identical (photo, mask, seed, model, parameters)
    finishing: tuple[int, int] = (0, 0)  # (bake resolution, triangle budget) applied after the import; 0: none
    batch: object | None = None  # the asset-library batch it belongs to (batch.py), if any
    after_import: Callable[[list[bpy.types.Object]], None] | None = None  # e.g. make it an asset (batch.py)
    on_failure: Callable[[str], None] | None = None
    name_from_caption: bool = False  # Reconstruct's Name from Caption: the object and its collection take its name
    number: int = 0  # the session's count of jobs: "mask_0 #2" tells two jobs of one mask apart

    @property
    def name(self) -> str:
        return self.job.request.name

    @property
    def title(self) -> str:
        return f"{self.name} #{self.number}" if self.number else self.name

    @property
    def label(self) -> str:
        return f"{self.title}: {self.job.progress_text(iface_)}"


@dataclass
class Row:
    """One line of the panel's list of jobs: a running job, or one that ended while others still run (kept in
    its place, its ✕ greyed, so the rows under the mouse never move)."""

    task_uuid: str
    label: str
    fraction: float
    running: bool


class Runner:
    def __init__(self) -> None:
        self.jobs: dict[str, SceneJob] = {}  # by task UUID, in the order they were asked for
        self._slots = threading.BoundedSemaphore(4)
        self._limit = 4
        self.ledger = Ledger()  # prices and reservations: every paid request of the session
        self.session_limit = Limit("the Spending Limit set in the preferences")
        self.history: History | None = None
        self.messages: deque[tuple[str, str]] = deque(maxlen=MESSAGES)  # (level, text) of background jobs
        self.message_time = 0.0  # when the latest came (the panel shows them for a minute, or until cleared)
        self.feeders: list[Callable[[], None]] = []  # called on each tick: a batch starts its next items
        self.count = 0  # jobs added this session
        self._unfinished: tuple[float, tuple, list[TaskRecord]] | None = None  # for drawing: (when, what, list)
        self._ended: dict[str, Row] = {}  # jobs that ended while others run, by task UUID
        self._order: list[str] = []  # every row's task UUID, in the order the jobs were asked for

    # --- jobs ---------------------------------------------------------------------------------------------

    def add(self, entry: SceneJob) -> SceneJob:
        """Start the job's worker; it waits for one of the preference's slots before doing anything."""
        limit = _max_jobs()
        if limit != self._limit:  # jobs holding slots of the old limit give them back to the old semaphore
            self._slots, self._limit = threading.BoundedSemaphore(limit), limit
        entry.job.slots = self._slots
        self.count += 1
        entry.number = self.count
        self.jobs[entry.job.task_uuid] = entry
        self._order.append(entry.job.task_uuid)
        entry.job.start()
        return entry

    def end(self, entry: SceneJob, how: str) -> None:
        """A job left the list of running ones: its row stays, saying `how`, while others run."""
        self.jobs.pop(entry.job.task_uuid, None)
        if self.jobs:
            self._ended[entry.job.task_uuid] = Row(entry.job.task_uuid, f"{entry.title}: {how}", 1.0, False)
        else:
            self._ended.clear()
            self._order.clear()

    def rows(self) -> list[Row]:
        """The panel's rows: running jobs and the ones that ended meanwhile, in the order they were asked for."""
        if not self.jobs:
            return []
        rows = []
        for uuid in self._order:
            entry = self.jobs.get(uuid)
            if entry is not None:
                rows.append(Row(uuid, entry.label, entry.job.fraction, True))
            elif uuid in self._ended:
                rows.append(self._ended[uuid])
        return rows

    def active(self) -> int:
        return sum(1 for e in self.jobs.values() if e.job.holds_slot)

    def step(self) -> bool:
        """Drain every job's events. True when anything changed."""
        changed = False
        for entry in list(self.jobs.values()):
            if entry.job.drain():
                changed = True
        return changed

    def cancel(self, task_uuid: str = "", batch: object | None = None) -> int:
        """Cancel one job (by task UUID), the jobs of one batch, or every job."""
        hit = [e for uuid, e in self.jobs.items()
               if (not task_uuid or uuid == task_uuid) and (batch is None or e.batch is batch)]
        for entry in hit:
            entry.job.cancel()
        return len(hit)

    def in_flight(self, fingerprint: str) -> SceneJob | None:
        """A job not yet ended whose request is identical (a double click, a second press)."""
        return next((e for e in self.jobs.values() if e.fingerprint == fingerprint and not e.job.done), None)

    def shutdown(self, join: float = 2.0) -> None:
        """Cancel every job and wait up to `join` seconds in all for their threads (add-on disabled)."""
        self.cancel()
        deadline = time.monotonic() + join
        for entry in list(self.jobs.values()):
            entry.job.join(max(0.0, deadline - time.monotonic()))
        self.jobs.clear()
        self._ended.clear()
        self._order.clear()

    # --- history (the journal's index; refreshed when a job ends, never while drawing) ------------------

    def refresh_history(self, folder: Path) -> History:
        if self.history is None or self.history.journal.folder != Path(folder):
            self.history = History(folder)
        self.history.refresh()
        for model, price in self.history.prices.items():  # Runware's latest price: the next reservation's
            self.ledger.learn("3dInference", model, price)
        return self.history

    def unfinished(self, max_age: float = 0.0) -> list[TaskRecord]:
        """Submitted (so perhaps paid) but never imported, not running here, and not held by another live
        Blender sharing the result folder: worth resuming. A panel asks with `max_age` (seconds): the answer
        of that long ago is reused while the history and the jobs are the same, so a redraw reads no lock file."""
        if self.history is None:
            return []
        candidates = self.history.unfinished()
        key = (id(self.history), tuple(t.task_uuid for t in candidates), tuple(self.jobs))
        now = time.monotonic()
        if self._unfinished is not None and max_age > 0 and self._unfinished[1] == key and \
                now - self._unfinished[0] < max_age:
            return self._unfinished[2]
        locks = TaskLocks(self.history.journal.folder)
        found = [t for t in candidates if t.task_uuid not in self.jobs and not locks.held_elsewhere(t.task_uuid)]
        self._unfinished = (now, key, found)
        return found

    def record(self, task_uuid: str) -> TaskRecord | None:
        return self.history.get(task_uuid) if self.history is not None else None

    def total_cost(self) -> float:
        return self.history.total_cost if self.history is not None else 0.0

    def post(self, level: str, text: str) -> None:
        """A message of a job no operator reports for: kept for the Jobs panel, printed once."""
        self.messages.append((level, text))
        self.message_time = time.monotonic()
        print(text if text.startswith("SAM 3D") else f"SAM 3D: {text}", flush=True)


RUNNER = Runner()


def _max_jobs() -> int:
    try:
        return max(1, preferences.get().max_jobs)
    except (KeyError, AttributeError):  # while registering or unregistering
        return 4


def load_history() -> None:
    """Read the journal (a local file: nothing touches the network) so the panel can offer Resume."""
    with contextlib.suppress(KeyError, AttributeError):  # preferences not there yet
        refresh_quietly(preferences.result_folder(preferences.get()))


def refresh_quietly(folder: Path) -> None:
    try:
        RUNNER.refresh_history(folder)
    except OSError as exc:
        log.warning("SAM 3D: could not read the job journal: %s", exc)


def redraw_panels() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows if wm else []:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "IMAGE_EDITOR"}:
                area.tag_redraw()


def clear_status_bar() -> None:
    """Blender's own status bar again in every workspace (ours stays otherwise, once the add-on is gone)."""
    for workspace in bpy.data.workspaces:
        workspace.status_text_set(None)


def keep_quit_asking() -> None:
    """A paid request has gone out from the UI: the file counts as changed, so quitting Blender asks first
    (Blender's own question) instead of closing at once. Nothing is lost either way: Resume fetches the task
    after a restart without paying again."""
    if not bpy.app.background and bpy.ops.ed.undo_push.poll():  # type: ignore[call-arg]
        bpy.ops.ed.undo_push(message="SAM 3D: request sent")


def unregister() -> None:
    RUNNER.shutdown(join=2.0)
    clear_status_bar()
