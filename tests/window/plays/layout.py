"""A scene laid out from a photo, in the default scene (which has a Camera of its own)."""

from __future__ import annotations

import bpy
from common import added, connect, drawn, image, jobs, names, settings


def default_scene(ui, **params):
    """Two masks of the painting As in the Photo: the photo's camera becomes the scene's (Numpad 0 looks
    through it), Re-layout can run, the Photo Layout panel shows its controls with the camera active, and a
    deleted object's fit leaves the panel."""
    connect(ui, params)
    region = yield from ui.sidebar("VIEW_3D")
    settings().image = image(params, "socrates/image.png")
    for name in ("0.png", "1.png"):
        settings().masks.add().image = image(params, f"socrates/{name}")
    settings().placement = "CAMERA"
    bpy.ops.ed.undo_push(message="Pick the photo and masks")
    before = names()
    yield from ui.click((yield from ui.find(region, "sam3d.reconstruct(")))
    yield from ui.until(lambda: len([o for o in added(before) if o.type == "MESH"]) == 2 and not jobs(), 90,
                        "both objects laid out")
    scene = bpy.context.scene
    camera = next(o for o in added(before) if o.type == "CAMERA")
    view = ui.area("VIEW_3D")
    yield from ui.key("NUMPAD_0", at=ui.center(ui.region(view, "WINDOW")))
    yield from ui.frames(4)
    ui.record(scene_camera=scene.camera.name, photo_camera=camera.name,
              looking_through=view.spaces[0].region_3d.view_perspective,
              relayout=ui.call(bpy.ops.sam3d.relayout.poll), fits=sorted(camera.get("sam3d_fit", {}).keys()))
    yield from ui.shot("layout-numpad-0")
    for obj in bpy.context.view_layer.objects:
        obj.select_set(False)
    camera.select_set(True)
    bpy.context.view_layer.objects.active = camera
    yield from ui.open_panel(region, "sam3d.relayout(")
    ui.record(camera_active_controls=True)
    meshes = sorted(o.name for o in added(before) if o.type == "MESH")
    bpy.data.objects.remove(bpy.data.objects[meshes[0]])
    texts = yield from drawn(ui, region)
    ui.record(iou_lines=[t for t, _, _ in texts if "IoU" in t], deleted=meshes[0])
    yield from ui.shot("layout-camera-active")
