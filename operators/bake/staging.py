"""What a bake changes around it, to be put back: the scene's settings and selection (`SceneState`), and the
datablocks it makes (`Made`), removed unless handed over to the object."""

from __future__ import annotations

import contextlib
from typing import Any

import bpy

from ...translations import rpt_
from .errors import BakeError


class SceneState:
    """Every scene and view-layer setting the bake changes, saved to be put back exactly."""

    def __init__(self, context: bpy.types.Context) -> None:
        scene, view_layer = context.scene, context.view_layer
        assert scene is not None and view_layer is not None
        self.scene, self.view_layer = scene, view_layer
        self.engine = scene.render.engine
        self.cycles: dict[str, Any] = {}
        self.bake = _simple_props(scene.render.bake)
        self.selected = [o for o in _layer_objects(self.view_layer) if o.select_get()]
        self.active = self.view_layer.objects.active
        # What every Image Editor shows: in Edit Mode an editor follows the active object's image node (the
        # bake target's), and would be left empty when that image goes.
        wm = bpy.context.window_manager
        spaces = [space for window in (wm.windows if wm else []) for area in window.screen.areas
                  for space in area.spaces if isinstance(space, bpy.types.SpaceImageEditor)]
        self.editors = [(space, space.image) for space in spaces]
        tool_settings = scene.tool_settings
        self.uv_sync = tool_settings.use_uv_select_sync
        tool_settings.use_uv_select_sync = True  # UVs selected with the faces: no UV operator needs a UV editor

    def use_cycles(self, samples: int) -> None:
        try:
            self.scene.render.engine = "CYCLES"  # type: ignore[assignment]
        except TypeError as exc:
            raise BakeError(rpt_("Blender cannot bake in this build: its Cycles render engine is missing.")) from exc
        cycles = self.scene.cycles
        assert cycles is not None  # the Cycles add-on's settings (never None: missing, reading them raises)
        self.cycles = {k: getattr(cycles, k) for k in ("samples", "use_adaptive_sampling", "bake_type")
                       if hasattr(cycles, k)}
        cycles.samples = samples
        cycles.use_adaptive_sampling = False

    def select_only(self, objects: list[bpy.types.Object], active: bpy.types.Object) -> None:
        for o in _layer_objects(self.view_layer):
            if o.select_get():
                o.select_set(False)
        for o in objects:
            o.select_set(True)
        self.view_layer.objects.active = active

    def restore(self) -> None:
        scene = self.scene
        for key, value in self.cycles.items():
            setattr(scene.cycles, key, value)
        for key, value in self.bake.items():
            with contextlib.suppress(AttributeError, TypeError, ValueError):
                setattr(scene.render.bake, key, value)
        if scene.render.engine != self.engine:
            scene.render.engine = self.engine
        for o in _layer_objects(self.view_layer):
            if o.select_get():
                o.select_set(False)
        for o in self.selected:
            with contextlib.suppress(ReferenceError, RuntimeError):  # removed meanwhile
                o.select_set(True)
        try:
            self.view_layer.objects.active = self.active
        except (ReferenceError, RuntimeError):
            self.view_layer.objects.active = None
        scene.tool_settings.use_uv_select_sync = self.uv_sync
        for space, image in self.editors:
            with contextlib.suppress(ReferenceError, RuntimeError):  # an editor or an image gone meanwhile
                if space.image != image:
                    space.image = image


def _layer_objects(view_layer: bpy.types.ViewLayer) -> list[bpy.types.Object]:
    """The view layer's objects, synced first: its list goes stale when objects are added or removed, and
    reading a removed object's stale entry can crash Blender."""
    view_layer.update()
    return [o for o in view_layer.objects if o is not None]


def _simple_props(struct: bpy.types.bpy_struct) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prop in struct.bl_rna.properties:
        if prop.is_readonly or prop.identifier == "rna_type" or prop.type == "COLLECTION":
            continue
        if prop.type == "POINTER" and not isinstance(getattr(struct, prop.identifier), bpy.types.ID | None):
            continue
        value = getattr(struct, prop.identifier)
        if prop.type in {"FLOAT", "INT", "BOOLEAN"} and hasattr(value, "__len__"):  # an array
            value = tuple(value)
        elif prop.type == "ENUM" and prop.is_enum_flag:
            value = set(value)
        out[prop.identifier] = value
    return out


class Made:
    """Datablocks made by one bake, removed at the end unless handed over to the object."""

    def __init__(self) -> None:
        self.objects: list[bpy.types.Object] = []
        self.meshes: list[bpy.types.Mesh] = []
        self.materials: list[bpy.types.Material] = []
        self.images: list[bpy.types.Image] = []

    def remove(self, keep: tuple[bpy.types.ID, ...] = ()) -> None:
        for kind in ("objects", "meshes", "materials", "images"):
            data = getattr(bpy.data, kind)
            for block in getattr(self, kind):
                try:
                    if any(block == k for k in keep) or block.name not in data:
                        continue
                    data.remove(block)
                except ReferenceError:  # already gone
                    pass
