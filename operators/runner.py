"""The main thread's side of the jobs: start them within the concurrency limit, drain their events, import
what they bring, keep the cost and the history. Module-level state, never on an operator (Blender frees
operators, and loading a file drops their modal handlers: the app timer then adopts their jobs).

In the UI a persistent app timer (`tick`) steps every job; in background mode, where timers never fire,
the blocking operators step them themselves (`run_blocking`). Only names are held here, no bpy data, so a
file load or an undo can never leave a dangling reference.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from .. import preferences
from ..client import Job, JobRequest, Journal, RunwareError, TaskRecord
from ..client.journal import History
from . import importing, layout

log = logging.getLogger(__name__)
TICK = 0.1  # seconds between steps while jobs run
IDLE = 0.5
Report = Callable[..., object]  # Operator.report(type, message)


class RefusedError(Exception):
    """A job that must not start; the text says why and what to do."""


@dataclass
class Running:
    """A job and what its import needs, read when it started."""

    job: Job
    name: str
    image: str
    mask: str
    placement: str
    warnings: list[str] = field(default_factory=list)
    owned: bool = False  # a modal or blocking operator imports it (one undo step); else the app timer does
    photo_collection: bool = False  # one of several masks of a photo: all land in the photo's collection
    mask_box: tuple[float, float, float, float] | None = None  # for placement 'CAMERA' (operators/layout.py)
    after_import: Callable[[list[bpy.types.Object]], None] | None = None  # e.g. make it an asset (batch.py)
    on_failure: Callable[[str], None] | None = None

    @property
    def label(self) -> str:
        return f"{self.name}: {self.job.text}"


class Runner:
    def __init__(self) -> None:
        self.jobs: dict[str, Running] = {}  # by task UUID, in the order they were asked for
        self._slots = threading.BoundedSemaphore(4)
        self._limit = 4
        self.session_cost = 0.0
        self.history: dict[str, TaskRecord] = {}
        self._history: History | None = None
        self.history_folder: Path | None = None
        self.broken_lines = 0

    # --- jobs ---------------------------------------------------------------------------------------------

    def add(self, running: Running) -> Running:
        """Start the job's worker; it waits for one of the preference's slots before doing anything."""
        limit = _max_jobs()
        if limit != self._limit:  # jobs holding slots of the old limit give them back to the old semaphore
            self._slots, self._limit = threading.BoundedSemaphore(limit), limit
        running.job.slots = self._slots
        self.jobs[running.job.task_uuid] = running
        running.job.start()
        return running

    def active(self) -> int:
        return sum(1 for r in self.jobs.values() if r.job.running)

    def step(self) -> bool:
        """Drain every job's events. True when anything changed."""
        changed = False
        for running in list(self.jobs.values()):
            if running.job.drain():
                changed = True
        return changed

    def cancel(self, task_uuid: str = "") -> int:
        hit = [r for uuid, r in self.jobs.items() if not task_uuid or uuid == task_uuid]
        for running in hit:
            running.job.cancel()
        return len(hit)

    def shutdown(self, join: float = 2.0) -> None:
        """Cancel every job and wait up to `join` seconds in all for their threads (add-on disabled)."""
        self.cancel()
        deadline = time.monotonic() + join
        for running in list(self.jobs.values()):
            running.job.join(max(0.0, deadline - time.monotonic()))
        self.jobs.clear()

    # --- history (read from the journal; refreshed when a job ends, never while drawing) ---------------

    def refresh_history(self, folder: Path) -> None:
        if self._history is None or self._history.journal.folder != Path(folder):
            self._history = History(folder)
        self.history = self._history.refresh()
        self.broken_lines = self._history.broken
        self.history_folder = folder

    def unfinished(self) -> list[TaskRecord]:
        """Submitted (so perhaps paid) but never imported, and not running now: worth resuming."""
        return [t for t in self.history.values() if t.unfinished and t.task_uuid not in self.jobs]

    def total_cost(self) -> float:
        return sum(t.cost for t in self.history.values())

    def in_flight_cost(self) -> float:
        """What the running jobs will likely cost, at the last cost per result Runware reported (0 when it
        never has): so that a list of masks cannot start past the spending limit all at once."""
        unit = next((r["cost"] for t in sorted(self.history.values(), key=lambda t: -t.time)
                     for r in t.results if r.get("cost")), 0.0)
        return unit * sum(r.job.request.number_results for r in self.jobs.values()
                          if not r.job.done and not r.job.request.resume)


