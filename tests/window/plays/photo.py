"""The photo is one explicit, visible choice: what the Image Editor shows is pinned in the Photo field at its
first use, and never an image the add-on itself shows or made."""

from __future__ import annotations

import bpy
from common import added, addon, connect, image, jobs, names, settings


def editor_with_photo(ui, params, relative="human_object/image.png"):
    """An Image Editor beside the 3D Viewport showing the photo, the Photo field left empty: a new user's start."""
    editor = yield from ui.split("IMAGE_EDITOR")
    photo = image(params, relative)
    editor.spaces[0].image = photo
    region = yield from ui.sidebar(editor)
    return editor, region, photo


def _state(ui, editor):
    with bpy.context.temp_override(window=ui.window, area=editor, region=ui.region(editor)):
        chosen = addon("operators.machinery.inputs").photo_of(bpy.context)
        reason = addon("operators.machinery.checks").why_not_reconstruct(bpy.context)
    shown = editor.spaces[0].image
    return {"field": getattr(settings().image, "name", None), "editor": getattr(shown, "name", None),
            "photo": getattr(chosen, "name", None), "mask": getattr(settings().mask, "name", None),
            "reason": reason}


def load_folder(ui, **params):
    """Load Folder of Masks on a folder that holds the photo itself beside its masks."""
    connect(ui, params)
    editor, region, photo = yield from editor_with_photo(ui, params)
    yield from ui.click((yield from ui.find(region, "sam3d.masks_load_folder(", columns=(0.75, 0.72, 0.78))))
    yield from ui.file_browser(params["folder"])
    ui.record(masks=[m.image.name for m in settings().masks if m.image], **_state(ui, editor))
    yield from ui.shot("photo-load-folder")


def preview(ui, **params):
    """Preview shows the darkened photo in the editor; the photo stays the photo, and Reconstruct sends it."""
    connect(ui, params)
    editor, region, photo = yield from editor_with_photo(ui, params)
    settings().mask = image(params, "human_object/mask_0.png")
    yield from ui.click((yield from ui.find(region, "sam3d.mask_preview(")))
    yield from ui.frames(6)
    ui.record(after_preview=_state(ui, editor))
    yield from ui.shot("photo-preview")
    before = names()
    yield from ui.click((yield from ui.find(region, "sam3d.reconstruct(")))
    yield from ui.until(lambda: added(before) and not jobs(), 60, "the object imported")
    ui.record(sent_photo=added(before)[0].get("sam3d_image"))


def mask_open(ui, **params):
    """Mask › Open in the Image Editor's sidebar (Blender 5.2 shows the opened image in the editor)."""
    connect(ui, params)
    editor, region, photo = yield from editor_with_photo(ui, params)
    yield from ui.click((yield from ui.find(region, "sam3d.mask_open(")))  # the Mask row's Open
    yield from ui.file_browser(params["mask"])
    ui.record(**_state(ui, editor))
    yield from ui.shot("photo-mask-open")
