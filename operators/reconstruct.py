"""`sam3d.reconstruct` and `sam3d.cancel`.

Invoked from the UI, reconstruct is modal: on each timer tick it steps the jobs, updates the status bar and
the panels, and imports its job when done (one undo step); Esc or Cancel stops it, and it can be pressed
again while jobs run. Executed from a script or in background mode (where timers and modal handlers never
run) it steps the very same job until it ends. Job state lives in `runner.RUNNER`, never on the operator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
from bpy.props import StringProperty

from .. import preferences
from ..client import Job, RunwareError
from ..client.tasks import MAX_SEED
from . import layout, masks
from .runner import (
    RUNNER,
    TICK,
    RefusedError,
    Report,
    Running,
    can_import,
    conclude,
    job_request,
    redraw_panels,
    run_blocking,
)


def photo_of(context: bpy.types.Context) -> bpy.types.Image | None:
    """The chosen photo, else the image open in the Image Editor the operator runs from."""
    settings = context.scene.sam3d
    if settings.image:
        return settings.image
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR" and space.image is not None:
        return space.image
    return None


def why_offline(context: bpy.types.Context) -> str:
    """Why nothing can reach Runware now, or ''."""
    if not bpy.app.online_access:
        return "Online access is off: turn it on in Preferences › System › Network"
    if not preferences.api_key(preferences.get(context)):
        return "No Runware API key: set it in the add-on preferences (or RUNWARE_API_KEY)"
    return ""


def why_not(context: bpy.types.Context) -> str:
    """Why Reconstruct cannot run now, or '' when it can."""
    reason = why_offline(context)
    if reason:
        return reason
    photo = photo_of(context)
    if photo is None:
        return "Pick a photo in the SAM 3D panel"
    if photo.type in {"RENDER_RESULT", "COMPOSITING"}:
        return "A render result cannot be sent: save it as an image, open that, and pick it"
    settings = context.scene.sam3d
    if settings.mask is not None and settings.mask == photo and not settings.use_photo_alpha:
        return "The mask is the photo itself: pick the mask image (or tick Use Photo Alpha)"
    exact = settings.exact_seed.strip()
    if exact and not (exact.isdigit() and int(exact) <= MAX_SEED):
        return f"Exact Seed must be a whole number from 0 to {MAX_SEED}"
    if 0 < settings.ttl < 60:
        return "URL Lifetime must be at least 60 seconds (or 0 for Runware's default)"
    if not settings.use_photo_alpha and settings.mask is None and not listed_masks(settings):
        return "Pick a mask image, or tick Use Photo Alpha"
    return ""


def chosen_seed(settings: Any) -> int | None:
    """The seed to send: the exact one when given, else the seed field, else none (the server picks)."""
    exact = settings.exact_seed.strip()
    if exact:
        return int(exact)
    return None if settings.use_random_seed else settings.seed


def refuse(cls: type[bpy.types.Operator], reason: str) -> bool:
    """For poll(): False with the reason on the disabled button (and in a script's error), or True."""
    if reason:
        cls.poll_message_set(reason)
    return not reason


def why_no_photo(context: bpy.types.Context) -> str:
    return "" if photo_of(context) is not None else "Pick the photo first"


def _stem(name: str) -> str:
    return Path(name).stem if "." in name else name


def listed_masks(settings: Any) -> list[bpy.types.Image]:
    """The enabled masks of the list (empty when the list is not in use)."""
    return [item.image for item in settings.masks if item.enabled and item.image is not None]


def start_jobs(context: bpy.types.Context) -> list[Running]:
    """Read the settings and inputs (refusing bad input before anything is paid) and queue one job per
    mask: the enabled masks of the list, else the single mask (or the photo's alpha)."""
    settings = context.scene.sam3d
    photo = photo_of(context)
    assert photo is not None  # poll() made sure
    listed = listed_masks(settings)
    chosen: list[bpy.types.Image | None] = [*listed] or [None if settings.use_photo_alpha else settings.mask]
    alpha = settings.use_photo_alpha and not listed
    inputs = masks.read_many(photo, chosen, use_photo_alpha=alpha)
    runnings = []
    for mask, given in zip(chosen, inputs, strict=True):
        name = _stem(mask.name if mask else photo.name)
        mask_name = mask.name if mask else f"{photo.name} (alpha)"
        prompt = (settings.prompt.strip() if not listed else "") or name.replace("_", " ")
        request = job_request(
            context, prepare=given.encode, name=name, image_name=photo.name, mask_name=mask_name,
            placement=settings.placement, prompt=prompt,
            seed=chosen_seed(settings), number_results=settings.num_results,
            delivery=settings.delivery_method.lower(), ttl=settings.ttl, webhook_url=settings.webhook_url.strip(),
            upload_endpoint=settings.upload_endpoint.strip())
        runnings.append(Running(Job(request), name, photo.name, mask_name, settings.placement,
                                list(given.warnings), photo_collection=bool(listed),
                                mask_box=layout.mask_box(given.mask) if settings.placement == "CAMERA" else None))
    return [RUNNER.add(r) for r in runnings]


def start_job(context: bpy.types.Context) -> Running:
    """The first (usually the only) job of `start_jobs`."""
    return start_jobs(context)[0]


def begin(context: bpy.types.Context, report: Report) -> list[Running]:
    """Start the jobs, or report why not (then none)."""
    try:
        runnings = start_jobs(context)
    except (masks.MaskError, RunwareError, RefusedError) as exc:
        report({"ERROR"}, str(exc))
        return []
    for running in runnings:
        for warning in running.warnings:
            report({"WARNING"}, warning)
        running.warnings.clear()
    return runnings


class ModalRun:
    """What the modal operator does, kept apart from it so that tests (where Blender runs no modal
    handlers) can drive it with plain events. Holds only the job's task UUID, never the job."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.task_uuids: list[str] = []
        self.results: set[str] = set()

    @property
    def task_uuid(self) -> str:
        return self.task_uuids[0] if self.task_uuids else ""

    def start(self, context: bpy.types.Context) -> bool:
        runnings = begin(context, self.report)
        for running in runnings:
            running.owned = True
        self.task_uuids = [r.job.task_uuid for r in runnings]
        if runnings:
            self._status(context, runnings[0])
        return bool(runnings)

    def _mine(self) -> list[Running]:
        return [r for r in (RUNNER.jobs.get(u) for u in self.task_uuids) if r is not None and r.owned]

    def on_event(self, context: bpy.types.Context, kind: str, value: str) -> set[str]:
        mine = self._mine()
        if not mine:  # stopped or adopted elsewhere (add-on disabled, file loaded)
            return self._end(context, {"FINISHED"} if "FINISHED" in self.results else {"CANCELLED"})
        if kind == "ESC" and value == "PRESS":
            for running in mine:
                running.job.cancel()
            return {"RUNNING_MODAL"}  # consumed: one Esc cancels the newest press only, and nothing else
        if kind != "TIMER":
            return {"PASS_THROUGH"}
        RUNNER.step()
        for running in mine:
            job = running.job
            if job.done and job.outcome is not None and job.outcome.kind == "done" and job.phase != "importing":
                job.phase, job.fraction, job.text = "importing", 0.95, "Importing"  # shown before it blocks
            elif job.done and can_import(context, running):
                self.results |= conclude(context, running, self.report)
        mine = self._mine()
        if not mine:  # every job of this press imported (or failed): one undo step for them all
            return self._end(context, {"FINISHED"} if "FINISHED" in self.results else {"CANCELLED"})
        self._status(context, mine[0])
        redraw_panels()
        return {"PASS_THROUGH"}

    def _status(self, context: bpy.types.Context, running: Running) -> None:
        if context.workspace is not None:
            others = len(RUNNER.jobs) - 1
            more = f" · {others} more job{'s' if others > 1 else ''}" if others > 0 else ""
            context.workspace.status_text_set(
                f"SAM 3D · {running.label} · {running.job.fraction:.0%}{more}  (Esc to cancel)")

    def _end(self, context: bpy.types.Context, result: set[str]) -> set[str]:
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        redraw_panels()
        return result


class SAM3D_OT_reconstruct(bpy.types.Operator):
    """Reconstruct the masked object of the photo as a 3D object (SAM 3D Objects on Runware)"""

    bl_idname = "sam3d.reconstruct"
    bl_label = "Reconstruct"
    # UNDO: the import is one undo step. Not REGISTER: Repeat Last or the redo panel would run it again,
    # paying again and blocking Blender until it ends.
    bl_options = {"UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse(cls, why_not(context))

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        self._run = ModalRun(self.report)
        if not self._run.start(context):
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(TICK, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        result = self._run.on_event(context, event.type, event.value)
        if result not in ({"PASS_THROUGH"}, {"RUNNING_MODAL"}):
            context.window_manager.event_timer_remove(self._timer)
        return result

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender drops the operator (its window closed): the app timer imports its jobs instead."""
        for running in self._run._mine():
            running.owned = False
        context.window_manager.event_timer_remove(self._timer)

    def execute(self, context: bpy.types.Context) -> set[str]:
        runnings = begin(context, self.report)
        if not runnings:
            return {"CANCELLED"}
        return run_blocking(context, runnings, self.report)


class SAM3D_OT_cancel(bpy.types.Operator):
    """Stop a running reconstruction (all of them when no task is given)"""

    bl_idname = "sam3d.cancel"
    bl_label = "Cancel"
    bl_options = {"INTERNAL"}

    task_uuid: StringProperty(name="Task", default="", options={"SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse(cls, "" if RUNNER.jobs else "No reconstruction is running")

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not RUNNER.cancel(self.task_uuid):
            self.report({"WARNING"}, f"No running job has the task {self.task_uuid}")
            return {"CANCELLED"}
        return {"FINISHED"}


classes = (SAM3D_OT_reconstruct, SAM3D_OT_cancel)
