"""Other shapes of SAM 3D output the add-on must take (sam3d-model.md: positions only, vertex colours,
textured PBR, Draco), made here with Blender's own glTF exporter and served by the emulator."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest
from conftest import bounds, new_objects, use_inputs

DATA = Path(__file__).parents[1] / "data"  # made by tests/data/make_glbs.py with Blender's own exporter


def fixture(name: str) -> bytes:
    return (DATA / f"{name}.glb").read_bytes()


def reconstruct_with(sam3d, glb: bytes) -> list[bpy.types.Object]:  # noqa: ANN001
    sam3d.emu.result_bytes = glb
    use_inputs()
    bpy.context.scene.cursor.location = (1.0, -1.0, 0.5)
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    return new_objects(before)


def assert_stands_on_cursor(obj: bpy.types.Object) -> None:
    parts = [o for o in [obj, *obj.children_recursive] if o.type == "MESH"]
    lows, highs = zip(*(bounds(o) for o in parts), strict=True)
    low, high = np.min(lows, axis=0), np.max(highs, axis=0)
    assert low[2] == pytest.approx(0.5, abs=1e-3)
    assert ((low[:2] + high[:2]) / 2) == pytest.approx([1.0, -1.0], abs=1e-3)


def test_textured_pbr_result_keeps_its_texture_packed(sam3d):
    made = reconstruct_with(sam3d, fixture("textured_sphere"))
    [obj] = made
    assert_stands_on_cursor(obj)
    mat = obj.data.materials[0]
    tex = next(n for n in mat.node_tree.nodes if n.type == "TEX_IMAGE")
    assert tex.image is not None and tex.image.packed_file is not None, "the texture must travel with the .blend"
    assert obj.data.uv_layers


def draco_decoder_present(path: Path) -> bool:
    """Whether this Blender's importer can read a Draco GLB (the module holding that check moves between
    versions, so ask the importer itself, in a scratch scene)."""
    try:
        bpy.ops.import_scene.gltf(filepath=str(path))
        return True
    except RuntimeError:
        return False
    finally:
        bpy.ops.wm.read_homefile(use_empty=True)


def test_draco_compressed_result(sam3d):
    # PyPI's 4.2 and 5.3 wheels lack the Draco library: there, a sentence instead of the object.
    glb = fixture("draco_sphere")
    assert b"KHR_draco_mesh_compression" in glb
    if draco_decoder_present(DATA / "draco_sphere.glb"):
        [obj] = reconstruct_with(sam3d, glb)
        assert len(obj.data.vertices) > 100
        assert_stands_on_cursor(obj)
        return
    sam3d.emu.result_bytes = glb  # without a decoder: a sentence that says so, nothing half-imported
    use_inputs()
    before = set(bpy.data.objects)
    with pytest.raises(RuntimeError, match="compressed with Draco"):
        bpy.ops.sam3d.reconstruct()
    assert new_objects(before) == []


def test_several_meshes_stay_together_under_one_root(sam3d):
    made = reconstruct_with(sam3d, fixture("two_parts"))
    roots = [o for o in made if o.parent is None]
    assert len(roots) == 1 and roots[0].name == "mask_0"
    assert len([o for o in made if o.type == "MESH"]) == 2
    assert roots[0]["sam3d_task_uuid"] and roots[0].select_get()
    assert_stands_on_cursor(roots[0])


def test_a_transformed_mesh_at_the_root_is_baked_and_stands_on_the_cursor(sam3d):
    [obj] = reconstruct_with(sam3d, fixture("rotated_box"))
    assert tuple(obj.rotation_euler) == pytest.approx((0, 0, 0)) and tuple(obj.scale) == pytest.approx((1, 1, 1))
    assert_stands_on_cursor(obj)
