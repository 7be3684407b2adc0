"""Composite over Photo (operators/scene/composite.py) of the installed add-on: a photo scene made by hand, the operator
run, a small Cycles render of the photo's camera compared with the photo itself."""

from __future__ import annotations

import math
from pathlib import Path

import bmesh
import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from conftest import module, unchanged_outside
from mathutils import Vector
from test_hostile_folder import phone_photo
from test_layout import iou, projected_box

from tests.emulator import mask_png
from tests.shapes import shape_like

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "examples" / "human_object" / "image.png"  # 1600×898
PERCENT = 15  # the render: 240×134
SUN_ROTATION = (math.radians(50.0), 0.0, math.radians(-40.0))  # shadows fall back and to the right


def composite():  # noqa: ANN201
    """The installed add-on's module (its operator registered by the add-on itself)."""
    return module("operators.scene.composite")


@pytest.fixture(scope="module")
def registered(addon):  # noqa: ANN001, ANN201
    return composite()


@pytest.fixture
def scene(registered):
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene


def _mesh_object(scene, name, build, location, photo, material):
    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    build(bm)
    bm.to_mesh(mesh)
    bm.free()
    for polygon in mesh.polygons:
        polygon.use_smooth = name == "sphere"
    mesh.materials.append(material)
    obj = bpy.data.objects.new(name, mesh)
    obj.location = location
    obj["sam3d_image"] = photo.name
    scene.collection.objects.link(obj)
    return obj


def _grey_material():
    material = bpy.data.materials.new("light grey")
    material.diffuse_color = (0.8, 0.8, 0.8, 1.0)  # what Cycles renders for a material without nodes (4.x)
    if material.node_tree is not None:  # 5.x: new materials have a Principled BSDF
        for node in material.node_tree.nodes:
            if node.type == "BSDF_PRINCIPLED":
                node.inputs["Base Color"].default_value = (0.8, 0.8, 0.8, 1.0)
    return material


def photo_scene(scene, *, sun=True):
    """The photo, its camera (level at 1.6 looking along +Y, 35 mm), a cube and a UV sphere on z = 0 in
    front of it, and a sun at an angle."""
    photo = bpy.data.images.load(str(PHOTO), check_existing=True)
    camera = bpy.data.objects.new("image", bpy.data.cameras.new("image"))
    camera.data.lens = 35.0
    camera.location = (0.0, 0.0, 1.6)
    camera.rotation_euler = (math.radians(90.0), 0.0, 0.0)
    camera["sam3d_photo"] = photo.name
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y = photo.size
    material = _grey_material()
    cube = _mesh_object(scene, "cube", lambda bm: bmesh.ops.create_cube(bm, size=1.2), (-1.0, 8.0, 0.6),
                        photo, material)
    sphere = _mesh_object(scene, "sphere", lambda bm: bmesh.ops.create_uvsphere(
        bm, u_segments=32, v_segments=16, radius=0.7), (1.2, 9.0, 0.7), photo, material)
    light = None
    if sun:
        light = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
        light.data.energy = 4.0
        light.rotation_euler = SUN_ROTATION
        scene.collection.objects.link(light)
    bpy.context.view_layer.update()
    return photo, camera, [cube, sphere], light


def catchers(photo):
    return [o for o in bpy.data.objects if o.get("sam3d_shadow_catcher") == photo.name]


def compositor_tree(scene):
    """The node tree our nodes are in, whichever compositor API this Blender has."""
    if hasattr(scene, "compositor_effects"):
        return next(e.node_group for e in scene.compositor_effects
                    if e.node_group is not None and e.node_group.get("sam3d_composite"))
    if hasattr(scene, "compositing_node_group"):
        return scene.compositing_node_group
    return scene.node_tree


def our_nodes(scene):
    return sorted((n.name, n.bl_idname) for n in compositor_tree(scene).nodes if n.name.startswith("SAM3D"))


def expected_nodes(scene, *, their_output):
    """The names of the nodes the operator makes: the photo, scaled, under the render; the render comes from a
    Render Layers node of ours (4.x, 5.0) or the effect's Group Input (5.3+); the output is ours unless the
    tree already had one (4.x: Blender's default Composite node)."""
    names = {"SAM3D Photo", "SAM3D Photo to Render Size", "SAM3D Render over Photo"}
    if hasattr(scene, "compositor_effects"):
        return names | {"SAM3D Group Input", "SAM3D Group Output"}
    if not their_output:
        names.add("SAM3D Group Output")
    return names | {"SAM3D Render Layers"}


