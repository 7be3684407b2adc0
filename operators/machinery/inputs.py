"""What the scene settings (`scene.sam3d`) choose: the photo, its masks, the seed; and the context members every
operator, panel, handler and timer of the add-on runs with (Blender's contract: the stubs type them Optional).
Read-only helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy

from ...client.engines import ENGINES
from ...utils import schema


def scene_of(context: bpy.types.Context) -> bpy.types.Scene:
    """The context's scene: an operator, a panel, a handler or a timer always has one."""
    scene = context.scene
    assert scene is not None
    return scene


def settings_of(context: bpy.types.Context) -> Any:
    """The scene settings, `scene.sam3d`."""
    return scene_of(context).sam3d  # type: ignore[attr-defined]  # properties.py registers it: not in the stubs


def view_layer_of(context: bpy.types.Context) -> bpy.types.ViewLayer:
    """The context's view layer: there is one wherever there is a scene."""
    view_layer = context.view_layer
    assert view_layer is not None
    return view_layer


def window_manager_of(context: bpy.types.Context) -> bpy.types.WindowManager:
    """The window manager: always there while Blender runs (modal operators, dialogs, timers)."""
    wm = context.window_manager
    assert wm is not None
    return wm




def mark_made(image: bpy.types.Image, kind: str) -> bpy.types.Image:
    image[schema.MADE] = kind
    return image


def could_be_photo(settings: Any, image: bpy.types.Image | None) -> bool:
    """An image the editor shows that may be the photo: not one the add-on made or shows (a mask, a preview),
    not a render."""
    if image is None or image.get(schema.MADE) or image.type in {"RENDER_RESULT", "COMPOSITING"}:
        return False
    return image != settings.mask and all(item.image != image for item in settings.masks)


def photo_of(context: bpy.types.Context) -> bpy.types.Image | None:
    """The photo: the Photo field, else the image shown in the Image Editor the operator or panel runs in
    (until its first use pins it in the field: `pin_photo`)."""
    settings = settings_of(context)
    if settings.image:
        return settings.image
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR" and could_be_photo(settings, space.image):
        return space.image
    return None


def pin_photo(context: bpy.types.Context) -> bpy.types.Image | None:
    """At the first use of the editor's image as the photo (a job, Preview, Mask › Open, a folder of masks,
    a new or Runware-made mask), put it in the Photo field: from then on the photo is what the field shows,
    whatever the editor shows next."""
    photo = photo_of(context)
    settings = settings_of(context)
    if photo is not None and settings.image is None:
        settings.image = photo
    return photo


def listed_masks(settings: Any) -> list[bpy.types.Image]:
    """The enabled masks of the list (empty when the list is not in use)."""
    return [item.image for item in settings.masks if item.enabled and item.image is not None]


def chosen_views(settings: Any) -> list[bpy.types.Image]:
    """The other views to send with the photo: the list's images, when the chosen engine takes several."""
    if ENGINES[settings.engine].input_kind != "images":
        return []
    return [item.image for item in settings.views if item.image is not None]


def chosen_seed(settings: Any) -> int | None:
    """The seed to send: the exact one when given, else the seed field, else none (the server picks)."""
    exact = settings.exact_seed.strip()
    if exact:
        return int(exact)
    return None if settings.use_random_seed else settings.seed


def stem(name: str) -> str:
    """An image's name without its extension ('mask_0.png' → 'mask_0')."""
    return Path(name).stem if "." in name else name
