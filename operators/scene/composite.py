"""Composite over Photo: render a photo's camera and see its reconstructed objects standing in the photo,
with the shadows they cast on its ground.

`set_up_composite(context, camera)` does it for one *photo camera* (a camera with `sam3d_photo` = the
photo's image name; the photo's objects carry `sam3d_image` = the same name):

- **Shadow catcher**: a plane named "<photo stem> Shadow Catcher" (`is_shadow_catcher`, casting no shadow
  itself, drawn as wire so the viewport still shows the photo behind it) at the ground height, covering the
  camera's view of the ground out to twice the farthest depth of the photo's objects (from the camera's
  frustum, `camera.data.view_frame(scene=scene)`), and the objects' own footprint. It carries
  `sam3d_shadow_catcher` = the photo's name and is reused (moved, resized) when run again.
- **Ground height**: the lowest point of the photo's objects when it is below `GROUND_TOLERANCE` (objects
  stand on z = 0, posed ones may float a little or sink), else z = 0 (objects that all float higher, such as
  a hanging lamp, do not lift the ground).
- **Render**: Cycles, transparent film, the photo's size at 100 %, the "Standard" view transform with no
  look (AgX or Filmic would tone-map the photo itself: with Standard the photo comes out as it went in), and
  the view layer's Shadow Catcher pass off: then Cycles puts the catcher's shadows in the Combined pass, as
  black with the shadow's strength as alpha, next to the objects themselves.
- **Compositor**: the photo (scaled to the render size) with the render laid over it (Alpha Over): objects
  and shadows in one go; everywhere else the render is transparent and the photo shows unchanged. (With the
  Shadow Catcher pass on, the photo would be multiplied by that pass instead: it adds the light the objects
  bounce onto the ground, lit by a guessed light, and its noise reaches all the ground in view.) Every node
  made here is named "SAM3D …"; a second run reuses them and leaves every other node alone:
  - Blender 4.x: the scene's own tree (`scene.use_nodes`, `scene.node_tree`), output to its Composite node
    (the one already there, or "SAM3D Composite");
  - Blender 5.0–5.2: the node group `scene.compositing_node_group` (one is made when there is none), output
    to its Group Output;
  - Blender 5.3+: a compositor effect of its own in `scene.compositor_effects`, whose Group Input is the
    render (or what the effects before it made of it): that is what is laid over the photo, so effects
    stacked before it still apply.
- **Light**: the photo's lighting is unknown, so none is added when the scene has a light or a world. With
  neither, the objects would render black: a sun ("SAM3D Sun", 2.5 W/m², soft 10° disc, 50° high, from
  behind the camera and a little to its left, so shadows fall away and to the right where the camera
  sees them) and a grey world ("SAM3D World", 0.25) for the shadow sides are added.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ...translations import rpt_, tip_
from ...utils import schema
from ..machinery import pixels
from ..machinery.importing import mesh_of
from ..machinery.inputs import scene_of
from .photo_camera import camera_data, camera_of

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

PREFIX = "SAM3D "  # every compositor node (and the node group, effect, sun and world) this module makes
GROUND_TOLERANCE = 0.05  # objects whose lowest point is below this stand on the ground (see module doc)
DEPTH_FACTOR = 2.0  # the catcher reaches this many times the objects' farthest depth
EMPTY_DEPTH = 20.0  # the depth it reaches when the photo has no objects (yet)
MARGIN = 0.05  # and a little more on every side, as a fraction of its size
SUN_STRENGTH, SUN_ANGLE, SUN_ELEVATION, SUN_TURN = 2.5, math.radians(10.0), math.radians(50.0), math.radians(-30.0)
WORLD_GREY = 0.25
EFFECT_NAME = "SAM3D Composite over Photo"
GEOMETRY = {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES", "POINTCLOUD", "VOLUME"}


# --- which photo -------------------------------------------------------------------------------------------

def why_not(context: bpy.types.Context) -> str:
    """Why Composite over Photo cannot run now, or ''."""
    camera = camera_of(context)  # the add-on's one rule for which camera is the photo's
    if camera is None:
        return tip_("No photo camera: make a SAM 3D photo's camera the scene camera, or select an object "
                    "laid out As in the Photo")
    if bpy.data.images.get(camera[schema.PHOTO]) is None:
        return tip_("The photo “{}” of camera “{}” is not in this file: load it again").format(
            camera[schema.PHOTO], camera.name)
    return ""


# --- geometry ----------------------------------------------------------------------------------------------

def photo_objects(scene: bpy.types.Scene, photo: str) -> list[bpy.types.Object]:
    return [o for o in scene.objects if o.get(schema.IMAGE) == photo and not o.get(schema.SHADOW_CATCHER)]


def _points(objects: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph) -> np.ndarray:
    """World-space points of the objects and their children: every vertex of a mesh (modifiers applied),
    the bounding box corners of other geometry. (n, 3)."""
    seen: set[str] = set()
    chunks = []
    for root in objects:
        for obj in [root, *root.children_recursive]:
            if obj.name in seen or obj.type not in GEOMETRY:
                continue
            seen.add(obj.name)
            evaluated = obj.evaluated_get(depsgraph)
            matrix = np.array(evaluated.matrix_world, dtype=np.float64)
            if obj.type == "MESH":
                mesh = evaluated.to_mesh()
                try:
                    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
                    mesh.vertices.foreach_get("co", co)
                finally:
                    evaluated.to_mesh_clear()
                local = co.reshape(-1, 3).astype(np.float64)
            else:
                local = np.array([tuple(c) for c in evaluated.bound_box], dtype=np.float64)
            if len(local):
                chunks.append(local @ matrix[:3, :3].T + matrix[:3, 3])
    return np.concatenate(chunks) if chunks else np.zeros((0, 3))


def ground_height(points: np.ndarray) -> float:
    """The lowest point when it is below GROUND_TOLERANCE (the objects stand, or nearly, on it), else 0."""
    if not len(points):
        return 0.0
    lowest = float(points[:, 2].min())
    return lowest if lowest < GROUND_TOLERANCE else 0.0


def farthest_depth(camera: bpy.types.Object, points: np.ndarray) -> float:
    """The largest distance along the camera's view axis of any point in front of it (0 without any)."""
    if not len(points):
        return 0.0
    inverse = np.array(camera.matrix_world.inverted(), dtype=np.float64)
    depth = -(points @ inverse[2, :3] + inverse[2, 3])  # the camera looks down its local -Z
    return float(max(depth.max(), 0.0))


