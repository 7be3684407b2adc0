"""Scene layout from a photo: a camera that matches the photo, and objects standing in front of it as in
the photo (placement 'CAMERA').

SAM 3D returns every object of a photo in one camera frame. Runware does not say which frame its GLBs use,
so both are handled:
- a *posed* result (its bounds well away from the origin, in front of the camera) keeps its pose relative
  to the camera: imported, it sits in front of a camera at the origin looking along +Y; that pose is kept
  relative to the photo's camera;
- a *canonical* result (bounds around the origin) is placed from its mask: the ray through the bottom
  centre of the mask's box meets a ground shared by every object of the photo, `CAMERA_HEIGHT` below a
  level camera, which gives its depth; its size makes its projection cover the mask's box (uniform scale,
  matching the box's area). Masks whose bottom is above the horizon stand at `FAR` camera heights.
What each object needs to be laid out again (the camera moved, the focal length changed) is kept on it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import bpy
import numpy as np
from bpy.app.handlers import persistent
from bpy.props import EnumProperty, FloatProperty
from mathutils import Matrix, Vector

from ...translations import rpt_, tip_
from ...utils import calibration, raster, schema
from ..machinery import importing, pixels
from ..machinery.inputs import scene_of, view_layer_of, window_manager_of

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

CAMERA_HEIGHT = 1.6  # the photographer's eye above the shared ground, in scene units
FAR = 12.0  # depth, in camera heights, of an object whose mask does not reach below the horizon
POSED_DISTANCE = 1.0  # a result whose bounds' centre is farther than this from the origin is posed
TO_CAMERA_FRAME = Matrix.Rotation(math.radians(90), 4, "X")  # the frame posed GLBs import in
LENS = 35.0  # the photo camera's focal length (mm, 36 mm sensor) until the user changes it
_DEFAULT_TANGENT = 18.0 / LENS  # its half field of view along the longer side


def photo_camera(context: bpy.types.Context, photo_name: str) -> bpy.types.Object:
    """The camera of the photo, made on first use: named after it, its resolution and aspect, the photo
    behind it, level at `CAMERA_HEIGHT` looking along +Y. The user may then change its focal length or move it."""
    scene = scene_of(context)
    for obj in scene.objects:
        if obj.type == "CAMERA" and obj.get(schema.PHOTO) == photo_name:
            return obj
    name = Path(photo_name).stem
    data = bpy.data.cameras.new(name)
    data.lens = LENS
    data.sensor_fit = "AUTO"
    photo = bpy.data.images.get(photo_name)
    if photo is not None:
        view = pixels.upright_view(photo)  # a phone photo stored on its side is framed as it was sent
        background = data.background_images.new()
        background.image = view
        background.alpha = 1.0
        data.show_background_images = True
        render = scene.render
        render.resolution_x, render.resolution_y = view.size
        render.resolution_percentage = 100
    camera = bpy.data.objects.new(name, data)
    camera[schema.PHOTO] = photo_name
    # matrix_world itself, not location and rotation: those reach matrix_world only at the next depsgraph
    # update, and the first object is laid out before it.
    camera.matrix_world = Matrix.Translation((0.0, 0.0, CAMERA_HEIGHT)) @ TO_CAMERA_FRAME
    scene.collection.objects.link(camera)
    # The photo's view is the one to look through (Numpad 0) and render (F12): it becomes the scene's camera,
    # unless the scene already looks through another photo's camera.
    if scene.camera is None or not scene.camera.get(schema.PHOTO):
        scene.camera = camera
    return camera


def camera_data(camera: bpy.types.Object) -> bpy.types.Camera:
    """A camera object's camera (its lens, sensor and shift)."""
    data = camera.data
    assert isinstance(data, bpy.types.Camera)
    return data


