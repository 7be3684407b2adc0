"""Many masks of one photo: one job each, the photo sent once, all objects in the photo's collection."""

from __future__ import annotations

import base64
import sys

import bpy
import numpy as np
import pytest
from conftest import MODULE, SAMPLES, load, new_objects, shared

from tests.shapes import box_of, shape_like


def test_a_folder_of_cutout_masks_becomes_one_object_each_in_the_photos_collection(sam3d):
    settings = sam3d.settings
    settings.image = load("socrates/image.png")
    assert bpy.ops.sam3d.masks_load_folder(directory=str(SAMPLES / "socrates")) == {"FINISHED"}
    assert len(settings.masks) == 8, "8 cut-outs in examples/socrates; the photo itself is skipped"
    assert [m.image.name for m in settings.masks][:3] == ["0.png", "1.png", "2.png"]
    for item in list(settings.masks)[8:]:
        item.enabled = False
    sam3d.prefs.max_jobs = 8
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    made = new_objects(before)
    assert sorted(o.name for o in made) == sorted(f"{n}" for n in range(8))
    collections = {c.name for o in made for c in o.users_collection}
    assert collections == {"image"}, "one collection, named after the photo"
    tasks = [t for r in sam3d.emu.requests for t in r.body if t.get("taskType") == "3dInference"]
    uploads = [t for r in sam3d.emu.requests for t in r.body if t.get("taskType") == "imageUpload"]
    assert len(tasks) == 8 and len(uploads) == 1 and len({t["inputs"]["image"] for t in tasks}) == 1
    photo_bytes = len(base64.b64decode(uploads[0]["image"].split(",", 1)[1]))
    mask_bytes = sum(len(base64.b64decode(t["inputs"]["mask"].split(",", 1)[1])) for t in tasks)
    sent = sum(len(str(r.body)) for r in sam3d.emu.requests)  # base64 in JSON: 4/3 of the bytes
    assert sent < 1.1 * (photo_bytes + mask_bytes) * 4 / 3, "about one photo plus the masks"
    assert sent < 2 * photo_bytes * 4 / 3, "not eight photos"


def test_one_bad_mask_refuses_the_lot_before_anything_is_sent(sam3d):
    settings = sam3d.settings
    settings.image = load("human_object/image.png")
    good = settings.masks.add()
    good.image = load("human_object/mask_0.png")
    empty = bpy.data.images.new("empty_mask", 1600, 898)
    empty.pixels.foreach_set([0.0, 0.0, 0.0, 1.0] * (1600 * 898))
    settings.masks.add().image = empty
    with pytest.raises(RuntimeError, match="empty"):
        bpy.ops.sam3d.reconstruct()
    assert sam3d.emu.requests == []


def test_disabled_masks_and_an_empty_list_fall_back_to_the_single_mask(sam3d):
    settings = sam3d.settings
    settings.image = load("human_object/image.png")
    settings.mask = load("human_object/mask_0.png")
    assert bpy.ops.sam3d.mask_add() == {"FINISHED"}
    settings.masks[0].enabled = False
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    [obj] = new_objects(before)
    assert [c.name for c in obj.users_collection] == ["mask_0"]
    assert bpy.ops.sam3d.mask_remove() == {"FINISHED"} and len(settings.masks) == 0


# --- placement 'CAMERA': results made by the emulator from each task's own mask -------------------------


def projected_box(scene: bpy.types.Scene, camera: bpy.types.Object, obj: bpy.types.Object):  # noqa: ANN201
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    points = [world_to_camera_view(scene, camera, obj.matrix_world @ Vector(c)) for c in obj.bound_box]
    xs, ys = [p.x for p in points], [1.0 - p.y for p in points]  # y from the top, as image rows
    return min(xs), min(ys), max(xs), max(ys)


def iou(a, b) -> float:  # noqa: ANN001
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def lay_out_socrates(sam3d, posed: bool, count: int = 8) -> list[bpy.types.Object]:  # noqa: ANN001
    sam3d.emu.result_factory = lambda task, index: shape_like(task, posed)
    settings = sam3d.settings
    settings.image = load("socrates/image.png")
    bpy.ops.sam3d.masks_load_folder(directory=str(SAMPLES / "socrates"))
    for item in list(settings.masks)[count:]:
        item.enabled = False
    settings.placement = "CAMERA"
    sam3d.prefs.max_jobs = 8
    before = set(bpy.data.objects)
    try:
        assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    finally:
        sam3d.emu.result_factory = None
    return [o for o in new_objects(before) if o.type != "CAMERA"]


def mask_boxes(settings) -> dict[str, tuple[float, float, float, float]]:  # noqa: ANN001
    boxes = {}
    for item in settings.masks:  # every one (the ones sent are unticked by now)
        w, h = item.image.size
        buf = np.empty(w * h * 4, np.float32)
        item.image.pixels.foreach_get(buf)
        boxes[item.image.name] = box_of(buf.reshape(h, w, 4)[::-1][..., 3] >= 0.5)
    return boxes


