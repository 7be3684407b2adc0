"""Masks Runware makes (paid, reserved like every paid request): Auto Mask (the photo's main subject) and Box to
Mask (the object inside a box the user drags, or gives from a script in photo pixels).

Both ask Runware's background removal for the mask itself (RemBG's documented mask-only output); Box to Mask
sends only the box (plus a margin) cut out of the photo and pastes the answer back at the box's place in a
mask of the photo's size, nothing outside the box. The request runs in the background (`BackgroundCall`);
each result is a packed PNG image added to the photo's masks, with a preview over the photo.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import bpy
import numpy as np
from bpy.props import IntProperty

from ... import preferences
from ...client import RunwareClient, Sam3dError
from ...client.errors import Code
from ...client.http import Transport
from ...client.imagesize import dimensions
from ...client.runware import Cutout
from ...client.tasks import REMBG_MODEL
from ...translations import iface_, rpt_
from ...utils import raster
from ..machinery import pixels
from ..machinery.background import BackgroundCall
from ..machinery.checks import is_blocking, refuse, why_no_photo, why_offline
from ..machinery.inputs import pin_photo, settings_of, window_manager_of
from ..machinery.job_requests import network, reserve
from ..machinery.outcomes import tell
from ..machinery.runner import Report
from .masks import new_mask_image, packed_png, show_preview

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

MARGIN = 0.1  # around the box, as a fraction of its size: background removal needs some background
WORK_SIDE = 4096  # the photo is read at most this large to cut boxes from (memory stays bounded)


def remove_background(context: bpy.types.Context, label: str, png: bytes, expect: tuple[int, int],
                      done: Callable[[np.ndarray], None], report: Report, blocking: bool) -> set[OperatorReturnItems]:
    """Send `png` to Runware's background removal in the background; `done(mask)` gets the (h, w) bool mask of
    the answer, at `expect` (w, h), on the main thread. Reserved before anything is sent."""
    prefs = preferences.get(context)
    key, net = preferences.api_key(prefs), network(context)
    try:
        reservation = reserve(context, "removeBackground", REMBG_MODEL)
    except Sam3dError as exc:
        report({"ERROR"}, str(exc))
        return {"CANCELLED"}

    def work(call: BackgroundCall) -> Cutout:  # the worker: network only, no bpy
        transport = Transport(proxy=net["proxy"], ca_bundle=net["ca_bundle"], user_agent=net["user_agent"],
                              api_url=net["api_url"])
        try:
            client = RunwareClient(key, net["api_url"], timeout=net["request_timeout"], guard=call.guard,
                                   transport=transport, user_agent=net["user_agent"])
            call.sent = True
            return client.remove_background(png)
        finally:
            transport.close()

    def finished(cutout: Cutout) -> None:
        mask = mask_of_answer(cutout, expect)
        done(mask)

    def failed(error: Sam3dError) -> None:
        (report if blocking else tell)({"ERROR"} if error.code != Code.CANCELLED else {"INFO"}, str(error))

    call = BackgroundCall(label, work, finished, failed, seconds=prefs.request_timeout * 3, reservation=reservation)
    call.start(blocking)
    if not blocking:
        report({"INFO"}, rpt_("SAM 3D: {}…").format(label.lower()))
    return {"FINISHED"}


def mask_of_answer(cutout: Cutout, expect: tuple[int, int]) -> np.ndarray:
    """The (h, w) bool mask at `expect` from Runware's PNG: white = object for a mask, alpha for a cut-out.
    Sized from its header before Blender decodes it."""
    size = dimensions(cutout.png[:4096])
    if size is None or size[0] * size[1] > 64 * 2**20:
        raise Sam3dError(Code.BAD_RESPONSE, rpt_("The background removal returned an image this add-on cannot use."))
    image = packed_png("SAM3D answer", cutout.png)
    try:
        rgba = pixels.pixels_at(image, expect)
    finally:
        bpy.data.images.remove(image)
    if cutout.mask_only:
        return raster.luminance(rgba[..., :3]) >= 0.5
    return raster.mask_from_rgba(rgba)


# --- Box to Mask ---------------------------------------------------------------------------------------


@dataclass
class Box:
    """A box in photo pixels: x right, y down, from the top-left corner; right and bottom excluded."""

    xmin: int
    ymin: int
    xmax: int
    ymax: int

    def clamped(self, w: int, h: int) -> Box:
        x0, x1 = sorted((self.xmin, self.xmax))
        y0, y1 = sorted((self.ymin, self.ymax))
        return Box(max(0, x0), max(0, y0), min(w, x1), min(h, y1))

    @property
    def empty(self) -> bool:
        return self.xmax - self.xmin < 2 or self.ymax - self.ymin < 2

    def grown(self, margin: float, w: int, h: int) -> Box:
        dx = math.ceil((self.xmax - self.xmin) * margin)
        dy = math.ceil((self.ymax - self.ymin) * margin)
        return Box(self.xmin - dx, self.ymin - dy, self.xmax + dx, self.ymax + dy).clamped(w, h)

    def scaled(self, k: float) -> Box:
        return Box(math.floor(self.xmin * k), math.floor(self.ymin * k), math.ceil(self.xmax * k),
                   math.ceil(self.ymax * k))


def paste(mask_of_crop: np.ndarray, crop: tuple[float, float, float, float], box: Box,
          size: tuple[int, int]) -> np.ndarray:
    """A (h, w) mask of the photo's size holding the crop's mask where the box is, nothing elsewhere.
    `crop` (left, top, right, bottom) and `box` are in photo pixels; `mask_of_crop` covers the crop at any
    resolution."""
    w, h = size
    full = np.zeros((h, w), bool)
    ch, cw = mask_of_crop.shape
    left, top, right, bottom = crop
    ys = np.arange(box.ymin, box.ymax)
    xs = np.arange(box.xmin, box.xmax)
    rows = np.clip(np.floor((ys + 0.5 - top) * ch / (bottom - top)).astype(int), 0, ch - 1)
    cols = np.clip(np.floor((xs + 0.5 - left) * cw / (right - left)).astype(int), 0, cw - 1)
    full[box.ymin:box.ymax, box.xmin:box.xmax] = mask_of_crop[np.ix_(rows, cols)]
    return full


def box_mask(context: bpy.types.Context, box: Box, report: Report, blocking: bool) -> set[OperatorReturnItems]:
    """Cut the box (plus a margin) out of the photo, ask Runware for the mask of the object in it, and add that
    mask, of the photo's size, to the photo's masks."""
    photo = pin_photo(context)
    assert photo is not None
    limit = preferences.get(context).max_photo_megapixels
    try:
        w, h = pixels.image_size(photo)
        pixels.check_size(photo, w, h, limit)
    except pixels.MaskError as exc:
        report({"ERROR"}, str(exc))
        return {"CANCELLED"}
    box = box.clamped(w, h)
    if box.empty:
        report({"ERROR"}, rpt_("The box must lie on the photo ({}×{} pixels) and be at least 2 pixels wide and "
                               "high.").format(w, h))
        return {"CANCELLED"}
    crop = box.grown(MARGIN, w, h)
    k = min(1.0, WORK_SIDE / max(w, h))  # the photo as read: at most WORK_SIDE on its longer side
    work_size = (max(1, round(w * k)), max(1, round(h * k)))
    try:
        rgba = pixels.pixels_at(photo, work_size)
    except pixels.MaskError as exc:
        report({"ERROR"}, str(exc))
        return {"CANCELLED"}
    c = crop.scaled(k).clamped(*work_size)
    crop_in_photo = (c.xmin / k, c.ymin / k, c.xmax / k, c.ymax / k)
    cut = raster.to_uint8(rgba[c.ymin:c.ymax, c.xmin:c.xmax, :3])
    send = raster.fit_size(cut.shape[1], cut.shape[0])
    if send != (cut.shape[1], cut.shape[0]):
        cut = raster.resize(cut, send[1], send[0])
    settings = settings_of(context)
    stem = Path(photo.name).stem
    number = 1 + sum(1 for m in settings.masks if m.image is not None and m.image.name.startswith(f"{stem}_box_"))

    def done(mask: np.ndarray) -> None:
        full = paste(mask, crop_in_photo, box, (w, h))
        if not full.any():
            (report if blocking else tell)({"WARNING"}, rpt_("Runware found no object in the box: no mask was added."))
            return
        scene_settings = settings_of(bpy.context)
        item = scene_settings.masks.add()
        item.image = new_mask_image(f"{stem}_box_{number}", full)
        item.enabled = True
        scene_settings.active_mask_index = len(scene_settings.masks) - 1
        (report if blocking else tell)({"INFO"}, rpt_("SAM 3D: {} covers {:.1%} of the photo").format(
            item.image.name, full.mean()))
        show_preview(bpy.context, report if blocking else tell)

    return remove_background(context, "Box to Mask", raster.encode_png(cut), send, done, report, blocking)


class BoxGesture:
    """The drag, apart from the operator so tests can feed it events: press, drag, release gives a Box in
    photo pixels; Esc or right-click ends it. `to_view(x, y)` maps region pixels to the image's 0…1 frame."""

    def __init__(self, size: tuple[int, int], to_view: Callable[[int, int], tuple[float, float]]) -> None:
        self.size = size
        self.to_view = to_view
        self.start: tuple[int, int] | None = None
        self.end: tuple[int, int] | None = None
        self.finished = False

    @property
    def dragging(self) -> bool:
        return self.start is not None

    def on_event(self, kind: str, value: str, x: int, y: int) -> Box | None:
        if kind in {"ESC", "RIGHTMOUSE"} and value == "PRESS":
            self.finished = True
            self.start = None
            return None
        if kind == "LEFTMOUSE" and value == "PRESS":
            self.start = self.end = (x, y)
        elif kind == "MOUSEMOVE" and self.start is not None:
            self.end = (x, y)
        elif kind == "LEFTMOUSE" and value == "RELEASE" and self.start is not None:
            self.end = (x, y)
            box = self.box()
            self.start = self.end = None
            return box if not box.empty else None
        return None

    def box(self) -> Box:
        assert self.start is not None and self.end is not None
        w, h = self.size
        (u0, v0), (u1, v1) = self.to_view(*self.start), self.to_view(*self.end)
        return Box(round(min(u0, u1) * w), round((1 - max(v0, v1)) * h), round(max(u0, u1) * w),
                   round((1 - min(v0, v1)) * h)).clamped(w, h)