def window(scene: bpy.types.Scene, camera: bpy.types.Object) -> tuple[float, float, float, float]:
    """(left, right, bottom, top) of the camera's view at unit depth (its lens, sensor fit and shift)."""
    frame = camera_data(camera).view_frame(scene=scene)
    depth = abs(frame[0].z)
    xs, ys = [c.x / depth for c in frame], [c.y / depth for c in frame]
    return min(xs), max(xs), min(ys), max(ys)


def is_posed(low: np.ndarray, high: np.ndarray) -> bool:
    return float(np.linalg.norm((low + high) / 2)) > POSED_DISTANCE


def _matrix(values: list[float]) -> Matrix:
    return Matrix([values[i:i + 4] for i in range(0, 16, 4)])


def pose_of(root: bpy.types.Object) -> Matrix:
    """A posed object's matrix in SAM 3D's camera frame (the camera's local frame), as imported."""
    return _matrix(list(root[schema.POSE]))


def place(context: bpy.types.Context, root: bpy.types.Object, camera: bpy.types.Object,
          box: tuple[float, float, float, float], low: np.ndarray, high: np.ndarray) -> None:
    """Lay out one imported result (bounds `low`…`high` as imported) in front of `camera`."""
    if is_posed(low, high):
        root[schema.FRAME] = "POSED"
        local = TO_CAMERA_FRAME.inverted() @ root.matrix_world
        root[schema.POSE] = [v for row in local.row for v in row]
        root[schema.WINDOW] = list(window(scene_of(context), camera))  # the view the pose is kept for (relayout)
    else:
        root[schema.FRAME] = "CANONICAL"
        root[schema.SIZE] = [float(v) for v in high - low]  # set_origin_to_base put the origin at the base
    root[schema.MASK_BOX] = list(box)
    relayout(context, root, camera)


def relayout(context: bpy.types.Context, root: bpy.types.Object, camera: bpy.types.Object) -> None:
    """Put `root` where its photo says, for the camera as it is now (no request)."""
    now = window(scene_of(context), camera)
    scale = Matrix.Scale(float(camera.get(schema.SCALE, 1.0)), 4)  # Set Real Size: the photo's scale
    if root.get(schema.FRAME) == "POSED":
        pose = pose_of(root)
        made_for = list(root.get(schema.WINDOW) or _window_of_tangent(float(root.get(schema.TANGENT, 0.0)), now))
        # A longer lens magnifies the image by k: the object keeps its size and orientation and moves k times
        # farther along the camera's axis; a shifted view moves it across, so that it projects where (and as
        # large as) the photo has it.
        centre = pose @ (sum((Vector(c) for c in root.bound_box), Vector()) / 8)
        k = (made_for[1] - made_for[0]) / (now[1] - now[0])
        u = (centre.x / -centre.z - made_for[0]) / (made_for[1] - made_for[0])
        v = (centre.y / -centre.z - made_for[2]) / (made_for[3] - made_for[2])
        depth = k * centre.z
        moved = Vector(((now[0] + u * (now[1] - now[0])) * -depth, (now[2] + v * (now[3] - now[2])) * -depth, depth))
        root.matrix_world = camera.matrix_world @ scale @ Matrix.Translation(moved - centre) @ pose
    elif root.get(schema.FRAME) == "CANONICAL":
        ground = float(camera.get(schema.GROUND, CAMERA_HEIGHT))
        root.matrix_world = camera.matrix_world @ scale @ canonical_pose(list(root[schema.MASK_BOX]),
                                                                          list(root[schema.SIZE]), now, ground)


def _window_of_tangent(tangent: float, now: tuple[float, float, float, float]) -> list[float]:
    """The window of a pose laid out before windows were kept (`sam3d_tangent`, a centred view)."""
    tx = tangent or _DEFAULT_TANGENT
    ty = tx * (now[3] - now[2]) / (now[1] - now[0])
    return [-tx, tx, -ty, ty]


