"""`bpy.ops.sam3d.reconstruct()` end to end against the emulator, with the real samples and the real importer."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from conftest import SAMPLES, bounds, decode_png, last_task, load, module, new_image, new_objects, sent, use_inputs

POSED = SAMPLES / "human_object" / "sam3d_output_0.glb"


def reconstruct() -> list[bpy.types.Object]:
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    return new_objects(before)


def test_one_clean_object_stands_on_the_cursor(sam3d):
    sam3d.emu.result_bytes = POSED.read_bytes()
    use_inputs()
    bpy.context.scene.cursor.location = (1.0, 2.0, 3.0)
    made = reconstruct()
    assert [o.type for o in made] == ["MESH"], "the importer's Empty was not flattened away"
    obj = made[0]
    assert obj.name == "mask_0" and obj.data.name == "mask_0"
    assert [c.name for c in obj.users_collection] == ["mask_0"]
    assert bpy.context.scene.collection.children["mask_0"] is obj.users_collection[0]
    assert obj.select_get() and bpy.context.view_layer.objects.active is obj
    assert tuple(obj.location) == pytest.approx((1.0, 2.0, 3.0))
    low, high = bounds(obj)
    assert low[2] == pytest.approx(3.0, abs=1e-4), "not standing on the cursor"
    assert (low[0] + high[0]) / 2 == pytest.approx(1.0, abs=1e-4)
    assert (low[1] + high[1]) / 2 == pytest.approx(2.0, abs=1e-4)
    assert len(obj.data.polygons) == 227_278


def test_provenance_is_kept_on_the_object(sam3d):
    use_inputs()
    sam3d.settings.prompt = "a toy"
    obj = reconstruct()[0]
    task = last_task(sam3d.emu)
    state = sam3d.emu.tasks[task["taskUUID"]]
    assert obj["sam3d_task_uuid"] == task["taskUUID"]
    assert obj["sam3d_seed"] == str(state.results[0].seed)  # server seeds exceed 32 bits: kept as a string
    assert obj["sam3d_cost"] == pytest.approx(0.0038)
    assert obj["sam3d_prompt"] == "a toy" and task["positivePrompt"] == "a toy"
    assert obj["sam3d_image"] == "image.png"
    assert task["includeCost"] is True


def test_seeds_beyond_32_bits_are_kept_exactly(sam3d):
    use_inputs()
    sam3d.settings.num_results = 3
    made = reconstruct()
    seeds = sorted(int(o["sam3d_seed"]) for o in made)
    server = sorted(g.seed for g in sam3d.emu.tasks[last_task(sam3d.emu)["taskUUID"]].results)
    assert seeds == server
    assert any(s >= 2**31 for s in seeds), "the emulator should hand out seeds past 2**31"


def test_as_is_keeps_the_camera_frame_pose(sam3d):
    sam3d.emu.result_bytes = POSED.read_bytes()
    use_inputs()
    sam3d.settings.placement = "AS_IS"
    bpy.context.scene.cursor.location = (5.0, 5.0, 5.0)
    low, high = bounds(reconstruct()[0])
    # Measured on the sample (sam3d-model.md): in front of a camera at the origin looking along +Y.
    assert low[1] == pytest.approx(2.50, abs=0.02) and high[1] == pytest.approx(2.74, abs=0.02)
    assert low[0] == pytest.approx(-0.48, abs=0.02) and high[2] == pytest.approx(-0.22, abs=0.02)


@pytest.mark.parametrize("multi_form", ["items", "files"])
def test_variants_stand_side_by_side(sam3d, multi_form):
    sam3d.emu.style.multi_form = multi_form
    use_inputs()
    sam3d.settings.num_results = 4
    made = sorted(reconstruct(), key=lambda o: o.location.x)
    assert len(made) == 4 and all(o.select_get() for o in made)
    assert len({o["sam3d_result_index"] for o in made}) == 4
    boxes = [bounds(o) for o in made]
    for (_, high), (low, _) in zip(boxes, boxes[1:], strict=False):
        assert high[0] < low[0], "variants overlap"
    assert all(b[0][2] == pytest.approx(0.0, abs=1e-4) for b in boxes), "every variant stands on the ground"
    assert len({c.name for o in made for c in o.users_collection}) == 1


def test_vertex_colours_get_a_material_that_shows_them(sam3d):
    use_inputs()  # the emulator's generated result has vertex colours and no material
    obj = reconstruct()[0]
    assert obj.data.color_attributes, "the generated result should carry COLOR_0"
    mat = obj.data.materials[0]  # ours, or the importer's own where it makes one (Blender 5.3 does)
    bsdf = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    source = bsdf.inputs["Base Color"].links[0].from_node
    attribute = obj.data.color_attributes[0].name
    if source.type == "VERTEX_COLOR":
        assert source.layer_name in ("", attribute)  # "" reads the default colour attribute
    else:
        assert source.type == "ATTRIBUTE" and source.attribute_name == attribute


def test_positions_only_mesh_gets_no_vertex_colour_material(sam3d):
    sam3d.emu.result_bytes = POSED.read_bytes()
    use_inputs()
    assert len(reconstruct()[0].data.materials) == 0


def test_grayscale_mask_is_sent_as_a_clean_binary_png_at_the_photo_size(sam3d):
    use_inputs()
    reconstruct()
    task = last_task(sam3d.emu)
    (w, h), mask = decode_png(sent(sam3d.emu, task, "mask"), sam3d.tmp, "mask")
    (pw, ph), _ = decode_png(sent(sam3d.emu, task, "image"), sam3d.tmp, "photo")
    assert (w, h) == (pw, ph) == (1600, 898)
    assert set(np.unique(mask[..., 0])) == {0.0, 1.0}
    source = load("human_object/mask_0.png")
    src = np.empty(1600 * 898 * 4, np.float32)
    source.pixels.foreach_get(src)
    assert np.array_equal(mask[..., 0] > 0.5, src.reshape(898, 1600, 4)[::-1][..., 0] > 0.5)


def test_cutout_mask_alpha_is_the_mask_and_big_photos_are_downscaled(sam3d):
    use_inputs("socrates/image.png", "socrates/3.png")  # JPEG data named .png, 2560x1681; RGBA cut-out
    reconstruct()
    task = last_task(sam3d.emu)
    (w, h), mask = decode_png(sent(sam3d.emu, task, "mask"), sam3d.tmp, "mask")
    (pw, ph), _ = decode_png(sent(sam3d.emu, task, "image"), sam3d.tmp, "photo")
    assert (w, h) == (pw, ph) == (2048, 1345)
    cut = load("socrates/3.png")
    alpha = np.empty(2560 * 1681 * 4, np.float32)
    cut.pixels.foreach_get(alpha)
    expected = alpha.reshape(1681, 2560, 4)[..., 3].mean()
    assert mask[..., 0].mean() == pytest.approx(expected, rel=0.03)  # the alpha's coverage, not the RGB's


def test_photo_alpha_can_be_the_mask(sam3d):
    sam3d.settings.image = load("socrates/5.png")  # a cut-out: the photo carries its own mask
    sam3d.settings.use_photo_alpha = True
    assert len(reconstruct()) == 1
    (_, _), mask = decode_png(sent(sam3d.emu, last_task(sam3d.emu), "mask"), sam3d.tmp, "mask")
    assert 0 < mask[..., 0].mean() < 1


def test_mask_of_another_size_is_resampled_with_a_warning(sam3d, capsys):
    use_inputs(mask=None)
    rgba = np.zeros((449, 800, 4), np.float32)
    rgba[100:300, 200:500] = 1.0
    sam3d.settings.mask = new_image("half_mask", 800, 449, rgba)
    assert len(reconstruct()) == 1
    (w, h), mask = decode_png(sent(sam3d.emu, last_task(sam3d.emu), "mask"), sam3d.tmp, "mask")
    assert (w, h) == (1600, 898)
    assert mask[..., 0].mean() == pytest.approx(200 * 300 / (449 * 800), rel=0.02)
    assert "stretched" in capsys.readouterr().out


@pytest.mark.parametrize("fill, words", [(0.0, "empty"), (1.0, "whole photo")])
def test_empty_or_full_mask_is_refused_before_any_request(sam3d, fill, words):
    use_inputs(mask=None)
    sam3d.settings.mask = new_image("bad_mask", 1600, 898, np.full((898, 1600, 4), [fill, fill, fill, 1.0]))
    before = set(bpy.data.objects)
    with pytest.raises(RuntimeError, match=words):
        bpy.ops.sam3d.reconstruct()
    assert sam3d.emu.requests == [] and new_objects(before) == []


def test_photo_without_alpha_cannot_be_its_own_mask(sam3d):
    use_inputs(mask=None)
    sam3d.settings.use_photo_alpha = True
    with pytest.raises(RuntimeError, match="no transparency"):
        bpy.ops.sam3d.reconstruct()
    assert sam3d.emu.requests == []


def test_the_import_is_one_undo_step(addon):  # the fixture installs the add-on: random order may run this first
    # Undo does not run in background mode (ed.undo's poll fails there), so check what makes the one step:
    # Blender pushes it when an operator with UNDO finishes, and the import happens inside that operator.
    # Not REGISTER: Repeat Last (Shift+R) or the redo panel would run a paid job again, blocking Blender.
    for name in ("SAM3D_OT_reconstruct", "SAM3D_OT_retry", "SAM3D_OT_resume", "SAM3D_OT_reimport"):
        op = bpy.types.Operator.bl_rna_get_subclass_py(name)
        assert "UNDO" in op.bl_options and "REGISTER" not in op.bl_options, name


def test_results_and_journal_are_on_disk_without_the_key(sam3d):
    use_inputs()
    obj = reconstruct()[0]
    glb = sam3d.results / obj["sam3d_task_uuid"]
    assert sorted(p.name for p in glb.iterdir()) == ["mask.png", "mask_0_0.glb", "photo.png"]
    journal = (sam3d.results / "journal.jsonl").read_text()
    events = [line.split('"event": "')[1].split('"')[0] for line in journal.splitlines()]
    assert events == ["created", "submitted", "results", "downloaded", "imported"]
    assert sam3d.prefs.api_key not in journal


def test_a_fully_transparent_photo_is_refused_as_its_own_mask(sam3d):
    clear = np.zeros((48, 64, 4), np.float32)  # alpha 0 everywhere: the "mask" it carries is empty
    sam3d.settings.image = new_image("clear", 64, 48, clear)
    sam3d.settings.use_photo_alpha = True
    with pytest.raises(RuntimeError, match="empty"):
        bpy.ops.sam3d.reconstruct()
    assert sam3d.emu.requests == []


def test_reconstruct_can_bake_the_result_to_a_texture_within_a_triangle_budget(sam3d):
    use_inputs()  # the emulator's result: an ellipsoid with vertex colours, 1216 triangles
    sam3d.settings.bake_to_texture, sam3d.settings.bake_resolution, sam3d.settings.triangle_budget = True, 128, 500
    [obj] = reconstruct()
    assert sum(len(p.vertices) - 2 for p in obj.data.polygons) <= 500 and obj["sam3d_baked"] == 128
    image = next(n.image for n in obj.active_material.node_tree.nodes if getattr(n, "image", None) is not None)
    assert tuple(image.size) == (128, 128) and image.packed_file is not None
    assert obj["sam3d_task_uuid"] == last_task(sam3d.emu)["taskUUID"], "its provenance stays"


def test_a_triangle_budget_alone_reduces_without_baking(sam3d):
    use_inputs()
    sam3d.settings.triangle_budget = 400
    [obj] = reconstruct()
    assert sum(len(p.vertices) - 2 for p in obj.data.polygons) <= 440 and "sam3d_baked" not in obj


def test_a_photo_file_read_again_is_not_decoded_again_but_a_changed_or_edited_one_is(sam3d, tmp_path, monkeypatch):
    pixels = module("operators.machinery.pixels")
    path = tmp_path / "photo.png"
    path.write_bytes((SAMPLES / "human_object" / "image.png").read_bytes())
    decoded = []
    real = pixels.pixels_at
    monkeypatch.setattr(pixels, "pixels_at", lambda image, size: (decoded.append(image.name), real(image, size))[1])
    first = pixels.read_photo(bpy.data.images.load(str(path)))
    again = pixels.read_photo(bpy.data.images.load(str(path)))  # another datablock of the same file (a batch)
    assert len(decoded) == 1 and np.array_equal(first, again) and not again.flags.writeable
    path.write_bytes((SAMPLES / "socrates" / "image.png").read_bytes())  # the file changed on disk
    changed = pixels.read_photo(bpy.data.images.load(str(path)))
    assert len(decoded) == 2 and changed.shape != first.shape
    shown = bpy.data.images.load(str(path))
    _ = shown.pixels[0]  # decoded and shown by Blender: until Reload, what it shows may not be the file
    pixels.read_photo(shown)
    assert len(decoded) == 3, "an image Blender holds decoded is read from memory, never cached by its file"
    edited = bpy.data.images.load(str(path))
    edited.pixels[0] = 0.5  # painted in Blender: its pixels are no longer the file's
    assert edited.is_dirty
    pixels.read_photo(edited)
    assert len(decoded) == 4
