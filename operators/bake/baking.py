"""`bake_object`: one object reduced, unwrapped, baked by Cycles into a texture and given it; on any failure the
object is left as it was (everything is made on copies, swapped in only when all has worked)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import cast

import bpy
import numpy as np
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from ...client import files
from ...client.errors import short_error
from ...translations import iface_, rpt_
from ...utils import raster, schema
from ..machinery.importing import attribute_material
from . import maps
from .budget import reduced_mesh, triangle_count
from .errors import BakeError
from .materials import baked_material, colour_source, node_tree_of, show_baked
from .staging import Made, SceneState
from .unwrap import UV_NAME, op_kwargs, prepare_target, unwrap

Progress = Callable[[float, str], None]


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
    state = SceneState(context)
    made = Made()
    saved_files: list[Path] = []
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
        prepare_target(work_mesh)

        report(0.35, iface_("Unwrapping {}").format(name))
        margin = max(2, resolution // 512)
        unwrap(state, work, margin, resolution)

        report(0.5, iface_("Baking {} at {}×{}").format(name, resolution, resolution))
        recipe = maps.plan(list(full.materials))
        raw = {spec: _blank(f"{spec.image_name(name)} (raw)", resolution, spec, made)
               for spec in (maps.COLOUR, *recipe.maps)}
        material = baked_material(f"{name} Baked", raw[maps.COLOUR])
        made.materials.append(material)
        for row, spec in enumerate(recipe.maps, 1):
            maps.add_map_node(material, spec, raw[spec], row)
        work_mesh.materials.append(material)
        bake_colour(context, state, source, work, margin, recipe)
        for i, spec in enumerate(recipe.maps):
            report(0.5 + 0.35 * (i + 1) / (len(recipe.maps) + 1),
                   iface_("Baking the {} of {}").format(iface_(spec.label).lower(), name))
            _bake_map(context, state, source, work, margin, material, spec)

        report(0.85, iface_("Filling the empty texels of {}").format(name))
        images = {spec: _finished(raw_image, spec, name, material, made) for spec, raw_image in raw.items()}
        show_baked(material)
        maps.link_maps(material, recipe.maps, recipe.values)

        report(0.9, iface_("Saving the texture of {}").format(name))
        for spec, each in images.items():
            if save_dir is not None:
                saved_files.append(_save_png(each, save_dir / f"{files.safe_name(name)}_{spec.suffix}.png"))
            else:
                each.pack()
        result_triangles = triangle_count(work_mesh)
    except BaseException as exc:
        if context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        made.remove()
        state.restore()
        for saved in saved_files:
            saved.unlink(missing_ok=True)
        if isinstance(exc, BakeError) or not isinstance(exc, Exception):
            raise
        raise BakeError(rpt_("Blender could not bake “{}”: {}. The object is unchanged.").format(
            name, short_error(exc))) from exc

    # Everything worked: the object takes the baked mesh (nothing below is expected to fail).
    report(0.95, iface_("Swapping in the baked mesh of {}").format(name))
    old_mesh, old_materials = _swap(obj, work_mesh)
    made.remove(keep=(work_mesh, material, *images.values()))
    _drop_orphans(old_mesh, old_materials, work_mesh)
    material.name = f"{name} Baked"  # the names are free again once an earlier bake's were dropped
    for spec, each in images.items():
        each.name = spec.image_name(name)
    obj[schema.BAKED] = int(resolution)
    obj[schema.TRIANGLES] = int(result_triangles)
    state.restore()
    obj.select_set(True)
    state.view_layer.objects.active = obj
    report(1.0, iface_("Baked {}: {:,} triangles, {}×{} texture").format(name, result_triangles, resolution,
                                                                         resolution))
    return obj


def _full_copy(context: bpy.types.Context, obj: bpy.types.Object, attribute: str,
               made: Made) -> tuple[bpy.types.Mesh, bpy.types.Object]:
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


def _welded(state: SceneState, source: bpy.types.Object, made: Made) -> bpy.types.Object:
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
              made: Made) -> bpy.types.Mesh:
    mesh = reduced_mesh(context, source, name, budget)
    made.meshes.append(mesh)
    return mesh


def bake_colour(context: bpy.types.Context, state: SceneState, source: bpy.types.Object, work: bpy.types.Object,
                margin: int, recipe: maps.Plan) -> None:
    """Cycles, from the full-detail source onto the target's active image node: the Diffuse colour, or for a
    metallic surface (whose diffuse colour Cycles darkens) its base colour shown as an emission."""
    if not recipe.colour_as_emission:
        _cycles_bake(context, state, source, work, margin, type="DIFFUSE", pass_filter={"COLOR"})
        return
    with maps.InputsAsEmission(cast(bpy.types.Mesh, source.data), maps.COLOUR.socket):
        _cycles_bake(context, state, source, work, margin, type="EMIT")


def _bake_map(context: bpy.types.Context, state: SceneState, source: bpy.types.Object, work: bpy.types.Object,
              margin: int, material: bpy.types.Material, spec: maps.Map) -> None:
    """One more map into its own image node: the normal as Cycles sees it (the source's normal map included) in
    the target's tangent space, any other input as an emission."""
    tree = node_tree_of(material)
    tree.nodes.active = tree.nodes[f"Baked {spec.label}"]
    if spec is maps.NORMAL:
        _cycles_bake(context, state, source, work, margin, type="NORMAL", normal_space="TANGENT")
        return
    with maps.InputsAsEmission(cast(bpy.types.Mesh, source.data), spec.socket):
        _cycles_bake(context, state, source, work, margin, type="EMIT")


def _cycles_bake(context: bpy.types.Context, state: SceneState, source: bpy.types.Object, work: bpy.types.Object,
                 margin: int, **kind: object) -> None:
    """One selected-to-active bake from the source onto the target's active image node."""
    extrusion = _extrusion(context, source, work)
    # Blender offsets the rays' start in object space (extrusion) but limits their length in world space.
    factors = work.matrix_world.to_scale()
    scale = max(abs(factors[0]), abs(factors[1]), abs(factors[2])) or 1.0
    state.use_cycles(samples=1)
    state.select_only([source, work], work)
    kwargs = op_kwargs(bpy.ops.object.bake, **kind, use_selected_to_active=True,
                       use_cage=False, cage_extrusion=extrusion, max_ray_distance=3.0 * extrusion * scale,
                       margin=margin, margin_type="ADJACENT_FACES", target="IMAGE_TEXTURES",
                       save_mode="INTERNAL", use_clear=False, use_split_materials=False, uv_layer=UV_NAME)
    result = bpy.ops.object.bake(**kwargs)
    if "FINISHED" not in result:  # type: ignore[operator]
        raise BakeError(rpt_("Blender did not bake (the bake was cancelled)."))


def _blank(image_name: str, resolution: int, spec: maps.Map, made: Made) -> bpy.types.Image:
    """A transparent image for the bake to write into (alpha tells `_filled` which texels it wrote)."""
    raw = bpy.data.images.new(image_name, resolution, resolution, alpha=True)
    made.images.append(raw)
    if spec.data:
        raw.colorspace_settings.name = "Non-Color"  # type: ignore[union-attr]  # values written as they are, not as sRGB colours
    raw.pixels.foreach_set(np.zeros(resolution**2 * 4, dtype=np.float32))  # type: ignore[attr-defined]  # alpha 0
    return raw


def _finished(raw: bpy.types.Image, spec: maps.Map, name: str, material: bpy.types.Material,
              made: Made) -> bpy.types.Image:
    """The opaque image the material keeps: `raw`'s pixels with every empty texel filled; `raw` removed."""
    w, _h = raw.size
    image = bpy.data.images.new(spec.image_name(name), w, w, alpha=False)
    made.images.append(image)
    if spec.data:
        image.colorspace_settings.name = "Non-Color"  # type: ignore[union-attr]
    image.pixels.foreach_set(_filled(raw, name).ravel())  # type: ignore[attr-defined]
    node = node_tree_of(material).nodes[f"Baked {spec.label}"]
    cast(bpy.types.ShaderNodeTexImage, node).image = image
    made.images.remove(raw)
    bpy.data.images.remove(raw)
    return image


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
