"""The Blender side, main thread only, grouped as the README's workflows. Each module owns one feature and its
operators (its `classes`, at its foot); each package's __init__ says what it holds:

  one_object/   a photo and a mask to one object: Reconstruct and Cancel, Refine, the masks, Auto Mask and Box to
                Mask, other views of the object
  scene/        a scene laid out from a photo: its camera, As in the Photo, calibration, Re-layout, Set Real
                Size, Composite over Photo
  library/      an asset library from folders of photos: the batch (and `blender --command sam3d batch`), the
                assets it writes
  bake/         Bake to Texture: a Triangle Budget and a baked texture (also Reconstruct's Advanced options)
  machinery/    the session's machinery every workflow runs on: jobs and their money (runner, job_requests,
                outcomes, background), the journal's jobs (history: Resume, Re-import, Retry), images and
                results (pixels, importing), rules for buttons (checks, inputs), Test Connection, the
                session's state (state: its one reset())

A workflow's module may use machinery/ and the pure code (utils/, client/); machinery/ uses no workflow's module
except to finish a job (outcomes: the layout, bake and its Triangle Budget). Pure code stays in utils/ and client/.
"""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from . import bake
from .library import batch, cli
from .machinery import background, connection, history, outcomes, runner
from .machinery import state as state  # for scripts and tests: operators.machinery.state.reset()
from .one_object import auto_masks, masks, reconstruct, refine, views
from .scene import composite, photo_camera

_modules = (reconstruct, refine, history, masks, views, auto_masks, photo_camera, composite, bake, batch, connection,
            outcomes)
classes = tuple(cls for module in _modules for cls in module.classes)


@persistent
def _on_load_post(*_args: object) -> None:
    # Loading a file dropped the modal operators: their jobs go on, and import into the file now open.
    for entry in runner.RUNNER.jobs.values():
        entry.owned = False


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.app.handlers.load_post.append(_on_load_post)
    bpy.app.handlers.depsgraph_update_post.append(photo_camera.follow_cameras)
    outcomes.register()
    cli.register()


def unregister() -> None:
    cli.unregister()
    batch.unregister()
    background.shutdown(join=2.0)
    outcomes.unregister()
    runner.unregister()
    if _on_load_post in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load_post)
    if photo_camera.follow_cameras in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.remove(photo_camera.follow_cameras)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
