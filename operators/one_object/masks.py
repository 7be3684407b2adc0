"""The mask operators: the list of masks of a photo (`scene.sam3d.masks`: add, remove, clear, load a folder,
split a label map), a new black mask to paint, and a preview of the mask over the photo. Masks Runware
makes (Auto Mask, Box to Mask) are in auto_masks.py.

A folder of masks may hold plain masks (white = object) or cut-outs whose alpha is the mask (Meta's own
format); a file that is the photo itself is skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np
from bpy.props import StringProperty

from ... import preferences
from ...client.folders import walk
from ...client.photo_folder import IMAGE_SUFFIXES
from ...translations import rpt_
from ...utils import raster
from ..machinery import pixels
from ..machinery.checks import refuse, why_no_photo
from ..machinery.inputs import listed_masks, mark_made, pin_photo, settings_of, window_manager_of
from ..machinery.runner import Report

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems


def is_file_of(image: bpy.types.Image, path: Path) -> bool:
    """Whether `path` is the file `image` was read from: the same file, or a copy of it (same size and bytes)."""
    if not image.filepath or image.packed_file is not None:
        return False
    own = Path(bpy.path.abspath(image.filepath))
    try:
        if own.resolve() == path.resolve():
            return True
        if own.stat().st_size != path.stat().st_size:
            return False
        return _digest(own) == _digest(path)
    except OSError:
        return False


def _digest(path: Path) -> bytes:
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


# --- making masks in Blender -----------------------------------------------------------------------------


def mask_png(mask: np.ndarray) -> bytes:
    """The PNG of a (h, w) bool mask, white = object (a few kilobytes: the mask itself is freed)."""
    return raster.encode_png(np.where(mask, 255, 0).astype(np.uint8))


def new_mask_image(name: str, mask: np.ndarray) -> bpy.types.Image:
    """A Blender image of a (h, w) bool mask given top row first (white = object), packed as an 8-bit PNG:
    saved with the .blend, and small (never a float buffer of the photo's size)."""
    return packed_png(name, mask_png(mask))


def packed_png(name: str, png: bytes) -> bpy.types.Image:
    """An image whose pixels are the PNG bytes given, packed into the .blend (nothing written to disk); marked
    as the add-on's, so it is never taken for a photo."""
    image = mark_made(bpy.data.images.new(name, 1, 1), "mask")
    image.pack(data=png, data_len=len(png))
    image.source = "FILE"
    image.filepath_raw = f"//{bpy.path.clean_name(name)}.png"  # a name for the packed file only
    return image


def show(context: bpy.types.Context, image: bpy.types.Image) -> None:
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR":
        space.image = image


def label_codes(image: bpy.types.Image) -> np.ndarray:
    """(h, w) colour codes of a label map upright: its float pixels read once (Blender fills one array), coded
    band by band, so the peak is about 20 bytes per pixel (the floats, the codes), never a
    second float copy, an index per pixel or every mask at once."""
    w, h = image.size
    if not (w and h):
        raise pixels.MaskError(rpt_("it has no pixels (is its file missing?)"))
    buf = np.empty(w * h * 4, np.float32)  # Blender fills one array: read whole, then coded band by band
    stored: Any = image.pixels  # the stubs say float: it is a float array
    stored.foreach_get(buf)
    rows = buf.reshape(h, w, 4)
    codes = np.empty((h, w), np.int32)
    band = max(1, (1 << 18) // max(w, 1))  # 256k pixels: the temporaries of a band stay a few MB
    for y in range(0, h, band):
        rgb = rows[y:y + band, :, :3]
        if image.is_float:
            rgb = raster.linear_to_srgb(rgb)
        codes[y:y + band] = raster.colour_codes(raster.to_uint8(rgb))
    del buf, rows
    return raster.upright(codes[::-1], pixels.orientation_of(image))


PREVIEW = "SAM3D Mask Preview"


def show_preview(context: bpy.types.Context, report: Report) -> set[OperatorReturnItems]:
    """The photo with the active mask over it (the rest darkened and tinted), in its own image."""
    settings = settings_of(context)
    photo = pin_photo(context)
    if photo is None:
        return {"CANCELLED"}
    listed = listed_masks(settings)
    index = min(settings.active_mask_index, len(settings.masks) - 1)
    mask = (settings.masks[index].image if listed and index >= 0 else None) or settings.mask
    try:
        given = pixels.read_inputs(photo, mask, use_photo_alpha=settings.use_photo_alpha and not listed,
                                   max_megapixels=preferences.get(context).max_photo_megapixels)
    except pixels.MaskError as exc:
        report({"ERROR"}, str(exc))
        return {"CANCELLED"}
    shown = given.photo.astype(np.float32) / 255.0
    shown[~given.mask] *= 0.3  # what is not sent as the object, darkened
    shown[~given.mask, 0] += 0.25
    h, w = given.mask.shape
    preview = bpy.data.images.get(PREVIEW)
    if preview is None or tuple(preview.size) != (w, h):
        if preview is not None:
            bpy.data.images.remove(preview)
        preview = bpy.data.images.new(PREVIEW, w, h)
    mark_made(preview, "preview")
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :3] = shown
    preview.pixels.foreach_set(np.ascontiguousarray(rgba[::-1]).ravel())  # type: ignore[attr-defined]
    preview.update()
    show(context, preview)
    report({"INFO"}, rpt_("Mask covers {:.1%} of the photo.").format(given.mask.mean()))
    return {"FINISHED"}


class SAM3D_OT_mask_add(bpy.types.Operator):
    """Add the chosen mask (or an empty slot) to the list of masks"""

    bl_idname = "sam3d.mask_add"
    bl_label = "Add Mask"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        settings = settings_of(context)
        item = settings.masks.add()
        item.image = settings.mask
        settings.active_mask_index = len(settings.masks) - 1
        return {"FINISHED"}


class SAM3D_OT_mask_remove(bpy.types.Operator):
    """Remove the active mask from the list (the image stays in the file)"""

    bl_idname = "sam3d.mask_remove"
    bl_label = "Remove Mask"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return len(settings_of(context).masks) > 0

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        settings = settings_of(context)
        settings.masks.remove(settings.active_mask_index)
        settings.active_mask_index = min(settings.active_mask_index, len(settings.masks) - 1)
        return {"FINISHED"}


class SAM3D_OT_masks_clear(bpy.types.Operator):
    """Empty the list of masks (back to one mask)"""

    bl_idname = "sam3d.masks_clear"
    bl_label = "Clear Masks"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        settings_of(context).masks.clear()
        return {"FINISHED"}


class SAM3D_OT_masks_load_folder(bpy.types.Operator):
    """Add every image of a folder to the list of masks (plain masks or cut-outs whose alpha is the mask); the
    photo itself, when it is in that folder, is left out"""

    bl_idname = "sam3d.masks_load_folder"
    bl_label = "Load Folder of Masks"
    bl_options = {"REGISTER", "UNDO"}

    directory: StringProperty(subtype="DIR_PATH")  # type: ignore[valid-type]

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        photo = pin_photo(context)
        if photo is not None and photo.filepath and not self.directory:  # where the photo is: its masks are near
            self.directory = str(Path(bpy.path.abspath(photo.filepath)).parent) + "/"
        window_manager_of(context).fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        folder = Path(bpy.path.abspath(self.directory))
        if not folder.is_dir():
            self.report({"ERROR"}, rpt_("{} is not a folder.").format(folder))
            return {"CANCELLED"}
        settings = settings_of(context)
        photo = pin_photo(context)
        try:  # each real file once (a mask linked under two names is one mask, sent and paid once)
            files = walk(folder, IMAGE_SUFFIXES, recursive=False)[0].files
        except OSError as exc:
            self.report({"ERROR"}, rpt_("{} cannot be read ({}).").format(folder, exc.strerror or exc))
            return {"CANCELLED"}
        added = skipped = 0
        for path in files:
            if photo is not None and is_file_of(photo, path):
                skipped += 1
                continue
            try:
                image = bpy.data.images.load(str(path), check_existing=True)
            except RuntimeError:
                self.report({"WARNING"}, rpt_("Skipped {}: Blender cannot read it.").format(path.name))
                continue
            settings.masks.add().image = image
            added += 1
        if not added:
            self.report({"ERROR"}, rpt_("No mask images in {}.").format(folder))
            return {"CANCELLED"}
        settings.active_mask_index = len(settings.masks) - 1
        left_out = rpt_(" ({} is the photo: left out)").format(photo.name) if skipped and photo else ""
        self.report({"INFO"}, rpt_("Added {} masks.").format(added) + left_out)
        return {"FINISHED"}


class SAM3D_OT_mask_open(bpy.types.Operator):
    """Open an image file as the mask (or as a mask of the list). The Image Editor keeps showing the photo"""

    bl_idname = "sam3d.mask_open"
    bl_label = "Open Mask"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH")  # type: ignore[valid-type]
    filter_image: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]
    index: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="List Item", default=-1, options={"HIDDEN", "SKIP_SAVE"},
        description="The mask of the list to open into; -1: the Mask field")

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        photo = pin_photo(context)  # before anything else is shown
        if photo is not None and photo.filepath and not self.filepath:
            self.filepath = str(Path(bpy.path.abspath(photo.filepath)).parent) + "/"
        window_manager_of(context).fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        pin_photo(context)
        path = Path(bpy.path.abspath(self.filepath))
        try:
            image = bpy.data.images.load(str(path), check_existing=True)
        except RuntimeError:
            self.report({"ERROR"}, rpt_("Blender cannot read {} as an image.").format(path.name))
            return {"CANCELLED"}
        settings = settings_of(context)
        if 0 <= self.index < len(settings.masks):
            settings.masks[self.index].image = image
        else:
            settings.mask = image
        return {"FINISHED"}


