"""The "SAM 3D" sidebar tab, in the 3D Viewport and the Image Editor. Draws state only: no logic, no network,
no operator calls. Strings go through Blender's translation functions (`iface_`), as in every bundled add-on."""

from __future__ import annotations

import time
from typing import Any

import bpy

from .. import preferences
from ..client import TaskRecord
from ..client.errors import sentence_for
from ..operators import background, bake, batch, photo_camera
from ..operators.checks import why_not_reconstruct
from ..operators.inputs import listed_masks, photo_of, settings_of
from ..operators.runner import RUNNER
from ..translations import iface_


class _Sidebar:
    layout: bpy.types.UILayout
    bl_region_type = "UI"
    bl_category = "SAM 3D"


def _label(layout: bpy.types.UILayout, text: str, icon: str = "NONE") -> None:
    """A label whose text is already translated and formatted."""
    layout.label(text=text, icon=icon, translate=False)  # type: ignore[arg-type]


class _MainPanel(_Sidebar):
    bl_label = "SAM 3D Objects"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = settings_of(context)
        layout.use_property_split = True
        layout.use_property_decorate = False

        col = layout.column()
        col.template_ID(settings, "image", open="image.open", text="Photo")
        photo = photo_of(context)
        if settings.image is None and photo is not None:
            _label(col, iface_("Using {} from the editor").format(photo.name), "IMAGE_DATA")
        row = col.row()
        row.enabled = not settings.use_photo_alpha
        row.template_ID(settings, "mask", open="image.open", text="Mask")
        tools = col.row(align=True)
        tools.operator("sam3d.mask_new", text="New", icon="BRUSH_DATA")
        tools.operator("sam3d.auto_mask", text="Auto", icon="SHADERFX")
        tools.operator("sam3d.box_mask", text="Box", icon="SELECT_SET")
        tools.operator("sam3d.mask_preview", text="Preview", icon="HIDE_OFF")
        col.prop(settings, "use_photo_alpha")
        _draw_masks_list(layout.column(), settings)
        row = col.row()
        row.enabled = not listed_masks(settings)  # with a list, each mask's name is its prompt
        row.prop(settings, "prompt")
        row = col.row(heading="Seed")
        row.prop(settings, "use_random_seed", text="Random")
        sub = row.row()
        sub.enabled = not settings.use_random_seed
        sub.prop(settings, "seed", text="")
        col.prop(settings, "num_results")
        col.prop(settings, "placement")

        prefs = preferences.get(context)
        for name, label in (("webhook_url", "Webhook"), ("upload_endpoint", "Upload Endpoint")):
            if getattr(prefs, name):  # a destination of results is never hidden
                _label(layout, iface_("{}: results are also sent to {}").format(iface_(label), getattr(prefs, name)),
                       "EXPORT")
        reason = why_not_reconstruct(context)
        listed = len(listed_masks(settings))
        big = layout.row()
        big.scale_y = 1.5
        big.operator("sam3d.reconstruct", icon="MESH_MONKEY",
                     text=iface_("Reconstruct {} Objects").format(listed) if listed > 1 else iface_("Reconstruct"))
        if reason:
            _label(layout, reason, "INFO")

        for entry in list(RUNNER.jobs.values()):
            row = layout.row(align=True)
            row.progress(factor=entry.job.fraction, type="BAR", text=entry.label)
            row.operator("sam3d.cancel", text="", icon="X").task_uuid = entry.job.task_uuid
        for call in list(background.CALLS.values()):
            row = layout.row(align=True)
            _label(row, iface_("{}: waiting for Runware…").format(iface_(call.label)), "SORTTIME")
            row.operator("sam3d.cancel", text="", icon="X").task_uuid = call.id
        if bake.PROGRESS.get("active"):
            layout.progress(factor=bake.PROGRESS["fraction"], type="BAR", text=bake.PROGRESS["text"])