def ground_footprint(scene: bpy.types.Scene, camera: bpy.types.Object, ground: float,
                     depth: float) -> np.ndarray:
    """Where the camera's view, cut at `depth`, meets the ground plane z = `ground`: (n, 2) world XY points
    whose convex hull is that area (empty when the camera sees no ground within `depth`)."""
    data = camera_data(camera)
    frame = [c.copy() for c in data.view_frame(scene=scene)]
    if data.type == "ORTHO":  # parallel rays from the frame's corners
        near = [Vector((c.x, c.y, 0.0)) for c in frame]
        far = [Vector((c.x, c.y, -depth)) for c in frame]
    else:  # rays from the camera's centre through the frame's corners
        near = [Vector((0.0, 0.0, 0.0))] * 4
        far = [c * (depth / max(-c.z, 1e-9)) for c in frame]
    world = camera.matrix_world
    near, far = [world @ p for p in near], [world @ p for p in far]
    edges = [(near[i], far[i]) for i in range(4)]
    edges += [(far[i], far[(i + 1) % 4]) for i in range(4)] + [(near[i], near[(i + 1) % 4]) for i in range(4)]
    points = []
    for a, b in edges:
        da, db = a.z - ground, b.z - ground
        if abs(da) < 1e-9:
            points.append((a.x, a.y))
        if da * db < 0.0:
            t = da / (da - db)
            p = a.lerp(b, t)
            points.append((p.x, p.y))
    return np.array(points, dtype=np.float64).reshape(-1, 2)


