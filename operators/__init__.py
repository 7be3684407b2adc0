"""Blender-side work, main thread only: the operators, the job runner, the mask reading and the import."""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from . import batch, history, layout, mask_list, reconstruct, runner

classes = (*reconstruct.classes, *history.classes, *mask_list.classes, *layout.classes, *batch.classes)


@persistent
def _on_load_post(*_args: object) -> None:
    # Loading a file dropped the modal operators: their jobs go on, and import into the file now open.
    for running in runner.RUNNER.jobs.values():
        running.owned = False


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.app.handlers.load_post.append(_on_load_post)
    bpy.app.handlers.depsgraph_update_post.append(layout.follow_cameras)
    runner.register()
    batch.register()


def unregister() -> None:
    batch.unregister()
    runner.unregister()
    if _on_load_post in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load_post)
    if layout.follow_cameras in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.remove(layout.follow_cameras)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
