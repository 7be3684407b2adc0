"""Bake a SAM 3D result into an engine-ready asset: fewer triangles, a UV map, and its colour in a texture.

SAM 3D returns a dense mesh (100k–300k triangles) coloured by vertex colours. Game engines and glTF viewers
want a lighter mesh with a UV-mapped image: `bake_object` reduces the mesh (Decimate, collapse), unwraps it
(Smart UV Project), bakes the original's base colour onto it with Cycles (Diffuse, colour only, selected to
active) and gives it a material that reads the image through the UV map. The vertex colours stay on the mesh
as a colour attribute, unused by the material.

Self-contained on purpose: bpy, bmesh, mathutils, numpy, the standard library, the schema, the translation
functions and importing's materials only. Every change is made on copies, and the object gets its new mesh
only when everything has worked: a failure leaves it as it was.

No operator here runs under `bpy.context.temp_override` (Blender 4.2 and 5.0 crash when another thread runs
Python meanwhile): objects are selected and made active through the view layer instead.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import bpy
import numpy as np
from bpy.props import IntProperty
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from ..client import files
from ..client.errors import short_error
from ..translations import iface_, rpt_, tip_
from ..utils import raster, schema
from .machinery.importing import attribute_material, principled_material

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems, WmReportItems

Progress = Callable[[float, str], None]

UV_NAME = "UVMap"

# The module-level progress of the modal run, drawn by a panel with `layout.progress(...)`.
PROGRESS: dict[str, Any] = {"active": False, "fraction": 0.0, "text": ""}


class BakeError(RuntimeError):
    """A foreseeable reason the bake cannot be done, as one sentence for a person."""


# --- small helpers ------------------------------------------------------------------------------------------


def triangle_count(mesh: bpy.types.Mesh) -> int:
    """Triangles of a mesh once triangulated (a polygon of n corners makes n − 2)."""
    totals = np.empty(len(mesh.polygons), dtype=np.int32)
    mesh.polygons.foreach_get("loop_total", totals)
    return int((totals - 2).sum())


def is_sam3d(obj: bpy.types.Object | None) -> bool:
    return obj is not None and obj.type == "MESH" and obj.get(schema.TASK_UUID) is not None


def _nodes_used(mat: bpy.types.Material | None) -> bool:
    if mat is None or mat.node_tree is None:
        return False
    # Blender 5 always renders the node tree (use_nodes is deprecated there); 4.x only with use_nodes.
    return bpy.app.version >= (5, 0, 0) or bool(mat.use_nodes)


def _material_colour_linked(mat: bpy.types.Material | None) -> bool:
    """Whether the material's base colour comes from something (a texture, an attribute, any node)."""
    if mat is None or mat.node_tree is None or not _nodes_used(mat):
        return False
    for node in mat.node_tree.nodes:
        if node.type == "BSDF_PRINCIPLED" and node.inputs["Base Color"].is_linked:
            return True
        if node.type == "BSDF_DIFFUSE" and node.inputs["Color"].is_linked:
            return True
    return False


def colour_source(obj: bpy.types.Object) -> str:
    """"" when the object's materials give its colour; else the name of the colour attribute to bake.

    Raises BakeError when there is nothing to bake."""
    if any(_material_colour_linked(slot.material) for slot in obj.material_slots):
        return ""
    colours = cast(bpy.types.Mesh, obj.data).color_attributes
    if len(colours):
        return (colours.active_color or colours[0]).name
    raise BakeError(rpt_("“{}” has no colour to bake: it has no vertex colours, and its material takes its colour "
                         "from no texture.").format(obj.name))


def _tree(mat: bpy.types.Material) -> bpy.types.ShaderNodeTree:
    """The node tree of a material of ours (made with nodes)."""
    tree = mat.node_tree
    assert tree is not None
    return tree


def _baked_material(name: str, image: bpy.types.Image) -> bpy.types.Material:
    """Principled BSDF and an image node reading `image` through the UV map, the active node (where Cycles
    bakes to). Linked to the Base Color after the bake (`_show_baked`): a material reading the image it is
    baked into is a circular dependency to Cycles."""
    mat, bsdf = principled_material(name)
    tree = _tree(mat)
    nodes, links = tree.nodes, tree.links
    tex = nodes.new("ShaderNodeTexImage")
    tex.name = tex.label = "Baked Colour"
    texture = cast(bpy.types.ShaderNodeTexImage, tex)  # its settings (the stubs type its sockets Optional)
    texture.image = image
    texture.interpolation = "Linear"
    tex.location = (bsdf.location[0] - 320, bsdf.location[1])
    uv = nodes.new("ShaderNodeUVMap")
    cast(bpy.types.ShaderNodeUVMap, uv).uv_map = UV_NAME
    uv.location = (tex.location[0] - 220, tex.location[1] - 80)
    links.new(uv.outputs["UV"], tex.inputs["Vector"])
    for node in nodes:
        node.select = False
    tex.select = True
    nodes.active = tex
    return mat


