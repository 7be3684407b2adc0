"""Refine in the real window: a SAM 3D object reconstructed, its Refine button pressed, TRELLIS.2's mesh lands
fitted where the SAM 3D one stood (which hides), and one Ctrl+Z takes the whole Refine back."""

from __future__ import annotations

import bpy
import numpy as np
from common import added, connect, inputs, jobs, names

VIEW = "VIEW_3D"


def world_points(name: str) -> np.ndarray:
    obj = bpy.data.objects[name]
    meshes = [o for o in (obj, *obj.children_recursive) if o.type == "MESH"]
    return np.concatenate([np.array([o.matrix_world @ v.co for v in o.data.vertices]) for o in meshes])


def refine_and_undo(ui, **params):
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    inputs(params)
    before = names()
    yield from ui.click((yield from ui.find(region, "sam3d.reconstruct(")))
    yield from ui.until(lambda: added(before) and not jobs(), 60, "the SAM 3D object imported")
    [sam] = [o.name for o in added(before) if o.get("sam3d_task_uuid")]
    yield from ui.frames(4)
    before = names()
    yield from ui.click((yield from ui.find(region, "sam3d.refine(")))
    yield from ui.until(lambda: added(before) and not jobs(), 60, "the refined mesh imported")
    yield from ui.frames(4)
    [refined] = [o.name for o in added(before) if o.get("sam3d_refined_from")]
    goal, got = world_points(sam), world_points(refined)
    size = float(np.linalg.norm(np.ptp(goal, axis=0)))
    ui.record(sam=sam, refined=refined, refined_from=bpy.data.objects[refined]["sam3d_refined_from"],
              fit_error=bpy.data.objects[refined]["sam3d_fit_error"], sam_hidden=bpy.data.objects[sam].hide_get(),
              centre_off=float(np.linalg.norm(goal.mean(0) - got.mean(0)) / size),
              size_ratio=float(np.linalg.norm(np.ptp(got, axis=0)) / size))
    yield from ui.shot("refine-fitted")
    yield from ui.key("Z", at=ui.center(ui.region(ui.area(VIEW), "WINDOW")), ctrl=True)
    yield from ui.frames(6)
    ui.record(after_undo=sorted(names() - before), refined_left=refined in names(),
              sam_hidden_after_undo=sam in names() and bpy.data.objects[sam].hide_get())
    yield from ui.shot("refine-undone")
