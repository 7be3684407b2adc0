"""Blender-side work, main thread only. Each module owns one concern and its `classes`:

  reconstruct   the Reconstruct and Cancel operators (modal in the UI, blocking from a script)
  history       Resume, Re-import, Retry, Open Folder: the jobs of earlier sessions, from the journal
  masks         the masks list, New Mask, Split Label Map, Preview
  auto_masks    Auto Mask and Box to Mask (Runware's background removal, paid)
  photo_camera  the photo's camera, placement As in the Photo, its calibration, Set Real Size, Re-layout
  composite     Composite over Photo (a shadow catcher and the compositor)
  bake          Bake to Texture (a triangle budget and a baked base-colour texture)
  batch         Build Asset Library (and `blender --command sam3d batch`); library.py writes the assets
  connection    Test Connection (preferences)
helpers without operators: runner (the session's jobs, money, history), outcomes (the end of a job: import,
report, the app timer), job_requests (a job's request from the preferences), background (one-shot requests),
checks (why a button is disabled; blocking or modal), inputs (what the scene settings choose), pixels (images
→ PNGs), importing (GLB → objects), session (the session's state and its one reset()). Pure code is in utils/
(calibration, rasters, the .blend schema) and client/ (the network, the result folder, the photo folder's scan).
"""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from . import (
    auto_masks,
    background,
    bake,
    batch,
    composite,
    connection,
    history,
    masks,
    outcomes,
    photo_camera,
    reconstruct,
    runner,
    session,  # noqa: F401  (imported for scripts and tests: operators.session.reset())
)

_modules = (reconstruct, history, masks, auto_masks, photo_camera, composite, bake, batch, connection, outcomes)
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
    batch.register()


def unregister() -> None:
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
