"""Other views of the object (`scene.sam3d.views`): more photos of it from other sides, sent after the photo to
the engines that take several images (Hunyuan 3D Pro, Tripo, Rodin, Meshy). A view may be a plain photo (sent
whole) or a cut-out (sent cropped to its object, as the main image is); Reconstruct reads them (pixels.read_view).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import bpy
from bpy.props import BoolProperty, CollectionProperty, StringProperty

from ...client.engines import ENGINES
from ...translations import rpt_, tip_
from ..machinery import pixels
from ..machinery.checks import refuse
from ..machinery.inputs import pin_photo, settings_of, window_manager_of

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems


def why_no_views(context: bpy.types.Context) -> str:
    """Why the chosen engine takes no other views, or ''."""
    engine = ENGINES[settings_of(context).engine]
    if engine.input_kind == "images" and engine.max_images > 1:
        return ""
    return tip_("{} takes one image: choose Hunyuan 3D Pro, Tripo, Rodin or Meshy to send several views").format(
        engine.label)


class SAM3D_OT_view_add(bpy.types.Operator):
    """Add photos of the same object from other sides (front, back, left, right), sent with the photo"""

    bl_idname = "sam3d.view_add"
    bl_label = "Add Views"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    directory: StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    files: CollectionProperty(  # type: ignore[valid-type]
        type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    filter_image: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]
    filter_folder: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse(cls, why_no_views(context))

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        photo = pin_photo(context)
        if photo is not None and photo.filepath and not self.directory:  # its other views are likely beside it
            self.directory = str(Path(bpy.path.abspath(photo.filepath)).parent) + "/"
        window_manager_of(context).fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        folder = Path(bpy.path.abspath(self.directory)) if self.directory else None
        paths = [folder / f.name for f in self.files if f.name] if folder else []
        paths = paths or ([Path(bpy.path.abspath(self.filepath))] if self.filepath else [])
        settings = settings_of(context)
        engine = ENGINES[settings.engine]
        room = engine.max_images - 1 - len(settings.views)
        added = 0
        for path in paths:
            if added >= room:
                self.report({"WARNING"}, rpt_("{} takes at most {} images: the photo and {} other view(s); {} "
                                              "left out.").format(engine.label, engine.max_images,
                                                                  engine.max_images - 1, len(paths) - added))
                break
            known, image = set(bpy.data.images), None
            try:
                image = bpy.data.images.load(str(path), check_existing=True)
                pixels.image_size(image)  # its header read: Blender loads any file, and fails only when drawing it
            except (RuntimeError, pixels.MaskError):
                if image is not None and image not in known:
                    bpy.data.images.remove(image)
                self.report({"WARNING"}, rpt_("Skipped {}: Blender cannot read it as an image.").format(path.name))
                continue
            settings.views.add().image = image
            added += 1
        settings.active_view_index = len(settings.views) - 1
        return {"FINISHED"} if added else {"CANCELLED"}


class SAM3D_OT_view_remove(bpy.types.Operator):
    """Remove the active view from the list (the image stays in the file)"""

    bl_idname = "sam3d.view_remove"
    bl_label = "Remove View"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse(cls, "" if len(settings_of(context).views) else tip_("The list of other views is empty"))

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        settings = settings_of(context)
        settings.views.remove(min(max(settings.active_view_index, 0), len(settings.views) - 1))
        settings.active_view_index = min(settings.active_view_index, len(settings.views) - 1)
        return {"FINISHED"}


classes = (SAM3D_OT_view_add, SAM3D_OT_view_remove)