def _draw_masks_list(layout: bpy.types.UILayout, settings: Any) -> None:
    header = layout.row(align=True)
    count = len(settings.masks)
    _label(header, iface_("Masks of the photo") + (f" ({count})" if count else ""))
    header.operator("sam3d.mask_add", text="", icon="ADD")
    header.operator("sam3d.mask_remove", text="", icon="REMOVE")
    header.operator("sam3d.masks_load_folder", text="", icon="FILE_FOLDER")
    header.operator("sam3d.masks_split_label_map", text="", icon="COLOR")
    header.operator("sam3d.masks_clear", text="", icon="X")
    if count:
        layout.template_list("SAM3D_UL_masks", "", settings, "masks", settings, "active_mask_index", rows=3)


STATUS_ICONS = {"imported": "CHECKMARK", "failed": "ERROR", "cancelled": "CANCEL", "created": "TIME",
                "submitted": "TIME", "processed": "TIME", "downloaded": "IMPORT", "interrupted": "ERROR"}
MESSAGE_ICONS = {"ERROR": "ERROR", "WARNING": "ERROR", "INFO": "INFO"}


class _JobsPanel(_Sidebar):
    bl_label = "Jobs"
    RECENT = 8

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        if len(RUNNER.jobs) > 1:
            row = layout.row()
            _label(row, iface_("{} running, {} waiting").format(RUNNER.active(), len(RUNNER.jobs) - RUNNER.active()))
            row.operator("sam3d.cancel", text="Cancel All", icon="X").task_uuid = ""
        unfinished = RUNNER.unfinished()
        if unfinished:
            box = layout.box()
            _label(box, iface_("{} job(s) were sent but never imported").format(len(unfinished)), "ERROR")
            box.operator("sam3d.resume", icon="PLAY").task_uuid = ""
        prefs = preferences.get(context)
        ledger = RUNNER.ledger
        spent = iface_("Spent: ${:.4f} this session (${:.4f} reserved), ${:.4f} in all").format(
            ledger.spent / 1e6, ledger.reserved / 1e6, RUNNER.total_cost())
        if prefs.session_budget > 0:
            spent += iface_(" (limit ${:.4f})").format(prefs.session_budget)
        _label(layout, spent)
        for level, text in list(RUNNER.messages)[-3:]:
            _label(layout, text, MESSAGE_ICONS.get(level, "INFO"))
        history = RUNNER.history
        if history is not None and history.broken:
            _label(layout, iface_("{} broken journal line(s) skipped").format(history.broken), "INFO")
        recent = history.recent(self.RECENT) if history is not None else []
        for task in recent:
            self._draw_task(layout.box(), task)
        if not recent:
            layout.label(text="No jobs yet")
        layout.operator("sam3d.open_folder", icon="FILE_FOLDER").task_uuid = ""

    @staticmethod
    def _draw_task(box: bpy.types.UILayout, task: TaskRecord) -> None:
        info = task.info
        row = box.row()
        _label(row, f"{info.get('name', '?')} · {iface_(task.status)}", STATUS_ICONS.get(task.status, "DOT"))
        _label(row, time.strftime("%d %b %H:%M", time.localtime(task.time)))
        col = box.column(align=True)
        _label(col, f"{info.get('image', '')} · {info.get('mask', '')}")
        seeds = ", ".join(str(f.get("seed")) for f in task.files if f.get("seed")) or info.get("seed") or "random"
        _label(col, iface_("Seed {}").format(seeds) + (f" · ${task.cost:.4f}" if task.cost else ""))
        if task.status in ("failed", "interrupted") and task.code:
            _label(col, sentence_for(task.code), "ERROR")
        running = task.task_uuid in RUNNER.jobs
        row = box.row(align=True)
        sub = row.row(align=True)
        sub.enabled = bool(task.files) and not running
        sub.operator("sam3d.reimport", text="Re-import", icon="IMPORT").task_uuid = task.task_uuid
        sub = row.row(align=True)
        sub.enabled = not running and task.status in ("imported", "failed", "cancelled", "created")
        sub.operator("sam3d.retry", text="Retry", icon="FILE_REFRESH").task_uuid = task.task_uuid
        row.operator("sam3d.open_folder", text="", icon="FILE_FOLDER").task_uuid = task.task_uuid


class SAM3D_UL_masks(bpy.types.UIList):
    """The masks of the photo, each with a checkbox."""

    def draw_item(  # type: ignore[no-untyped-def]
            self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0) -> None:
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        row.template_ID(item, "image", open="image.open")


