"""The masks of a photo in the real window: a list, a Box dragged over the photo, what one press sends."""

from __future__ import annotations

import bpy
from common import added, addon, connect, drawn, image, jobs, names, settings
from photo import editor_with_photo


def asked() -> int:
    return addon("operators.machinery.runner").RUNNER.count


def list_and_box(ui, **params):
    """Two masks in the list, sent with one press; the Mask field says it is not what is sent; a Box dragged
    over the photo adds a third mask, and the next press sends that one only."""
    connect(ui, params)
    editor, region, photo = yield from editor_with_photo(ui, params)
    settings().mask = image(params, "human_object/mask_0.png")
    for _ in range(2):
        bpy.ops.sam3d.mask_add()
    bpy.ops.ed.undo_push(message="Two masks in the list")
    texts = yield from drawn(ui, region)
    ui.record(mask_field_note=[t for t, _, _ in texts if "ticked" in t])
    before = names()
    button = yield from ui.find(region, "sam3d.reconstruct(")
    yield from ui.click(button)
    yield from ui.until(lambda: len(added(before)) == 2 and not jobs(), 90, "two objects")
    first_press = asked()
    ui.record(first_press=first_press, ticked_after=[m.enabled for m in settings().masks])
    # Box: its button, then a drag over the photo in the Image Editor, then Esc to end.
    yield from ui.click((yield from ui.find(region, "sam3d.box_mask(")))
    view = ui.region(editor, "WINDOW")
    x0, y0 = ui.center(view, 0.4, 0.35)
    x1, y1 = ui.center(view, 0.6, 0.65)
    yield from ui.drag((x0, y0), (x1, y1))
    yield from ui.until(lambda: len(settings().masks) == 3, 60, "the box's mask in the list")
    yield from ui.key("ESC", at=(x1, y1))
    yield from ui.shot("masks-box")
    ui.record(box_mask=settings().masks[2].image.name, box_ticked=settings().masks[2].enabled)
    yield from ui.click((yield from ui.find(region, "sam3d.reconstruct(")))
    yield from ui.until(lambda: len(added(before)) == 3 and not jobs(), 90, "the box's object")
    ui.record(second_press=asked() - first_press,
              collections=sorted({c.name for o in added(before) for c in o.users_collection}))


def same_mask_twice(ui, **params):
    """The same mask reconstructed twice lands in the one collection of its name, not in a new one each time."""
    connect(ui, params)
    region = yield from ui.sidebar("VIEW_3D")
    settings().image = image(params, "human_object/image.png")
    settings().mask = image(params, "human_object/mask_0.png")
    before = names()
    button = yield from ui.find(region, "sam3d.reconstruct(")
    for n in (1, 2):
        yield from ui.click(button)
        yield from ui.until(lambda n=n: len(added(before)) == n and not jobs(), 60, "imported")
    ui.record(collections=[c.name for o in added(before) for c in o.users_collection],
              scene_collections=[c.name for c in bpy.context.scene.collection.children])
