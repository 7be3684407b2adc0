"""Refine's last step in the scene: the engine's mesh laid over the SAM 3D object it refines (utils/align.py
finds the rotation, uniform scale and offset), put in that object's collections, the SAM 3D object hidden and
kept for comparison. Runs on the main thread, inside the import's undo step."""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from ...translations import rpt_
from ...utils import align, schema
from . import importing
from .inputs import view_layer_of

POOR_FIT = 0.05  # an error above this share of the object's size is said to the user


MAX_VERTICES = 10_000_000  # a mesh read for the fit: the GLB gate's own bound on what an import may bring


def target_key(obj: bpy.types.Object) -> str:
    """What a Refine names its target by: the task and result it came from, never its name (names recur and
    change; a journal line outlives the file)."""
    return f"{obj.get(schema.TASK_UUID)}#{int(obj.get(schema.RESULT_INDEX, 0))}"


def find_target(context: bpy.types.Context, key: str) -> bpy.types.Object | None:
    """The SAM 3D object `key` names, in this view layer, not itself a refined mesh; None otherwise."""
    task, _, index = key.rpartition("#")
    shown = view_layer_of(context).objects
    for obj in importing.objects_of_task(task):
        if int(obj.get(schema.RESULT_INDEX, 0)) == int(index or 0) and not obj.get(schema.REFINED_FROM) \
                and obj.name in shown:
            return obj
    return None


def surface_of(root: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> np.ndarray:
    """Surface samples of every mesh under `root` (itself included), in world space, as they are shown; parts
    without area are left out."""
    parts = []
    for obj in (root, *root.children_recursive):
        if obj.type != "MESH":
            continue
        mesh = obj.evaluated_get(depsgraph).to_mesh()
        try:
            if len(mesh.vertices) > MAX_VERTICES:
                raise ValueError(rpt_("{} has more than {:,} vertices").format(obj.name, MAX_VERTICES))
            mesh.calc_loop_triangles()
            points = np.empty(len(mesh.vertices) * 3, np.float64)
            mesh.vertices.foreach_get("co", points)
            tris = np.empty(len(mesh.loop_triangles) * 3, np.int64)
            mesh.loop_triangles.foreach_get("vertices", tris)
        finally:
            obj.to_mesh_clear()
        world = np.array(obj.matrix_world)
        points = points.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3]
        tris = tris.reshape(-1, 3)
        a, b, c = (points[tris[:, k]] for k in range(3))
        area = float(np.linalg.norm(np.cross(b - a, c - a), axis=1).sum()) if len(tris) else 0.0
        if area > 0 and np.isfinite(area):
            parts.append((points, tris, area))
    if not parts:
        raise ValueError(rpt_("it has no surface"))
    total = sum(a for _, _, a in parts)
    return np.concatenate([align.surface_samples(p, t, max(4, round(align.SAMPLES * a / total)), seed=n)
                           for n, (p, t, a) in enumerate(parts)])


def lay_over(context: bpy.types.Context, roots: list[bpy.types.Object], key: str) -> list[str]:
    """Fit each imported root onto the SAM 3D object `key` names (`target_key`); the sentences a person should
    read. Nothing raises: a fit that cannot be made leaves the mesh where it landed, and the target shown."""
    target = find_target(context, key)
    if target is None:
        return [rpt_("The SAM 3D object this was refined from is not in this scene: the refined mesh stays where "
                     "it landed.")]
    depsgraph = context.evaluated_depsgraph_get()
    said, fitted = [], 0
    try:
        goal = surface_of(target, depsgraph)
    except (ValueError, np.linalg.LinAlgError) as exc:
        return [rpt_("Cannot fit onto {}: {}.").format(target.name, exc)]
    for root in roots:
        try:
            found = align.fit(surface_of(root, depsgraph), goal)
        except (ValueError, np.linalg.LinAlgError) as exc:
            said.append(rpt_("Cannot fit {} onto {}: {}.").format(root.name, target.name, exc))
            continue
        root.matrix_world = Matrix(found.matrix().tolist()) @ root.matrix_world
        root[schema.REFINED_FROM] = target.name
        root[schema.FIT_ERROR] = round(found.error, 5)
        _move_beside(root, target)
        fitted += 1
        if found.error > POOR_FIT:
            said.append(rpt_("{} fits {} only within {:.1%} of its size: check it (the SAM 3D object is kept, "
                             "hidden).").format(root.name, target.name, found.error))
    if fitted:  # the SAM 3D object, every part of it, out of sight but kept for comparison
        for part in (target, *target.children_recursive):
            if part.name in view_layer_of(context).objects:
                part.hide_set(True)
            part.hide_render = True
    return said


def _move_beside(root: bpy.types.Object, target: bpy.types.Object) -> None:
    """Into the target's collections (the photo's layout stays together), out of the one the import made; only
    into collections of this file (a linked one cannot take it)."""
    beside = [c for c in target.users_collection if c.library is None and c.override_library is None]
    if not beside:
        return
    for obj in (root, *root.children_recursive):
        old = list(obj.users_collection)
        for collection in beside:
            if collection not in old:
                collection.objects.link(obj)
        for collection in old:
            if collection not in beside:
                collection.objects.unlink(obj)
                if collection.get(schema.MADE) and not collection.all_objects:
                    bpy.data.collections.remove(collection)