def _settings_column(layout: bpy.types.UILayout, settings: Any, names: tuple[str, ...]) -> bpy.types.UILayout:
    layout.use_property_split = True
    layout.use_property_decorate = False
    col = layout.column()
    for name in names:
        col.prop(settings, name)
    return col


class _LayoutPanel(_Sidebar):
    bl_label = "Photo Layout"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        camera = photo_camera.camera_of(context)
        if camera is None:
            layout.label(text="Placement As in the Photo makes the photo's camera", icon="INFO")
            return
        col = layout.column(align=True)
        lens = photo_camera.camera_data(camera).lens
        _label(col, iface_("Camera {}: {:.1f} mm").format(camera.name, lens), "CAMERA_DATA")
        implied = camera.get("sam3d_focal_mm")
        if implied and abs(float(implied) - lens) > 0.05:
            _label(col, iface_("The results' poses imply {:.1f} mm").format(float(implied)), "INFO")
        col.prop(camera.data, "sam3d_lens_locked")
        fits = camera.get("sam3d_fit") or {}
        for name in sorted(fits.keys()):
            _label(col, iface_("{}: silhouette IoU {:.2f}").format(name, float(fits[name])))
        row = layout.row(align=True)
        row.operator("sam3d.relayout", icon="FILE_REFRESH")
        row.operator("sam3d.set_real_size", icon="DRIVER_DISTANCE")
        layout.operator("sam3d.composite", icon="NODE_COMPOSITING")
        layout.operator("sam3d.bake", icon="TEXTURE")


class _LibraryPanel(_Sidebar):
    bl_label = "Asset Library"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        _settings_column(layout, settings_of(context), ("batch_directory", "batch_library", "batch_target_size",
                                                         "batch_triangle_budget", "batch_bake", "batch_max_cost"))
        layout.operator("sam3d.batch", icon="ASSET_MANAGER")
        for job in batch.ACTIVE:
            counts = job.counts()
            total = len(job.items)
            finished = total - counts["pending"]
            row = layout.row(align=True)
            row.progress(factor=finished / total if total else 1.0, type="BAR",
                         text=f"{finished}/{total} · {time.monotonic() - job.started:.0f} s · ${job.cost():.4f}")
            if job.running:
                row.operator("sam3d.batch_cancel", text="", icon="X")
            shown = [i for i in job.items if i.status != "pending"][-12:]  # the latest: thousands do not fit
            for item in shown:
                icon = {"done": "CHECKMARK", "failed": "ERROR", "skipped": "FORWARD"}[item.status]
                _label(layout, f"{item.name}: {iface_(item.status)}" + (f" ({item.reason})" if item.reason else ""),
                       icon)


class _AdvancedPanel(_Sidebar):
    bl_label = "Advanced"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        settings = settings_of(context)
        col = _settings_column(self.layout, settings, ("exact_seed", "delivery_method", "ttl", "bake_to_texture"))
        sub = col.column()
        sub.enabled = settings.bake_to_texture
        sub.prop(settings, "bake_resolution")
        col.prop(settings, "triangle_budget")
        col.separator()
        _label(col, iface_("Model: {}").format(preferences.get(context).model))
        col.label(text="Output: URL, GLB (the only values the model allows)")


def _in_both_editors(base: type, suffix: str, child: bool = False) -> list[type]:
    """The same panel in the 3D Viewport and the Image Editor (Blender wants a class per editor)."""
    made = []
    for space, tag in (("VIEW_3D", "view3d"), ("IMAGE_EDITOR", "image")):
        idname = f"SAM3D_PT_{tag}{suffix}"
        attrs = {"bl_space_type": space, "bl_idname": idname}
        if child:  # a sub-panel of the main panel of the same editor
            attrs["bl_parent_id"] = f"SAM3D_PT_{tag}"
        made.append(type(idname, (base, bpy.types.Panel), attrs))
    return made


classes = (SAM3D_UL_masks, *_in_both_editors(_MainPanel, ""), *_in_both_editors(_JobsPanel, "_jobs", True),
           *_in_both_editors(_LayoutPanel, "_layout", True), *_in_both_editors(_LibraryPanel, "_library", True),
           *_in_both_editors(_AdvancedPanel, "_advanced", True))


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
