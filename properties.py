"""Scene settings, `context.scene.sam3d`: what to reconstruct and every request parameter of the model."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .client.engines import ENGINES, Engine, Setting


class SAM3D_PG_mask(bpy.types.PropertyGroup):
    """One mask of the photo's list: each enabled one becomes one object."""

    image: PointerProperty(name="Mask", type=bpy.types.Image)  # type: ignore[valid-type]
    enabled: BoolProperty(  # type: ignore[valid-type]
        name="Send", default=True,
        description="Send this mask at the next Reconstruct (unticked once sent: tick it to send it again)")
    task_uuid: StringProperty(  # type: ignore[valid-type]
        name="Task", default="", description="The task this mask was last sent as")


class SAM3D_PG_view(bpy.types.PropertyGroup):
    """Another photo of the same object, from another side (for the engines that take several views)."""

    image: PointerProperty(name="View", type=bpy.types.Image)  # type: ignore[valid-type]


class SAM3D_PG_settings(bpy.types.PropertyGroup):
    image: PointerProperty(  # type: ignore[valid-type]
        name="Photo", type=bpy.types.Image,
        description="The photo to reconstruct from. Empty: the image shown in the Image Editor")
    mask: PointerProperty(  # type: ignore[valid-type]
        name="Mask", type=bpy.types.Image,
        description="White (or opaque) where the object is: grayscale, RGB, or a cut-out whose alpha is the mask")
    masks: CollectionProperty(  # type: ignore[valid-type]
        name="Masks", type=SAM3D_PG_mask,
        description="Several masks of the photo: when any is enabled, each enabled one becomes one object")
    active_mask_index: IntProperty(name="Active Mask", default=0)  # type: ignore[valid-type]
    views: CollectionProperty(  # type: ignore[valid-type]
        name="Other Views", type=SAM3D_PG_view,
        description="Other photos of the same object, from other sides: sent with the photo to the engines that "
                    "take several views (Hunyuan 3D Pro, Tripo, Rodin, Meshy)")
    active_view_index: IntProperty(name="Active View", default=0)  # type: ignore[valid-type]
    use_photo_alpha: BoolProperty(  # type: ignore[valid-type]
        name="Use Photo Alpha", default=False,
        description="Use the photo's own transparency as the mask (for cut-out photos)")
    prompt: StringProperty(  # type: ignore[valid-type]
        name="Prompt", default="",
        description="A few words naming the object (sent as positivePrompt). Empty: the mask's name")
    name_from_caption: BoolProperty(  # type: ignore[valid-type]
        name="Name from Caption", default=False,
        description="Ask Runware what each object is (a paid caption per object, about $0.002) and name the "
                    "object and its collection after it; the caption is kept on the object")
    use_random_seed: BoolProperty(  # type: ignore[valid-type]
        name="Random Seed", default=True, description="Let the server pick a seed (it is kept on the object)")
    seed: IntProperty(  # type: ignore[valid-type]
        name="Seed", default=0, min=0, description="The same seed and inputs give the same object")
    exact_seed: StringProperty(  # type: ignore[valid-type]
        name="Exact Seed", default="",
        description="A seed past 2147483647 (server seeds often are; they run to 2^63-1), e.g. copied from an "
                    "object's sam3d_seed. When set, it is used instead of Seed and Random Seed")
    num_results: IntProperty(  # type: ignore[valid-type]
        name="Variants", default=1, min=1, max=4,
        description="How many objects to make (each with its own seed), placed side by side")
    engine: EnumProperty(  # type: ignore[valid-type]
        name="Engine", default="SAM3D",
        items=[(e.id, e.label, e.description) for e in ENGINES.values()],
        description="The image-to-3D model on your Runware key that makes the object (each bills its own price)")
    placement: EnumProperty(  # type: ignore[valid-type]
        name="Placement", default="CURSOR",
        items=[("CURSOR", "On 3D Cursor", "Stand the object on the 3D cursor, origin at its base"),
               ("AS_IS", "As Returned", "Keep the transform the GLB came with (SAM 3D's camera frame)"),
               ("CAMERA", "As in the Photo", "Stand in front of the photo's camera as in the photo (scene layout)")])
    # Asset library building (operators/library/batch.py).
    batch_directory: StringProperty(  # type: ignore[valid-type]
        name="Photos", subtype="DIR_PATH", default="",
        description="Folder of photos and masks: name.png + name_mask.png, cut-outs, or name/image.png + masks")
    batch_library: StringProperty(  # type: ignore[valid-type]
        name="Library", subtype="DIR_PATH", default="//sam3d_library",
        description="The folder the assets are written to, one .blend per asset: add it as an Asset Library")
    batch_target_size: FloatProperty(  # type: ignore[valid-type]
        name="Target Size", default=0.0, min=0.0, description="Scale each asset so its longest side is this. 0: keep")
    batch_max_cost: FloatProperty(  # type: ignore[valid-type]
        name="Cost Limit", default=0.0, min=0.0, precision=4,
        description="Refuse a batch estimated to cost more (USD, at the last cost per task Runware reported). 0: none")
    batch_triangle_budget: IntProperty(  # type: ignore[valid-type]
        name="Triangle Budget", default=0, min=0, description="Decimate assets above this many triangles. 0: keep")
    batch_caption: BoolProperty(  # type: ignore[valid-type]
        name="Name from Caption", default=False,
        description="Caption each item (a paid request per item, about $0.002): an asset whose file name says "
                    "nothing (IMG_1234, 0, image) is named after it, and every asset gets the caption as its "
                    "description and its words as tags")
    batch_engine: EnumProperty(  # type: ignore[valid-type]
        name="Engine", default="SAM3D",
        items=[(e.id, e.label, e.description) for e in ENGINES.values()],
        description="The engine that makes each asset (its settings: the Reconstruct panel's for it)")
    batch_bake: IntProperty(  # type: ignore[valid-type]
        name="Bake Texture", default=0, min=0, max=8192,
        description="Bake each asset's colours into a texture of this many pixels a side. 0: keep vertex colours")
    # Reconstruct's Advanced options: an engine-ready result (operators/bake/) right after the import.
    bake_to_texture: BoolProperty(  # type: ignore[valid-type]
        name="Bake to Texture", default=False,
        description="Bake each result's colours into a UV-mapped texture on a mesh within the Triangle Budget")
    bake_resolution: IntProperty(  # type: ignore[valid-type]
        name="Texture Size", default=2048, min=64, max=8192, description="Pixels on each side of the baked texture")
    triangle_budget: IntProperty(  # type: ignore[valid-type]
        name="Triangle Budget", default=0, min=0, description="Reduce results to at most this many triangles. 0: keep")
    # Advanced: the rest of the model's request parameters.
    delivery_method: EnumProperty(  # type: ignore[valid-type]
        name="Delivery", default="ASYNC",
        items=[("ASYNC", "Async", "Submit, then poll for the result (recommended)"),
               ("SYNC", "Sync", "Keep one request open until the result is ready")])
    ttl: IntProperty(  # type: ignore[valid-type]
        name="URL Lifetime", default=0, min=0, soft_max=86400,
        description="Seconds the result URL stays valid (at least 60). 0: Runware's default")


