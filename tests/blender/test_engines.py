"""Reconstruct with another engine (issue 23): the real operator, the real glTF importer, the emulator checking the
request as that model's page describes it."""

from __future__ import annotations

import base64

import bpy
import numpy as np
import pytest
from conftest import SAMPLES, use_inputs

SAMPLE_PHOTO = SAMPLES / "human_object" / "image.png"


def sent_tasks(emu) -> list[dict]:  # noqa: ANN001
    return [t for r in emu.requests if r.body for t in r.body if t.get("taskType") == "3dInference"]


def png_sent(emu, image: str) -> bytes:  # noqa: ANN001
    """The PNG a task's image names: inline as a data URI, or an upload's UUID."""
    if image.startswith("data:"):
        return base64.b64decode(image.split(",", 1)[1])
    return emu.uploads[image]


def alpha_and_size(path, png: bytes) -> tuple[float, tuple[int, int]]:  # noqa: ANN001
    """The share of opaque pixels of a PNG, and its size."""
    path.write_bytes(png)
    image = bpy.data.images.load(str(path))
    size = tuple(image.size)
    pixels = np.empty(size[0] * size[1] * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    return float((pixels[3::4] > 0.5).mean()), size


def alpha_of(path, png: bytes) -> float:  # noqa: ANN001
    """The share of the image's pixels that are opaque."""
    return alpha_and_size(path, png)[0]


def test_trellis_gets_the_cut_out_its_settings_and_lands_with_a_pbr_material(sam3d):
    use_inputs()
    sam3d.settings.engine = "TRELLIS2"
    group = sam3d.settings.engine_trellis2
    group.use_textureSize, group.textureSize = True, 3072
    group.use_resolution, group.resolution = True, "1536"
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    [task] = sent_tasks(sam3d.emu)
    assert task["model"] == "microsoft:trellis-2@4b" and "mask" not in task["inputs"] and "prompt" not in task
    assert task["settings"] == {"textureSize": 3072, "resolution": 1536}, "only the ticked settings, typed"
    alpha = alpha_of(sam3d.tmp / "sent.png", png_sent(sam3d.emu, task["inputs"]["image"]))
    assert 0.005 < alpha < 0.9, f"the cut-out, the object alone ({alpha:.1%} opaque), not the whole photo"
    [obj] = [o for o in bpy.data.objects if o not in before and o.type == "MESH"]
    material = obj.active_material
    assert material is not None
    nodes = {n.type for n in material.node_tree.nodes}
    assert "BSDF_PRINCIPLED" in nodes and "TEX_IMAGE" in nodes, "the engine's PBR textures, imported"
    assert sam3d.emu.billed("3dInference") == 1


def test_a_setting_out_of_bounds_or_as_in_the_photo_is_refused_before_anything_is_sent(sam3d):
    use_inputs()
    sam3d.settings.engine = "TRELLIS2"
    sam3d.settings.placement = "CAMERA"
    assert not bpy.ops.sam3d.reconstruct.poll(), "As in the Photo needs SAM 3D's poses"
    sam3d.settings.placement = "CURSOR"
    assert bpy.ops.sam3d.reconstruct.poll()
    group = sam3d.settings.engine_trellis2
    group.use_textureSize, group.textureSize = True, 1500  # within its range, not a multiple of its step
    with pytest.raises(RuntimeError, match="(?i)texture"):
        bpy.ops.sam3d.reconstruct()
    assert sent_tasks(sam3d.emu) == [] and sam3d.emu.billed("3dInference") == 0


def test_the_press_reserves_the_engines_worst_case(sam3d):
    """TRELLIS.2 is billed by time: a limit that allows SAM 3D's price but not TRELLIS.2's worst case refuses it."""
    use_inputs()
    sam3d.prefs.session_budget = 0.05
    sam3d.settings.engine = "TRELLIS2"
    with pytest.raises(RuntimeError, match="Spending Limit"):
        bpy.ops.sam3d.reconstruct()
    assert sam3d.emu.billed("3dInference") == 0
    sam3d.settings.engine = "SAM3D"
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"} and sam3d.emu.billed("3dInference") == 1


def test_a_batch_with_another_engine_sends_each_cut_out_and_keeps_pbr_assets(sam3d, capsys):
    """`--engine trellis2`: each item's cut-out to TRELLIS.2, the assets with their PBR material; the estimate at
    its worst case; SAM 3D's state of the same items is not taken for TRELLIS.2's."""
    from test_batch import cli_module, photos, read_library

    folder, library = photos(sam3d.tmp), sam3d.tmp / "library"
    assert cli_module().cli(["batch", str(folder), "-o", str(library)]) == 0  # SAM 3D's library first
    sam3d_files = {p: p.read_bytes() for p in library.rglob("*.blend")}
    capsys.readouterr()
    assert cli_module().cli(["batch", str(folder), "-o", str(library), "--engine", "trellis2"]) == 0
    out = capsys.readouterr().out
    assert "4 job(s) of 4 item(s), about $0.4000" in out, "four items at TRELLIS.2's worst case, none taken as done"
    tasks = sent_tasks(sam3d.emu)[4:]
    assert len(tasks) == 4 and {t["model"] for t in tasks} == {"microsoft:trellis-2@4b"}
    assert all("mask" not in t["inputs"] and "prompt" not in t for t in tasks)
    assert all(p.read_bytes() == data for p, data in sam3d_files.items()), "SAM 3D's assets kept as they were"
    assets = [o for o in read_library(library) if "TRELLIS.2" in [t.name for t in o.asset_data.tags]]
    assert len(assets) == 4 and len(list(library.rglob("*.blend"))) == 8, "beside SAM 3D's, in files of their own"
    for obj in assets:
        meshes = [o for o in (obj, *obj.children_recursive) if o.type == "MESH"]
        nodes = {n.type for o in meshes for m in o.material_slots if m.material for n in m.material.node_tree.nodes}
        assert {"BSDF_PRINCIPLED", "TEX_IMAGE"} <= nodes, f"{obj.name}: its PBR material kept in the asset"
    assert cli_module().cli(["batch", str(folder), "-o", str(library), "--engine", "trellis2"]) == 0
    assert len(sent_tasks(sam3d.emu)) == 8, "run again: nothing sent, nothing paid"
    with pytest.raises(SystemExit):
        cli_module().cli(["batch", str(folder), "-o", str(library), "--engine", "nope"])


def test_the_library_panel_engine_and_its_ticked_settings_reach_every_item(sam3d):
    from test_batch import photos

    sam3d.settings.batch_engine = "TRELLIS2"
    group = sam3d.settings.engine_trellis2
    group.use_textureSize, group.textureSize = True, 4096
    assert bpy.ops.sam3d.batch(directory=str(photos(sam3d.tmp)), filepath=str(sam3d.tmp / "lib")) == {"FINISHED"}
    tasks = sent_tasks(sam3d.emu)
    assert len(tasks) == 4 and all(t["settings"] == {"textureSize": 4096} for t in tasks)


def test_bake_and_the_triangle_budget_work_on_an_engines_pbr_result(sam3d):
    """Advanced's Bake to Texture reads TRELLIS.2's base-colour texture (there are no vertex colours to read)."""
    use_inputs()
    sam3d.settings.engine = "TRELLIS2"
    sam3d.settings.bake_to_texture, sam3d.settings.bake_resolution, sam3d.settings.triangle_budget = True, 128, 8
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    [obj] = [o for o in bpy.data.objects if o not in before and o.type == "MESH"]
    assert obj["sam3d_baked"] == 128 and sum(len(p.vertices) - 2 for p in obj.data.polygons) <= 8
    image = next(n.image for n in obj.active_material.node_tree.nodes if getattr(n, "image", None) is not None)
    pixels = np.array(image.pixels[:]).reshape(-1, 4)
    assert tuple(image.size) == (128, 128) and pixels[:, :3].std() > 0.01, "the texture's colours, not one flat tone"


def grid_glb(n: int = 4) -> bytes:
    """A wavy n × n grid of quads, each split into two triangles as a GLB must carry them."""
    from tests import glb

    points = [(x, 0.1 * np.sin(x + y), y) for y in range(n + 1) for x in range(n + 1)]
    tris = []
    for y in range(n):
        for x in range(n):
            a, b, c, d = y * (n + 1) + x, y * (n + 1) + x + 1, (y + 1) * (n + 1) + x + 1, (y + 1) * (n + 1) + x
            tris += [(a, b, c), (a, c, d)]
    return glb.make_glb(points, tris)


@pytest.mark.parametrize("quad", [True, False])
def test_a_quad_mesh_asked_of_tripo_lands_as_quads(sam3d, quad):
    """Tripo's Quad Mesh: the GLB's triangle pairs are joined into the quads the engine made; unticked, the
    triangles stay as they came."""
    use_inputs()
    sam3d.settings.engine = "TRIPO"
    group = sam3d.settings.engine_tripo
    group.use_quad, group.quad = quad, quad
    sam3d.emu.result_factory = lambda task, i: grid_glb()
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    [obj] = [o for o in bpy.data.objects if o not in before and o.type == "MESH"]
    sides = sorted({len(p.vertices) for p in obj.data.polygons})
    assert (len(obj.data.polygons), sides) == ((16, [4]) if quad else (32, [3]))


def test_retry_and_reimport_keep_the_engine_settings(sam3d):
    """The engine's settings are journalled: Re-import joins the quads again, Retry sends the same settings
    (a Tripo job asked for quads and 2,000 faces is retried as one)."""
    use_inputs()
    sam3d.settings.engine = "TRIPO"
    group = sam3d.settings.engine_tripo
    group.use_quad, group.quad, group.use_faceLimit, group.faceLimit = True, True, True, 2000
    sam3d.emu.result_factory = lambda task, i: grid_glb()
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    [obj] = [o for o in bpy.data.objects if o not in before and o.type == "MESH"]
    uuid = obj["sam3d_task_uuid"]
    group.use_quad = group.use_faceLimit = False  # the panel changed since: Retry and Re-import use the journal's
    again = set(bpy.data.objects)
    assert bpy.ops.sam3d.reimport(task_uuid=uuid) == {"FINISHED"}
    [copy] = [o for o in bpy.data.objects if o not in again and o.type == "MESH"]
    assert {len(p.vertices) for p in copy.data.polygons} == {4}, "re-imported as the quads it landed as"
    assert bpy.ops.sam3d.retry(task_uuid=uuid) == {"FINISHED"}
    first, retried = sent_tasks(sam3d.emu)[-2:]
    assert retried["taskUUID"] != first["taskUUID"]
    assert {k: retried["settings"][k] for k in ("quad", "faceLimit")} == {"quad": True, "faceLimit": 2000}
    assert retried["settings"] == first["settings"]


def view_images(folder, count: int) -> list[bpy.types.Image]:  # noqa: ANN001
    """`count` other views of the object: the first a plain photo, the others cut-outs (transparent around it)."""
    from tests.emulator import cutout_png

    views = []
    for n in range(count):
        path = folder / f"side_{n}.png"
        path.write_bytes(SAMPLE_PHOTO.read_bytes() if n == 0 else cutout_png(300 + 10 * n, 200))
        views.append(bpy.data.images.load(str(path)))
    return views


def test_other_views_go_after_the_cut_out_to_a_multi_view_engine(sam3d):
    """Hunyuan 3D Pro with two other views: one task whose inputs.images are the cut-out then the views, each
    uploaded once; a plain view is sent whole (scaled to 1,024 px), a cut-out view cropped to its object; the
    views are kept beside the inputs and journalled, and Retry sends all three again."""
    use_inputs()
    settings = sam3d.settings
    settings.engine = "HUNYUAN_PRO"
    for image in view_images(sam3d.tmp, 2):
        settings.views.add().image = image
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    [task] = sent_tasks(sam3d.emu)
    images = task["inputs"]["images"]
    assert len(images) == 3 and all(i in sam3d.emu.uploads for i in images), "three uploads, by UUID"
    sizes = [alpha_and_size(sam3d.tmp / f"sent{n}.png", png_sent(sam3d.emu, i)) for n, i in enumerate(images)]
    assert sizes[1] == (1.0, (1024, 575)), "the plain view whole, at 1,024 px"
    assert sizes[2][0] < 1.0 and sizes[2][1][0] < 320, "the cut-out view cropped to its object"
    [obj] = [o for o in bpy.data.objects if o.get("sam3d_task_uuid")]
    folder = sam3d.results / obj["sam3d_task_uuid"]
    assert [png_sent(sam3d.emu, i) for i in images[1:]] == [(folder / f"view_{n}.png").read_bytes() for n in (1, 2)]
    assert bpy.ops.sam3d.retry(task_uuid=obj["sam3d_task_uuid"]) == {"FINISHED"}
    retried = sent_tasks(sam3d.emu)[-1]["inputs"]["images"]
    assert [png_sent(sam3d.emu, i) for i in retried] == [png_sent(sam3d.emu, i) for i in images]


def test_views_the_engine_cannot_take_are_refused_with_a_reason_and_never_sent(sam3d):
    """Tripo takes 4 images: a fifth is refused before anything is paid, a row with no image too; SAM 3D and
    TRELLIS.2 (one image) leave the list alone and send what they always send."""
    use_inputs()
    settings = sam3d.settings
    settings.engine = "TRIPO"
    for image in view_images(sam3d.tmp, 4):
        settings.views.add().image = image
    with pytest.raises(RuntimeError, match="at most 4 images: the photo and 3 other view.*Remove 1"):
        bpy.ops.sam3d.reconstruct()
    settings.views.remove(3)
    settings.views.add()
    with pytest.raises(RuntimeError, match="has no image"):
        bpy.ops.sam3d.reconstruct()
    assert not sent_tasks(sam3d.emu) and sam3d.emu.billed("3dInference") == 0
    settings.active_view_index = 3
    assert bpy.ops.sam3d.view_remove() == {"FINISHED"}  # the active row: the empty one
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    assert len(sent_tasks(sam3d.emu)[-1]["inputs"]["images"]) == 4
    settings.engine = "TRELLIS2"
    assert not bpy.ops.sam3d.view_add.poll(), "one image: no views to add"
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    assert set(sent_tasks(sam3d.emu)[-1]["inputs"]) == {"image"}
    settings.image = None
    settings.engine, settings.prompt = "MESHY", "a chair"
    with pytest.raises(RuntimeError, match="Other Views go with a photo"):
        bpy.ops.sam3d.reconstruct()


def test_a_view_past_the_largest_photo_or_with_no_pixels_is_refused_before_anything_is_sent(sam3d):
    """A view is bounded as the photo is: its size read from its header against Largest Photo (never decoded
    when too large), a missing file a sentence; nothing reserved or sent."""
    use_inputs()
    settings = sam3d.settings
    settings.engine = "MESHY"
    from tests.emulator import cutout_png

    sam3d.prefs.max_photo_megapixels = 1.5  # the photo (1600×898) is within it, the view is not
    (sam3d.tmp / "wide.png").write_bytes(cutout_png(2000, 1000))
    settings.views.add().image = bpy.data.images.load(str(sam3d.tmp / "wide.png"))
    with pytest.raises(RuntimeError, match="'wide.png' is 2000×1000.*megapixels allowed"):
        bpy.ops.sam3d.reconstruct()
    sam3d.prefs.max_photo_megapixels = 100.0
    (sam3d.tmp / "wide.png").unlink()
    bpy.data.images["wide.png"].reload()
    with pytest.raises(RuntimeError, match="has no pixels"):
        bpy.ops.sam3d.reconstruct()
    assert not sent_tasks(sam3d.emu) and sam3d.emu.billed("3dInference") == 0


def test_add_views_loads_the_files_picked_up_to_what_the_engine_takes(sam3d):
    """Add Views with several files picked (as the file browser gives them): each becomes a row, up to the engine's
    limit; a file Blender cannot read is skipped with a sentence."""
    use_inputs()
    settings = sam3d.settings
    settings.engine = "RODIN"  # 5 images: the photo and 4 views
    view_images(sam3d.tmp, 3)
    (sam3d.tmp / "broken.png").write_bytes(b"not an image")
    names = ["side_0.png", "broken.png", "side_1.png", "side_2.png", "side_0.png", "side_1.png"]
    assert bpy.ops.sam3d.view_add(directory=str(sam3d.tmp) + "/", files=[{"name": n} for n in names]) == {"FINISHED"}
    assert [v.image.name for v in settings.views] == ["side_0.png", "side_1.png", "side_2.png", "side_0.png"]


def test_a_text_to_3d_engine_makes_an_object_from_the_prompt_alone(sam3d):
    """No photo: Hunyuan 3D Rapid takes the Prompt alone (positivePrompt, no inputs); SAM 3D and TRELLIS.2,
    which need an image, say so, and so does a text engine with no prompt."""
    settings = sam3d.settings
    settings.image = settings.mask = None
    assert not bpy.ops.sam3d.reconstruct.poll(), "SAM 3D needs a photo"
    settings.engine = "HUNYUAN_RAPID"
    with pytest.raises(RuntimeError, match="type a Prompt"):
        bpy.ops.sam3d.reconstruct()
    settings.prompt = "a red wooden chair"
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    [task] = sent_tasks(sam3d.emu)
    assert task["positivePrompt"] == "a red wooden chair" and "inputs" not in task
    [obj] = [o for o in bpy.data.objects if o not in before and o.get("sam3d_task_uuid")]
    assert obj.name == "a_red_wooden" and sam3d.emu.billed("3dInference") == 1
    assert bpy.ops.sam3d.retry(task_uuid=obj["sam3d_task_uuid"]) == {"FINISHED"}, "Retry: the prompt again"
    assert sent_tasks(sam3d.emu)[-1]["positivePrompt"] == "a red wooden chair" and len(sent_tasks(sam3d.emu)) == 2
    settings.engine = "TRELLIS2"
    with pytest.raises(RuntimeError, match="Pick a photo"):
        bpy.ops.sam3d.reconstruct()
    settings.engine, settings.prompt = "MESHY", "a chair " * 75 + "!"  # 601 characters: Meshy takes 600
    with pytest.raises(RuntimeError, match="at most 600 characters: shorten it by 1"):
        bpy.ops.sam3d.reconstruct()
    assert len(sent_tasks(sam3d.emu)) == 2