# --- rendering and pixels ----------------------------------------------------------------------------------

def render(scene, path: Path, *, percent=PERCENT, samples=16):
    scene.render.resolution_percentage = percent
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.cycles.device = "CPU"
    scene.cycles.seed = 1
    scene.render.dither_intensity = 0.0  # no noise added to the 8-bit file
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return pixels(bpy.data.images.load(str(path)))


def pixels(image) -> np.ndarray:
    """(h, w, 3) RGB, top row first."""
    w, h = image.size
    buf = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(buf)
    return buf.reshape(h, w, 4)[::-1, :, :3].copy()


def scaled_photo(photo, w, h) -> np.ndarray:
    copy = photo.copy()
    copy.scale(w, h)
    try:
        return pixels(copy)
    finally:
        bpy.data.images.remove(copy)


def _hull_mask(points: np.ndarray, w: int, h: int) -> np.ndarray:
    """Pixels (top row first) inside the convex hull of image points (x right, y down, in pixels)."""
    pts = sorted(map(tuple, points))
    def half(seq):
        out: list = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out
    hull = half(pts)[:-1] + half(pts[::-1])[:-1]
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    inside = np.ones((h, w), bool)
    for (x0, y0), (x1, y1) in zip(hull, hull[1:] + hull[:1], strict=True):
        inside &= (x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0) >= 0
    return inside


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    h, w = mask.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dx * dx + dy * dy <= r * r:
                shifted = np.zeros_like(mask)
                shifted[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                    mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
                out |= shifted
    return out


def regions(scene, camera, objects, sun, w, h):
    """(objects, shadows) masks: each object's projected bounding box, and the convex hull of its bounding box
    and of the box's shadow on the ground along the sun's direction, minus the objects."""
    direction = sun.matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0))
    solid = np.zeros((h, w), bool)
    shade = np.zeros((h, w), bool)
    for obj in objects:
        corners = [obj.matrix_world @ Vector(c) for c in obj.bound_box]
        shadow = [c + direction * (c.z / -direction.z) for c in corners]
        def image_points(points):
            out = []
            for p in points:
                v = world_to_camera_view(scene, camera, p)
                out.append((v.x * w, (1.0 - v.y) * h))
            return np.array(out)
        solid |= _hull_mask(image_points(corners), w, h)
        shade |= _hull_mask(image_points(corners + shadow), w, h)
    return solid, shade & ~solid


# --- tests -------------------------------------------------------------------------------------------------