class SAM3D_OT_mask_new(bpy.types.Operator):
    """A black mask of the photo's exact size, opened in the Image Editor: paint the object white"""

    bl_idname = "sam3d.mask_new"
    bl_label = "New Mask"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse(cls, why_no_photo(context))

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        photo = pin_photo(context)
        assert photo is not None
        try:
            w, h = pixels.image_size(photo)
            pixels.check_size(photo, w, h, preferences.get(context).max_photo_megapixels)
        except pixels.MaskError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        image = new_mask_image(f"{Path(photo.name).stem}_mask", np.zeros((h, w), bool))  # black, packed
        settings_of(context).mask = image
        show(context, image)
        space = getattr(context, "space_data", None)
        if space is not None and space.type == "IMAGE_EDITOR":
            space.ui_mode = "PAINT"
            tool_settings = context.tool_settings
            assert tool_settings is not None and tool_settings.image_paint is not None  # the scene's: always there
            brush = tool_settings.image_paint.brush
            if brush is not None:
                brush.color = (1.0, 1.0, 1.0)
        return {"FINISHED"}


class SAM3D_OT_masks_split_label_map(bpy.types.Operator):
    """Split a label map (one flat colour per object) into one mask per colour, added to the list"""

    bl_idname = "sam3d.masks_split_label_map"
    bl_label = "Split Label Map"
    bl_options = {"REGISTER", "UNDO"}

    image: StringProperty(name="Label Map", description="Image name; empty: the chosen mask")  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        settings = settings_of(context)
        pin_photo(context)
        label_map = bpy.data.images.get(self.image) if self.image else settings.mask
        if label_map is None:
            self.report({"ERROR"}, rpt_("Pick the label map as the mask (or name it), then split it."))
            return {"CANCELLED"}
        try:
            w, h = pixels.image_size(label_map)
            pixels.check_size(label_map, w, h, preferences.get(context).max_photo_megapixels)
            found = [mask_png(mask) for mask in raster.iter_label_masks(label_codes(label_map))]
        except (pixels.MaskError, ValueError) as exc:
            self.report({"ERROR"}, rpt_("Cannot split '{}': {}.").format(label_map.name, exc))
            return {"CANCELLED"}
        stem = Path(label_map.name).stem
        for n, png in enumerate(found):
            settings.masks.add().image = packed_png(f"{stem}_{n}", png)
        settings.active_mask_index = len(settings.masks) - 1
        self.report({"INFO"}, rpt_("{} masks from {}.").format(len(found), label_map.name))
        return {"FINISHED"} if found else {"CANCELLED"}


class SAM3D_OT_mask_preview(bpy.types.Operator):
    """Show the photo with the mask over it (the rest darkened), as it will be sent"""

    bl_idname = "sam3d.mask_preview"
    bl_label = "Preview Mask"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse(cls, why_no_photo(context))

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        return show_preview(context, self.report)


classes = (SAM3D_OT_mask_add, SAM3D_OT_mask_remove, SAM3D_OT_masks_clear, SAM3D_OT_masks_load_folder,
           SAM3D_OT_mask_open, SAM3D_OT_mask_new, SAM3D_OT_masks_split_label_map, SAM3D_OT_mask_preview)
