"""`sam3d.reconstruct` and `sam3d.cancel`.

Invoked from the UI, reconstruct is modal: on each timer tick it steps the jobs, updates the status bar and
the panels, and imports its jobs when done (one undo step); Esc or Cancel stops it, and it can be pressed
again while jobs run. Executed from a script or in background mode (where timers and modal handlers never
run) it steps the very same jobs until they end. Job state lives in `runner.RUNNER`, never on the operator.
A request identical to one still in flight (a double click) asks first in the UI, and is refused from a
script unless `allow_duplicate=True`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import BoolProperty, StringProperty

from ... import preferences
from ...client import Code, Job, Sam3dError
from ...client.engines import ENGINES
from ...properties import engine_values
from ...translations import iface_, rpt_, tip_
from ...utils import raster
from ...utils.calibration import lowres_mask
from ..machinery import background, pixels
from ..machinery.checks import is_blocking, refuse, why_not_reconstruct
from ..machinery.inputs import chosen_seed, chosen_views, listed_masks, pin_photo, settings_of, stem, window_manager_of
from ..machinery.job_requests import fingerprint, job_request
from ..machinery.outcomes import can_import, conclude, import_budget_spent, run_blocking
from ..machinery.runner import RUNNER, TICK, Report, SceneJob, keep_quit_asking, redraw_panels

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems


class DuplicateError(Sam3dError):
    """The same request is already in flight."""

    def __init__(self, name: str) -> None:
        super().__init__(Code.DUPLICATE_REQUEST, rpt_(
            "An identical reconstruction of {} is already running (same photo, mask, seed and settings): it would "
            "be paid twice. Wait for it, or change the seed; a script can pass allow_duplicate=True.").format(name))


@dataclass
class Plan:
    """One job to be: its request's fields, and what its import needs."""

    fields: dict[str, Any]
    fingerprint: str
    warnings: list[str]
    photo_collection: bool = False
    mask_box: tuple[float, float, float, float] | None = None
    mask_lowres: str = ""
    finishing: tuple[int, int] = (0, 0)
    name_from_caption: bool = False


def job_fields(settings: Any, name: str, prompt: str, engine: str = "", **more: Any) -> dict[str, Any]:
    """A job's request fields from the panel's settings (the one place they are read); `more` adds or overrides."""
    engine = engine or settings.engine
    return {"name": name, "prompt": prompt, "placement": settings.placement, "seed": chosen_seed(settings),
            "number_results": settings.num_results, "delivery": settings.delivery_method.lower(),
            "ttl": settings.ttl, "engine": engine, "engine_values": engine_values(settings, engine), **more}


def plan_jobs(context: bpy.types.Context, allow_duplicate: bool = False) -> list[Plan]:
    """Read the settings and inputs (refusing bad input before anything is paid): one job per mask, the
    enabled masks of the list, else the single mask (or the photo's alpha). Nothing is reserved or sent."""
    settings = settings_of(context)
    photo = pin_photo(context)
    if photo is None:  # a text-to-3D engine and its prompt alone (poll() made sure)
        return [text_plan(context, allow_duplicate)]
    listed = listed_masks(settings)
    chosen: list[bpy.types.Image | None] = [*listed] or [None if settings.use_photo_alpha else settings.mask]
    alpha = settings.use_photo_alpha and not listed
    prefs = preferences.get(context)
    views = [pixels.read_view(v, prefs.max_photo_megapixels) for v in chosen_views(settings)]
    inputs = pixels.iter_inputs(photo, chosen, use_photo_alpha=alpha, max_megapixels=prefs.max_photo_megapixels)
    camera = settings.placement == "CAMERA"
    plans = []
    for mask, given in zip(chosen, inputs, strict=True):
        name = stem(mask.name if mask else photo.name)
        prompt = (settings.prompt.strip() if not listed else "") or name.replace("_", " ")
        fields = job_fields(settings, name, prompt, image_name=photo.name,
                            mask_name=mask.name if mask else f"{photo.name} (alpha)",
                            view_names=[v.name for v in views])
        caption = pixels.packed_cutout(given) if settings.name_from_caption else None
        cutout = not ENGINES[settings.engine].posed  # an engine without a mask input sees the object alone
        plan = Plan({**fields, "prepare": pixels.packed(given, cutout), "caption": caption,
                     "views": (lambda: [v.png() for v in views]) if views else None},
                    fingerprint(given.digest() + "".join(v.digest for v in views), "", model=prefs.model, **fields),
                    list(given.warnings), photo_collection=bool(listed),
                    mask_box=raster.mask_box(given.mask) if camera else None,
                    mask_lowres=raster.encode_mask(lowres_mask(given.mask)) if camera else "",
                    finishing=(settings.bake_resolution if settings.bake_to_texture else 0, settings.triangle_budget),
                    name_from_caption=settings.name_from_caption)
        if not allow_duplicate and RUNNER.in_flight(plan.fingerprint):
            raise DuplicateError(name)
        plans.append(plan)
    return plans


