"""`sam3d.reconstruct` and `sam3d.cancel`.

Invoked from the UI, reconstruct is modal: a timer tick drains the job's events, updates the status bar and
panels, and imports when the job is done; Esc or Cancel stops it. Executed from a script or in background
mode (where timers and modal handlers never run) it steps the very same job until it ends.
Job state lives in the module-level `RUNNING`, never on the operator (which Blender may free at any time).
"""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import bpy
from bpy.props import StringProperty

from .. import preferences
from ..client import Job, JobRequest, Journal, RunwareError
from . import importing, masks

log = logging.getLogger(__name__)
TICK = 0.1  # seconds between timer ticks while a job runs


@dataclass
class Running:
    """A job and what its import needs, read when it started."""

    job: Job
    name: str
    image: str
    mask: str
    placement: str
    warnings: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name}: {self.job.text}"


RUNNING: dict[str, Running] = {}


def photo_of(context: bpy.types.Context) -> bpy.types.Image | None:
    """The chosen photo, else the image open in the Image Editor the operator runs from."""
    settings = context.scene.sam3d
    if settings.image:
        return settings.image
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR" and space.image is not None:
        return space.image
    return None


def why_not(context: bpy.types.Context) -> str:
    """Why Reconstruct cannot run now, or '' when it can."""
    if not bpy.app.online_access:
        return "Online access is off: turn it on in Preferences › System › Network"
    if not preferences.api_key(preferences.get(context)):
        return "No Runware API key: set it in the add-on preferences (or RUNWARE_API_KEY)"
    if photo_of(context) is None:
        return "Pick a photo in the SAM 3D panel (or open one in the Image Editor)"
    settings = context.scene.sam3d
    if not settings.use_photo_alpha and settings.mask is None:
        return "Pick a mask image, or tick Use Photo Alpha"
    return ""


def _stem(name: str) -> str:
    return Path(name).stem if "." in name else name


def _user_agent() -> str:
    try:
        with open(Path(__file__).parents[1] / "blender_manifest.toml", "rb") as f:
            version = tomllib.load(f).get("version", "0")
    except OSError:
        version = "0"
    return f"sam3d-blender/{version} Blender/{bpy.app.version_string.split()[0]}"


def start_job(context: bpy.types.Context) -> Running:
    """Read the settings and inputs (refusing bad input before anything is paid) and start the worker."""
    settings = context.scene.sam3d
    prefs = preferences.get(context)
    photo = photo_of(context)
    assert photo is not None  # poll() made sure
    mask = None if settings.use_photo_alpha else settings.mask
    inputs = masks.read_inputs(photo, mask, use_photo_alpha=settings.use_photo_alpha)
    name = _stem(mask.name if mask else photo.name)
    request = JobRequest(
        api_key=preferences.api_key(prefs), prepare=inputs.encode, result_dir=preferences.result_folder(prefs),
        name=name, image_name=photo.name, api_url=prefs.api_url.strip(), model=prefs.model.strip(),
        prompt=settings.prompt.strip() or name.replace("_", " "),
        seed=None if settings.use_random_seed else settings.seed, number_results=settings.num_results,
        delivery=settings.delivery_method.lower(), ttl=settings.ttl, webhook_url=settings.webhook_url.strip(),
        upload_endpoint=settings.upload_endpoint.strip(), request_timeout=prefs.request_timeout,
        job_timeout=prefs.job_timeout, max_download_bytes=prefs.max_download_mb * 1024 * 1024,
        user_agent=_user_agent())
    running = Running(Job(request), name, photo.name, mask.name if mask else f"{photo.name} (alpha)",
                      settings.placement, list(inputs.warnings))
    RUNNING[running.job.id] = running
    running.job.start()
    return running


def finish_job(context: bpy.types.Context, running: Running) -> tuple[list[bpy.types.Object], list[str]]:
    """Import a finished job's results (main thread). Raises RunwareError or GlbImportError on failure."""
    RUNNING.pop(running.job.id, None)
    outcome = running.job.outcome
    assert outcome is not None
    if outcome.kind == "failed":
        assert outcome.error is not None
        raise outcome.error
    job, req = running.job, running.job.request
    provenance = [importing.Provenance(r.task_uuid, r.seed, r.cost, req.prompt, running.image, running.mask,
                                       req.model, r.index) for r in outcome.results]
    objects = importing.import_results(context, [r.path for r in outcome.results], provenance,
                                       name=running.name, placement=running.placement)
    try:
        Journal(req.result_dir).append(job, "imported", objects=[o.name for o in objects])
    except OSError as exc:
        log.warning("SAM 3D: could not write the job journal: %s", exc)
    return objects, running.warnings + outcome.warnings


