"""The bake target's UV map: Smart UV Project, then islands too small to get a texel of their own enlarged and
packed again."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

import bpy
import numpy as np

if TYPE_CHECKING:
    from .staging import SceneState

UV_NAME = "UVMap"


def prepare_target(mesh: bpy.types.Mesh) -> None:
    """One fresh UV map, no material yet (the baked one is added later) and every face in slot 0."""
    for layer in list(mesh.uv_layers):
        mesh.uv_layers.remove(layer)
    mesh.uv_layers.new(name=UV_NAME)
    mesh.materials.clear()
    mesh.polygons.foreach_set("material_index", np.zeros(len(mesh.polygons), dtype=np.int32))


def op_kwargs(op: Any, **wanted: Any) -> dict[str, Any]:
    """Only the options the running Blender's operator has."""
    props = op.get_rna_type().properties.keys()
    return {k: v for k, v in wanted.items() if k in props}


def unwrap(state: SceneState, work: bpy.types.Object, margin: int, resolution: int) -> None:
    """Smart UV Project, every face, islands `2 × margin` pixels apart (the bake margin fills half of it).

    Islands smaller than a few texels (Smart UV Project makes hundreds of one-face islands on a scanned
    mesh) are enlarged and everything is packed again: Cycles bakes only texels whose centre a face covers,
    so a sub-texel island would get no colour of its own (black on 4.2–5.0, whose margin skips it; the
    colour of a neighbouring island once baking.py has filled the gaps)."""
    gap = 2.0 * margin / resolution
    state.select_only([work], work)
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bpy.ops.mesh.select_all(action="SELECT")
        bpy.ops.uv.smart_project(**op_kwargs(
            bpy.ops.uv.smart_project, angle_limit=math.radians(66.0), margin_method="FRACTION", island_margin=gap,
            correct_aspect=True, scale_to_bounds=False))
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    if not enlarge_small_islands(cast(bpy.types.Mesh, work.data), MIN_ISLAND_TEXELS / resolution**2):
        return
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bpy.ops.mesh.select_all(action="SELECT")  # and so every UV (the selection is synced: SceneState)
        bpy.ops.uv.pack_islands(**op_kwargs(
            bpy.ops.uv.pack_islands, udim_source="CLOSEST_UDIM", rotate=True, scale=True, margin_method="FRACTION",
            margin=gap, shape_method="AABB"))
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")


MIN_ISLAND_TEXELS = 12.0  # the least area of a UV island, in texels, before packing


def enlarge_small_islands(mesh: bpy.types.Mesh, min_area: float) -> bool:
    """Scale every UV island smaller than `min_area` (UV units) up to it, about its centre; whether any was."""
    n_loops, n_faces = len(mesh.loops), len(mesh.polygons)
    uv = np.empty(n_loops * 2, dtype=np.float64)
    mesh.uv_layers[UV_NAME].data.foreach_get("uv", uv)
    uv = uv.reshape(-1, 2)
    verts = np.empty(n_loops, dtype=np.int64)
    mesh.loops.foreach_get("vertex_index", verts)
    starts = np.empty(n_faces, dtype=np.int64)
    totals = np.empty(n_faces, dtype=np.int64)
    mesh.polygons.foreach_get("loop_start", starts)
    mesh.polygons.foreach_get("loop_total", totals)
    face_of = np.repeat(np.arange(n_faces), totals)

    # A UV vertex: a mesh vertex at one UV position. Faces sharing one are in one island.
    quantised = np.round(uv * 2**20).astype(np.int64)
    _, uv_vertex = np.unique(np.column_stack([verts, quantised]), axis=0, return_inverse=True)
    uv_vertex = uv_vertex.ravel()
    parent = list(range(int(uv_vertex.max()) + 1))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = uv_vertex[starts].tolist()
    for face_loops, root in zip(np.split(uv_vertex, starts[1:]), first, strict=True):
        a = find(root)
        for j in face_loops[1:].tolist():
            b = find(j)
            if a != b:
                parent[b] = a
    roots = np.array([find(i) for i in range(len(parent))])
    _, island_of_loop = np.unique(roots[uv_vertex], return_inverse=True)
    island_of_loop = island_of_loop.ravel()
    island_of_face = island_of_loop[starts]

    # Shoelace area of each face in UV, summed per island.
    nxt = np.arange(n_loops) + 1
    nxt[starts + totals - 1] = starts
    cross = uv[:, 0] * uv[nxt, 1] - uv[nxt, 0] * uv[:, 1]
    face_area = np.abs(np.bincount(face_of, weights=cross, minlength=n_faces)) / 2
    islands = int(island_of_face.max()) + 1
    area = np.bincount(island_of_face, weights=face_area, minlength=islands)
    small = (area < min_area) & (area > min_area * 1e-6)
    if not small.any():
        return False
    count = np.bincount(island_of_loop, minlength=islands)
    centre = np.column_stack([np.bincount(island_of_loop, weights=uv[:, k], minlength=islands)
                              for k in (0, 1)]).astype(np.float64, copy=False)  # weighted: float64 already
    centre /= np.maximum(count, 1)[:, None]
    factor = np.ones(islands)
    factor[small] = np.sqrt(min_area / area[small])
    f = factor[island_of_loop][:, None]
    c = centre[island_of_loop]
    uv = c + (uv - c) * f
    mesh.uv_layers[UV_NAME].data.foreach_set("uv", uv.astype(np.float32).ravel())
    return True