def _show_baked(mat: bpy.types.Material) -> None:
    tree = _tree(mat)
    nodes = tree.nodes
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    tree.links.new(nodes["Baked Colour"].outputs["Color"], bsdf.inputs["Base Color"])


class _Scene:
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


class _Made:
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


# --- the bake -----------------------------------------------------------------------------------------------


def _check(context: bpy.types.Context, obj: bpy.types.Object | None, resolution: int, max_triangles: int) -> None:
    if obj is None:
        raise BakeError(rpt_("Select the object to bake."))
    if obj.type != "MESH":
        raise BakeError(rpt_("“{}” is not a mesh ({}): only a mesh can be baked.").format(obj.name, obj.type.lower()))
    view_layer = context.view_layer
    assert view_layer is not None  # an operator's context has one
    view_layer.update()  # an object linked a moment ago is not listed before the view layer syncs
    if obj.name not in view_layer.objects:
        raise BakeError(rpt_("“{}” is not in the current view layer: show it in this scene to bake it.").format(
            obj.name))
    if context.mode != "OBJECT":
        raise BakeError(rpt_("Switch to Object Mode to bake."))
    mesh = cast(bpy.types.Mesh, obj.data)
    if obj.library is not None or mesh.library is not None:
        raise BakeError(rpt_("“{}” is linked from another file: make it local to bake it.").format(obj.name))
    if not len(mesh.polygons):
        raise BakeError(rpt_("“{}” has no faces to bake onto.").format(obj.name))
    if not 16 <= resolution <= 16384:
        raise BakeError(rpt_("A resolution of {} pixels is out of range (16–16384).").format(resolution))
    if max_triangles < 0:
        raise BakeError(rpt_("The triangle budget cannot be negative (0 keeps every triangle)."))