def canonical_pose(box: list[float], size: list[float], view: tuple[float, float, float, float],
                   ground: float = CAMERA_HEIGHT) -> Matrix:
    """Camera-local matrix of an upright object (origin at its base) whose projection covers `box`, standing on
    a ground `ground` below the (level) camera."""
    left, top, right, bottom = box
    x0, x1, y0, y1 = view

    def across(u: float) -> float:  # image fraction (0 = left) → tangent along the camera's +X
        return x0 + u * (x1 - x0)

    def up(v: float) -> float:  # image fraction (0 = top) → tangent along the camera's +Y
        return y1 - v * (y1 - y0)

    y_top, y_bottom = up(top), up(bottom)
    depth = ground / -y_bottom if y_bottom < -1e-3 else FAR * ground
    depth = min(depth, FAR * ground)
    width, height = (across(right) - across(left)) * depth, (y_top - y_bottom) * depth
    scale = math.sqrt(max(width, 1e-6) / max(size[0], 1e-6) * max(height, 1e-6) / max(size[2], 1e-6))
    base = Vector((across((left + right) / 2) * depth, y_bottom * depth, -depth))
    upright = Matrix.Rotation(math.radians(-90), 4, "X")  # the object's +Z (up) to the camera's +Y
    return Matrix.Translation(base) @ upright @ Matrix.Scale(scale, 4)


def arrange(context: bpy.types.Context, roots: list[bpy.types.Object], photo_name: str,
            box: tuple[float, float, float, float], lowres: str = "") -> None:
    """Placement 'CAMERA' for the results of one mask (the import's last step), then the photo's camera
    fitted again to every posed object of the photo."""
    camera = photo_camera(context, photo_name)
    for root in roots:
        low, high = importing.world_bounds(root)
        if not is_posed(low, high):
            importing.set_origin_to_base(root)
            low, high = importing.world_bounds(root)
        if lowres:
            root[schema.MASK_LOWRES] = lowres
        place(context, root, camera, box, low, high)
    if any(r.get(schema.FRAME) == "POSED" for r in roots):
        calibrate(context, camera)


# --- calibration: the lens (and principal point) SAM 3D's poses imply ------------------------------------


def posed_objects(context: bpy.types.Context, camera: bpy.types.Object) -> list[bpy.types.Object]:
    photo = camera.get(schema.PHOTO)
    return [o for o in scene_of(context).objects if o.get(schema.IMAGE) == photo and o.get(schema.FRAME) == "POSED"
            and o.type == "MESH" and raster.decode_mask(str(o.get(schema.MASK_LOWRES, ""))) is not None]


def _posed(obj: bpy.types.Object) -> calibration.Posed:
    mesh = importing.mesh_of(obj)
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    mesh.calc_loop_triangles()
    tris = np.empty(len(mesh.loop_triangles) * 3, np.int32)
    mesh.loop_triangles.foreach_get("vertices", tris)
    pose = np.array(pose_of(obj), dtype=np.float64)
    points = co.reshape(-1, 3).astype(np.float64) @ pose[:3, :3].T + pose[:3, 3]
    mask = raster.decode_mask(str(obj[schema.MASK_LOWRES]))
    assert mask is not None
    return calibration.Posed(points, tris.reshape(-1, 3), mask)


def calibrate(context: bpy.types.Context, camera: bpy.types.Object) -> calibration.Fit | None:
    """Find the focal length (and, with two objects or more, the principal point) that best projects every
    posed object onto its own mask, a joint fit on silhouettes: the view SAM 3D posed them for. The camera takes
    that lens (unless the user keeps their own: the objects then follow the kept lens, as after any lens
    change), and is lifted so that the posed objects stand on the ground (z = 0), which canonical objects of
    the photo then share. The fit per object (IoU) and the focal length are stored on the camera."""
    objects = posed_objects(context, camera)
    if not objects:
        return None
    try:
        fit = calibration.fit_camera([_posed(o) for o in objects], free_principal_point=len(objects) >= 2)
    except ValueError:
        return None
    scene = scene_of(context)
    w, h = scene.render.resolution_x, scene.render.resolution_y
    longest, aspect = max(w, h), h / w
    implied = [-fit.cx / fit.focal, (1 - fit.cx) / fit.focal, (fit.cy - 1) * aspect / fit.focal,
               fit.cy * aspect / fit.focal]
    for obj in objects:  # SAM 3D's poses hold for the view it assumed
        obj[schema.WINDOW] = implied
    data = camera_data(camera)
    if not data.sam3d_lens_locked:  # type: ignore[attr-defined]  # properties.py registers it: not in the stubs
        data.sensor_fit = "AUTO"
        data.sensor_width = 36.0
        data.lens = fit.focal * w / longest * 36.0
        data.shift_x = (0.5 - fit.cx) * w / longest
        data.shift_y = (fit.cy - 0.5) * h / longest
    camera[schema.FOCAL_MM] = fit.focal * w / longest * 36.0
    camera[schema.FIT] = {o.name: round(float(i), 3) for o, i in zip(objects, fit.ious, strict=True)}
    relayout_photo(context, camera)
    stand_on_ground(context, camera, objects)
    return fit


