"""`sam3d.refine`: a SAM 3D object remade by another engine, in place.

The object's own photo and mask (its provenance names them) are read again, the cut-out sent to the chosen
engine with the panel's settings for it, and its result fitted onto the SAM 3D mesh (machinery/fitting.py): the
photo's layout keeps SAM 3D's pose, the scene gets the engine's mesh and PBR material, and the SAM 3D object stays,
hidden, for comparison. It runs as Reconstruct does (modal in the window, to the end from a script), one undo
step, money reserved and counted the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty, EnumProperty

from ... import preferences
from ...client.engines import ENGINES
from ...translations import rpt_, tip_
from ...utils import schema
from ..machinery import fitting, pixels
from ..machinery.checks import is_blocking, refuse, why_offline
from ..machinery.inputs import settings_of, stem
from ..machinery.job_requests import fingerprint
from ..machinery.outcomes import run_blocking
from ..machinery.runner import RUNNER
from .reconstruct import DuplicateError, ModalPress, Plan, begin, job_fields

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

ALPHA = " (alpha)"  # how a job names the mask it took from the photo's alpha (reconstruct.plan_jobs)


def target_of(context: bpy.types.Context) -> bpy.types.Object | None:
    obj = context.active_object
    while obj is not None and obj.parent is not None and obj.get(schema.TASK_UUID) is None:
        obj = obj.parent  # a part of an imported result: its root carries the provenance
    return obj


def why_not_refine(context: bpy.types.Context) -> str:
    """Why Refine cannot run on the active object now, or ''."""
    reason = why_offline(context)
    if reason:
        return reason
    obj = target_of(context)
    if obj is None or obj.get(schema.TASK_UUID) is None:
        return tip_("Select an object SAM 3D reconstructed: Refine remakes it with another engine, in place")
    if obj.get(schema.REFINED_FROM):
        return tip_("{} is already a refined mesh: select the SAM 3D object it replaced").format(obj.name)
    photo = bpy.data.images.get(str(obj.get(schema.IMAGE, "")))
    if photo is None:
        return tip_("Its photo “{}” is no longer in this file: open it again to refine").format(obj.get(schema.IMAGE))
    mask = str(obj.get(schema.MASK, ""))
    if not mask.endswith(ALPHA) and bpy.data.images.get(mask) is None:
        return tip_("Its mask “{}” is no longer in this file: open it again to refine").format(mask)
    return ""


def refine_plan(context: bpy.types.Context, obj: bpy.types.Object, engine_id: str) -> Plan:
    """The one job of a Refine: the object's photo and mask, the engine's settings from the panel."""
    settings = settings_of(context)
    photo = bpy.data.images[str(obj[schema.IMAGE])]
    mask_name = str(obj.get(schema.MASK, ""))
    alpha = mask_name.endswith(ALPHA)
    mask = None if alpha else bpy.data.images[mask_name]
    given = pixels.read_inputs(photo, mask, use_photo_alpha=alpha,
                               max_megapixels=preferences.get(context).max_photo_megapixels)
    engine = ENGINES[engine_id]
    fields = job_fields(settings, f"{stem(obj.name)}_{engine.id.lower()}",
                        str(obj.get(schema.PROMPT, "")) or stem(obj.name), engine.id, image_name=photo.name,
                        mask_name=mask_name, placement="CURSOR", number_results=1, refine_of=fitting.target_key(obj))
    return Plan({**fields, "prepare": pixels.packed(given, cutout=True), "caption": None},
                fingerprint(given.digest(), "", model=preferences.get(context).model, **fields),
                list(given.warnings))


class SAM3D_OT_refine(ModalPress, bpy.types.Operator):
    """Remake the selected SAM 3D object with another engine (a PBR mesh), fitted onto it in place; the SAM 3D
    object stays, hidden"""

    bl_idname = "sam3d.refine"
    bl_label = "Refine"
    bl_options = {"UNDO"}

    engine: EnumProperty(  # type: ignore[valid-type]
        name="Engine", default="TRELLIS2", description="The engine that remakes the object",
        items=[(e.id, e.label, e.description) for e in ENGINES.values() if not e.posed])
    allow_duplicate: BoolProperty(  # type: ignore[valid-type]
        name="Allow Duplicate", default=False, options={"SKIP_SAVE"},
        description="Send it even when an identical request is still running (it is paid twice)")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse(cls, why_not_refine(context))

    def _plans(self, context: bpy.types.Context) -> list[Plan] | None:
        obj = target_of(context)
        assert obj is not None  # poll() made sure
        try:
            plan = refine_plan(context, obj, self.engine)
            if not self.allow_duplicate and RUNNER.in_flight(plan.fingerprint):
                raise DuplicateError(obj.name)  # a second press would pay twice
            return [plan]
        except pixels.MaskError as exc:
            self.report({"ERROR"}, rpt_("Cannot refine {}: {}").format(obj.name, exc))
        except DuplicateError as exc:
            self.report({"ERROR"}, str(exc))
        return None

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        if is_blocking(self, context):
            return self.execute(context)
        plans = self._plans(context)
        return self._start_modal(context, plans) if plans else {"CANCELLED"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        plans = self._plans(context)
        entries = begin(context, self.report, self.allow_duplicate, plans) if plans else []
        if not entries:
            return {"CANCELLED"}
        return run_blocking(context, entries, self.report)


classes = (SAM3D_OT_refine,)
