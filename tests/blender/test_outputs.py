"""Other shapes of SAM 3D output the add-on must take (sam3d-model.md: positions only, vertex colours,
textured PBR, Draco), made here with Blender's own glTF exporter and served by the emulator."""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np
import pytest
from conftest import bounds, new_objects, use_inputs


def export(path: Path, build, **options) -> bytes:  # noqa: ANN001, ANN003
    """Build a scene with `build()`, export it as GLB with Blender's exporter, return the bytes."""
    bpy.ops.wm.read_homefile(use_empty=True)
    build()
    bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", **options)
    bpy.ops.wm.read_homefile(use_empty=True)
    return path.read_bytes()


def textured_sphere() -> None:
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.4)
    image = bpy.data.images.new("albedo", 16, 16)
    image.pixels.foreach_set(np.random.default_rng(1).random(16 * 16 * 4, dtype=np.float32))
    mat = bpy.data.materials.new("baked")
    if mat.node_tree is None:
        mat.use_nodes = True
    tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
    tex.image = image
    bsdf = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    bpy.context.object.data.materials.append(mat)


def two_parts() -> None:
    bpy.ops.object.empty_add()
    root = bpy.context.object
    for x in (-0.3, 0.3):
        bpy.ops.mesh.primitive_cube_add(size=0.4, location=(x, 0.0, 0.5))
        bpy.context.object.parent = root


def rotated_box() -> None:
    bpy.ops.mesh.primitive_cube_add(size=0.5, location=(0.2, 0.1, 0.3), rotation=(math.radians(30), 0, 0),
                                    scale=(1.0, 2.0, 0.5))


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
    made = reconstruct_with(sam3d, export(sam3d.tmp / "tex.glb", textured_sphere))
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
    # Made by Blender 5.0's exporter with Draco on (PyPI's 4.2 and 5.3 wheels lack the Draco library).
    fixture = Path(__file__).parents[1] / "data" / "draco_sphere.glb"
    glb = fixture.read_bytes()
    assert b"KHR_draco_mesh_compression" in glb
    if draco_decoder_present(fixture):
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
    made = reconstruct_with(sam3d, export(sam3d.tmp / "parts.glb", two_parts))
    roots = [o for o in made if o.parent is None]
    assert len(roots) == 1 and roots[0].name == "mask_0"
    assert len([o for o in made if o.type == "MESH"]) == 2
    assert roots[0]["sam3d_task_uuid"] and roots[0].select_get()
    assert_stands_on_cursor(roots[0])


def test_a_transformed_mesh_at_the_root_is_baked_and_stands_on_the_cursor(sam3d):
    [obj] = reconstruct_with(sam3d, export(sam3d.tmp / "rotated.glb", rotated_box))
    assert tuple(obj.rotation_euler) == pytest.approx((0, 0, 0)) and tuple(obj.scale) == pytest.approx((1, 1, 1))
    assert_stands_on_cursor(obj)