def bake_object(context: bpy.types.Context, obj: bpy.types.Object, *, resolution: int = 2048,
                max_triangles: int = 0, save_dir: Path | None = None,
                progress: Progress | None = None) -> bpy.types.Object:
    """Bake `obj` (a mesh in the view layer) into a lighter, UV-mapped, textured mesh; return `obj`.

    The object keeps its name, transform and custom properties, gains `sam3d_baked` (the resolution) and
    `sam3d_triangles`, and is left selected and active. Its new material "<name> Baked" reads the image
    "<name> Baked" (packed, or a PNG in `save_dir` when given) through the UV map. Raises BakeError with a
    sentence when it cannot be done, leaving the object as it was."""
    report = progress or (lambda _fraction, _text: None)
    _check(context, obj, resolution, max_triangles)
    attribute = colour_source(obj)
    if save_dir is not None:
        save_dir = Path(save_dir).expanduser().resolve()
        try:
            save_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BakeError(rpt_("The folder {} cannot be made ({}).").format(save_dir, exc.strerror or exc)) from exc

    name = obj.name
    state = _Scene(context)
    made = _Made()
    saved_file: Path | None = None
    try:
        report(0.0, iface_("Copying {}").format(name))
        full, source = _full_copy(context, obj, attribute, made)
        triangles = triangle_count(full)
        shape = _welded(state, source, made)  # the surface the target is made of: its faces joined

        if 0 < max_triangles < triangles:
            report(0.05, iface_("Reducing {} from {:,} to {:,} triangles").format(name, triangles, max_triangles))
            work_mesh = _decimate(context, shape, name, max_triangles, made)
        else:
            work_mesh = cast(bpy.types.Mesh, shape.data).copy()
            made.meshes.append(work_mesh)
        work = bpy.data.objects.new(f"{name} (bake target)", work_mesh)
        made.objects.append(work)
        state.scene.collection.objects.link(work)
        work.matrix_world = obj.matrix_world
        _prepare_target(work_mesh)

        report(0.35, iface_("Unwrapping {}").format(name))
        margin = max(2, resolution // 512)
        _unwrap(state, work, margin, resolution)

        report(0.5, iface_("Baking {} at {}×{}").format(name, resolution, resolution))
        raw = bpy.data.images.new(f"{name} Baked (raw)", resolution, resolution, alpha=True)
        made.images.append(raw)
        raw.pixels.foreach_set(np.zeros(resolution**2 * 4, dtype=np.float32))  # type: ignore[attr-defined]  # alpha 0
        material = _baked_material(f"{name} Baked", raw)
        made.materials.append(material)
        work_mesh.materials.append(material)
        _bake(context, state, source, work, margin)

        report(0.85, iface_("Filling the empty texels of {}").format(name))
        image = bpy.data.images.new(f"{name} Baked", resolution, resolution, alpha=False)
        made.images.append(image)
        image.pixels.foreach_set(_filled(raw, name).ravel())  # type: ignore[attr-defined]
        cast(bpy.types.ShaderNodeTexImage, _tree(material).nodes["Baked Colour"]).image = image
        made.images.remove(raw)
        bpy.data.images.remove(raw)
        _show_baked(material)

        report(0.9, iface_("Saving the texture of {}").format(name))
        if save_dir is not None:
            saved_file = _save_png(image, save_dir / f"{files.safe_name(name)}_baked.png")
        else:
            image.pack()
        result_triangles = triangle_count(work_mesh)
    except BaseException as exc:
        if context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        made.remove()
        state.restore()
        if saved_file is not None:
            saved_file.unlink(missing_ok=True)
        if isinstance(exc, BakeError) or not isinstance(exc, Exception):
            raise
        raise BakeError(rpt_("Blender could not bake “{}”: {}. The object is unchanged.").format(
            name, short_error(exc))) from exc

    # Everything worked: the object takes the baked mesh (nothing below is expected to fail).
    report(0.95, iface_("Swapping in the baked mesh of {}").format(name))
    old_mesh, old_materials = _swap(obj, work_mesh)
    made.remove(keep=(work_mesh, material, image))
    _drop_orphans(old_mesh, old_materials, work_mesh)
    material.name = image.name = f"{name} Baked"  # free again when an earlier bake's were dropped
    obj[schema.BAKED] = int(resolution)
    obj[schema.TRIANGLES] = int(result_triangles)
    state.restore()
    obj.select_set(True)
    state.view_layer.objects.active = obj
    report(1.0, iface_("Baked {}: {:,} triangles, {}×{} texture").format(name, result_triangles, resolution,
                                                                         resolution))
    return obj


def _full_copy(context: bpy.types.Context, obj: bpy.types.Object, attribute: str,
               made: _Made) -> tuple[bpy.types.Mesh, bpy.types.Object]:
    """The evaluated mesh of `obj` (its modifiers applied) as a new object at the same place: the bake source."""
    depsgraph = context.evaluated_depsgraph_get()
    full = bpy.data.meshes.new_from_object(obj.evaluated_get(depsgraph), preserve_all_data_layers=True,
                                           depsgraph=depsgraph)
    made.meshes.append(full)
    full.materials.clear()
    if attribute:  # the colour is in the vertex colours, and no material shows it: one that does
        material = attribute_material(f"{obj.name} (bake source)", attribute)
        made.materials.append(material)
        full.materials.append(material)
        full.polygons.foreach_set("material_index", np.zeros(len(full.polygons), dtype=np.int32))
    else:  # what the object shows, slot by slot (object-linked slots included)
        for slot in obj.material_slots:
            full.materials.append(slot.material)
    source = bpy.data.objects.new(f"{obj.name} (bake source)", full)
    made.objects.append(source)
    scene = context.scene
    assert scene is not None  # an operator's context has one
    scene.collection.objects.link(source)
    source.matrix_world = obj.matrix_world
    return full, source


def _welded(state: _Scene, source: bpy.types.Object, made: _Made) -> bpy.types.Object:
    """`source` itself, or, when its faces do not share their vertices (a flat-shaded mesh, each face with
    its own), a copy with coincident vertices merged: faces apart cannot be decimated, and unwrapped one by
    one they become islands too small to bake. The colours are baked from `source`, so nothing is lost."""
    mesh = cast(bpy.types.Mesh, source.data)
    corners = len(mesh.loops)
    if not corners or len(mesh.vertices) < 0.9 * corners:  # shared vertices: a connected surface already
        return source
    import bmesh

    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    points = co.reshape(-1, 3)
    size = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0))) or 1.0
    welded = mesh.copy()
    made.meshes.append(welded)
    bm = bmesh.new()
    try:
        bm.from_mesh(welded)
        bmesh.ops.remove_doubles(bm, verts=bm.verts[:], dist=1e-5 * size)
        bm.to_mesh(welded)
    finally:
        bm.free()
    joined = bpy.data.objects.new(f"{source.name} (welded)", welded)
    made.objects.append(joined)
    state.scene.collection.objects.link(joined)
    joined.matrix_world = source.matrix_world
    return joined