def stand_on_ground(context: bpy.types.Context, camera: bpy.types.Object, objects: list[bpy.types.Object]) -> None:
    """Move the (level) camera up or down so that the lowest posed object touches z = 0, and keep that height,
    in the photo's own units, as the ground every canonical object of the photo stands on."""
    lowest = min(float(importing.world_bounds(o)[0][2]) for o in objects)
    scale = float(camera.get(schema.SCALE, 1.0))
    global _following
    _following = True  # one layout below, not one per depsgraph update meanwhile
    try:
        camera.matrix_world = Matrix.Translation((0.0, 0.0, -lowest)) @ camera.matrix_world
        camera[schema.GROUND] = float(camera.matrix_world.translation.z) / scale
        relayout_photo(context, camera)
    finally:
        _following = False


def photo_of_object(obj: bpy.types.Object | None) -> str | None:
    """The photo an object was reconstructed from (its own `sam3d_image`, or its nearest parent's)."""
    while obj is not None:
        name = obj.get(schema.IMAGE)
        if isinstance(name, str) and name:
            return name
        obj = obj.parent
    return None


def camera_of(context: bpy.types.Context) -> bpy.types.Object | None:
    """The photo camera to work with: the active object when it is one, else the camera of the active object's
    photo, else the scene's camera when it is a photo's."""
    scene = scene_of(context)
    active = view_layer_of(context).objects.active
    if active is not None and active.type == "CAMERA" and active.get(schema.PHOTO):
        return active
    photo = photo_of_object(active)
    found = next((o for o in scene.objects if o.type == "CAMERA" and photo and o.get(schema.PHOTO) == photo),
                 None) if photo else None
    camera = found or scene.camera
    return camera if camera is not None and camera.get(schema.PHOTO) else None


def relayout_photo(context: bpy.types.Context, camera: bpy.types.Object) -> int:
    """Lay out again every object of the camera's photo; how many moved."""
    photo = camera.get(schema.PHOTO)
    moved = 0
    for obj in scene_of(context).objects:
        if obj.get(schema.IMAGE) == photo and obj.get(schema.FRAME):
            relayout(context, obj, camera)
            moved += 1
    return moved


_following = False


@persistent
def follow_cameras(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph) -> None:
    """When a photo's camera moves or its lens changes, its objects follow (no request). Moving them makes
    another depsgraph update, of objects only, which the guard and the filter below leave alone."""
    global _following
    if _following:
        return
    cameras = set()
    for update in depsgraph.updates:
        original = getattr(update.id, "original", update.id)
        if isinstance(original, bpy.types.Object) and original.type == "CAMERA" and original.get(schema.PHOTO):
            cameras.add(original)
        elif isinstance(original, bpy.types.Camera):
            cameras.update(o for o in scene.objects if o.data == original and o.get(schema.PHOTO))
    if not cameras:
        return
    _following = True
    try:
        context = bpy.context
        for camera in cameras:
            relayout_photo(context, camera)
    finally:
        _following = False


