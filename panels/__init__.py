"""The "SAM 3D" sidebar tab, in the 3D Viewport and the Image Editor. Draws state only: no logic, no network,
no operator calls, no file reads. Strings go through Blender's translation functions (`iface_`), as in every
bundled add-on, and every text is laid out to be read whole at Blender's default sidebar width: long texts
wrap onto more lines (`text`), and what a row cannot hold goes on a line of its own.
"""

from __future__ import annotations

import time
from typing import Any

import blf
import bpy

from .. import preferences
from ..client import TaskRecord
from ..client.engines import ENGINES, Engine
from ..client.errors import sentence_for
from ..operators import bake
from ..operators.library import batch
from ..operators.machinery import background
from ..operators.machinery.checks import why_not_reconstruct
from ..operators.machinery.history import why_not_retry
from ..operators.machinery.inputs import listed_masks, photo_of, settings_of
from ..operators.machinery.job_requests import price_of_press
from ..operators.machinery.runner import RUNNER
from ..operators.one_object import refine
from ..operators.scene import photo_camera
from ..properties import group_name
from ..translations import iface_
from ..utils import schema

MESSAGE_SECONDS = 60.0  # how long the latest messages of background jobs stay in the Jobs panel


class _Sidebar:
    layout: bpy.types.UILayout
    bl_region_type = "UI"
    bl_category = "SAM 3D"


# --- text that fits -----------------------------------------------------------------------------------------


def _scale() -> float:
    prefs = bpy.context.preferences
    return float(prefs.system.ui_scale) if prefs is not None else 1.0


def text_width(text: str) -> float:
    """The width in pixels of `text` in the UI's font at the UI's scale."""
    prefs = bpy.context.preferences
    try:
        points = float(prefs.ui_styles[0].widget.points) if prefs is not None else 11.0
    except (AttributeError, IndexError):
        points = 11.0
    blf.size(0, points * _scale())
    return float(blf.dimensions(0, text)[0])


def room(icon: bool = False) -> float:
    """The pixels a label has across the sidebar (its margins, the category tabs and an icon left out)."""
    region = bpy.context.region
    width = region.width if region is not None else 300
    return width - (84 + (22 if icon else 0)) * _scale()  # room for a box's margins too


def lines(text: str, width: float) -> list[str]:
    """`text` broken at spaces into lines no wider than `width`; a word wider than a line (a URL, a path) is
    broken where it must, so all of it can be read."""
    out: list[str] = []
    for word in text.split():
        if out and text_width(f"{out[-1]} {word}") <= width:
            out[-1] = f"{out[-1]} {word}"
            continue
        while len(word) > 1 and text_width(word) > width:
            cut = max(1, len(word) - 1)
            while cut > 1 and text_width(word[:cut]) > width:
                cut -= 1
            out.append(word[:cut])
            word = word[cut:]
        out.append(word)
    return out or [""]


def text(layout: bpy.types.UILayout, value: str, icon: str = "NONE") -> None:
    """A label whose text is already translated and formatted, on as many lines as it needs."""
    col = layout.column(align=True)
    for n, line in enumerate(lines(value, room(icon != "NONE"))):
        col.label(text=line, icon=icon if n == 0 else "BLANK1" if icon != "NONE" else "NONE",  # type: ignore[arg-type]
                  translate=False)


# --- the main panel -----------------------------------------------------------------------------------------


def _image_row(layout: bpy.types.UILayout, settings: Any, name: str, label: str, open_op: str) -> bpy.types.UILayout:
    """A labelled image field; the image's full name and size on the line below (the field cuts long names)."""
    split = layout.split(factor=0.27, align=True)
    split.label(text=label)
    row = split.row(align=True)
    row.template_ID(settings, name)
    row.operator(open_op, text="", icon="FILEBROWSER")
    return split


def _describe(image: bpy.types.Image | None) -> str:
    if image is None:
        return ""
    w, h = image.size
    return f"{image.name} · {w}×{h}" if w and h else image.name