def _decimate(context: bpy.types.Context, source: bpy.types.Object, name: str, budget: int,
              made: _Made) -> bpy.types.Mesh:
    mesh = reduced_mesh(context, source, name, budget)
    made.meshes.append(mesh)
    return mesh


def reduced_mesh(context: bpy.types.Context, source: bpy.types.Object, name: str, budget: int) -> bpy.types.Mesh:
    """A new mesh of `source` with at most `budget` triangles: the add-on's one Triangle Budget rule (Bake,
    Reconstruct and the asset library). A collapse Decimate modifier, applied by making a mesh of the evaluated
    object, tried up to four times (Decimate lands above the ratio asked on some meshes); when it stops above
    the budget, a sentence says how low it goes. The modifier is removed again; the caller owns the mesh."""
    triangles = triangle_count(cast(bpy.types.Mesh, source.data))
    modifier = cast(bpy.types.DecimateModifier, source.modifiers.new("SAM3D Decimate", "DECIMATE"))
    modifier.decimate_type = "COLLAPSE"
    modifier.use_collapse_triangulate = True
    ratio, fewest = budget / max(triangles, 1), triangles
    try:
        for _attempt in range(4):
            modifier.ratio = ratio
            depsgraph = context.evaluated_depsgraph_get()
            mesh = bpy.data.meshes.new_from_object(source.evaluated_get(depsgraph), preserve_all_data_layers=True,
                                                   depsgraph=depsgraph)
            count = triangle_count(mesh)
            if count <= budget:
                break
            bpy.data.meshes.remove(mesh)
            if count >= fewest:  # no closer than last time: Decimate will not go lower on this mesh
                break
            fewest = count
            ratio *= budget / count * 0.99
        else:
            count = fewest
        if count > budget:
            raise BakeError(rpt_("“{}” cannot be reduced to {:,} triangles (Decimate stops at about {:,}): ask for "
                                 "more triangles.").format(name, budget, min(count, fewest)))
    finally:
        source.modifiers.remove(modifier)
    if not len(mesh.polygons):
        bpy.data.meshes.remove(mesh)
        raise BakeError(rpt_("{:,} triangles are too few for “{}”: nothing is left of it.").format(budget, name))
    return mesh


def _prepare_target(mesh: bpy.types.Mesh) -> None:
    """One fresh UV map, no material yet (the baked one is added later) and every face in slot 0."""
    for layer in list(mesh.uv_layers):
        mesh.uv_layers.remove(layer)
    mesh.uv_layers.new(name=UV_NAME)
    mesh.materials.clear()
    mesh.polygons.foreach_set("material_index", np.zeros(len(mesh.polygons), dtype=np.int32))


def _op_kwargs(op: Any, **wanted: Any) -> dict[str, Any]:
    """Only the options the running Blender's operator has."""
    props = op.get_rna_type().properties.keys()
    return {k: v for k, v in wanted.items() if k in props}


def _unwrap(state: _Scene, work: bpy.types.Object, margin: int, resolution: int) -> None:
    """Smart UV Project, every face, islands `2 × margin` pixels apart (the bake margin fills half of it).

    Islands smaller than a few texels (Smart UV Project makes hundreds of one-face islands on a scanned
    mesh) are enlarged and everything is packed again: Cycles bakes only texels whose centre a face covers,
    so a sub-texel island would get no colour of its own (black on 4.2–5.0, whose margin skips it; the
    colour of a neighbouring island once `_filled` has filled the gaps)."""
    gap = 2.0 * margin / resolution
    state.select_only([work], work)
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bpy.ops.mesh.select_all(action="SELECT")
        bpy.ops.uv.smart_project(**_op_kwargs(
            bpy.ops.uv.smart_project, angle_limit=math.radians(66.0), margin_method="FRACTION", island_margin=gap,
            correct_aspect=True, scale_to_bounds=False))
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    if not _enlarge_small_islands(cast(bpy.types.Mesh, work.data), MIN_ISLAND_TEXELS / resolution**2):
        return
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bpy.ops.mesh.select_all(action="SELECT")  # and so every UV (the selection is synced: _Scene)
        bpy.ops.uv.pack_islands(**_op_kwargs(
            bpy.ops.uv.pack_islands, udim_source="CLOSEST_UDIM", rotate=True, scale=True, margin_method="FRACTION",
            margin=gap, shape_method="AABB"))
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")