@pytest.mark.parametrize("posed", [False, True], ids=["canonical", "posed"])
def test_socrates_laid_out_through_a_camera_matching_the_photo(sam3d, posed):
    made = lay_out_socrates(sam3d, posed)
    scene = bpy.context.scene
    camera = bpy.data.objects["image"]
    assert camera.type == "CAMERA" and camera["sam3d_photo"] == "image.png" and scene.camera == camera
    assert (scene.render.resolution_x, scene.render.resolution_y) == (2560, 1681)
    assert camera.data.background_images[0].image.name == "image.png"
    assert len(made) == 8 and {c.name for o in made for c in o.users_collection} == {"image"}
    assert {o["sam3d_frame"] for o in made} == {"POSED" if posed else "CANONICAL"}
    boxes = mask_boxes(sam3d.settings)
    scores = {o.name: iou(projected_box(scene, camera, o), boxes[o["sam3d_mask"]]) for o in made}
    assert min(scores.values()) >= 0.5, scores
    if not posed:  # a shared ground: every object whose mask reaches below the horizon stands on it
        grounded = [o for o in made if boxes[o["sam3d_mask"]][3] > 0.55]
        assert grounded and all(abs(o.matrix_world.translation.z) < 1e-3 for o in grounded)

    requests = len(sam3d.emu.requests)
    camera.data.lens = 50.0  # the user corrects the focal length, then moves the camera
    camera.location.x += 1.0
    bpy.context.view_layer.update()  # the objects follow by themselves (a depsgraph handler)
    bpy.context.view_layer.update()
    followed = {o.name: iou(projected_box(scene, camera, o), boxes[o["sam3d_mask"]]) for o in made}
    assert min(followed.values()) >= 0.5, followed
    assert bpy.ops.sam3d.relayout() == {"FINISHED"}  # and the button does the same
    bpy.context.view_layer.update()
    after = {o.name: iou(projected_box(scene, camera, o), boxes[o["sam3d_mask"]]) for o in made}
    assert after == pytest.approx(followed, abs=1e-6)
    assert len(sam3d.emu.requests) == requests, "re-layout sends nothing"


# --- masks made in Blender ------------------------------------------------------------------------------


def pixels_of(image: bpy.types.Image) -> np.ndarray:
    w, h = image.size
    buf = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(buf)
    return buf.reshape(h, w, 4)[::-1]


def test_new_mask_is_black_at_the_photos_exact_size(sam3d):
    sam3d.settings.image = load("socrates/image.png")
    assert bpy.ops.sam3d.mask_new() == {"FINISHED"}
    mask = sam3d.settings.mask
    assert tuple(mask.size) == (2560, 1681) and pixels_of(mask)[..., :3].max() == 0.0
    assert mask.packed_file is not None, "a painted mask must be saved with the .blend"


def test_a_label_map_splits_into_one_mask_per_colour(sam3d):
    rgb = np.zeros((90, 160, 4), np.float32)
    rgb[..., 3] = 1.0
    rgb[10:40, 10:50, :3] = (1.0, 0.0, 0.0)
    rgb[50:80, 20:60, :3] = (0.0, 0.5, 1.0)
    rgb[20:70, 100:150, :3] = (0.2, 0.8, 0.2)
    label_map = bpy.data.images.new("labels", 160, 90)
    label_map.pixels.foreach_set(np.ascontiguousarray(rgb[::-1]).ravel())
    sam3d.settings.mask = label_map
    assert bpy.ops.sam3d.masks_split_label_map() == {"FINISHED"}
    made = [m.image for m in sam3d.settings.masks]
    assert [m.name for m in made] == ["labels_0", "labels_1", "labels_2"]
    covered = [int((pixels_of(m)[..., 0] > 0.5).sum()) for m in made]
    assert covered == [30 * 40, 50 * 50, 30 * 40]


def test_a_photo_is_refused_as_a_label_map(sam3d):
    sam3d.settings.mask = load("human_object/image.png")
    with pytest.raises(RuntimeError, match="one flat colour per object"):
        bpy.ops.sam3d.masks_split_label_map()


def test_auto_mask_makes_a_usable_mask_from_remove_background(sam3d):
    sam3d.settings.image = load("human_object/image.png")
    assert bpy.ops.sam3d.auto_mask() == {"FINISHED"}
    [task] = [t for r in sam3d.emu.requests for t in r.body]
    assert task["taskType"] == "removeBackground"
    mask = sam3d.settings.mask
    assert mask is not None and tuple(mask.size) == (1600, 898)
    covered = (pixels_of(mask)[..., 0] > 0.5).mean()
    assert 0.2 < covered < 0.6, "the emulator's cut-out is an ellipse over ~40 % of the frame"
    preview = bpy.data.images["SAM3D Mask Preview"]
    shown = pixels_of(preview)
    inside = pixels_of(mask)[..., 0] > 0.5
    assert shown[~inside, 1].mean() < 0.5 * shown[inside, 1].mean() + 0.05, "outside the mask is darkened"
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}  # the auto mask is usable as it is
    assert len(new_objects(before)) == 1


def test_all_23_masks_of_the_painting_load_when_the_shared_samples_are_there(sam3d):
    """An optional case: ../shared/samples holds the painting's 23 masks (examples/ keeps 8)."""
    folder = shared("socrates")
    settings = sam3d.settings
    settings.image = bpy.data.images.load(str(folder / "image.png"))
    assert bpy.ops.sam3d.masks_load_folder(directory=str(folder)) == {"FINISHED"}
    assert len(settings.masks) == 23, "23 cut-outs; the photo itself is skipped"
    pixels = sys.modules[f"{MODULE}.operators.machinery.pixels"]
    inputs = pixels.read_many(settings.image, [m.image for m in settings.masks])
    assert len(inputs) == 23 and all(given.mask.any() for given in inputs)
    assert sam3d.emu.requests == []