def catcher_rectangle(scene: bpy.types.Scene, camera: bpy.types.Object,
                      points: np.ndarray, ground: float) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) world XY corners of the shadow catcher: the camera's view of the ground out to
    DEPTH_FACTOR × the objects' farthest depth, and the objects' own footprint, with a margin."""
    far = farthest_depth(camera, points)
    depth = DEPTH_FACTOR * far if far > 0.0 else EMPTY_DEPTH
    xy = ground_footprint(scene, camera, ground, depth)
    if len(points):
        xy = np.concatenate([xy, points[:, :2]])
    if not len(xy):  # the camera sees no ground and there is no object: a square in front of it
        origin = camera.matrix_world.translation
        xy = np.array([[origin.x - depth, origin.y - depth], [origin.x + depth, origin.y + depth]])
    low, high = xy.min(axis=0), xy.max(axis=0)
    margin = MARGIN * max(float((high - low).max()), 1.0)
    return low - margin, high + margin


# --- the scene ---------------------------------------------------------------------------------------------

def shadow_catcher(scene: bpy.types.Scene, photo: str) -> tuple[bpy.types.Object, bool]:
    """The photo's shadow catcher in the scene (or one left in the file in no collection, linked back), or a
    new one; and whether it is new."""
    orphans = [o for o in bpy.data.objects if not o.users_collection]
    for obj in [*scene.objects, *orphans]:
        if obj.get(schema.SHADOW_CATCHER) == photo and obj.type == "MESH":
            if scene.objects.get(obj.name) is None:
                scene.collection.objects.link(obj)
            return obj, False
    name = f"{Path(photo).stem} Shadow Catcher"
    obj = bpy.data.objects.new(name, bpy.data.meshes.new(name))
    obj[schema.SHADOW_CATCHER] = photo
    scene.collection.objects.link(obj)
    return obj, True


def shape_catcher(obj: bpy.types.Object, low: np.ndarray, high: np.ndarray, ground: float) -> None:
    """One quad from `low` to `high` (world XY) at z = `ground`, origin at its centre."""
    centre, half = (low + high) / 2.0, (high - low) / 2.0
    mesh = mesh_of(obj)
    mesh.clear_geometry()
    hx, hy = float(half[0]), float(half[1])
    mesh.from_pydata([(-hx, -hy, 0.0), (hx, -hy, 0.0), (hx, hy, 0.0), (-hx, hy, 0.0)], [], [(0, 1, 2, 3)])
    mesh.update()
    obj.parent = None
    obj.matrix_world = Matrix.Translation((float(centre[0]), float(centre[1]), ground))
    obj.is_shadow_catcher = True
    obj.visible_shadow = False  # it receives shadows, casts none
    obj.hide_render = False
    obj.display_type = "WIRE"  # the viewport still shows the photo behind the camera's view of the ground


def add_default_light(scene: bpy.types.Scene, camera: bpy.types.Object,
                      target: Vector) -> tuple[bpy.types.Object | None, bpy.types.World | None]:
    """A sun and a grey world when the scene has neither a light nor a world (see the module doc)."""
    if scene.world is not None or any(o.type == "LIGHT" for o in scene.objects):
        return None, None
    forward = camera.matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0))
    heading = Vector((forward.x, forward.y, 0.0))
    if heading.length < 1e-6:  # a camera looking straight down
        heading = camera.matrix_world.to_3x3() @ Vector((0.0, 1.0, 0.0))
        heading.z = 0.0
    heading = Matrix.Rotation(SUN_TURN, 3, "Z") @ heading.normalized()
    direction = heading * math.cos(SUN_ELEVATION) + Vector((0.0, 0.0, -math.sin(SUN_ELEVATION)))
    data: Any = bpy.data.lights.new(f"{PREFIX}Sun", "SUN")
    data.energy, data.angle = SUN_STRENGTH, SUN_ANGLE
    sun = bpy.data.objects.new(f"{PREFIX}Sun", data)
    sun.matrix_world = Matrix.Translation(target - direction * 10.0) @ \
        direction.to_track_quat("-Z", "Y").to_matrix().to_4x4()
    scene.collection.objects.link(sun)
    world = bpy.data.worlds.new(f"{PREFIX}World")
    world.color = (WORLD_GREY,) * 3  # Blender 4.x: a world without nodes renders its colour
    if world.node_tree is not None:  # Blender 5.x: a new world has a Background node
        for node in world.node_tree.nodes:
            if node.type == "BACKGROUND":
                color: Any = node.inputs["Color"]
                color.default_value = (WORLD_GREY, WORLD_GREY, WORLD_GREY, 1.0)
    scene.world = world
    return sun, world


def set_render(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, size: tuple[int, int]) -> None:
    render = scene.render
    render.engine = "CYCLES"  # type: ignore[assignment]  # the stubs know only the engines of their build
    render.film_transparent = True
    render.resolution_x, render.resolution_y = size
    render.resolution_percentage = 100
    render.use_compositing = True
    view_settings: Any = scene.view_settings  # Any: the stubs list no view transform or look (OCIO defines them)
    view_settings.view_transform = "Standard"
    view_settings.look = "None"
    # Without the Shadow Catcher pass, Cycles puts the catcher's shadows in the Combined pass (a black matte:
    # alpha = how much light the objects take away), which is what the compositor lays over the photo.
    cycles = view_layer.cycles
    assert cycles is not None  # the Cycles add-on's settings (never None: missing, reading them raises)
    cycles.use_pass_shadow_catcher = False


# --- the compositor ----------------------------------------------------------------------------------------

def _quietly(obj: object, name: str, value: object = None, *, read: bool = False) -> object:
    """Get or set a property Blender 5.x marks as deprecated (DeprecationWarning), without the warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if read:
            return getattr(obj, name)
        setattr(obj, name, value)
        return value