# --- the engines' settings: one group per engine, made from its registry entry (client/engines.py) -----------


def group_name(engine_id: str) -> str:
    """The scene setting that holds one engine's settings (`scene.sam3d.engine_trellis2`)."""
    return f"engine_{engine_id.lower()}"


def _value_property(spec: Setting) -> Any:
    """A setting as a Blender property with the bounds its page documents (enums by the text of each value)."""
    text = spec.description
    if spec.kind == "bool":
        return BoolProperty(name=spec.label, default=bool(spec.default), description=text)
    if spec.kind == "enum":
        items = [(str(c), str(c), "") for c in spec.choices]
        chosen = str(spec.default) if spec.default in spec.choices else items[0][0]
        return EnumProperty(name=spec.label, items=items, default=chosen, description=text)
    low = spec.minimum if spec.minimum is not None else 0
    high = spec.maximum if spec.maximum is not None else 2**31 - 1
    default = spec.default if isinstance(spec.default, int | float) and not isinstance(spec.default, bool) else low
    if spec.kind == "int":
        return IntProperty(name=spec.label, min=int(low), max=int(high), default=int(default),
                           step=spec.step or 1, description=text)
    return FloatProperty(name=spec.label, min=float(low), max=float(high), default=float(default), description=text)


def _engine_group(spec: Engine) -> type[bpy.types.PropertyGroup]:
    """Each documented setting, and beside it whether to send it: an unsent one keeps the server's default."""
    fields: dict[str, Any] = {}
    for setting in spec.settings:
        fields[f"use_{setting.name}"] = BoolProperty(  # type: ignore[func-returns-value]
            name=setting.label, default=False,
            description=f"Send {setting.name} (unticked: {spec.label}'s own default)")
        fields[setting.name] = _value_property(setting)
    return type(f"SAM3D_PG_{group_name(spec.id)}", (bpy.types.PropertyGroup,), {"__annotations__": fields})


ENGINE_GROUPS = [_engine_group(e) for e in ENGINES.values() if e.settings]
for _group, _spec in zip(ENGINE_GROUPS, [e for e in ENGINES.values() if e.settings], strict=True):
    SAM3D_PG_settings.__annotations__[group_name(_spec.id)] = PointerProperty(  # type: ignore[func-returns-value]
        type=_group)


def engine_values(settings: Any, engine_id: str) -> dict[str, Any]:
    """The settings of an engine the artist chose to send, by name, as its registry types them."""
    group = getattr(settings, group_name(engine_id), None)
    values: dict[str, Any] = {}
    for spec in ENGINES[engine_id].settings if group is not None else ():
        if getattr(group, f"use_{spec.name}"):
            value = getattr(group, spec.name)
            values[spec.name] = next((c for c in spec.choices if str(c) == value), value)
    return values


classes: tuple[type[bpy.types.PropertyGroup], ...] = (SAM3D_PG_mask, SAM3D_PG_view, *ENGINE_GROUPS, SAM3D_PG_settings)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.sam3d = PointerProperty(type=SAM3D_PG_settings)  # type: ignore[attr-defined,func-returns-value]
    bpy.types.Camera.sam3d_lens_locked = BoolProperty(  # type: ignore[attr-defined,func-returns-value]
        name="Keep This Lens", default=False,
        description="A photo camera's focal length that new results of the photo never change (no calibration)")


def unregister() -> None:
    del bpy.types.Camera.sam3d_lens_locked  # type: ignore[attr-defined]
    del bpy.types.Scene.sam3d  # type: ignore[attr-defined]
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