class _MainPanel(_Sidebar):
    bl_label = "SAM 3D Objects"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = settings_of(context)
        listed = listed_masks(settings)
        photo = photo_of(context)

        col = layout.column()
        _image_row(col, settings, "image", iface_("Photo"), "image.open")
        if photo is not None:
            shown = _describe(photo)
            text(col, shown if settings.image else iface_("From the editor: {}").format(shown), "IMAGE_DATA")
        mask = _image_row(col, settings, "mask", iface_("Mask"), "sam3d.mask_open")
        mask.enabled = not settings.use_photo_alpha and not listed
        if listed:
            text(col, iface_("The list's {} ticked mask(s) are sent, not this one").format(len(listed)), "INFO")
        elif settings.mask is not None and not settings.use_photo_alpha:
            text(col, _describe(settings.mask), "IMAGE_ALPHA")
        tools = col.column(align=True)
        row = tools.row(align=True)
        row.operator("sam3d.mask_new", text="New", icon="BRUSH_DATA")
        row.operator("sam3d.auto_mask", text="Auto", icon="SHADERFX")
        row = tools.row(align=True)
        row.operator("sam3d.box_mask", text="Box", icon="SELECT_SET")
        row.operator("sam3d.mask_preview", text="Preview", icon="HIDE_OFF")
        col.prop(settings, "use_photo_alpha")
        _draw_masks_list(layout.column(), settings)

        col = layout.column()
        col.use_property_split = True
        col.use_property_decorate = False
        engine = ENGINES[settings.engine]
        col.prop(settings, "engine")
        _draw_engine_settings(col, settings, engine)
        if engine.input_kind == "images" and engine.max_images > 1:
            _draw_views_list(layout.column(), settings, engine)
            col = layout.column()
            col.use_property_split = True
            col.use_property_decorate = False
        row = col.row()
        # with a list, each mask's name; other engines take no prompt with an image, some take one alone
        row.enabled = not listed and (engine.posed or (engine.accepts_text and photo is None))
        row.prop(settings, "prompt")
        row = col.row(heading="Seed")
        row.enabled = engine.seed_max is not None  # Hunyuan and Meshy take no seed
        row.prop(settings, "use_random_seed", text="Random")
        sub = row.row()
        sub.enabled = not settings.use_random_seed
        sub.prop(settings, "seed", text="")
        col.prop(settings, "num_results")
        col.prop(settings, "placement")
        col.prop(settings, "name_from_caption")

        prefs = preferences.get(context)
        for name, label in (("webhook_url", "Webhook"), ("upload_endpoint", "Upload Endpoint")):
            if getattr(prefs, name):  # a destination of results is never hidden
                text(layout, iface_("{}: results are also sent to {}").format(iface_(label), getattr(prefs, name)),
                     "EXPORT")
        reason = why_not_reconstruct(context)
        jobs = max(1, len(listed))
        text(layout, iface_("One press: {} task(s), at most ${:.4f}").format(
            jobs * settings.num_results, price_of_press(context, engine.id, jobs, settings.num_results,
                                                        settings.name_from_caption)), "FUND")
        big = layout.row()
        big.scale_y = 1.5
        big.operator("sam3d.reconstruct", icon="MESH_MONKEY",
                     text=iface_("Reconstruct {} Objects").format(len(listed)) if len(listed) > 1
                     else iface_("Reconstruct"))
        if reason:
            text(layout, reason, "INFO")
        draw_running(layout)
        _draw_refine(layout, context, settings)  # below the job rows: appearing, it never moves a ✕ being aimed at


def _draw_refine(layout: bpy.types.UILayout, context: bpy.types.Context, settings: Any) -> None:
    """With a SAM 3D object selected: Refine it with the chosen engine (TRELLIS.2 while SAM 3D is chosen)."""
    obj = refine.target_of(context)
    if obj is None or obj.get(schema.TASK_UUID) is None or obj.get(schema.REFINED_FROM):
        return
    engine = ENGINES[settings.engine if not ENGINES[settings.engine].posed else "TRELLIS2"]
    op = layout.operator("sam3d.refine", icon="MOD_REMESH", text=iface_("Refine {} with {}").format(
        obj.name, engine.label))
    op.engine = engine.id


