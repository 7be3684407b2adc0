"""Many masks of one photo: one job each, the photo sent once, all objects in the photo's collection."""

from __future__ import annotations

import base64

import bpy
import pytest
from conftest import SAMPLES, load, new_objects


def test_a_folder_of_cutout_masks_becomes_one_object_each_in_the_photos_collection(sam3d):
    settings = sam3d.settings
    settings.image = load("socrates/image.png")
    assert bpy.ops.sam3d.masks_load_folder(directory=str(SAMPLES / "socrates")) == {"FINISHED"}
    assert len(settings.masks) == 23, "23 cut-outs; the photo itself is skipped"
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
