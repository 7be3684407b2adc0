"""How the GLBs in tests/data were made: Blender's own glTF exporter (run with bpy 5.0.1:
`.venv/blender-5.0/bin/python tests/data/make_glbs.py`). Kept as files because the exporter of PyPI's
bpy 4.2 wheel leaves Blender crashing at interpreter exit, and the 4.2 and 5.3 wheels cannot write Draco."""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np

HERE = Path(__file__).parent


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


def draco_sphere() -> None:
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.3)


MADE = {"textured_sphere": (textured_sphere, {}), "two_parts": (two_parts, {}),
        "rotated_box": (rotated_box, {}),
        "draco_sphere": (draco_sphere, {"export_draco_mesh_compression_enable": True})}

if __name__ == "__main__":
    for name, (build, options) in MADE.items():
        bpy.ops.wm.read_homefile(use_empty=True)
        build()
        bpy.ops.export_scene.gltf(filepath=str(HERE / f"{name}.glb"), export_format="GLB", **options)
        print("wrote", name)