def _draw_engine_settings(col: bpy.types.UILayout, settings: Any, engine: Engine) -> None:
    """The chosen engine's documented settings, each with the box that sends it (unticked: its own default)."""
    group = getattr(settings, group_name(engine.id), None)
    for spec in engine.settings if group is not None else ():
        row = col.row(heading=spec.label)
        row.prop(group, f"use_{spec.name}", text="")
        sub = row.row()
        sub.enabled = bool(getattr(group, f"use_{spec.name}"))
        if spec.kind == "bool":  # a button saying what is sent, not a second tick box beside the first
            sub.prop(group, spec.name, toggle=True, text=iface_("On") if getattr(group, spec.name) else iface_("Off"))
        else:
            sub.prop(group, spec.name, text="")


def draw_running(layout: bpy.types.UILayout) -> None:
    # Ended rows keep their place, and their widgets (a full bar, a greyed ✕), while others run: Blender pairs a
    # redrawn panel's buttons with the old ones by kind and order, so a row turned into a label would hand the ✕
    # under the hand to its neighbour, and a click aimed at one job would be lost.
    for row_state in RUNNER.rows():
        row = layout.row(align=True)
        row.progress(factor=row_state.fraction, type="BAR", text=row_state.label)
        cancel = row.row(align=True)
        cancel.enabled = row_state.running
        cancel.operator("sam3d.cancel", text="", icon="X").task_uuid = row_state.task_uuid
    for call in list(background.CALLS.values()):
        row = layout.row(align=True)
        text(row, iface_("{}: waiting for Runware…").format(iface_(call.label)), "SORTTIME")
        row.operator("sam3d.cancel", text="", icon="X").task_uuid = call.id
    if bake.PROGRESS.get("active"):
        row = layout.row()
        row.progress(factor=bake.PROGRESS["fraction"], type="BAR", text=bake.PROGRESS["text"])


def _draw_masks_list(layout: bpy.types.UILayout, settings: Any) -> None:
    header = layout.row(align=True)
    count = len(settings.masks)
    header.label(text=iface_("Masks") + (f" ({count})" if count else ""), translate=False)
    header.operator("sam3d.mask_add", text="", icon="ADD")
    header.operator("sam3d.mask_remove", text="", icon="REMOVE")
    header.operator("sam3d.masks_load_folder", text="", icon="FILE_FOLDER")
    header.operator("sam3d.masks_split_label_map", text="", icon="COLOR")
    header.operator("sam3d.masks_clear", text="", icon="X")
    if count:
        layout.template_list("SAM3D_UL_masks", "", settings, "masks", settings, "active_mask_index", rows=3)


def _draw_views_list(layout: bpy.types.UILayout, settings: Any, engine: Engine) -> None:
    header = layout.row(align=True)
    count = len(settings.views)
    header.label(text=iface_("Other Views ({} of {})").format(count, engine.max_images - 1), translate=False)
    header.operator("sam3d.view_add", text="", icon="ADD")
    header.operator("sam3d.view_remove", text="", icon="REMOVE")
    if count:
        layout.template_list("SAM3D_UL_views", "", settings, "views", settings, "active_view_index", rows=2)


class SAM3D_UL_views(bpy.types.UIList):
    """Other photos of the object, sent after the photo to the engines that take several views."""

    def draw_item(  # type: ignore[no-untyped-def]
            self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0) -> None:
        layout.prop(item, "image", text="", icon="IMAGE_DATA")


class SAM3D_UL_masks(bpy.types.UIList):
    """The masks of the photo: ticked ones are sent at the next Reconstruct (and unticked once sent)."""

    def draw_item(  # type: ignore[no-untyped-def]
            self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0) -> None:
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        running = bool(item.task_uuid) and item.task_uuid in RUNNER.jobs
        record = RUNNER.record(item.task_uuid) if item.task_uuid and not running else None
        done = record is not None and record.status == "imported"
        row.prop(item, "image", text="", icon="TIME" if running else "CHECKMARK" if done else "IMAGE_ALPHA")
        row.operator("sam3d.mask_open", text="", icon="FILEBROWSER").index = index


# --- the Jobs panel -----------------------------------------------------------------------------------------

STATUS_ICONS = {"imported": "CHECKMARK", "failed": "ERROR", "cancelled": "CANCEL", "created": "TIME",
                "submitted": "TIME", "processed": "TIME", "downloaded": "IMPORT", "interrupted": "ERROR"}
