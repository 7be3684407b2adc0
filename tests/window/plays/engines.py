"""Another engine in the real window: picked with Ctrl+Wheel over the Engine menu, a setting ticked with a click,
the panel's price line, and the result landing with its PBR material."""

from __future__ import annotations

import bpy
from common import added, addon, connect, drawn, inputs, jobs, names, settings

VIEW = "VIEW_3D"


def pick_and_press(ui, **params):
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    inputs(params)
    menu = yield from ui.find(region, "sam3d.engine")
    yield from ui.move(*menu)
    # Blender's own: Ctrl+Wheel steps an enum menu, one item per notch (a wheel notch has no release)
    ui.window.event_simulate(type="WHEELDOWNMOUSE", value="PRESS", ctrl=True, x=menu[0], y=menu[1])
    yield from ui.until(lambda: settings().engine != "SAM3D", 10, "the engine changed")
    ui.record(engine=settings().engine)
    texts = [value for value, _, _ in (yield from drawn(ui, region))]
    ui.record(price=[t for t in texts if t.startswith("One press")])
    tick = yield from ui.find(region, "use_textureSize")
    yield from ui.click(tick)
    yield from ui.until(lambda: settings().engine_trellis2.use_textureSize, 10, "the setting ticked")
    yield from ui.shot("engines-trellis")
    before = names()
    yield from ui.click((yield from ui.find(region, "sam3d.reconstruct(")))
    yield from ui.until(lambda: added(before) and not jobs(), 60, "the object imported")
    yield from ui.frames(4)
    [obj] = [o for o in added(before) if o.type == "MESH"]
    nodes = sorted({n.type for n in obj.active_material.node_tree.nodes}) if obj.active_material else []
    ui.record(object=obj.name, nodes=nodes, placement=settings().placement,
              at_cursor=tuple(round(v, 3) for v in obj.matrix_world.translation) ==
              tuple(round(v, 3) for v in bpy.context.scene.cursor.location))
    yield from ui.shot("engines-imported")


def views(ui, **params):
    """Hunyuan 3D Pro chosen: Other Views shows under its settings; its + opens the File Browser, a photo of the
    object from another side is picked there, and Reconstruct sends the cut-out, then that view."""
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    inputs(params)
    settings().engine = "HUNYUAN_PRO"
    bpy.ops.ed.undo_push(message="Pick Hunyuan 3D Pro")
    yield from ui.frames(4)
    yield from ui.click((yield from ui.find(region, "sam3d.view_add(")))
    yield from ui.file_browser(params["view"])
    yield from ui.until(lambda: len(settings().views) == 1, 10, "the view listed")
    ui.record(views=[v.image.name for v in settings().views if v.image])
    yield from ui.shot("engines-views")  # "Other Views (1 of 7)" and its row, under the engine's settings
    before = names()
    yield from ui.click((yield from ui.find(region, "sam3d.reconstruct(")))
    yield from ui.until(lambda: added(before) and not jobs(), 60, "the object imported")
    ui.record(imported=[o.name for o in added(before) if o.type == "MESH"])


def pbr_bake(ui, **params):
    """TRELLIS.2's PBR result baked with the Photo Layout's Bake button: its metallic, roughness, normal and
    emission land in maps of their own beside the colour (shown in an Image Editor split off the viewport)."""
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    inputs(params)
    settings().engine = "TRELLIS2"
    settings().placement = "CURSOR"
    bpy.ops.ed.undo_push(message="Pick TRELLIS.2")
    yield from ui.frames(4)
    before = names()
    yield from ui.click((yield from ui.find(region, "sam3d.reconstruct(")))
    yield from ui.until(lambda: added(before) and not jobs(), 60, "the object imported")
    [obj] = [o for o in added(before) if o.type == "MESH"]
    yield from ui.open_panel(region, "sam3d.bake(")
    yield from ui.click((yield from ui.find(region, "sam3d.bake(")))
    yield from ui.until(lambda: addon("operators.bake").running() is None and obj.get("sam3d_baked")
                        or "could not bake" in " ".join(ui.reports()), 120, "the bake ended")
    bsdf = next(n for n in obj.active_material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    ui.record(baked=obj.get("sam3d_baked"), reports=ui.reports(),
              linked=sorted(i.name for i in bsdf.inputs if i.is_linked),
              images=sorted(i.name for i in bpy.data.images if i.users and i.name.startswith(f"{obj.name} Baked")))
    editor = yield from ui.split("IMAGE_EDITOR")  # the baked colour, as the artist opens it to look
    editor.spaces[0].image = bpy.data.images[f"{obj.name} Baked"]
    yield from ui.frames(10)
    yield from ui.shot("engines-pbr-baked")
