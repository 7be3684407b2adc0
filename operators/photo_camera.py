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

import bpy
import numpy as np
from bpy.app.handlers import persistent
from mathutils import Matrix, Vector

from . import importing

CAMERA_HEIGHT = 1.6  # the photographer's eye above the shared ground, in scene units
FAR = 12.0  # depth, in camera heights, of an object whose mask does not reach below the horizon
POSED_DISTANCE = 1.0  # a result whose bounds' centre is farther than this from the origin is posed
TO_CAMERA_FRAME = Matrix.Rotation(math.radians(90), 4, "X")  # the frame posed GLBs import in
LENS = 35.0  # the photo camera's focal length (mm, 36 mm sensor) until the user changes it
_DEFAULT_TANGENT = 18.0 / LENS  # its half field of view along the longer side


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the mask's pixels, as fractions of the width and height (top = 0)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h


def photo_camera(context: bpy.types.Context, photo_name: str) -> bpy.types.Object:
    """The camera of the photo, made on first use: named after it, its resolution and aspect, the photo
    behind it, level at `CAMERA_HEIGHT` looking along +Y. The user may then change its focal length or move it."""
    for obj in context.scene.objects:
        if obj.type == "CAMERA" and obj.get("sam3d_photo") == photo_name:
            return obj
    name = Path(photo_name).stem
    data = bpy.data.cameras.new(name)
    data.lens = LENS
    data.sensor_fit = "AUTO"
    photo = bpy.data.images.get(photo_name)
    if photo is not None:
        background = data.background_images.new()
        background.image = photo
        background.alpha = 1.0
        data.show_background_images = True
        render = context.scene.render
        render.resolution_x, render.resolution_y = photo.size
        render.resolution_percentage = 100
    camera = bpy.data.objects.new(name, data)
    camera["sam3d_photo"] = photo_name
    # matrix_world itself, not location and rotation: those reach matrix_world only at the next depsgraph
    # update, and the first object is laid out before it.
    camera.matrix_world = Matrix.Translation((0.0, 0.0, CAMERA_HEIGHT)) @ TO_CAMERA_FRAME
    context.scene.collection.objects.link(camera)
    if context.scene.camera is None:
        context.scene.camera = camera
    return camera


def tangents(scene: bpy.types.Scene, camera: bpy.types.Object) -> tuple[float, float]:
    """tan of half the horizontal and vertical field of view, for the scene's render aspect."""
    frame = camera.data.view_frame(scene=scene)
    depth = abs(frame[0].z)
    return max(abs(c.x) for c in frame) / depth, max(abs(c.y) for c in frame) / depth


def is_posed(low: np.ndarray, high: np.ndarray) -> bool:
    return float(np.linalg.norm((low + high) / 2)) > POSED_DISTANCE


def place(context: bpy.types.Context, root: bpy.types.Object, camera: bpy.types.Object,
          box: tuple[float, float, float, float], low: np.ndarray, high: np.ndarray) -> None:
    """Lay out one imported result (bounds `low`…`high` as imported) in front of `camera`."""
    if is_posed(low, high):
        root["sam3d_frame"] = "POSED"
        local = TO_CAMERA_FRAME.inverted() @ root.matrix_world
        root["sam3d_pose"] = [v for row in local for v in row]
        root["sam3d_tangent"] = _DEFAULT_TANGENT  # the field of view the pose was made for (see relayout)
    else:
        root["sam3d_frame"] = "CANONICAL"
        root["sam3d_mask_box"] = list(box)
        root["sam3d_size"] = [float(v) for v in high - low]  # set_origin_to_base put the origin at the base
    relayout(context, root, camera)