def text_plan(context: bpy.types.Context, allow_duplicate: bool = False) -> Plan:
    """The one job of a prompt alone: no photo, no mask; named after its first words."""
    settings = settings_of(context)
    prompt = settings.prompt.strip()
    name = "_".join(re.findall(r"\w+", prompt)[:3])[:40] or "object"
    fields = job_fields(settings, name, prompt, image_name="", mask_name="", text_only=True)
    plan = Plan({**fields, "caption": None}, fingerprint(prompt, "", model=preferences.get(context).model, **fields),
                [], finishing=(settings.bake_resolution if settings.bake_to_texture else 0, settings.triangle_budget))
    if not allow_duplicate and RUNNER.in_flight(plan.fingerprint):
        raise DuplicateError(name)
    return plan


def start(context: bpy.types.Context, plans: list[Plan]) -> list[SceneJob]:
    """Reserve each job's money (all or none: a list of masks never starts half-paid) and start them."""
    requests = []
    try:
        for plan in plans:
            requests.append(job_request(context, **plan.fields))
    except Sam3dError:
        for request in requests:
            for held in (request.reservation, request.caption.reservation if request.caption else None):
                if held is not None:
                    held.release()
        raise
    return [RUNNER.add(SceneJob(Job(request), plan.warnings, photo_collection=plan.photo_collection,
                                mask_box=plan.mask_box, mask_lowres=plan.mask_lowres, fingerprint=plan.fingerprint,
                                finishing=plan.finishing, name_from_caption=plan.name_from_caption))
            for plan, request in zip(plans, requests, strict=True)]


def untick_sent(context: bpy.types.Context, entries: list[SceneJob]) -> None:
    """Each ticked mask of the list is sent once per press: it is unticked, and remembers its task (the list
    shows how it went), so the next press sends only what is ticked anew (a new Box, say)."""
    by_mask = {e.job.request.mask_name: e.job.task_uuid for e in entries if e.photo_collection}
    for item in settings_of(context).masks:
        if item.enabled and item.image is not None and item.image.name in by_mask:
            item.enabled = False
            item.task_uuid = by_mask[item.image.name]


def start_jobs(context: bpy.types.Context, allow_duplicate: bool = False) -> list[SceneJob]:
    return start(context, plan_jobs(context, allow_duplicate))


def start_job(context: bpy.types.Context) -> SceneJob:
    """The first (usually the only) job of `start_jobs` (for tests and scripts)."""
    return start_jobs(context, allow_duplicate=True)[0]


def begin(context: bpy.types.Context, report: Report, allow_duplicate: bool = False,
          plans: list[Plan] | None = None) -> list[SceneJob]:
    """Start the jobs (of `plans` when already read), or report why not (then none)."""
    try:
        entries = start(context, plans if plans is not None else plan_jobs(context, allow_duplicate))
    except (pixels.MaskError, Sam3dError) as exc:
        report({"ERROR"}, str(exc))
        return []
    untick_sent(context, entries)
    for entry in entries:
        for warning in entry.warnings:
            report({"WARNING"}, warning)
        entry.warnings.clear()
    return entries


