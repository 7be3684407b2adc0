"""The end of a job, on the main thread: import what it brought into the open file and say how it went.

An operator that waits for its jobs (modal, or blocking in a script) reports through its own `report`; a job
nobody waits for (resumed, or its file was closed) is imported by the app timer (`tick`), and its messages go
to the Jobs panel and to the status bar and Info editor (the `sam3d.message` operator), printed once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import bpy
from bpy.props import EnumProperty, StringProperty

from ...client import Journal, Sam3dError
from ...client.engines import ENGINES
from ...client.errors import Code
from ...client.locks import TaskLocks
from ...translations import iface_, rpt_
from ...utils import captions, schema
from .. import bake
from ..scene import photo_camera
from . import fitting, importing
from .runner import IDLE, RUNNER, TICK, Report, SceneJob, load_history, redraw_panels, refresh_quietly

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

log = logging.getLogger(__name__)


def finish(context: bpy.types.Context, entry: SceneJob) -> tuple[list[bpy.types.Object], list[str]]:
    """Import a finished job's results into the open file. Raises Sam3dError or GlbImportError."""
    job, req = entry.job, entry.job.request
    outcome = job.outcome
    assert outcome is not None
    failed = outcome.error is not None and outcome.error.code != Code.CANCELLED
    RUNNER.end(entry, iface_("cancelled") if outcome.kind == "failed" and not failed else
               iface_("failed") if failed else iface_("done"))
    try:
        if outcome.kind == "failed":
            assert outcome.error is not None
            raise outcome.error
        already = importing.objects_of_task(job.task_uuid)
        if req.resume and already:  # another press, or another process, brought it into this file already
            note_imported(req.result_dir, job.task_uuid, [o.name for o in already], req.info())
            return already, [rpt_("{} is already in this file: it was not imported twice.").format(req.name)]
        provenance = [importing.Provenance(r.task_uuid, r.seed, r.cost, req.prompt, req.image_name,
                                           req.mask_name, req.model, r.index) for r in outcome.results]
        box, lowres = entry.mask_box, entry.mask_lowres
        arrange = (lambda roots: photo_camera.arrange(context, roots, req.image_name, box, lowres)) if box else None
        caption = captions.clean(outcome.caption)
        name = (captions.short_name(caption) or req.name) if entry.name_from_caption else req.name
        objects = importing.import_results(context, [r.path for r in outcome.results], provenance,
                                           name=name, placement=req.placement,
                                           photo=req.image_name if entry.photo_collection else "", arrange=arrange)
        for obj in objects if caption else []:
            obj[schema.CAPTION] = caption
        if ENGINES[req.engine].wants_quads(req.engine_values):
            importing.join_quads(objects)
        warnings = fitting.lay_over(context, objects, req.refine_of) if req.refine_of else []
        resolution, budget = entry.finishing
        for obj in objects if resolution or budget else []:  # Advanced: an engine-ready mesh and texture
            if resolution:
                bake.bake_object(context, obj, resolution=resolution, max_triangles=budget)
            elif obj.type == "MESH":
                bake.decimate(obj, budget)
        names = [o.name for o in objects]
        if entry.after_import is not None:  # e.g. written to an asset library, and out of this file
            entry.after_import(objects)
        note_imported(req.result_dir, job.task_uuid, names, req.info())
        return [o for o in importing.objects_of_task(job.task_uuid) if o.name in names], \
            entry.warnings + outcome.warnings + warnings
    except (Sam3dError, importing.GlbImportError, bake.BakeError) as exc:
        if entry.on_failure is not None:
            entry.on_failure(str(exc))
        raise
    finally:
        # Its callbacks refer to the entry (a cycle of ours): dropped, the job and its photo's pixels can go.
        entry.after_import = entry.on_failure = None
        TaskLocks(req.result_dir).release(job.task_uuid)
        refresh_quietly(req.result_dir)


def note_imported(folder: Path, task_uuid: str, names: list[str], info: dict | None = None) -> None:
    try:
        Journal(folder).append("imported", task_uuid, objects=names, info=info or {})
    except OSError as exc:  # the objects are in the scene: a journal line is not worth failing for
        log.warning("SAM 3D: could not write the job journal: %s", exc)


def conclude(context: bpy.types.Context, entry: SceneJob, report: Report) -> set[OperatorReturnItems]:
    """Import a finished job and report the outcome in a sentence; the operator's return value."""
    try:
        objects, warnings = finish(context, entry)
    except Sam3dError as exc:
        if exc.code == Code.CANCELLED:
            report({"INFO"}, cancel_note(entry))
        else:
            report({"ERROR"}, str(exc))
        return {"CANCELLED"}
    except (importing.GlbImportError, bake.BakeError) as exc:
        report({"ERROR"}, str(exc))
        return {"CANCELLED"}
    for warning in warnings:
        report({"WARNING"}, warning)
    costs = [o.get(schema.COST) for o in objects if o.get(schema.COST) is not None]
    cost = rpt_(" (cost ${:.4f})").format(sum(costs)) if costs else ""
    fits = [rpt_(", fitted onto {} within {:.1%} of its size").format(o[schema.REFINED_FROM], o[schema.FIT_ERROR])
            for o in objects if o.get(schema.FIT_ERROR) is not None]
    report({"INFO"}, rpt_("SAM 3D: added {}{}").format(", ".join(o.name for o in objects) or entry.name, cost)
           + "".join(fits))
    return {"FINISHED"}


