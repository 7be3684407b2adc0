"""Every panel at Blender's default sidebar width, in both editors, with what a working session shows: what
must be read is drawn whole (the texts the add-on lays out fit their lines), and screenshots for a person."""

from __future__ import annotations

import bpy
from common import ADDON, added, connect, drawn, image, jobs, names, settings
from photo import editor_with_photo


def everything(ui, **params):
    connect(ui, params, session_budget=0.5, webhook_url="https://hooks.example.com/sam3d/results")
    editor, image_region, photo = yield from editor_with_photo(ui, params)
    settings().mask = image(params, "human_object/mask_0.png")
    before = names()
    yield from ui.click((yield from ui.find(image_region, "sam3d.reconstruct(")))
    yield from ui.until(lambda: added(before) and not jobs(), 60, "imported")
    settings().masks.add().image = image(params, "human_object/mask_0.png")
    settings().masks.add().image = image(params, "human_object/mask_0.png")
    view_region = yield from ui.sidebar("VIEW_3D")
    seen = {}
    for name, region in (("image-editor", image_region), ("3d-viewport", view_region)):
        for index, expect in ((2, "sam3d.exact_seed"), (1, "sam3d.batch("), (0, "sam3d.bake(")):
            yield from ui.open_panel(region, expect, index=index)  # the lowest first: the ones above stay put
        yield from ui.shot(f"readable-{name}")
        seen[name] = (yield from drawn(ui, region))
        seen[name + "-width"] = region.width
    ui.record(**seen)
    bpy.ops.screen.userpref_show(section="ADDONS")
    yield from ui.frames(6)
    bpy.context.window_manager.addon_search = "SAM 3D"
    bpy.ops.preferences.addon_expand(module=ADDON)
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            area.tag_redraw()
    yield from ui.frames(8)
    yield from ui.shot("readable-preferences")
