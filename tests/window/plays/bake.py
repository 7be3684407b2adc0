"""Bake to Texture in the real window: from either sidebar, with an Image Editor showing the photo, its modal run
and its Esc."""

from __future__ import annotations

import bpy
from common import added, addon, connect, image, jobs, names, settings
from photo import editor_with_photo


def _result(ui, params, editor_region, placement="CAMERA", variants=1):
    """A SAM 3D result of the photo in the editor, reconstructed with a click in the Image Editor's sidebar."""
    settings().mask = image(params, "human_object/mask_0.png")
    settings().placement = placement
    settings().num_results = variants
    before = names()
    yield from ui.click((yield from ui.find(editor_region, "sam3d.reconstruct(")))
    yield from ui.until(lambda: added(before) and not jobs(), 60, "the result imported")
    return [o for o in added(before) if o.type == "MESH"]


def _baked(objects):
    return [o.name for o in objects if o.get("sam3d_baked")]


def _after(ui, editor):
    with bpy.context.temp_override(window=ui.window, area=editor, region=ui.region(editor)):
        reason = addon("operators.machinery.checks").why_not_reconstruct(bpy.context)
    return {"editor": getattr(editor.spaces[0].image, "name", None), "reason": reason,
            "field": getattr(settings().image, "name", None)}


def from_sidebar(ui, **params):
    """Bake clicked in the 3D Viewport's or the Image Editor's sidebar (`params["where"]`), an Image Editor
    showing the photo all along."""
    connect(ui, params)
    editor, editor_region, photo = yield from editor_with_photo(ui, params)
    objects = yield from _result(ui, params, editor_region)
    region = editor_region if params["where"] == "IMAGE_EDITOR" else (yield from ui.sidebar("VIEW_3D"))
    yield from ui.open_panel(region, "sam3d.bake(")
    yield from ui.click((yield from ui.find(region, "sam3d.bake(")))
    yield from ui.until(lambda: addon("operators.bake").running() is None and _baked(objects) or
                        "Blender could not bake" in " ".join(ui.reports()), 120, "the bake ended")
    yield from ui.frames(6)
    yield from ui.shot(f"bake-from-{params['where'].lower()}")
    ui.record(baked=_baked(objects), reports=ui.reports(), **_after(ui, editor))


def without_camera(ui, **params):
    """Results placed on the 3D cursor (no photo camera): Bake is there; three objects bake one per step with a
    progress bar, and Esc pressed while the second bakes leaves the third as it was."""
    connect(ui, params)
    editor, editor_region, photo = yield from editor_with_photo(ui, params)
    objects = yield from _result(ui, params, editor_region, placement="CURSOR", variants=3)
    region = yield from ui.sidebar("VIEW_3D")
    yield from ui.open_panel(region, "sam3d.bake(")
    button = yield from ui.find(region, "sam3d.bake(")
    for obj in objects:
        obj.select_set(True)
    settings_progress = addon("operators.bake").PROGRESS
    yield from ui.click(button)
    yield from ui.until(lambda: _baked(objects), 120, "the first object baked")
    shown = dict(settings_progress)
    yield from ui.key("ESC", at=ui.center(ui.region(ui.area("VIEW_3D"), "WINDOW")))  # while the second bakes
    yield from ui.until(lambda: addon("operators.bake").running() is None, 60, "the bake stopped")
    yield from ui.frames(4)
    ui.record(baked=_baked(objects), objects=[o.name for o in objects], progress_shown=shown, reports=ui.reports())