MESSAGE_ICONS = {"ERROR": "ERROR", "WARNING": "ERROR", "INFO": "INFO"}


def status_words(task: TaskRecord) -> str:
    """A history row's status, for a person: a sent task not running here waits for Resume."""
    running = task.task_uuid in RUNNER.jobs
    if task.unfinished and not running:
        return iface_("sent, not imported: Resume fetches it")
    if running:
        return iface_("running")
    return iface_(task.status)


class _JobsPanel(_Sidebar):
    bl_label = "Jobs"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        if len(RUNNER.jobs) > 1:
            row = layout.row()
            row.label(text=iface_("{} running, {} waiting").format(RUNNER.active(), len(RUNNER.jobs) - RUNNER.active()),
                      translate=False)
            row.operator("sam3d.cancel", text="Cancel All", icon="X").task_uuid = ""
        unfinished = RUNNER.unfinished(max_age=2.0)  # the lock files read at most every 2 s, not at every redraw
        if unfinished:
            box = layout.box()
            text(box, iface_("{} job(s) were sent but never imported").format(len(unfinished)), "ERROR")
            box.operator("sam3d.resume", icon="PLAY").task_uuid = ""
        draw_money(layout, context)
        if RUNNER.messages and time.monotonic() - RUNNER.message_time < MESSAGE_SECONDS:
            box = layout.box()
            row = box.row()
            row.label(text="Messages")
            row.operator("sam3d.messages_clear", text="", icon="X", emboss=False)
            for level, message in list(RUNNER.messages)[-3:]:
                text(box, message, MESSAGE_ICONS.get(level, "INFO"))
        history = RUNNER.history
        if history is not None and history.broken:
            text(layout, iface_("{} broken journal line(s) skipped").format(history.broken), "INFO")
        layout.operator("sam3d.open_folder", icon="FILE_FOLDER").task_uuid = ""


class _HistoryPanel(_Sidebar):
    """The latest jobs of the result folder, this session's and earlier ones', each with what can be done."""

    bl_label = "History"
    RECENT = 8

    def draw(self, context: bpy.types.Context) -> None:
        history = RUNNER.history
        recent = history.recent(self.RECENT) if history is not None else []
        for task in recent:
            draw_task(self.layout.box(), task)
        if not recent:
            self.layout.label(text="No jobs yet")