def test_the_render_shows_the_objects_and_their_shadows_over_the_unchanged_photo(scene, tmp_path, capfd):
    photo, camera, objects, sun = photo_scene(scene)
    capfd.readouterr()
    assert bpy.ops.sam3d.composite() == {"FINISHED"}
    report = capfd.readouterr().out
    assert "shadow catcher “image Shadow Catcher”" in report and "Render (F12) to see the objects over the photo" \
        in report, report
    assert scene.render.engine == "CYCLES" and scene.render.film_transparent
    assert (scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage) == \
        (1600, 898, 100)
    assert scene.view_settings.view_transform == "Standard", "so that the photo comes back as it went in"
    (catcher,) = catchers(photo)
    assert catcher.is_shadow_catcher and not catcher.visible_shadow and catcher.name == "image Shadow Catcher"
    assert abs(catcher.matrix_world.translation.z) < 1e-6, "objects standing on z = 0: the ground is z = 0"

    result = render(scene, tmp_path / "composite.png")
    h, w, _ = result.shape
    assert (w, h) == (1600 * PERCENT // 100, 898 * PERCENT // 100)
    assert abs(w / h - 1600 / 898) < 1.0 / h * (1600 / 898) + 1e-9, "the photo's aspect (within a pixel)"
    for obj in objects:
        obj.hide_render = True
    bare = render(scene, tmp_path / "bare.png")  # the same compositor and catcher, nothing casting shadows
    for obj in objects:
        obj.hide_render = False
    reference = scaled_photo(photo, w, h)

    solid, shade = regions(scene, camera, objects, sun, w, h)
    near = _dilate(solid | shade, 4)  # soft shadow edges, anti-aliasing
    outside = ~near
    diff = np.abs(result - bare).mean(axis=2)
    diff_photo = np.abs(result - reference).mean(axis=2)
    darker = (bare - result).mean(axis=2)
    measured = {
        "size": (w, h),
        "outside fraction": round(float(outside.mean()), 3),
        "outside vs bare": float(diff[outside].mean()),
        "outside vs image.scale photo": float(diff_photo[outside].mean()),
        "bare vs image.scale photo": float(np.abs(bare - reference).mean()),
        "objects vs bare": float(diff[solid].mean()),
        "shadow darker (mean)": float(darker[shade].mean()),
        "shadow darker (p90)": float(np.percentile(darker[shade], 90)),
        "shadow pixels darker by > 0.1": int((darker[shade] > 0.1).sum()),
        "shadow darker than image.scale photo (p90)": float(np.percentile((reference - result).mean(axis=2)[shade],
                                                                          90)),
    }
    print("composite:", measured)
    measured.update(unchanged_outside(diff, outside))  # nothing but the objects and their shadows changed
    assert diff[solid].mean() > 0.15, measured
    assert np.percentile(darker[shade], 90) > 0.1 and (darker[shade] > 0.1).sum() >= 100, measured
    # Against the photo scaled by image.scale: Blender 5.x's Scale node filters about as image.scale does;
    # 4.x's samples the photo once per output pixel, at its corner (aliasing, half a pixel off). At 100 %,
    # the size the operator sets, nothing is resampled: the next test.
    limit = 0.06 if hasattr(bpy.types, "CompositorNodeComposite") else 0.01
    assert diff_photo[outside].mean() < limit, measured


def test_the_photo_comes_back_unchanged_at_full_size(scene, tmp_path):
    """Colour management: with nothing in front of it, the render is the photo, pixel for pixel."""
    photo, camera, objects, sun = photo_scene(scene)
    assert bpy.ops.sam3d.composite() == {"FINISHED"}
    for obj in [*objects, *catchers(photo)]:
        obj.hide_render = True
    bare = render(scene, tmp_path / "bare_full.png", percent=100, samples=1)
    original = pixels(photo)
    assert bare.shape == original.shape
    assert np.abs(bare - original).max() < 1.5 / 255, float(np.abs(bare - original).max())


def test_a_phone_photo_is_laid_out_and_composed_upright_as_it_was_sent(sam3d, tmp_path):
    """As in the Photo frames the photo as sent: the camera's resolution, the picture behind it and the
    composite's photo are upright (an upright copy packed into the file), so the object stands where its upright
    mask is. It was framed as stored: a landscape camera, the object in the wrong place, a sideways backdrop."""
    photo = bpy.data.images.load(str(phone_photo(sam3d)))
    mask_path = sam3d.tmp / "phone_mask.png"
    mask_path.write_bytes(mask_png(48, 64, (0.1, 0.1, 0.9, 0.45)))  # the upright top half: the red part
    sam3d.settings.image, sam3d.settings.mask = photo, bpy.data.images.load(str(mask_path))
    sam3d.settings.placement = "CAMERA"
    sam3d.emu.result_factory = lambda task, index: shape_like(task, True)
    try:
        before = set(bpy.data.objects)
        assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    finally:
        sam3d.emu.result_factory = None
    scene = bpy.context.scene
    camera = next(o for o in bpy.data.objects if o.type == "CAMERA" and o.get("sam3d_photo") == photo.name)
    (made,) = [o for o in bpy.data.objects if o not in before and o.type == "MESH"]
    assert (scene.render.resolution_x, scene.render.resolution_y) == (48, 64), "framed upright"
    view = camera.data.background_images[0].image
    assert tuple(view.size) == (48, 64) and view.packed_file is not None, "an upright copy kept in the file"
    upright_rgb = pixels(view)
    assert upright_rgb[:32, :, 0].mean() > 0.9 > upright_rgb[32:, :, 0].mean(), "red on top, as every viewer shows"
    assert iou(projected_box(scene, camera, made), (0.1, 0.1, 0.9, 0.45)) > 0.7, "where its upright mask is"
    assert bpy.ops.sam3d.composite() == {"FINISHED"}
    for obj in bpy.data.objects:
        if obj.type == "MESH":
            obj.hide_render = True
    bare = render(scene, tmp_path / "phone_bare.png", percent=100, samples=1)
    assert bare.shape[:2] == (64, 48) and np.abs(bare - upright_rgb[..., :3]).max() < 2 / 255, "composed upright"


def test_running_it_twice_makes_one_catcher_and_one_set_of_nodes_and_keeps_the_users_nodes(scene):
    photo, camera, objects, sun = photo_scene(scene)
    assert bpy.ops.sam3d.composite() == {"FINISHED"}
    tree = compositor_tree(scene)
    mine = tree.nodes.new("CompositorNodeInvert")  # a node the user added meanwhile
    mine.name = "My Invert"
    first = our_nodes(scene)
    own_output = hasattr(scene, "compositor_effects") or hasattr(scene, "compositing_node_group")
    assert {name for name, _ in first} == expected_nodes(scene, their_output=not own_output)
    objects[1].location.y += 10.0  # the sphere moved farther: the catcher grows
    bpy.context.view_layer.update()
    (catcher,) = catchers(photo)
    size = catcher.dimensions.copy()
    assert bpy.ops.sam3d.composite() == {"FINISHED"}
    assert catchers(photo) == [catcher], "the same plane, not a second one"
    assert catcher.dimensions.y > size.y + 5.0
    assert our_nodes(scene) == first
    assert compositor_tree(scene) == tree and tree.nodes.get("My Invert") is not None
    assert len([n for n in scene.objects if n.get("sam3d_shadow_catcher")]) == 1
    if hasattr(scene, "compositor_effects"):
        assert len(scene.compositor_effects) == 1


def _users_compositor(scene):
    """A compositor set-up of the user's, made before the operator runs: (tree, its output node or None)."""
    if hasattr(scene, "compositor_effects"):  # 5.3+: an effect of theirs, inverting the render
        tree = bpy.data.node_groups.new("My Effect", "CompositorNodeTree")
        tree.interface.new_socket(name="Image", in_out="INPUT", socket_type="NodeSocketColor")
        tree.interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        group_in, invert, group_out = (tree.nodes.new(t) for t in ("NodeGroupInput", "CompositorNodeInvert",
                                                                   "NodeGroupOutput"))
        tree.links.new(group_in.outputs[0], invert.inputs["Color"])
        tree.links.new(invert.outputs[0], group_out.inputs[0])
        scene.compositor_effects.new(name="My Effect").node_group = tree
        return tree, None
    if hasattr(scene, "compositing_node_group"):  # 5.0: their node group, Render Layers → Invert → output
        tree = bpy.data.node_groups.new("My Compositor", "CompositorNodeTree")
        tree.interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        layers, invert, output = (tree.nodes.new(t) for t in ("CompositorNodeRLayers", "CompositorNodeInvert",
                                                              "NodeGroupOutput"))
        scene.compositing_node_group = tree
    else:  # 4.2: the scene's tree as Blender makes it (Render Layers → Composite), an Invert put between
        scene.use_nodes = True
        tree = scene.node_tree
        layers, output = tree.nodes["Render Layers"], tree.nodes["Composite"]
        invert = tree.nodes.new("CompositorNodeInvert")
    tree.links.new(layers.outputs["Image"], invert.inputs["Color"])
    tree.links.new(invert.outputs[0], output.inputs[0])
    return tree, output


def test_the_users_own_compositor_nodes_stay(scene):
    photo, camera, objects, sun = photo_scene(scene)
    theirs, output = _users_compositor(scene)
    before = sorted((n.name, n.bl_idname) for n in theirs.nodes)
    links = len(theirs.links)
    for _ in range(2):
        assert bpy.ops.sam3d.composite() == {"FINISHED"}
    ours = compositor_tree(scene)
    assert all(theirs.nodes.get(name) is not None for name, _ in before), "none of their nodes removed"
    if hasattr(scene, "compositor_effects"):
        # An effect of our own after theirs: its Group Input is what their effect made of the render.
        assert [e.name for e in scene.compositor_effects] == ["My Effect", "SAM3D Composite over Photo"]
        assert ours != theirs and sorted((n.name, n.bl_idname) for n in theirs.nodes) == before
        assert len(theirs.links) == links
    else:
        assert ours == theirs
        (link,) = output.inputs[0].links
        assert link.from_node.name == "SAM3D Render over Photo", "the output now shows the composite"
    assert {name for name, _ in our_nodes(scene)} == expected_nodes(scene, their_output=True)


def test_the_catcher_covers_the_ground_the_camera_sees_out_to_twice_the_farthest_object(scene):
    photo, camera, objects, sun = photo_scene(scene)
    made = composite().set_up_composite(bpy.context, camera)
    catcher = made["catcher"]
    assert made["catcher_created"] and made["ground"] == pytest.approx(0.0, abs=1e-6)
    low = catcher.matrix_world @ Vector(catcher.bound_box[0])
    high = catcher.matrix_world @ Vector(catcher.bound_box[6])
    farthest = 9.0 + 0.7  # the sphere's far side, along +Y (the camera's view axis)
    assert high.y >= 2 * farthest
    tan_x = 18.0 / 35.0  # half the sensor width over the lens
    assert high.x >= 2 * farthest * tan_x and low.x <= -2 * farthest * tan_x
    tan_y = tan_x * 898 / 1600
    assert low.y <= 1.6 / tan_y, "from where the bottom of the view meets the ground"
    assert high.y < 2 * farthest * 1.2, "not much more"


def test_the_ground_follows_objects_that_sink_or_float_a_little(scene):
    photo, camera, objects, sun = photo_scene(scene)
    for obj in objects:
        obj.location.z -= 0.2
    bpy.context.view_layer.update()
    assert composite().set_up_composite(bpy.context, camera)["ground"] == pytest.approx(-0.2, abs=1e-4)
    for obj in objects:
        obj.location.z += 0.23
    bpy.context.view_layer.update()
    assert composite().set_up_composite(bpy.context, camera)["ground"] == pytest.approx(0.03, abs=1e-4)
    for obj in objects:
        obj.location.z += 1.0  # hanging: the ground stays at 0
    bpy.context.view_layer.update()
    made = composite().set_up_composite(bpy.context, camera)
    assert made["ground"] == 0.0 and len(catchers(photo)) == 1


def test_the_active_objects_photo_camera_when_the_scene_camera_is_not_one(scene):
    photo, camera, objects, sun = photo_scene(scene)
    other = bpy.data.objects.new("other", bpy.data.cameras.new("other"))
    scene.collection.objects.link(other)
    scene.camera = other
    bpy.context.view_layer.objects.active = objects[0]
    assert module("operators.scene.photo_camera").camera_of(bpy.context) == camera
    assert bpy.ops.sam3d.composite() == {"FINISHED"}
    assert scene.camera == camera, "the photo's camera renders"


def test_a_scene_without_light_or_world_gets_a_sun_and_a_grey_world(scene, tmp_path):
    photo, camera, objects, _ = photo_scene(scene, sun=False)
    assert scene.world is None
    made = composite().set_up_composite(bpy.context, camera)
    assert made["sun"] is not None and made["sun"].data.type == "SUN" and scene.world == made["world"]
    light = made["sun"].matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0))
    assert light.z < 0 and light.y > 0 and light.x > 0, "from above, behind and left of the camera"
    again = composite().set_up_composite(bpy.context, camera)
    assert again["sun"] is None and again["world"] is None, "a scene with a light is left as it is"
    assert len([o for o in scene.objects if o.type == "LIGHT"]) == 1
    result = render(scene, tmp_path / "default_light.png", percent=10, samples=8)
    h, w, _ = result.shape
    solid, _ = regions(scene, camera, objects, made["sun"], w, h)
    lit = result[solid].mean(axis=1)
    assert lit.mean() > 0.3 and np.percentile(lit, 5) > 0.1, "the objects are lit, their shadow sides too"


def test_poll_says_why_when_there_is_no_photo_camera(scene):
    cube = bpy.data.objects.new("cube", bpy.data.meshes.new("cube"))
    scene.collection.objects.link(cube)
    bpy.context.view_layer.objects.active = cube
    with pytest.raises(RuntimeError, match="No photo camera"):
        bpy.ops.sam3d.composite()
    assert not bpy.ops.sam3d.composite.poll()
    cube["sam3d_image"] = "missing.png"  # an object of a photo whose camera is gone
    with pytest.raises(RuntimeError, match="No photo camera"):
        bpy.ops.sam3d.composite()
    camera = bpy.data.objects.new("missing", bpy.data.cameras.new("missing"))
    camera["sam3d_photo"] = "missing.png"  # a photo camera whose photo is not loaded
    scene.collection.objects.link(camera)
    scene.camera = camera
    with pytest.raises(RuntimeError, match="“missing.png” of camera “missing” is not in this file"):
        bpy.ops.sam3d.composite()
