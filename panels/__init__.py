"""The "SAM 3D" sidebar tab, in the 3D Viewport and the Image Editor. Draws state only."""

from __future__ import annotations

import time
from typing import Any

import bpy

from .. import preferences
from ..client import TaskRecord
from ..client.errors import sentence_for
from ..operators import reconstruct
from ..operators.batch import ACTIVE
from ..operators.runner import RUNNER


class _Sidebar:
    layout: bpy.types.UILayout
    bl_region_type = "UI"
    bl_category = "SAM 3D"


class _MainPanel(_Sidebar):
    bl_label = "SAM 3D Objects"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.sam3d
        layout.use_property_split = True
        layout.use_property_decorate = False

        col = layout.column()
        col.template_ID(settings, "image", open="image.open", text="Photo")
        if settings.image is None and reconstruct.photo_of(context) is not None:
            col.label(text=f"Using {reconstruct.photo_of(context).name} from the editor", icon="IMAGE_DATA")
        row = col.row()
        row.enabled = not settings.use_photo_alpha
        row.template_ID(settings, "mask", open="image.open", text="Mask")
        tools = col.row(align=True)
        tools.operator("sam3d.mask_new", text="New", icon="BRUSH_DATA")
        tools.operator("sam3d.auto_mask", text="Auto", icon="SHADERFX")
        tools.operator("sam3d.mask_preview", text="Preview", icon="HIDE_OFF")
        col.prop(settings, "use_photo_alpha")
        _draw_masks_list(layout.column(), settings)
        row = col.row()
        row.enabled = not reconstruct.listed_masks(settings)  # with a list, each mask's name is its prompt
        row.prop(settings, "prompt")
        row = col.row(heading="Seed")
        row.prop(settings, "use_random_seed", text="Random")
        sub = row.row()
        sub.enabled = not settings.use_random_seed
        sub.prop(settings, "seed", text="")
        col.prop(settings, "num_results")
        col.prop(settings, "placement")

        reason = reconstruct.why_not(context)
        listed = len(reconstruct.listed_masks(settings))
        big = layout.row()
        big.scale_y = 1.5
        big.operator("sam3d.reconstruct", icon="MESH_MONKEY",
                     text=f"Reconstruct {listed} Objects" if listed > 1 else "Reconstruct")
        if reason:
            layout.label(text=reason, icon="INFO")

        for running in list(RUNNER.jobs.values()):
            row = layout.row(align=True)
            row.progress(factor=running.job.fraction, type="BAR", text=running.label)
            row.operator("sam3d.cancel", text="", icon="X").task_uuid = running.job.task_uuid


def _draw_masks_list(layout: bpy.types.UILayout, settings: Any) -> None:
    header = layout.row(align=True)
    header.label(text="Masks of the photo" + (f" ({len(settings.masks)})" if len(settings.masks) else ""))
    header.operator("sam3d.mask_add", text="", icon="ADD")
    header.operator("sam3d.mask_remove", text="", icon="REMOVE")
    header.operator("sam3d.masks_load_folder", text="", icon="FILE_FOLDER")
    header.operator("sam3d.masks_split_label_map", text="", icon="COLOR")
    header.operator("sam3d.masks_clear", text="", icon="X")
    if len(settings.masks):
        layout.template_list("SAM3D_UL_masks", "", settings, "masks", settings, "active_mask_index", rows=3)


STATUS_ICONS = {"imported": "CHECKMARK", "failed": "ERROR", "cancelled": "CANCEL", "created": "TIME",
                "submitted": "TIME", "processed": "TIME", "downloaded": "IMPORT"}