def redraw_panels() -> None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "IMAGE_EDITOR"}:
                area.tag_redraw()


def cancel_all(join: float = 0.0) -> None:
    """Stop every job (add-on disabled, file loaded); wait up to `join` seconds for their threads."""
    for running in list(RUNNING.values()):
        running.job.cancel()
    deadline = time.monotonic() + join
    for running in list(RUNNING.values()):
        running.job.join(max(0.0, deadline - time.monotonic()))
    RUNNING.clear()


Report = Callable[..., object]  # Operator.report(type, message)


def begin(context: bpy.types.Context, report: Report) -> Running | None:
    """Start a job, or report why not (bad input is refused here, before anything is paid)."""
    try:
        running = start_job(context)
    except (masks.MaskError, RunwareError) as exc:
        report({"ERROR"}, str(exc))
        return None
    for warning in running.warnings:
        report({"WARNING"}, warning)
    running.warnings.clear()
    return running


def conclude(context: bpy.types.Context, running: Running, report: Report) -> set[str]:
    """Import a finished job and report the outcome in a sentence; the operator's return value."""
    try:
        objects, warnings = finish_job(context, running)
    except RunwareError as exc:
        if exc.code == "cancelled":
            report({"INFO"}, _cancel_note(running))
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


def _cancel_note(running: Running) -> str:
    if running.job.task_uuid:
        return (f"Cancelled. The task {running.job.task_uuid} was already sent and may be billed; "
                "it is kept in the job journal.")
    return "Cancelled before anything was sent."


class ModalRun:
    """What the modal operator does, kept apart from it so that tests (where Blender runs no modal
    handlers) can drive it with plain events. Holds only the job's id, never the job."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.job_id = ""

    def start(self, context: bpy.types.Context) -> bool:
        running = begin(context, self.report)
        if running is None:
            return False
        self.job_id = running.job.id
        self._status(context, running)
        return True

    def on_event(self, context: bpy.types.Context, kind: str, value: str) -> set[str]:
        running = RUNNING.get(self.job_id)
        if running is None:  # stopped from elsewhere (add-on disabled, file loaded)
            return self._end(context, {"CANCELLED"})
        if kind == "ESC" and value == "PRESS":
            running.job.cancel()
        if kind != "TIMER":
            return {"PASS_THROUGH"}
        job = running.job
        if job.done and job.outcome is not None and job.outcome.kind == "done" and job.phase != "importing":
            job.phase, job.fraction, job.text = "importing", 0.95, "Importing"  # shown before the import blocks
        elif job.done:
            return self._end(context, conclude(context, running, self.report))
        else:
            job.drain()
        self._status(context, running)
        redraw_panels()
        return {"PASS_THROUGH"}

    def _status(self, context: bpy.types.Context, running: Running) -> None:
        if context.workspace is not None:
            context.workspace.status_text_set(
                f"SAM 3D · {running.label} · {running.job.fraction:.0%}  (Esc to cancel)")

    def _end(self, context: bpy.types.Context, result: set[str]) -> set[str]:
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        redraw_panels()
        return result


class SAM3D_OT_reconstruct(bpy.types.Operator):
    """Reconstruct the masked object of the photo as a 3D object (SAM 3D Objects on Runware)"""

    bl_idname = "sam3d.reconstruct"
    bl_label = "Reconstruct"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        reason = why_not(context)
        if reason:
            cls.poll_message_set(reason)
        return not reason

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
        if result != {"PASS_THROUGH"}:
            context.window_manager.event_timer_remove(self._timer)
        return result

    def execute(self, context: bpy.types.Context) -> set[str]:
        running = begin(context, self.report)
        if running is None:
            return {"CANCELLED"}
        while not running.job.done:  # blocking by request: a script asked to wait for the result
            running.job.drain(block=TICK)
        return conclude(context, running, self.report)


class SAM3D_OT_cancel(bpy.types.Operator):
    """Stop a running reconstruction (all of them when no job is given)"""

    bl_idname = "sam3d.cancel"
    bl_label = "Cancel"
    bl_options = {"INTERNAL"}

    job_id: StringProperty(name="Job", default="", options={"SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not RUNNING:
            cls.poll_message_set("No reconstruction is running")
        return bool(RUNNING)

    def execute(self, context: bpy.types.Context) -> set[str]:
        for job_id, running in RUNNING.items():
            if not self.job_id or job_id == self.job_id:
                running.job.cancel()
        return {"FINISHED"}


classes = (SAM3D_OT_reconstruct, SAM3D_OT_cancel)