def cancel_note(entry: SceneJob) -> str:
    if entry.job.submitted:
        return rpt_("Cancelled. The task {} was already sent and may be billed: Resume in the SAM 3D panel fetches "
                    "its result without paying again.").format(entry.job.task_uuid)
    return rpt_("Cancelled before anything was sent.")


def run_blocking(context: bpy.types.Context, entries: list[SceneJob], report: Report) -> set[OperatorReturnItems]:
    """Step the jobs until each ends and import each (a script, or background mode, asked to wait)."""
    results = []
    for entry in entries:
        entry.owned = True
    for entry in entries:
        while not entry.job.done:
            RUNNER.step()
            entry.job.drain(block=TICK)
        results.append(conclude(context, entry, report))
    return {"FINISHED"} if "FINISHED" in set().union(*results) else {"CANCELLED"}


def can_import(context: bpy.types.Context, entry: SceneJob) -> bool:
    """Not while the artist is in Edit, Sculpt or Paint mode: the glTF importer would throw them out of it.
    The result waits (the panel says so) and lands when they are back in Object Mode."""
    if entry.job.outcome is not None and entry.job.outcome.kind == "failed":
        return True  # nothing to import: report it now
    if context.mode == "OBJECT":
        return True
    entry.job.show(entry.job.phase, entry.job.fraction, "Ready: imports when you are back in Object Mode")
    return False


def adopt(entry: SceneJob) -> None:
    """Import a job no operator waits for (its file was closed, or it was resumed) into the open file."""
    # In the timer's own context: no window, which the glTF importer needs only for armatures (SAM 3D makes
    # none). Never under temp_override: Blender 4.2–5.0 read an override without holding Python's lock
    # inside operators, which crashed while our download threads ran Python (tests/blender/test_threads.py).
    conclude(bpy.context, entry, tell)
    if not bpy.app.background and bpy.ops.ed.undo_push.poll():  # type: ignore[call-arg]
        bpy.ops.ed.undo_push(message=f"SAM 3D: {entry.name}")


def tell(kind: set[str], text: str) -> None:
    """Where the outcome of a job nobody waits for goes: the Jobs panel, and in the UI the status bar and the
    Info editor (an operator's report is the only way there)."""
    level = "ERROR" if "ERROR" in kind else "WARNING" if "WARNING" in kind else "INFO"
    RUNNER.post(level, text)
    if not bpy.app.background:
        with contextlib.suppress(RuntimeError):  # an ERROR report reaches Python as an exception too
            bpy.ops.sam3d.message(level=level, text=text)  # type: ignore[attr-defined]  # ours: not in the stubs


# --- the app timer: steps every job in the UI, imports the jobs nobody owns -----------------------------


IMPORT_BUDGET = 0.03  # seconds of imports per turn of Blender's main loop: past it, the window redraws first


def import_budget_spent(started: float) -> bool:
    """Whether the imports made since `started` (perf_counter) are enough for this turn: small results land
    together, a large one alone, so the window redraws between two long imports."""
    return time.perf_counter() - started > IMPORT_BUDGET


def tick() -> float:
    try:  # a timer that raises is unregistered by Blender: then nothing would import again
        if RUNNER.history is None:  # the first tick after start: offer what earlier sessions left
            load_history()
        for feed in list(RUNNER.feeders):
            feed()
        changed = RUNNER.step()
        started = time.perf_counter()
        for entry in [e for e in RUNNER.jobs.values() if e.job.done and not e.owned]:
            if can_import(bpy.context, entry):
                adopt(entry)
                changed = True
                if import_budget_spent(started):
                    break
        if changed:
            redraw_panels()
    except Exception:
        log.exception("SAM 3D: the job timer failed; it goes on")
    return TICK if RUNNER.jobs or RUNNER.feeders else IDLE


class SAM3D_OT_message(bpy.types.Operator):
    """Show a message of a background job in the status bar and the Info editor"""

    bl_idname = "sam3d.message"
    bl_label = "SAM 3D Message"
    bl_options = {"INTERNAL"}

    level: EnumProperty(items=[(k, k.title(), "") for k in ("INFO", "WARNING", "ERROR")])  # type: ignore[valid-type]
    text: StringProperty()  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        self.report({self.level}, self.text)
        return {"FINISHED"}


class SAM3D_OT_messages_clear(bpy.types.Operator):
    """Clear the messages of background jobs from the Jobs panel"""

    bl_idname = "sam3d.messages_clear"
    bl_label = "Clear Messages"
    bl_options = {"INTERNAL"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        RUNNER.messages.clear()
        redraw_panels()
        return {"FINISHED"}


classes = (SAM3D_OT_message, SAM3D_OT_messages_clear)


def register() -> None:
    bpy.app.timers.register(tick, first_interval=IDLE, persistent=True)


def unregister() -> None:
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