def _socket(sockets: Any, *keys: str | int) -> Any:
    """The first socket matching a key: an identifier, a name or an index (Blender versions differ)."""
    for key in keys:
        if isinstance(key, int):
            if key < len(sockets):
                return sockets[key]
            continue
        for socket in sockets:
            if socket.identifier == key:
                return socket
        for socket in sockets:
            if socket.name == key:
                return socket
    raise KeyError(f"no socket {keys} in {[s.identifier for s in sockets]}")


def _node(tree: bpy.types.NodeTree, kind: str, name: str, location: tuple[float, float],
          wanted: set[str]) -> Any:
    """Our node `name` of type `kind`: the one already there, else a new one."""
    node: Any = tree.nodes.get(name)
    if node is not None and node.bl_idname != kind:
        tree.nodes.remove(node)
        node = None
    if node is None:
        node = tree.nodes.new(kind)
        node.name = name
        node.label = name[len(PREFIX):]
        node.location = location
    wanted.add(node.name)
    return node


def _set_menu(node: bpy.types.Node, socket: str, value: str, prop: str, prop_value: str) -> None:
    """A choice that is a menu input socket in Blender 5.x and a node property in 4.x."""
    if socket in {s.identifier for s in node.inputs}:
        _socket(node.inputs, socket).default_value = value
    else:
        setattr(node, prop, prop_value)


def _origin(tree: bpy.types.NodeTree) -> tuple[float, float]:
    """Where our nodes go: below the user's nodes."""
    theirs = [n for n in tree.nodes if not n.name.startswith(PREFIX)]
    if not theirs:
        return 0.0, 0.0
    return min(n.location.x for n in theirs), min(n.location.y for n in theirs) - 500.0


def build_nodes(tree: bpy.types.NodeTree, scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer,
                photo: bpy.types.Image, foreground: Any) -> tuple[set[str], Any]:
    """Our nodes in `tree`: the photo, scaled to the render size, with the render laid over it (Alpha Over;
    the render is premultiplied, as Cycles makes it). `foreground` is the render's socket (None: the Image of
    a Render Layers node of ours). Returns the names of our nodes and the Alpha Over node, which the caller
    links to the tree's output. Stale nodes of ours (named "SAM3D …" but not wanted now) are removed."""
    wanted: set[str] = set()
    x, y = _origin(tree)
    if foreground is None:
        layers = _node(tree, "CompositorNodeRLayers", f"{PREFIX}Render Layers", (x, y), wanted)
        layers.scene = scene
        layers.layer = view_layer.name
        foreground = _socket(layers.outputs, "Image")
    image = _node(tree, "CompositorNodeImage", f"{PREFIX}Photo", (x, y - 350), wanted)
    image.image = photo
    scale = _node(tree, "CompositorNodeScale", f"{PREFIX}Photo to Render Size", (x + 250, y - 350), wanted)
    _set_menu(scale, "Type", "Render Size", "space", "RENDER_SIZE")
    _set_menu(scale, "Frame Type", "Stretch", "frame_method", "STRETCH")
    over = _node(tree, "CompositorNodeAlphaOver", f"{PREFIX}Render over Photo", (x + 500, y - 150), wanted)
    # 5.x names them Background and Foreground; 4.x has Fac, Image (background), Image (foreground).
    background, front = _socket(over.inputs, "Background", 1), _socket(over.inputs, "Foreground", 2)
    _socket(over.inputs, "Fac", "Factor", 0).default_value = 1.0
    tree.links.new(_socket(image.outputs, "Image"), _socket(scale.inputs, "Image"))
    tree.links.new(_socket(scale.outputs, "Image"), background)
    tree.links.new(foreground, front)
    for node in list(tree.nodes):
        if node.name.startswith(PREFIX) and node.name not in wanted and node.bl_idname not in {
                "CompositorNodeComposite", "NodeGroupOutput", "NodeGroupInput"}:
            tree.nodes.remove(node)
    return wanted, over