def set_real_size(context: bpy.types.Context, obj: bpy.types.Object, size: float, axis: str) -> float:
    """Scale the whole photo group so that `obj` measures `size` (metres) along `axis` (HEIGHT: world Z,
    WIDTH: X, DEPTH: Y), about the ground point under the camera: the camera moves with the objects, so every
    projection stays where it is. Returns the factor applied."""
    camera = camera_of(context)
    if camera is None:
        raise ValueError(rpt_("the object is not laid out through a photo's camera"))
    low, high = importing.world_bounds(obj)
    current = float((high - low)[{"WIDTH": 0, "DEPTH": 1, "HEIGHT": 2}[axis]])
    if current <= 1e-9:
        raise ValueError(rpt_("the object has no {} to measure").format(axis.lower()))
    factor = size / current
    pivot = Vector((camera.matrix_world.translation.x, camera.matrix_world.translation.y, 0.0))
    camera[schema.SCALE] = float(camera.get(schema.SCALE, 1.0)) * factor
    global _following
    _following = True  # the camera moves on purpose: lay out once, below, not from the handler meanwhile
    try:
        camera.matrix_world = Matrix.Translation(pivot + factor * (camera.matrix_world.translation - pivot)) \
            @ camera.matrix_world.to_3x3().to_4x4()
        for other in scene_of(context).objects:
            if other.get(schema.IMAGE) == camera.get(schema.PHOTO) and other.get(schema.FRAME):
                other[schema.SCALE] = camera[schema.SCALE]
        relayout_photo(context, camera)
    finally:
        _following = False
    obj[schema.REAL_SIZE] = {"size": size, "axis": axis}  # an ID property array holds numbers only
    return factor


class SAM3D_OT_relayout(bpy.types.Operator):
    """Lay out the photo's objects again for its camera as it is now (after changing its focal length or
    moving it); no request is sent"""

    bl_idname = "sam3d.relayout"
    bl_label = "Re-layout"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if camera_of(context) is None:
            cls.poll_message_set(tip_("No photo camera here: place a result As in the Photo first"))
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        camera = camera_of(context)
        assert camera is not None  # poll() made sure
        moved = relayout_photo(context, camera)
        self.report({"INFO"}, rpt_("SAM 3D: laid out {} object(s) again").format(moved))
        return {"FINISHED"}


class SAM3D_OT_set_real_size(bpy.types.Operator):
    """Give the active object its true size: the whole photo (its objects and its camera) is scaled to match,
    and nothing moves in the photo's view"""

    bl_idname = "sam3d.set_real_size"
    bl_label = "Set Real Size"
    bl_options = {"REGISTER", "UNDO"}

    size: FloatProperty(name="Size", default=1.0, min=1e-4, unit="LENGTH",  # type: ignore[valid-type]
                        description="The object's true size in metres along the axis")
    axis: EnumProperty(  # type: ignore[valid-type]
        name="Along", default="HEIGHT",
        items=[("HEIGHT", "Height", "Up (world Z)"), ("WIDTH", "Width", "Across (world X)"),
               ("DEPTH", "Depth", "Away from the camera (world Y)")])

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = view_layer_of(context).objects.active
        ok = obj is not None and obj.get(schema.FRAME) and camera_of(context) is not None
        if not ok:
            cls.poll_message_set(tip_("Make an object laid out As in the Photo active"))
        return bool(ok)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        return window_manager_of(context).invoke_props_dialog(self)

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        obj = view_layer_of(context).objects.active
        assert obj is not None  # poll() made sure
        try:
            factor = set_real_size(context, obj, self.size, self.axis)
        except ValueError as exc:
            self.report({"ERROR"}, rpt_("Cannot set the size: {}.").format(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, rpt_("SAM 3D: {} is {:g} m {}; the photo's objects and camera were scaled by "
                                   "{:.3g}").format(obj.name, self.size, self.axis.lower(), factor))
        return {"FINISHED"}


classes = (SAM3D_OT_relayout, SAM3D_OT_set_real_size)