MIN_ISLAND_TEXELS = 12.0  # the least area of a UV island, in texels, before packing


def _enlarge_small_islands(mesh: bpy.types.Mesh, min_area: float) -> bool:
    """Scale every UV island smaller than `min_area` (UV units) up to it, about its centre; whether any was."""
    n_loops, n_faces = len(mesh.loops), len(mesh.polygons)
    uv = np.empty(n_loops * 2, dtype=np.float64)
    mesh.uv_layers[UV_NAME].data.foreach_get("uv", uv)
    uv = uv.reshape(-1, 2)
    verts = np.empty(n_loops, dtype=np.int64)
    mesh.loops.foreach_get("vertex_index", verts)
    starts = np.empty(n_faces, dtype=np.int64)
    totals = np.empty(n_faces, dtype=np.int64)
    mesh.polygons.foreach_get("loop_start", starts)
    mesh.polygons.foreach_get("loop_total", totals)
    face_of = np.repeat(np.arange(n_faces), totals)

    # A UV vertex: a mesh vertex at one UV position. Faces sharing one are in one island.
    quantised = np.round(uv * 2**20).astype(np.int64)
    _, uv_vertex = np.unique(np.column_stack([verts, quantised]), axis=0, return_inverse=True)
    uv_vertex = uv_vertex.ravel()
    parent = list(range(int(uv_vertex.max()) + 1))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = uv_vertex[starts].tolist()
    for face_loops, root in zip(np.split(uv_vertex, starts[1:]), first, strict=True):
        a = find(root)
        for j in face_loops[1:].tolist():
            b = find(j)
            if a != b:
                parent[b] = a
    roots = np.array([find(i) for i in range(len(parent))])
    _, island_of_loop = np.unique(roots[uv_vertex], return_inverse=True)
    island_of_loop = island_of_loop.ravel()
    island_of_face = island_of_loop[starts]

    # Shoelace area of each face in UV, summed per island.
    nxt = np.arange(n_loops) + 1
    nxt[starts + totals - 1] = starts
    cross = uv[:, 0] * uv[nxt, 1] - uv[nxt, 0] * uv[:, 1]
    face_area = np.abs(np.bincount(face_of, weights=cross, minlength=n_faces)) / 2
    islands = int(island_of_face.max()) + 1
    area = np.bincount(island_of_face, weights=face_area, minlength=islands)
    small = (area < min_area) & (area > min_area * 1e-6)
    if not small.any():
        return False
    count = np.bincount(island_of_loop, minlength=islands)
    centre = np.column_stack([np.bincount(island_of_loop, weights=uv[:, k], minlength=islands)
                              for k in (0, 1)]).astype(np.float64, copy=False)  # weighted: float64 already
    centre /= np.maximum(count, 1)[:, None]
    factor = np.ones(islands)
    factor[small] = np.sqrt(min_area / area[small])
    f = factor[island_of_loop][:, None]
    c = centre[island_of_loop]
    uv = c + (uv - c) * f
    mesh.uv_layers[UV_NAME].data.foreach_set("uv", uv.astype(np.float32).ravel())
    return True


def _bake(context: bpy.types.Context, state: _Scene, source: bpy.types.Object, work: bpy.types.Object,
          margin: int) -> None:
    """Cycles, Diffuse colour only, from the full-detail source onto the target's active image node."""
    extrusion = _extrusion(context, source, work)
    # Blender offsets the rays' start in object space (extrusion) but limits their length in world space.
    factors = work.matrix_world.to_scale()
    scale = max(abs(factors[0]), abs(factors[1]), abs(factors[2])) or 1.0
    state.use_cycles(samples=1)
    state.select_only([source, work], work)
    kwargs = _op_kwargs(bpy.ops.object.bake, type="DIFFUSE", pass_filter={"COLOR"}, use_selected_to_active=True,
                        use_cage=False, cage_extrusion=extrusion, max_ray_distance=3.0 * extrusion * scale,
                        margin=margin, margin_type="ADJACENT_FACES", target="IMAGE_TEXTURES",
                        save_mode="INTERNAL", use_clear=False, use_split_materials=False, uv_layer=UV_NAME)
    result = bpy.ops.object.bake(**kwargs)
    if "FINISHED" not in result:  # type: ignore[operator]
        raise BakeError(rpt_("Blender did not bake (the bake was cancelled)."))