def draw_money(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """This session's money (every paid request: settled, and held for those whose price is not known yet), and
    what the result folder's reconstructions cost over all sessions, which counts what this session holds too."""
    ledger = RUNNER.ledger
    col = layout.column(align=True)
    held = iface_(" + ${:.4f} held").format(ledger.reserved / 1e6) if ledger.reserved else ""
    text(col, iface_("This session: ${:.4f}{}").format(ledger.spent / 1e6, held), "FUND")
    unpriced = ledger.unreported.get("3dInference", 0) + ledger.reserved  # not in the journal's reported costs
    text(col, iface_("Reconstructions here, all sessions: ${:.4f}").format(
        RUNNER.total_cost() + unpriced / 1e6), "BLANK1")
    budget = preferences.get(context).session_budget
    if budget > 0:
        text(col, iface_("Spending Limit: ${:.4f}").format(budget), "BLANK1")


def draw_task(box: bpy.types.UILayout, task: TaskRecord) -> None:
    info = task.info
    col = box.column(align=True)
    text(col, f"{info.get('name', '?')}: {status_words(task)}", STATUS_ICONS.get(task.status, "DOT"))
    seeds = ", ".join(str(f.get("seed")) for f in task.files if f.get("seed")) or info.get("seed") or "random"
    when = time.strftime("%d %b %H:%M", time.localtime(task.time))
    text(col, when + " · " + iface_("seed {}").format(seeds) + (f" · ${task.cost:.4f}" if task.cost else ""),
         "BLANK1")
    text(col, f"{info.get('image', '')} · {info.get('mask', '')}", "BLANK1")
    if task.status in ("failed", "interrupted") and task.code:
        text(col, sentence_for(task.code), "ERROR")
    running = task.task_uuid in RUNNER.jobs
    row = box.row(align=True)
    if task.unfinished and not running:
        row.operator("sam3d.resume", text="Resume", icon="PLAY").task_uuid = task.task_uuid
    sub = row.row(align=True)
    sub.enabled = bool(task.files) and not running
    sub.operator("sam3d.reimport", text="Re-import", icon="IMPORT").task_uuid = task.task_uuid
    if not task.unfinished:
        sub = row.row(align=True)
        sub.enabled = not why_not_retry(task, task.task_uuid)  # the operator's own rule
        sub.operator("sam3d.retry", text="Retry", icon="FILE_REFRESH").task_uuid = task.task_uuid
    row.operator("sam3d.open_folder", text="", icon="FILE_FOLDER").task_uuid = task.task_uuid


# --- the sub-panels -----------------------------------------------------------------------------------------


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
            text(layout, iface_("Placement As in the Photo makes the photo's camera"), "INFO")
        else:
            draw_camera(layout, context, camera)
        layout.operator("sam3d.bake", icon="TEXTURE")



def draw_camera(layout: bpy.types.UILayout, context: bpy.types.Context, camera: bpy.types.Object) -> None:
    col = layout.column(align=True)
    lens = photo_camera.camera_data(camera).lens
    text(col, iface_("Camera {}: {:.1f} mm").format(camera.name, lens), "CAMERA_DATA")
    if context.scene is not None and context.scene.camera != camera:
        text(col, iface_("Not the scene's camera: Numpad 0 and F12 use another"), "INFO")
    implied = camera.get(schema.FOCAL_MM)
    if implied and abs(float(implied) - lens) > 0.05:
        text(col, iface_("The results' poses imply {:.1f} mm").format(float(implied)), "INFO")
    col.prop(camera.data, schema.LENS_LOCKED)
    fits = camera.get(schema.FIT) or {}
    for name in sorted(n for n in fits if n in bpy.data.objects):  # a deleted object is no fit
        text(col, iface_("{}: silhouette IoU {:.2f}").format(name, float(fits[name])))
    row = layout.row(align=True)
    row.operator("sam3d.relayout", icon="FILE_REFRESH")
    row.operator("sam3d.set_real_size", icon="DRIVER_DISTANCE")
    layout.operator("sam3d.composite", icon="NODE_COMPOSITING")


class _LibraryPanel(_Sidebar):
    bl_label = "Asset Library"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        _settings_column(layout, settings_of(context), ("batch_directory", "batch_library", "batch_engine",
                                                         "batch_target_size", "batch_triangle_budget", "batch_bake",
                                                         "batch_caption", "batch_max_cost"))
        layout.operator("sam3d.batch", icon="ASSET_MANAGER")
        for job in batch.ACTIVE:
            counts = job.counts()
            total = len(job.items)
            finished = total - counts["pending"]
            row = layout.row(align=True)
            row.progress(factor=finished / total if total else 1.0, type="BAR",
                         text=f"{finished}/{total} · {job.elapsed:.0f} s · ${job.cost():.4f}")
            if job.running:
                row.operator("sam3d.batch_cancel", text="", icon="X")
            shown = [i for i in job.items if i.status != "pending"][-12:]  # the latest: thousands do not fit
            for item in shown:
                icon = {"done": "CHECKMARK", "failed": "ERROR", "skipped": "FORWARD"}[item.status]
                text(layout, f"{item.name}: {iface_(item.status)}" + (f" ({item.reason})" if item.reason else ""),
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
        self.layout.operator("sam3d.bake", text="Bake Selected Now", icon="TEXTURE")
        col = self.layout.column()
        text(col, iface_("Model: {}").format(preferences.get(context).model))
        text(col, iface_("Output: URL, GLB (the only values the model allows)"))


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


classes = (SAM3D_UL_masks, SAM3D_UL_views, *_in_both_editors(_MainPanel, ""),
           *_in_both_editors(_JobsPanel, "_jobs", True),
           *_in_both_editors(_LayoutPanel, "_layout", True), *_in_both_editors(_LibraryPanel, "_library", True),
           *_in_both_editors(_AdvancedPanel, "_advanced", True), *_in_both_editors(_HistoryPanel, "_history", True))


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
