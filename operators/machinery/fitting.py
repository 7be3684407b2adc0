"""Refine's last step in the scene: the engine's mesh laid over the SAM 3D object it refines (utils/align.py
finds the rotation, uniform scale and offset), put in that object's collections, the SAM 3D object hidden and
kept for comparison. Runs on the main thread, inside the import's undo step."""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from ...translations import rpt_
from ...utils import align, schema

POOR_FIT = 0.05  # an error above this share of the object's size is said to the user


def surface_of(root: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> np.ndarray:
    """Surface samples of every mesh under `root` (itself included), in world space, as they are shown."""
    parts = []
    for obj in (root, *root.children_recursive):
        if obj.type != "MESH":
            continue
        mesh = obj.evaluated_get(depsgraph).to_mesh()
        try:
            mesh.calc_loop_triangles()
            points = np.empty(len(mesh.vertices) * 3, np.float64)
            mesh.vertices.foreach_get("co", points)
            tris = np.empty(len(mesh.loop_triangles) * 3, np.int64)
            mesh.loop_triangles.foreach_get("vertices", tris)
        finally:
            obj.to_mesh_clear()
        world = np.array(obj.matrix_world)
        points = points.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3]
        if len(tris):
            parts.append((points, tris.reshape(-1, 3)))
    if not parts:
        raise ValueError(rpt_("it has no mesh"))
    areas = [np.linalg.norm(np.cross(p[t[:, 1]] - p[t[:, 0]], p[t[:, 2]] - p[t[:, 0]]), axis=1).sum()
             for p, t in parts]
    total = sum(areas) or 1.0
    return np.concatenate([align.surface_samples(p, t, max(4, round(align.SAMPLES * a / total)), seed=n)
                           for n, ((p, t), a) in enumerate(zip(parts, areas, strict=True))])


def lay_over(context: bpy.types.Context, roots: list[bpy.types.Object], target_name: str) -> list[str]:
    """Fit each imported root onto the object named `target_name`; the sentences a person should read."""
    target = bpy.data.objects.get(target_name)
    if target is None or target.get(schema.TASK_UUID) is None or target.get(schema.REFINED_FROM):
        # gone, or not a SAM 3D object (a journal is a file anyone may write: it never moves or hides another)
        return [rpt_("{} is not a SAM 3D object in this file: the refined mesh stays where it landed.").format(
            target_name)]
    depsgraph = context.evaluated_depsgraph_get()
    try:
        goal = surface_of(target, depsgraph)
    except ValueError as exc:
        return [rpt_("Cannot fit onto {}: {}.").format(target.name, exc)]
    said = []
    for root in roots:
        try:
            found = align.fit(surface_of(root, depsgraph), goal)
        except ValueError as exc:
            said.append(rpt_("Cannot fit {} onto {}: {}.").format(root.name, target.name, exc))
            continue
        root.matrix_world = Matrix(found.matrix().tolist()) @ root.matrix_world
        root[schema.REFINED_FROM] = target.name
        root[schema.FIT_ERROR] = round(found.error, 5)
        _move_beside(root, target)
        if found.error > POOR_FIT:
            said.append(rpt_("{} fits {} only within {:.1%} of its size: check it (the SAM 3D object is kept, "
                             "hidden).").format(root.name, target.name, found.error))
    target.hide_set(True)
    target.hide_render = True
    return said


def _move_beside(root: bpy.types.Object, target: bpy.types.Object) -> None:
    """Into the target's collections (the photo's layout stays together), out of the one the import made."""
    for obj in (root, *root.children_recursive):
        old = list(obj.users_collection)
        for collection in target.users_collection:
            if collection not in old:
                collection.objects.link(obj)
        for collection in old:
            if collection not in target.users_collection:
                collection.objects.unlink(obj)
                if collection.get(schema.MADE) and not collection.all_objects:
                    bpy.data.collections.remove(collection)