def _new_group(name: str) -> bpy.types.NodeTree:
    """Our compositor node group: one of ours left unused in the file, or a new one."""
    for tree in bpy.data.node_groups:
        if tree.get(schema.COMPOSITE) and tree.bl_idname == "CompositorNodeTree" and tree.users == 0:
            return tree
    tree = bpy.data.node_groups.new(name, "CompositorNodeTree")
    tree[schema.COMPOSITE] = True
    return tree


def _color_output(tree: bpy.types.NodeTree, wanted: set[str]) -> bpy.types.NodeSocket:
    """The tree's Group Output's first colour input (the group's result), made when missing."""
    interface = tree.interface
    assert interface is not None  # a node group's
    sockets = [cast(bpy.types.NodeTreeInterfaceSocket, i) for i in interface.items_tree if i.item_type == "SOCKET"]
    outputs = [i for i in sockets if i.in_out == "OUTPUT"]
    if not any(i.socket_type == "NodeSocketColor" for i in outputs):
        interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    nodes: list[Any] = [n for n in tree.nodes if n.bl_idname == "NodeGroupOutput"]
    node = next((n for n in nodes if n.is_active_output), nodes[0] if nodes else None)
    if node is None:
        node = tree.nodes.new("NodeGroupOutput")
        node.name = f"{PREFIX}Group Output"
        node.location = (1200.0, 0.0)
    if node.name.startswith(PREFIX):
        wanted.add(node.name)
    return next(s for s in node.inputs if s.bl_idname == "NodeSocketColor" or s.type == "RGBA")


