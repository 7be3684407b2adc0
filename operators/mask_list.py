"""The list of masks of a photo (`scene.sam3d.masks`): add, remove, clear, and load a folder of masks.

A folder of masks may hold plain masks (white = object) or cut-outs whose alpha is the mask (Meta's own
format); a file that is the photo itself is skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import bpy
from bpy.props import StringProperty

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".exr", ".tga"}


def _natural(path: Path) -> list[object]:
    """2.png before 10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class SAM3D_OT_mask_add(bpy.types.Operator):
    """Add the chosen mask (or an empty slot) to the list of masks"""

    bl_idname = "sam3d.mask_add"
    bl_label = "Add Mask"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.sam3d
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
        return len(context.scene.sam3d.masks) > 0

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.sam3d
        settings.masks.remove(settings.active_mask_index)
        settings.active_mask_index = min(settings.active_mask_index, len(settings.masks) - 1)
        return {"FINISHED"}


class SAM3D_OT_masks_clear(bpy.types.Operator):
    """Empty the list of masks (back to one mask)"""

    bl_idname = "sam3d.masks_clear"
    bl_label = "Clear Masks"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        context.scene.sam3d.masks.clear()
        return {"FINISHED"}


class SAM3D_OT_masks_load_folder(bpy.types.Operator):
    """Add every image of a folder to the list of masks (plain masks or cut-outs whose alpha is the mask)"""

    bl_idname = "sam3d.masks_load_folder"
    bl_label = "Load Folder of Masks"
    bl_options = {"REGISTER", "UNDO"}

    directory: StringProperty(subtype="DIR_PATH")  # type: ignore[valid-type]

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        folder = Path(bpy.path.abspath(self.directory))
        if not folder.is_dir():
            self.report({"ERROR"}, f"{folder} is not a folder.")
            return {"CANCELLED"}
        settings = context.scene.sam3d
        photo = settings.image
        photo_path = Path(bpy.path.abspath(photo.filepath)).resolve() if photo and photo.filepath else None
        files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural)
        added = 0
        for path in files:
            if photo_path is not None and path.resolve() == photo_path:
                continue
            try:
                image = bpy.data.images.load(str(path), check_existing=True)
            except RuntimeError:
                self.report({"WARNING"}, f"Skipped {path.name}: Blender cannot read it.")
                continue
            settings.masks.add().image = image
            added += 1
        if not added:
            self.report({"ERROR"}, f"No mask images in {folder}.")
            return {"CANCELLED"}
        settings.active_mask_index = len(settings.masks) - 1
        self.report({"INFO"}, f"Added {added} masks.")
        return {"FINISHED"}


classes = (SAM3D_OT_mask_add, SAM3D_OT_mask_remove, SAM3D_OT_masks_clear, SAM3D_OT_masks_load_folder)