RUNNER = Runner()


def _max_jobs() -> int:
    try:
        return max(1, preferences.get().max_jobs)
    except (KeyError, AttributeError):  # while registering or unregistering
        return 4


def user_agent() -> str:
    try:
        with open(Path(__file__).parents[1] / "blender_manifest.toml", "rb") as f:
            version = tomllib.load(f).get("version", "0")
    except OSError:
        version = "0"
    return f"sam3d-blender/{version} Blender/{bpy.app.version_string.split()[0]}"


def job_request(context: bpy.types.Context, **fields: object) -> JobRequest:
    """A request with the preferences' key, endpoint, model and limits; `fields` add the job's own."""
    prefs = preferences.get(context)
    budget = prefs.session_budget
    committed = RUNNER.session_cost + RUNNER.in_flight_cost()
    if budget > 0 and committed >= budget:
        raise RefusedError(f"This session has spent (or has running) ${committed:.4f}, the limit set in the "
                           f"preferences (${budget:.4f}). Raise the limit to reconstruct more.")
    return JobRequest(
        api_key=preferences.api_key(prefs), result_dir=preferences.result_folder(prefs),
        api_url=prefs.api_url.strip(), model=prefs.model.strip(), request_timeout=prefs.request_timeout,
        job_timeout=prefs.job_timeout, max_download_bytes=prefs.max_download_mb * 1024 * 1024,
        user_agent=user_agent(), **fields)  # type: ignore[arg-type]


# --- the end of a job ------------------------------------------------------------------------------------


def finish(context: bpy.types.Context, running: Running) -> tuple[list[bpy.types.Object], list[str]]:
    """Import a finished job's results into the open file. Raises RunwareError or GlbImportError."""
    RUNNER.jobs.pop(running.job.task_uuid, None)
    job, req = running.job, running.job.request
    outcome = job.outcome
    assert outcome is not None
    try:
        if outcome.kind == "failed":
            assert outcome.error is not None
            raise outcome.error
        RUNNER.session_cost += sum(r.cost or 0.0 for r in outcome.results)
        provenance = [importing.Provenance(r.task_uuid, r.seed, r.cost, req.prompt, running.image,
                                           running.mask, req.model, r.index) for r in outcome.results]
        box = running.mask_box
        arrange = (lambda roots: layout.arrange(context, roots, running.image, box)) if box else None
        objects = importing.import_results(context, [r.path for r in outcome.results], provenance,
                                           name=running.name, placement=running.placement,
                                           photo=running.image if running.photo_collection else "", arrange=arrange)
        note_imported(req.result_dir, job.task_uuid, objects)
        if running.after_import is not None:
            running.after_import(objects)
        return objects, running.warnings + outcome.warnings
    except (RunwareError, importing.GlbImportError) as exc:
        if running.on_failure is not None:
            running.on_failure(str(exc))
        raise
    finally:
        _refresh_quietly(req.result_dir)


def note_imported(folder: Path, task_uuid: str, objects: list[bpy.types.Object]) -> None:
    try:
        Journal(folder).append("imported", task_uuid, objects=[o.name for o in objects])
    except OSError as exc:  # the objects are in the scene: a journal line is not worth failing for
        log.warning("SAM 3D: could not write the job journal: %s", exc)


def _load_history() -> None:
    """Read the journal (a local file: nothing touches the network) so the panel can offer Resume."""
    with contextlib.suppress(KeyError, AttributeError):  # preferences not there yet
        _refresh_quietly(preferences.result_folder(preferences.get()))


def _refresh_quietly(folder: Path) -> None:
    try:
        RUNNER.refresh_history(folder)
    except OSError as exc:
        log.warning("SAM 3D: could not read the job journal: %s", exc)