def _extrusion(context: bpy.types.Context, source: bpy.types.Object, work: bpy.types.Object) -> float:
    """How far out (object space) rays start above the reduced mesh: enough to clear how far decimation
    moved the surface (measured at its vertices and face centres), at least 0.25 % of the object's size, at
    most 5 %. Larger than needed, rays start inside neighbouring parts and bake their colour instead."""
    mesh = cast(bpy.types.Mesh, work.data)
    n = len(mesh.vertices)
    points = np.empty((n + len(mesh.polygons), 3), dtype=np.float32)
    mesh.vertices.foreach_get("co", points[:n].ravel())
    mesh.polygons.foreach_get("center", points[n:].ravel())
    size = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0))) or 1.0
    tree = BVHTree.FromObject(source, context.evaluated_depsgraph_get())  # type: ignore[arg-type]
    step = max(1, len(points) // 20000)  # enough points for a percentile, in ~0.1 s
    far: list[float] = []
    if tree is not None:
        far = [tree.find_nearest(Vector(p))[3] or 0.0 for p in points[::step].tolist()]
    deviation = float(np.percentile(far, 99.5)) / size if far else 0.0
    return min(max(0.0025, 1.5 * deviation), 0.05) * size


def _filled(image: bpy.types.Image, name: str) -> np.ndarray:
    """The baked pixels, every texel the bake left empty filled from its baked neighbours (RGBA, opaque).

    Alpha tells what the bake wrote: 1 where it baked, between 0 and 1 where its margin blended baked texels
    with empty ones (premultiplied), 0 where nothing was written. The empty texels are filled by pull-push
    (each takes the average of the nearest baked texels): no black where bilinear filtering, mipmaps or a
    sliver of a face whose texels no face centre covers would read them."""
    w, h = image.size
    rgba = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(rgba)  # type: ignore[attr-defined]
    rgba = rgba.reshape(h, w, 4)
    alpha = rgba[..., 3].copy()
    if not (alpha > 0).any():
        raise BakeError(rpt_("Nothing of “{}” was baked: the reduced mesh and the original do not meet.").format(name))
    colour = rgba[..., :3]  # premultiplied where the margin blended (0 < alpha < 1), as alpha is 0 or 1 elsewhere
    out = np.empty_like(rgba)
    out[..., :3] = raster.pull_push(colour, alpha)
    out[..., 3] = 1.0
    return out


def _save_png(image: bpy.types.Image, path: Path) -> Path:
    """The image as a PNG at `path`, kept as an external file at that absolute path. Saved to a new file of an
    unpredictable name beside it, then renamed over it: a link planted at `path` (a shared library) is
    replaced, never written through."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name[:60]}.", suffix=".png", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise BakeError(rpt_("The texture could not be saved as {} ({}).").format(path, exc.strerror or exc)) from exc
    try:
        image.filepath_raw = name
        image.file_format = "PNG"
        image.save()
        os.replace(name, path)
    except (RuntimeError, OSError) as exc:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise BakeError(rpt_("The texture could not be saved as {} ({}).").format(path, short_error(exc))) from exc
    image.filepath = str(path)
    image.source = "FILE"
    return path


def _swap(obj: bpy.types.Object, mesh: bpy.types.Mesh) -> tuple[bpy.types.Mesh, set[bpy.types.Material]]:
    """Give `obj` the baked mesh; return its old mesh and the materials it showed."""
    old = cast(bpy.types.Mesh, obj.data)
    old_materials = {slot.material for slot in obj.material_slots if slot.material is not None}
    old_materials |= {m for m in old.materials if m is not None}
    obj.modifiers.clear()  # already applied to the baked mesh
    obj.data = mesh
    for slot in obj.material_slots:
        slot.link = "DATA"
    return old, old_materials


def _drop_orphans(old: bpy.types.Mesh, old_materials: set[bpy.types.Material], mesh: bpy.types.Mesh) -> None:
    """Remove the old mesh, and the materials and images only it used, once nothing uses them (they would
    be orphans, dropped when the file is saved anyway)."""
    if old.users == 0:
        old_name = old.name
        bpy.data.meshes.remove(old)
        mesh.name = old_name
    orphaned_images = set()
    for mat in old_materials:
        if mat.users == 0 and not mat.use_fake_user:
            if mat.node_tree is not None:
                orphaned_images |= {image for n in mat.node_tree.nodes
                                    if (image := getattr(n, "image", None)) is not None}
            bpy.data.materials.remove(mat)
    for image in orphaned_images:
        if image.users == 0 and not image.use_fake_user:
            bpy.data.images.remove(image)


# --- the operator and its modal run -------------------------------------------------------------------------


def targets(context: bpy.types.Context) -> list[bpy.types.Object]:
    """The selected SAM 3D results (mesh objects carrying sam3d_task_uuid)."""
    return [o for o in (context.selected_objects or []) if is_sam3d(o)]


def _set_progress(active: bool, fraction: float, text: str) -> None:
    PROGRESS.update(active=active, fraction=max(0.0, min(1.0, fraction)), text=text)


def _redraw(context: bpy.types.Context) -> None:
    wm = getattr(context, "window_manager", None)
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            area.tag_redraw()


def _status(context: bpy.types.Context, text: str | None) -> None:
    workspace = getattr(context, "workspace", None)
    if workspace is not None:
        workspace.status_text_set(text)


def _summary(baked: list[str], failed: list[tuple[str, str]], skipped: int, cancelled: bool,
             seconds: float) -> tuple[WmReportItems, str]:
    """(report kind, sentence) for what a run did."""
    parts = []
    if baked:
        names = ", ".join(f"“{n}”" for n in baked[:3])
        if len(baked) > 3:
            names = rpt_("{} and {} more").format(names, len(baked) - 3)
        parts.append(rpt_("Baked {} in {:.1f} s.").format(names, seconds))
    for who, why in failed:
        parts.append(why if who in why else rpt_("“{}”: {}").format(who, why))
    if cancelled:
        parts.append((rpt_("Cancelled: {} object left as they were.") if skipped == 1 else
                      rpt_("Cancelled: {} objects left as they were.")).format(skipped))
    text = " ".join(parts) or rpt_("Nothing was baked.")
    kind: WmReportItems = "ERROR" if failed and not baked else (
        "WARNING" if failed or (cancelled and not baked) else "INFO")
    return kind, text


class BakeRun:
    """What the modal operator does, apart from it so that tests (Blender runs no modal handlers in
    background mode) can drive it with plain events: one object per TIMER event, Esc cancels between
    objects (the ones already baked stay baked)."""

    def __init__(self, names: list[str], *, resolution: int = 2048, max_triangles: int = 0,
                 save_dir: Path | None = None) -> None:
        self.names = list(names)
        self.resolution, self.max_triangles, self.save_dir = resolution, max_triangles, save_dir
        self.index = 0
        self.baked: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.cancelled = False
        self.started = time.monotonic()
        self.fractions: list[float] = []  # every fraction reported, for tests and the panel
        self.last_event = time.monotonic()  # when the run last handled an event (a dropped run stops)

    @property
    def done(self) -> bool:
        return self.cancelled or self.index >= len(self.names)

    def start(self, context: bpy.types.Context) -> None:
        self.started = time.monotonic()
        self._progress(context, 0.0, iface_("Baking {} object(s)").format(len(self.names)))

    def _progress(self, context: bpy.types.Context, fraction: float, text: str) -> None:
        self.fractions.append(fraction)
        _set_progress(True, fraction, text)
        _status(context, f"SAM 3D · {text} · {fraction:.0%}  " + iface_("(Esc to cancel)"))
        _redraw(context)

    def on_event(self, context: bpy.types.Context, kind: str, value: str = "") -> set[OperatorReturnItems]:
        try:
            return self._on_event(context, kind, value)
        finally:
            self.last_event = time.monotonic()

    def _on_event(self, context: bpy.types.Context, kind: str, value: str) -> set[OperatorReturnItems]:
        if kind == "ESC" and value == "PRESS":
            self.cancelled = True
            return self._end(context)
        if kind != "TIMER":
            return {"PASS_THROUGH"}
        if self.done:
            return self._end(context)
        if context.mode != "OBJECT":  # the user went into Edit Mode meanwhile: wait
            _status(context, "SAM 3D · " + iface_("Bake waiting for Object Mode") + "  " + iface_("(Esc to cancel)"))
            return {"PASS_THROUGH"}
        self.step(context)
        return self._end(context) if self.done else {"PASS_THROUGH"}

    def step(self, context: bpy.types.Context) -> None:
        """Bake the next object."""
        n, i = len(self.names), self.index
        name = self.names[i]
        self.index += 1
        obj = bpy.data.objects.get(name)
        if obj is None:
            self.failed.append((name, rpt_("“{}” no longer exists.").format(name)))
            return

        def progress(fraction: float, text: str) -> None:
            self._progress(context, (i + fraction) / n, text)

        try:
            bake_object(context, obj, resolution=self.resolution, max_triangles=self.max_triangles,
                        save_dir=self.save_dir, progress=progress)
        except BakeError as exc:
            self.failed.append((name, str(exc)))
        else:
            self.baked.append(obj.name)
        self._progress(context, (i + 1) / n, iface_("{} of {} done").format(self.index, n))

    def run(self, context: bpy.types.Context) -> None:
        """Everything, blocking (scripts and background mode)."""
        self.start(context)
        while not self.done:
            self.step(context)
        self._end(context)

    def result(self) -> tuple[WmReportItems, str]:
        return _summary(self.baked, self.failed, len(self.names) - self.index, self.cancelled,
                        time.monotonic() - self.started)

    def _end(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        _set_progress(False, 1.0 if not self.cancelled else PROGRESS["fraction"], "")
        _status(context, None)
        _redraw(context)
        return {"FINISHED"} if self.baked else {"CANCELLED"}


_RUN: dict[str, Any] = {"run": None, "timer": None}  # the running modal bake (never on the operator)


def running() -> BakeRun | None:
    """The modal run in progress, if any. One that has seen no event for 10 s was dropped without being
    cancelled (its timer ticks every 0.1 s, and a bake in progress holds the UI, so no poll happens then)."""
    run: BakeRun | None = _RUN["run"]
    if run is not None and time.monotonic() - run.last_event > 10.0:
        _RUN["run"] = _RUN["timer"] = None
        _set_progress(False, 0.0, "")
        return None
    return run


class SAM3D_OT_bake(bpy.types.Operator):
    """Bake the selected SAM 3D results into a lighter mesh with a UV-mapped colour texture"""

    bl_idname = "sam3d.bake"
    bl_label = "Bake to Texture"
    bl_options = {"REGISTER", "UNDO"}

    resolution: IntProperty(  # type: ignore[valid-type]
        name="Resolution", description="Width and height of the baked texture in pixels",
        default=2048, min=64, max=8192, subtype="PIXEL")
    max_triangles: IntProperty(  # type: ignore[valid-type]
        name="Max Triangles", description="Reduce the mesh to at most this many triangles (0 keeps every one)",
        default=0, min=0)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if running() is not None:
            cls.poll_message_set(tip_("A bake is already running (Esc cancels it)"))
            return False
        if context.mode != "OBJECT":
            cls.poll_message_set(tip_("Switch to Object Mode to bake"))
            return False
        if not targets(context):
            cls.poll_message_set(tip_("Select a SAM 3D result to bake (a mesh object made by SAM 3D)"))
            return False
        return True

    def _run(self, context: bpy.types.Context) -> BakeRun:
        return BakeRun([o.name for o in targets(context)], resolution=self.resolution,
                       max_triangles=self.max_triangles)

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        run = self._run(context)
        run.run(context)
        kind, text = run.result()
        self.report({kind}, text)
        return {"FINISHED"} if run.baked else {"CANCELLED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        if bpy.app.background or not context.window:
            return self.execute(context)
        run = self._run(context)
        run.start(context)
        wm = context.window_manager
        assert wm is not None  # there is a window (checked above)
        _RUN["run"], _RUN["timer"] = run, wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        run: BakeRun | None = _RUN["run"]
        if run is None:
            return {"CANCELLED"}
        result = run.on_event(context, event.type, event.value)
        if "FINISHED" in result or "CANCELLED" in result:
            self._stop(context)
            kind, text = run.result()
            self.report({kind}, text)
        elif event.type == "ESC":
            return {"RUNNING_MODAL"}
        return result

    def cancel(self, context: bpy.types.Context) -> None:
        run: BakeRun | None = _RUN["run"]
        if run is not None:
            run.cancelled = True
            run._end(context)
        self._stop(context)

    @staticmethod
    def _stop(context: bpy.types.Context) -> None:
        if _RUN["timer"] is not None:
            wm = context.window_manager
            assert wm is not None  # the timer was added to it
            wm.event_timer_remove(_RUN["timer"])
        _RUN["run"] = _RUN["timer"] = None


classes = (SAM3D_OT_bake,)