class ModalRun:
    """What the modal operator does, kept apart from it so that tests (where Blender runs no modal
    handlers) can drive it with plain events. Holds only the jobs' task UUIDs, never the jobs."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.task_uuids: list[str] = []
        self.results: set[str] = set()

    @property
    def task_uuid(self) -> str:
        return self.task_uuids[0] if self.task_uuids else ""

    def start(self, context: bpy.types.Context, allow_duplicate: bool = False, plans: list[Plan] | None = None) -> bool:
        entries = begin(context, self.report, allow_duplicate, plans)
        for entry in entries:
            entry.owned = True
        self.task_uuids = [e.job.task_uuid for e in entries]
        if entries:
            keep_quit_asking()
            self._status(context, entries[0])
        return bool(entries)

    def mine(self) -> list[SceneJob]:
        return [e for e in (RUNNER.jobs.get(u) for u in self.task_uuids) if e is not None and e.owned]

    def on_event(self, context: bpy.types.Context, kind: str, value: str) -> set[OperatorReturnItems]:
        mine = self.mine()
        if not mine:  # stopped or adopted elsewhere (add-on disabled, file loaded)
            return self._end(context, {"FINISHED"} if "FINISHED" in self.results else {"CANCELLED"})
        if kind == "ESC" and value == "PRESS":
            for entry in mine:
                entry.job.cancel()
            return {"RUNNING_MODAL"}  # consumed: one Esc cancels the newest press only, and nothing else
        if kind != "TIMER":
            return {"PASS_THROUGH"}
        changed = RUNNER.step()
        started = time.perf_counter()
        for entry in mine:
            job = entry.job
            if job.done and job.outcome is not None and job.outcome.kind == "done" and job.phase != "importing":
                job.show("importing", 0.95, "Importing")  # shown before it blocks
                changed = True
            elif job.done and can_import(context, entry):
                self.results |= conclude(context, entry, self.report)
                changed = True
                if import_budget_spent(started):
                    break
        mine = self.mine()
        if not mine:  # every job of this press imported (or failed): one undo step for them all
            return self._end(context, {"FINISHED"} if "FINISHED" in self.results else {"CANCELLED"})
        if changed:  # only then: a panel redrawn while a button is pressed can lose the press (or move it)
            self._status(context, mine[0])
            redraw_panels()
        return {"PASS_THROUGH"}

    def _status(self, context: bpy.types.Context, entry: SceneJob) -> None:
        if context.workspace is not None:
            context.workspace.status_text_set(status_line(entry))

    def _end(self, context: bpy.types.Context, result: set[OperatorReturnItems]) -> set[OperatorReturnItems]:
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        redraw_panels()
        return result


def status_line(entry: SceneJob) -> str:
    """The status bar while a press runs: its newest job, one percentage (the job's own when it says one), how
    many others run, and how to stop it."""
    label = entry.label
    percent = "" if "%" in label else f" · {entry.job.fraction:.0%}"
    others = len(RUNNER.jobs) - 1
    more = iface_(" · {} more job(s)").format(others) if others > 0 else ""
    return f"SAM 3D · {label}{percent}{more}  " + iface_("(Esc to cancel)")


MANY_TASKS = 24  # a press that sends more paid tasks than this asks first, unless a Spending Limit is set


def many_question(context: bpy.types.Context, tasks: int) -> str:
    model = preferences.get(context).model.strip()
    price = RUNNER.ledger.estimate("3dInference", model, tasks)
    return iface_("This sends {} paid reconstructions at once (up to ${:.4f}), and no Spending Limit is set in the "
                  "preferences.").format(tasks, price)


def duplicate_question(context: bpy.types.Context) -> str:
    """What the identical-request question says: what is running, and that OK pays again, and how much."""
    settings = settings_of(context)
    model = preferences.get(context).model.strip()
    listed = len(listed_masks(settings)) or 1
    price = RUNNER.ledger.estimate("3dInference", model, settings.num_results) * listed
    return iface_("An identical reconstruction is still running. OK sends it again and pays again "
                  "(up to ${:.4f}).").format(price)


class ModalPress:
    """What Reconstruct and Refine share once their jobs are planned: run them modally (the timer steps them, Esc
    cancels them), or hand them to the app timer when Blender drops the operator. A mixin: Blender registers
    each operator class once, so one cannot subclass the other."""

    report: Any
    allow_duplicate: bool
    _run: ModalRun
    _timer: Any

    def _start_modal(self, context: bpy.types.Context, plans: list[Plan] | None = None) -> set[OperatorReturnItems]:
        self._run = ModalRun(self.report)
        if not self._run.start(context, self.allow_duplicate, plans):
            return {"CANCELLED"}
        wm = window_manager_of(context)
        self._timer = wm.event_timer_add(TICK, window=context.window)
        wm.modal_handler_add(self)  # type: ignore[arg-type]  # a mixin of operators
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        result = self._run.on_event(context, event.type, event.value)
        if result not in ({"PASS_THROUGH"}, {"RUNNING_MODAL"}):
            window_manager_of(context).event_timer_remove(self._timer)
        return result

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender drops the operator (its window closed, or No in the identical-request question): the app
        timer imports its jobs instead."""
        run: ModalRun | None = getattr(self, "_run", None)
        if run is None:  # the question was answered No: nothing started
            return
        for entry in run.mine():
            entry.owned = False
        window_manager_of(context).event_timer_remove(self._timer)


class SAM3D_OT_reconstruct(ModalPress, bpy.types.Operator):
    """Reconstruct the masked object of the photo as a 3D object (SAM 3D Objects on Runware)"""

    bl_idname = "sam3d.reconstruct"
    bl_label = "Reconstruct"
    # UNDO: the import is one undo step. Not REGISTER: Repeat Last or the redo panel would run it again,
    # paying again and blocking Blender until it ends.
    bl_options = {"UNDO"}

    allow_duplicate: BoolProperty(  # type: ignore[valid-type]
        name="Allow Duplicate", default=False, options={"SKIP_SAVE"},
        description="Send it even when an identical request is still running (it is paid twice)")
    confirmed: BoolProperty(default=False, options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse(cls, why_not_reconstruct(context))

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        if is_blocking(self, context):
            return self.execute(context)
        try:
            plans = plan_jobs(context, allow_duplicate=True)
        except (pixels.MaskError, Sam3dError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not self.allow_duplicate and any(RUNNER.in_flight(p.fingerprint) for p in plans):
            self.allow_duplicate = self.confirmed = True  # the confirmation's OK runs execute: in the background
            return window_manager_of(context).invoke_confirm(  # type: ignore[call-arg]  # 4.1+: not in older stubs
                self, event, title=iface_("Pay Again?"), message=duplicate_question(context),
                confirm_text=iface_("Reconstruct Again"), icon="WARNING")
        tasks = len(plans) * settings_of(context).num_results
        if tasks > MANY_TASKS and preferences.get(context).session_budget <= 0 and not self.confirmed:
            self.confirmed = True  # the confirmation's OK runs execute: in the background
            return window_manager_of(context).invoke_confirm(  # type: ignore[call-arg]
                self, event, title=iface_("Send {} Paid Reconstructions?").format(tasks),
                message=many_question(context, tasks), confirm_text=iface_("Send Them"), icon="WARNING")
        return self._start_modal(context, plans)

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        if self.confirmed and context.window is not None and not bpy.app.background:  # the confirmation's OK
            return self._start_modal(context)
        entries = begin(context, self.report, self.allow_duplicate)
        if not entries:
            return {"CANCELLED"}
        return run_blocking(context, entries, self.report)


class SAM3D_OT_cancel(bpy.types.Operator):
    """Stop a running reconstruction or mask request (all of them when no task is given)"""

    bl_idname = "sam3d.cancel"
    bl_label = "Cancel"
    bl_options = {"INTERNAL"}

    task_uuid: StringProperty(name="Task", default="", options={"SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse(cls, "" if RUNNER.jobs or background.CALLS else tip_("No reconstruction is running"))

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        if not RUNNER.cancel(self.task_uuid) + background.cancel(self.task_uuid):
            self.report({"WARNING"}, rpt_("No running job has the task {}").format(self.task_uuid))
            return {"CANCELLED"}
        return {"FINISHED"}


classes = (SAM3D_OT_reconstruct, SAM3D_OT_cancel)
