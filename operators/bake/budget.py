"""The Triangle Budget: the add-on's one rule for reducing a mesh (Bake, Reconstruct and the asset library)."""

from __future__ import annotations

from typing import cast

import bpy
import numpy as np

from ...translations import rpt_
from .errors import BakeError


def triangle_count(mesh: bpy.types.Mesh) -> int:
    """Triangles of a mesh once triangulated (a polygon of n corners makes n − 2)."""
    totals = np.empty(len(mesh.polygons), dtype=np.int32)
    mesh.polygons.foreach_get("loop_total", totals)
    return int((totals - 2).sum())


def reduced_mesh(context: bpy.types.Context, source: bpy.types.Object, name: str, budget: int) -> bpy.types.Mesh:
    """A new mesh of `source` with at most `budget` triangles: the add-on's one Triangle Budget rule (Bake,
    Reconstruct and the asset library). A collapse Decimate modifier, applied by making a mesh of the evaluated
    object, tried up to four times (Decimate lands above the ratio asked on some meshes); when it stops above
    the budget, a sentence says how low it goes. The modifier is removed again; the caller owns the mesh."""
    triangles = triangle_count(cast(bpy.types.Mesh, source.data))
    modifier = cast(bpy.types.DecimateModifier, source.modifiers.new("SAM3D Decimate", "DECIMATE"))
    modifier.decimate_type = "COLLAPSE"
    modifier.use_collapse_triangulate = True
    ratio, fewest = budget / max(triangles, 1), triangles
    try:
        for _attempt in range(4):
            modifier.ratio = ratio
            depsgraph = context.evaluated_depsgraph_get()
            mesh = bpy.data.meshes.new_from_object(source.evaluated_get(depsgraph), preserve_all_data_layers=True,
                                                   depsgraph=depsgraph)
            count = triangle_count(mesh)
            if count <= budget:
                break
            bpy.data.meshes.remove(mesh)
            if count >= fewest:  # no closer than last time: Decimate will not go lower on this mesh
                break
            fewest = count
            ratio *= budget / count * 0.99
        else:
            count = fewest
        if count > budget:
            raise BakeError(rpt_("“{}” cannot be reduced to {:,} triangles (Decimate stops at about {:,}): ask for "
                                 "more triangles.").format(name, budget, min(count, fewest)))
    finally:
        source.modifiers.remove(modifier)
    if not len(mesh.polygons):
        bpy.data.meshes.remove(mesh)
        raise BakeError(rpt_("{:,} triangles are too few for “{}”: nothing is left of it.").format(budget, name))
    return mesh


def decimate(obj: bpy.types.Object, budget: int) -> None:
    """The object within the Triangle Budget, by the same rule as Bake (`reduced_mesh`): at most `budget`
    triangles, or a BakeError that says how low Decimate goes (the object is left as it was)."""
    if triangle_count(cast(bpy.types.Mesh, obj.data)) <= budget:
        return
    mesh = reduced_mesh(bpy.context, obj, obj.name, budget)
    old, obj.data = obj.data, mesh
    assert isinstance(old, bpy.types.Mesh)
    mesh.name = old.name
    if old.users == 0:
        bpy.data.meshes.remove(old)