def _draw_box(gesture: BoxGesture) -> None:
    """The box being dragged, over the Image Editor."""
    if gesture.start is None or gesture.end is None:
        return
    import gpu
    from gpu_extras.batch import batch_for_shader

    (x0, y0), (x1, y1) = gesture.start, gesture.end
    shader = gpu.shader.from_builtin("UNIFORM_COLOR")
    batch = batch_for_shader(shader, "LINE_LOOP", {"pos": [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]})
    shader.uniform_float("color", (1.0, 0.8, 0.1, 1.0))
    batch.draw(shader)


class SAM3D_OT_auto_mask(bpy.types.Operator):
    """Make the mask of the photo's main subject with Runware's background removal (a paid request), shown over
    the photo before anything is reconstructed"""

    bl_idname = "sam3d.auto_mask"
    bl_label = "Auto Mask"
    bl_options = {"UNDO"}  # not REGISTER: a paid request must not run again from Repeat Last

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse(cls, why_offline(context) or why_no_photo(context))

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        photo = pin_photo(context)
        assert photo is not None
        try:
            sent = pixels.read_photo(photo, preferences.get(context).max_photo_megapixels)
        except pixels.MaskError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        name = photo.name
        blocking = is_blocking(self, context)
        report = self.report
        w, h = pixels.image_size(photo)

        def done(mask: np.ndarray) -> None:
            if mask.shape != (h, w):  # made at the size sent: the mask is the photo's size, like every mask
                mask = raster.resize(mask.astype(np.float32), h, w) >= 0.5
            image = new_mask_image(f"{Path(name).stem}_auto_mask", mask)
            scene_settings = settings_of(bpy.context)
            if len(scene_settings.masks):  # the list is what is sent: the new mask goes there, ticked
                item = scene_settings.masks.add()
                item.image, item.enabled = image, True
                scene_settings.active_mask_index = len(scene_settings.masks) - 1
            else:
                scene_settings.mask = image
            (report if blocking else tell)({"INFO"}, rpt_("SAM 3D: auto mask covers {:.1%} of the photo").format(
                mask.mean()))
            show_preview(bpy.context, report if blocking else tell)

        return remove_background(context, "Auto Mask", raster.encode_png(sent), (sent.shape[1], sent.shape[0]), done,
                                 self.report, blocking)