class _JobsPanel(_Sidebar):
    bl_label = "Jobs"
    RECENT = 8

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        if len(RUNNER.jobs) > 1:
            row = layout.row()
            row.label(text=f"{RUNNER.active()} running, {len(RUNNER.jobs) - RUNNER.active()} waiting")
            row.operator("sam3d.cancel", text="Cancel All", icon="X").task_uuid = ""
        unfinished = RUNNER.unfinished()
        if unfinished:
            box = layout.box()
            box.label(text=f"{len(unfinished)} job(s) were sent but never imported", icon="ERROR")
            box.operator("sam3d.resume", icon="PLAY").task_uuid = ""
        prefs = preferences.get(context)
        spent = f"Spent: ${RUNNER.session_cost:.4f} this session, ${RUNNER.total_cost():.4f} in all"
        if prefs.session_budget > 0:
            spent += f" (limit ${prefs.session_budget:.4f})"
        layout.label(text=spent)
        if RUNNER.broken_lines:
            layout.label(text=f"{RUNNER.broken_lines} broken journal line(s) skipped", icon="INFO")
        recent = sorted(RUNNER.history.values(), key=lambda t: t.time, reverse=True)[: self.RECENT]
        for task in recent:
            self._draw_task(layout.box(), task)
        if not recent:
            layout.label(text="No jobs yet")
        layout.operator("sam3d.open_folder", icon="FILE_FOLDER").task_uuid = ""

    @staticmethod
    def _draw_task(box: bpy.types.UILayout, task: TaskRecord) -> None:
        info = task.info
        row = box.row()
        row.label(text=f"{info.get('name', '?')} · {task.status}", icon=STATUS_ICONS.get(task.status, "DOT"))  # type: ignore[arg-type]
        row.label(text=time.strftime("%d %b %H:%M", time.localtime(task.time)))
        col = box.column(align=True)
        col.label(text=f"{info.get('image', '')} · {info.get('mask', '')}")
        seeds = ", ".join(str(f.get("seed")) for f in task.files if f.get("seed")) or info.get("seed") or "random"
        col.label(text=f"Seed {seeds}" + (f" · ${task.cost:.4f}" if task.cost else ""))
        if task.status == "failed" and task.code:
            col.label(text=sentence_for(task.code), icon="ERROR")
        running = task.task_uuid in RUNNER.jobs
        row = box.row(align=True)
        sub = row.row(align=True)
        sub.enabled = bool(task.files) and not running
        sub.operator("sam3d.reimport", text="Re-import", icon="IMPORT").task_uuid = task.task_uuid
        sub = row.row(align=True)
        sub.enabled = not running
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


class _LibraryPanel(_Sidebar):
    bl_label = "Asset Library"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        _settings_column(layout, context.scene.sam3d, ("batch_directory", "batch_library", "batch_target_size",
                                                        "batch_triangle_budget", "batch_max_cost"))
        layout.operator("sam3d.batch", icon="ASSET_MANAGER")
        for batch in ACTIVE:
            counts = batch.counts()
            total = len(batch.items)
            finished = total - counts["pending"]
            row = layout.row(align=True)
            row.progress(factor=finished / total if total else 1.0, type="BAR",
                         text=f"{finished}/{total} · {time.monotonic() - batch.started:.0f} s · ${batch.cost():.4f}")
            row.operator("sam3d.cancel", text="", icon="X").task_uuid = ""
            for item in batch.items:
                if item.status != "pending":
                    icon = {"done": "CHECKMARK", "failed": "ERROR", "skipped": "FORWARD"}[item.status]
                    layout.label(text=f"{item.name}: {item.status}" + (f" ({item.reason})" if item.reason else ""),
                                 icon=icon)  # type: ignore[arg-type]


class _AdvancedPanel(_Sidebar):
    bl_label = "Advanced"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        col = _settings_column(self.layout, context.scene.sam3d,
                               ("exact_seed", "delivery_method", "ttl", "upload_endpoint", "webhook_url"))
        col.separator()
        col.label(text=f"Model: {preferences.get(context).model}")
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
           *_in_both_editors(_LibraryPanel, "_library", True), *_in_both_editors(_AdvancedPanel, "_advanced", True))


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
