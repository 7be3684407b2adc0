"""The "SAM 3D" sidebar tab, in the 3D Viewport and the Image Editor. Draws state only."""

from __future__ import annotations

import bpy

from .. import preferences
from ..operators import reconstruct


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
        col.prop(settings, "use_photo_alpha")
        col.prop(settings, "prompt")
        row = col.row(heading="Seed")
        row.prop(settings, "use_random_seed", text="Random")
        sub = row.row()
        sub.enabled = not settings.use_random_seed
        sub.prop(settings, "seed", text="")
        col.prop(settings, "num_results")
        col.prop(settings, "placement")

        reason = reconstruct.why_not(context)
        big = layout.row()
        big.scale_y = 1.5
        big.operator("sam3d.reconstruct", icon="MESH_MONKEY")
        if reason:
            layout.label(text=reason, icon="INFO")

        for job_id, running in list(reconstruct.RUNNING.items()):
            box = layout.box()
            row = box.row()
            row.progress(factor=running.job.fraction, type="BAR", text=running.label)
            row.operator("sam3d.cancel", text="", icon="X").job_id = job_id


class _AdvancedPanel(_Sidebar):
    bl_label = "Advanced"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.sam3d
        layout.use_property_split = True
        layout.use_property_decorate = False
        col = layout.column()
        col.prop(settings, "delivery_method")
        col.prop(settings, "ttl")
        col.prop(settings, "upload_endpoint")
        col.prop(settings, "webhook_url")
        col.separator()
        col.label(text=f"Model: {preferences.get(context).model}")
        col.label(text="Output: URL, GLB (the only values the model allows)")


class SAM3D_PT_view3d(_MainPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_idname = "SAM3D_PT_view3d"


class SAM3D_PT_image(_MainPanel, bpy.types.Panel):
    bl_space_type = "IMAGE_EDITOR"
    bl_idname = "SAM3D_PT_image"


class SAM3D_PT_view3d_advanced(_AdvancedPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_parent_id = "SAM3D_PT_view3d"


class SAM3D_PT_image_advanced(_AdvancedPanel, bpy.types.Panel):
    bl_space_type = "IMAGE_EDITOR"
    bl_parent_id = "SAM3D_PT_image"


classes = (SAM3D_PT_view3d, SAM3D_PT_image, SAM3D_PT_view3d_advanced, SAM3D_PT_image_advanced)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
