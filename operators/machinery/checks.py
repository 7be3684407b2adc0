"""Why a button is disabled, in a sentence, and whether an operator waits or runs in the background.

Every operator's `poll()` goes through `refuse`, so the reason shows on the disabled button (and in a
script's error); every operator that can run in the background asks `is_blocking` (Blender's `bl_pkg` has
one `_is_modal(op)` for the same decision).
"""

from __future__ import annotations

from typing import Any

import bpy

from ... import preferences
from ...client.engines import ENGINES
from ...client.http import MISSING
from ...client.tasks import MAX_SEED
from ...translations import tip_
from .inputs import chosen_views, listed_masks, photo_of, settings_of


def refuse(cls: type[bpy.types.Operator], reason: str) -> bool:
    """For poll(): False with the reason on the disabled button (and in a script's error), or True."""
    if reason:
        cls.poll_message_set(reason)
    return not reason


def is_blocking(op: bpy.types.Operator, context: bpy.types.Context | None = None) -> bool:
    """Run to the end before returning (a script, background mode, no window) rather than in the background."""
    window = getattr(context, "window", None) if context is not None else True
    return bpy.app.background or not op.options.is_invoke or window is None


def why_offline(context: bpy.types.Context) -> str:
    """Why nothing can reach Runware now, or ''."""
    if MISSING:
        return tip_("This Blender has no “{}” Python module, which SAM 3D needs to reach Runware: install it "
                    "(Debian, Ubuntu: apt install python3-requests) or use Blender from blender.org").format(MISSING)
    if not bpy.app.online_access:
        if getattr(bpy.app, "online_access_override", False):
            return tip_("Blender was started with --offline-mode: restart it without that option to reach Runware")
        return tip_("Online access is off: turn it on in Preferences › System › Network")
    if not preferences.api_key(preferences.get(context)):
        return tip_("No Runware API key: set it in the add-on preferences (or RUNWARE_API_KEY)")
    return ""


def why_no_photo(context: bpy.types.Context) -> str:
    return "" if photo_of(context) is not None else tip_("Pick the photo first")


def why_not_reconstruct(context: bpy.types.Context) -> str:
    """Why Reconstruct cannot run now, or '' when it can."""
    reason = why_offline(context)
    if reason:
        return reason
    photo = photo_of(context)
    if photo is None:
        return why_not_text(context)
    if photo.type in {"RENDER_RESULT", "COMPOSITING"}:
        return tip_("A render result cannot be sent: save it as an image, open that, and pick it")
    settings = settings_of(context)
    if settings.mask is not None and settings.mask == photo and not settings.use_photo_alpha:
        return tip_("The mask is the photo itself: pick the mask image (or tick Use Photo Alpha)")
    exact = settings.exact_seed.strip()
    if exact and not (exact.isdigit() and int(exact) <= MAX_SEED):
        return tip_("Exact Seed must be a whole number from 0 to {}").format(MAX_SEED)
    if 0 < settings.ttl < 60:
        return tip_("URL Lifetime must be at least 60 seconds (or 0 for Runware's default)")
    engine = ENGINES[settings.engine]
    if settings.placement == "CAMERA" and not engine.posed:
        return tip_("As in the Photo needs SAM 3D's poses: {} does not say where the object stood. Pick SAM 3D "
                    "(then Refine), or another Placement").format(engine.label)
    reason = why_not_views(settings)
    if reason:
        return reason
    if not settings.use_photo_alpha and settings.mask is None and not listed_masks(settings):
        if len(settings.masks):
            return tip_("Tick the masks of the list to send (sent ones are unticked), or pick a mask image")
        return tip_("Pick a mask image, or tick Use Photo Alpha")
    return ""


def why_not_views(settings: Any) -> str:
    """Why the list of other views cannot go with the photo to the chosen engine, or ''."""
    engine = ENGINES[settings.engine]
    views = chosen_views(settings)
    if engine.input_kind != "images" or not len(settings.views):
        return ""
    if len(views) < len(settings.views):
        return tip_("A row of Other Views has no image: pick one, or remove the row")
    if 1 + len(views) > engine.max_images:
        return tip_("{} takes at most {} images: the photo and {} other view(s). Remove {}").format(
            engine.label, engine.max_images, engine.max_images - 1, 1 + len(views) - engine.max_images)
    return ""


def why_not_text(context: bpy.types.Context) -> str:
    """With no photo: why the chosen engine cannot work from the Prompt alone, or ''."""
    settings = settings_of(context)
    engine = ENGINES[settings.engine]
    if not engine.accepts_text:
        return tip_("Pick a photo in the SAM 3D panel")
    if not settings.prompt.strip():
        return tip_("Pick a photo in the SAM 3D panel, or type a Prompt: {} can make an object from words "
                    "alone").format(engine.label)
    if engine.max_prompt is not None and len(settings.prompt.strip()) > engine.max_prompt:
        return tip_("{} takes a prompt of at most {} characters: shorten it by {}").format(
            engine.label, engine.max_prompt, len(settings.prompt.strip()) - engine.max_prompt)
    if settings.placement == "CAMERA":
        return tip_("As in the Photo needs a photo: pick another Placement for an object made from words")
    if chosen_views(settings):
        return tip_("Other Views go with a photo of the object: pick the photo, or clear the views")
    return ""