class SAM3D_OT_box_mask(bpy.types.Operator):
    """Drag a box around an object in the Image Editor: Runware makes the mask of the object in the box (a paid
    request), added to the photo's masks. Drag again for the next object; Esc or right-click to stop"""

    bl_idname = "sam3d.box_mask"
    bl_label = "Box to Mask"
    bl_options = {"UNDO"}  # not REGISTER: a paid request must not run again from Repeat Last

    xmin: IntProperty(name="Left", default=0, min=0, description="In photo pixels, from the left")  # type: ignore[valid-type]
    ymin: IntProperty(name="Top", default=0, min=0, description="In photo pixels, from the top")  # type: ignore[valid-type]
    xmax: IntProperty(name="Right", default=0, min=0)  # type: ignore[valid-type]
    ymax: IntProperty(name="Bottom", default=0, min=0)  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse(cls, why_offline(context) or why_no_photo(context))

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        return box_mask(context, Box(self.xmin, self.ymin, self.xmax, self.ymax), self.report,
                        is_blocking(self, context))

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        space = getattr(context, "space_data", None)
        if is_blocking(self, context) or space is None or space.type != "IMAGE_EDITOR" or space.image is None:
            if not (self.xmax or self.ymax):
                self.report({"ERROR"}, rpt_("Open the photo in the Image Editor and drag a box there, or give the "
                                            "box."))
                return {"CANCELLED"}
            return self.execute(context)
        photo = pin_photo(context)
        assert photo is not None
        try:
            size = pixels.image_size(photo)
        except pixels.MaskError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        region = context.region
        assert region is not None  # invoked from the Image Editor's region (checked above)

        def to_view(x: int, y: int) -> tuple[float, float]:
            u, v = region.view2d.region_to_view(x, y)
            return float(u), float(v)

        self._gesture = BoxGesture(size, to_view)
        self._draw = bpy.types.SpaceImageEditor.draw_handler_add(_draw_box, (self._gesture,), "WINDOW",
                                                                  "POST_PIXEL")
        window_manager_of(context).modal_handler_add(self)
        workspace = context.workspace
        assert workspace is not None  # a window's: the Image Editor is in one
        workspace.status_text_set(iface_("Box to Mask: drag a box around an object · Esc or right-click: done"))
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        if context.area is not None:
            context.area.tag_redraw()
        box = self._gesture.on_event(event.type, event.value, event.mouse_region_x, event.mouse_region_y)
        if box is not None:
            box_mask(context, box, self.report, blocking=False)
        if self._gesture.finished:
            bpy.types.SpaceImageEditor.draw_handler_remove(self._draw, "WINDOW")
            workspace = context.workspace
            assert workspace is not None  # the one the modal run started in
            workspace.status_text_set(None)
            return {"FINISHED"}
        return {"RUNNING_MODAL"} if self._gesture.dragging or event.type in {"LEFTMOUSE"} else {"PASS_THROUGH"}


classes = (SAM3D_OT_auto_mask, SAM3D_OT_box_mask)
