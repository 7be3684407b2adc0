"""Blender-side work, main thread only: the operators, the mask reading and the import."""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from . import reconstruct

classes = (*reconstruct.classes,)


@persistent
def _on_load_pre(*_args: object) -> None:
    # Loading a file frees the modal operators: stop their jobs cleanly (their task UUIDs stay in the journal).
    reconstruct.cancel_all(join=2.0)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister() -> None:
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    reconstruct.cancel_all(join=2.0)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