def relayout(context: bpy.types.Context, root: bpy.types.Object, camera: bpy.types.Object) -> None:
    """Put `root` where its photo says, for the camera as it is now (no request)."""
    scene = context.scene
    assert scene is not None
    tx, ty = tangents(scene, camera)
    if root.get("sam3d_frame") == "POSED":
        values = list(root["sam3d_pose"])
        pose = Matrix([values[i:i + 4] for i in range(0, 16, 4)])
        # A longer lens magnifies the image by k: the object keeps its size and orientation and moves k times
        # farther along the camera's axis, so that it projects where (and as large as) the photo has it.
        k = float(root["sam3d_tangent"]) / tx
        centre = pose @ (sum((Vector(c) for c in root.bound_box), Vector()) / 8)
        root.matrix_world = camera.matrix_world @ Matrix.Translation((0.0, 0.0, (k - 1.0) * centre.z)) @ pose
    elif root.get("sam3d_frame") == "CANONICAL":
        root.matrix_world = camera.matrix_world @ canonical_pose(list(root["sam3d_mask_box"]),
                                                                  list(root["sam3d_size"]), tx, ty)


def canonical_pose(box: list[float], size: list[float], tx: float, ty: float) -> Matrix:
    """Camera-local matrix of an upright object (origin at its base) whose projection covers `box`."""
    left, top, right, bottom = box
    x = (left + right - 1.0) * tx  # the box's centre and edges as tangents (camera looks down -Z, +Y up)
    y_top, y_bottom = (1.0 - 2.0 * top) * ty, (1.0 - 2.0 * bottom) * ty
    depth = CAMERA_HEIGHT / -y_bottom if y_bottom < -1e-3 else FAR * CAMERA_HEIGHT
    depth = min(depth, FAR * CAMERA_HEIGHT)
    width, height = (right - left) * 2.0 * tx * depth, (y_top - y_bottom) * depth
    scale = math.sqrt(max(width, 1e-6) / max(size[0], 1e-6) * max(height, 1e-6) / max(size[2], 1e-6))
    base = Vector((x * depth, y_bottom * depth, -depth))
    upright = Matrix.Rotation(math.radians(-90), 4, "X")  # the object's +Z (up) to the camera's +Y
    return Matrix.Translation(base) @ upright @ Matrix.Scale(scale, 4)


def arrange(context: bpy.types.Context, roots: list[bpy.types.Object], photo_name: str,
            box: tuple[float, float, float, float]) -> None:
    """Placement 'CAMERA' for the results of one mask (the import's last step)."""
    camera = photo_camera(context, photo_name)
    for root in roots:
        low, high = importing.world_bounds(root)
        if not is_posed(low, high):
            importing.set_origin_to_base(root)
            low, high = importing.world_bounds(root)
        place(context, root, camera, box, low, high)


def relayout_photo(context: bpy.types.Context, camera: bpy.types.Object) -> int:
    """Lay out again every object of the camera's photo; how many moved."""
    photo = camera.get("sam3d_photo")
    moved = 0
    for obj in context.scene.objects:
        if obj.get("sam3d_image") == photo and obj.get("sam3d_frame"):
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
        if isinstance(original, bpy.types.Object) and original.type == "CAMERA" and original.get("sam3d_photo"):
            cameras.add(original)
        elif isinstance(original, bpy.types.Camera):
            cameras.update(o for o in scene.objects if o.data == original and o.get("sam3d_photo"))
    if not cameras:
        return
    _following = True
    try:
        context = bpy.context
        for camera in cameras:
            relayout_photo(context, camera)
    finally:
        _following = False


class SAM3D_OT_relayout(bpy.types.Operator):
    """Lay out the photo's objects again for its camera as it is now (after changing its focal length or
    moving it); no request is sent"""

    bl_idname = "sam3d.relayout"
    bl_label = "Re-layout"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        camera = context.scene.camera
        mine = camera is not None and camera.get("sam3d_photo")
        if not mine:
            cls.poll_message_set("The scene's camera is not a SAM 3D photo camera")
        return bool(mine)

    def execute(self, context: bpy.types.Context) -> set[str]:
        camera = context.scene.camera
        assert camera is not None  # poll() made sure
        moved = relayout_photo(context, camera)
        self.report({"INFO"}, f"SAM 3D: laid out {moved} object(s) again")
        return {"FINISHED"}


classes = (SAM3D_OT_relayout,)
