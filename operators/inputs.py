"""What the scene settings (`scene.sam3d`) choose: the photo, its masks, the seed. Read-only helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy


def photo_of(context: bpy.types.Context) -> bpy.types.Image | None:
    """The chosen photo, else the image open in the Image Editor the operator runs from."""
    settings = context.scene.sam3d
    if settings.image:
        return settings.image
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR" and space.image is not None:
        return space.image
    return None


def listed_masks(settings: Any) -> list[bpy.types.Image]:
    """The enabled masks of the list (empty when the list is not in use)."""
    return [item.image for item in settings.masks if item.enabled and item.image is not None]


def chosen_seed(settings: Any) -> int | None:
    """The seed to send: the exact one when given, else the seed field, else none (the server picks)."""
    exact = settings.exact_seed.strip()
    if exact:
        return int(exact)
    return None if settings.use_random_seed else settings.seed


def stem(name: str) -> str:
    """An image's name without its extension ('mask_0.png' → 'mask_0')."""
    return Path(name).stem if "." in name else name