def set_up_compositor(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer,
                      photo: bpy.types.Image) -> tuple[bpy.types.NodeTree, set[str]]:
    """Our nodes in the scene's compositor, whichever API this Blender has; (the tree, our node names)."""
    if hasattr(scene, "compositor_effects"):  # Blender 5.3+: a stack of effects, each a node group
        effects = scene.compositor_effects
        effect = next((e for e in effects if e.node_group is not None and e.node_group.get(schema.COMPOSITE)),
                      None)
        if effect is None:
            effect = effects.new(name=EFFECT_NAME)
        if effect.node_group is None or not effect.node_group.get(schema.COMPOSITE):
            effect.node_group = _new_group(EFFECT_NAME)
        effect.enable_for_render = True
        tree = effect.node_group
        if hasattr(tree, "allow_usage_in_scene_compositor_effect"):
            tree.allow_usage_in_scene_compositor_effect = True
        inputs = [i for i in tree.interface.items_tree if i.item_type == "SOCKET" and i.in_out == "INPUT"]
        if not any(i.socket_type == "NodeSocketColor" for i in inputs):
            tree.interface.new_socket(name="Image", in_out="INPUT", socket_type="NodeSocketColor")
        wanted: set[str] = set()
        group_input = _node(tree, "NodeGroupInput", f"{PREFIX}Group Input", (-300.0, 0.0), wanted)
        render = next(s for s in group_input.outputs if s.bl_idname == "NodeSocketColor" or s.type == "RGBA")
        names, over = build_nodes(tree, scene, view_layer, photo, render)
        grouped = True
    elif hasattr(scene, "compositing_node_group"):  # Blender 5.0–5.2: one node group
        tree = _quietly(scene, "compositing_node_group", read=True)
        if tree is None:
            tree = _new_group(EFFECT_NAME)
            _quietly(scene, "compositing_node_group", tree)
        if not _quietly(scene, "use_nodes", read=True):
            _quietly(scene, "use_nodes", True)
        wanted = set()
        names, over = build_nodes(tree, scene, view_layer, photo, None)
        grouped = True
    else:  # Blender 4.x: the scene's own tree, output to a Composite node
        scene.use_nodes = True
        tree = scene.node_tree  # type: ignore[attr-defined]  # gone from the 5.x stubs
        wanted = set()
        names, over = build_nodes(tree, scene, view_layer, photo, None)
        grouped = False
    if grouped:
        output = _color_output(tree, wanted)
    else:
        composites = [n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"]
        node = tree.nodes.get(f"{PREFIX}Composite") or (composites[0] if composites else None)
        if node is None:
            node = tree.nodes.new("CompositorNodeComposite")
            node.name, node.label = f"{PREFIX}Composite", "Composite"
            node.location = (over.location.x + 300.0, over.location.y)
        if node.name.startswith(PREFIX):
            wanted.add(node.name)
        output = _socket(node.inputs, "Image")
    tree.links.new(_socket(over.outputs, "Image"), output)
    return tree, names | wanted


# --- all of it ---------------------------------------------------------------------------------------------

def set_up_composite(context: bpy.types.Context, camera: bpy.types.Object) -> dict:
    """Make rendering `camera` (a photo camera) show the photo's objects over the photo, with their shadows.
    Returns what it did: photo (image name), camera, objects (the photo's), catcher (the plane),
    catcher_created, ground (its height), size (the render's), node_tree, nodes (names of ours in it),
    sun and world (made when the scene had no light and no world, else None)."""
    scene = scene_of(context)
    view_layer = context.view_layer or scene.view_layers[0]
    photo_name = camera[schema.PHOTO]
    photo = bpy.data.images.get(photo_name)
    if photo is None:
        raise ValueError(rpt_("The photo “{}” is not in this file: load it again").format(photo_name))
    size = (int(photo.size[0]), int(photo.size[1]))
    if min(size) <= 0:
        raise ValueError(rpt_("The photo “{}” cannot be read: reload it from its file").format(photo_name))
    photo = pixels.upright_view(photo)  # a phone photo stored on its side is composed upright, as it was sent
    size = (int(photo.size[0]), int(photo.size[1]))
    scene.camera = camera
    set_render(scene, view_layer, size)
    view_layer.update()  # matrix_world and the view frame up to date for what follows
    depsgraph = context.evaluated_depsgraph_get()
    objects = photo_objects(scene, photo_name)
    points = _points(objects, depsgraph)
    ground = ground_height(points)
    catcher, created = shadow_catcher(scene, photo_name)
    low, high = catcher_rectangle(scene, camera, points, ground)
    shape_catcher(catcher, low, high, ground)
    target = Vector(tuple(points.mean(axis=0))) if len(points) else Vector((*(low + high) / 2.0, ground))
    sun, world = add_default_light(scene, camera, target)
    tree, nodes = set_up_compositor(scene, view_layer, photo)
    return {"photo": photo_name, "camera": camera, "objects": objects, "catcher": catcher,
            "catcher_created": created, "ground": ground, "size": size, "node_tree": tree, "nodes": sorted(nodes),
            "sun": sun, "world": world}


class SAM3D_OT_composite(bpy.types.Operator):
    """Render the photo's objects over the photo, with their shadows: a shadow catcher ground, Cycles with a
    transparent film at the photo's size, and the compositor laying the render over the photo. The scene
    camera when it is a photo camera, else the active object's photo camera. The photo's lighting is
    unknown: a sun and a grey world are added only when the scene has neither a light nor a world"""

    bl_idname = "sam3d.composite"
    bl_label = "Composite over Photo"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        reason = why_not(context)
        if reason:
            cls.poll_message_set(reason)
        return not reason

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        camera = camera_of(context)
        assert camera is not None  # poll() made sure
        try:
            made = set_up_composite(context, camera)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        w, h = made["size"]
        catcher = (rpt_("a new shadow catcher") if made["catcher_created"] else rpt_("the shadow catcher"))
        extra = rpt_(", a sun and a grey world (the scene had no light)") if made["sun"] is not None else ""
        self.report({"INFO"}, rpt_(
            "Composite over “{}”: {} “{}” under {} object(s), Cycles with a transparent film at {}×{} and the "
            "Standard view transform, the render laid over the photo in the compositor{}. Render (F12) to see "
            "the objects over the photo").format(made["photo"], catcher, made["catcher"].name,
                                                 len(made["objects"]), w, h, extra))
        return {"FINISHED"}


classes = (SAM3D_OT_composite,)