def conclude(context: bpy.types.Context, running: Running, report: Report) -> set[str]:
    """Import a finished job and report the outcome in a sentence; the operator's return value."""
    try:
        objects, warnings = finish(context, running)
    except RunwareError as exc:
        if exc.code == "cancelled":
            report({"INFO"}, cancel_note(running))
        else:
            report({"ERROR"}, str(exc))
        return {"CANCELLED"}
    except importing.GlbImportError as exc:
        report({"ERROR"}, str(exc))
        return {"CANCELLED"}
    for warning in warnings:
        report({"WARNING"}, warning)
    costs = [o.get("sam3d_cost") for o in objects if o.get("sam3d_cost") is not None]
    cost = f" (cost ${sum(costs):.4f})" if costs else ""
    report({"INFO"}, f"SAM 3D: added {', '.join(o.name for o in objects)}{cost}")
    return {"FINISHED"}


def cancel_note(running: Running) -> str:
    if running.job.submitted:
        return (f"Cancelled. The task {running.job.task_uuid} was already sent and may be billed: "
                "Resume in the SAM 3D panel fetches its result without paying again.")
    return "Cancelled before anything was sent."


def run_blocking(context: bpy.types.Context, runnings: list[Running], report: Report) -> set[str]:
    """Step the jobs until each ends and import each (a script, or background mode, asked to wait)."""
    results = []
    for running in runnings:
        running.owned = True
    for running in runnings:
        while not running.job.done:
            RUNNER.step()
            running.job.drain(block=TICK)
        results.append(conclude(context, running, report))
    return {"FINISHED"} if "FINISHED" in set().union(*results) else {"CANCELLED"}


# --- the app timer: steps every job in the UI, imports the jobs nobody owns -----------------------------


def tick() -> float:
    try:  # a timer that raises is unregistered by Blender: then nothing would import again
        if RUNNER.history_folder is None:  # the first tick after start: offer what earlier sessions left
            _load_history()
        changed = RUNNER.step()
        for running in [r for r in RUNNER.jobs.values() if r.job.done and not r.owned]:
            if can_import(bpy.context, running):
                adopt(running)
                changed = True
        if changed:
            redraw_panels()
    except Exception:
        log.exception("SAM 3D: the job timer failed; it goes on")
    return TICK if RUNNER.jobs else IDLE


def can_import(context: bpy.types.Context, running: Running) -> bool:
    """Not while the artist is in Edit, Sculpt or Paint mode: the glTF importer would throw them out of it.
    The result waits (the panel says so) and lands when they are back in Object Mode."""
    if running.job.outcome is not None and running.job.outcome.kind == "failed":
        return True  # nothing to import: report it now
    if context.mode == "OBJECT":
        return True
    running.job.text = "Ready: imports when you are back in Object Mode"
    return False


def adopt(running: Running) -> None:
    """Import a job no operator waits for (its file was closed, or it was resumed) into the open file."""
    # In the timer's own context: no window, which the glTF importer needs only for armatures (SAM 3D makes
    # none). Never under temp_override: Blender 4.2–5.0 read an override without holding Python's lock
    # inside operators, which crashed while our download threads ran Python (tests/blender/test_threads.py).
    conclude(bpy.context, running, _log_report)
    if not bpy.app.background and bpy.ops.ed.undo_push.poll():  # type: ignore[call-arg]
        bpy.ops.ed.undo_push(message=f"SAM 3D: {running.name}")


def _log_report(kind: set[str], text: str) -> None:
    """Where an adopted job's outcome goes: Blender's info log (and the console)."""
    level = logging.ERROR if "ERROR" in kind else logging.WARNING if "WARNING" in kind else logging.INFO
    log.log(level, "%s", text)
    print(text if text.startswith("SAM 3D") else f"SAM 3D: {text}")


def redraw_panels() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows if wm else []:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "IMAGE_EDITOR"}:
                area.tag_redraw()


def register() -> None:
    bpy.app.timers.register(tick, first_interval=IDLE, persistent=True)


def unregister() -> None:
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    RUNNER.shutdown(join=2.0)
