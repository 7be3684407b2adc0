"""GLB files on disk → clean objects in the scene: import, flatten, name, place, tag, collect, select.

Main thread only. Either every result of a job lands, or nothing does (no half-imported scene); the GLBs
stay on disk whatever happens, so nothing paid for is lost.

Every GLB that reaches Blender's importer comes through `import_glb`, the one door: its bytes are copied (a
regular file, never through a link, within the Largest Download) into a private folder of this process, that
copy passes the GLB gate (client/glb_gate.py), and the importer reads that copy, so a file of the shared result
folder changed between the check and the import changes nothing. A fresh result, Re-import, Resume from disk
and every batch item go through it alike.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import bmesh
import bpy
import numpy as np
from mathutils import Matrix, Vector

from ... import preferences
from ...client import Sam3dError, files, glb_gate
from ...client.errors import short_error
from ...translations import rpt_
from ...utils import schema
from .inputs import scene_of, view_layer_of

# Importer options we rely on, passed only where the running Blender has them (4.5+ added several).
_IMPORT_OPTIONS = {"import_pack_images": True, "import_scene_as_collection": False,
                   "import_select_created_objects": False, "import_scene_extras": True}
VERTEX_COLOUR_MATERIAL = "SAM3D Vertex Colour"
GAP = 0.1  # between variants, as a fraction of the widest one


class GlbImportError(RuntimeError):
    """The GLB could not become objects; the text says where the file is kept."""


@dataclass
class Provenance:
    task_uuid: str
    seed: int | None
    cost: float | None
    prompt: str
    image: str
    mask: str
    model: str
    index: int = 0


def import_results(context: bpy.types.Context, paths: list[Path], provenance: list[Provenance], *,
                   name: str, placement: str = "CURSOR", photo: str = "",
                   arrange: Callable[[list[bpy.types.Object]], None] | None = None) -> list[bpy.types.Object]:
    """Import every GLB as one object each, in the collection named `name` (made on first use), or with
    `photo` (an image name) in that photo's collection, shared by every mask of the photo; all or nothing."""
    before = _snapshot()
    collection = _photo_collection(context, photo) if photo else _own_collection(context, name)
    made_collection = collection is None
    if collection is None:
        collection = bpy.data.collections.new(Path(photo).stem if photo else name)
        collection[schema.MADE] = True  # ours: removed with its last object when a batch writes an asset
        scene_of(context).collection.children.link(collection)
        if photo:
            collection[schema.PHOTO] = photo
    try:
        roots = []
        for n, (path, prov) in enumerate(zip(paths, provenance, strict=True)):
            label = name if len(paths) == 1 else f"{name}_v{n + 1}"
            root = _import_one(context, path, label, collection)
            tag(root, prov, path)
            roots.append(root)
        if placement == "CURSOR":
            place_on_cursor(context, roots)
        elif arrange is not None:  # e.g. in front of the photo's camera (operators/scene/photo_camera.py)
            arrange(roots)
        view_layer_of(context).update()
        select_only(context, roots)
    except Exception as exc:
        _remove_new(before)
        if made_collection:
            bpy.data.collections.remove(collection)
        if isinstance(exc, GlbRefusedError):
            raise
        kept = ", ".join(str(p) for p in paths)
        why = short_error(exc)
        if any(uses_draco(p) for p in paths):
            why = rpt_("it is compressed with Draco, which this Blender build cannot decode; Blender from "
                       "blender.org can")
        raise GlbImportError(rpt_("Blender could not import the result ({}). Nothing was added; the file is kept "
                                  "at {}.").format(why, kept)) from exc
    return roots


def _own_collection(context: bpy.types.Context, name: str) -> bpy.types.Collection | None:
    """The collection an earlier import of the same name made in this scene: a mask reconstructed again
    lands beside its earlier results, not in "mask_0.001"."""
    for collection in scene_of(context).collection.children:
        if collection.name == name and collection.get(schema.MADE) and not collection.get(schema.PHOTO):
            return collection
    return None


def _photo_collection(context: bpy.types.Context, photo: str) -> bpy.types.Collection | None:
    """The collection an earlier mask of the same photo landed in."""
    for collection in scene_of(context).collection.children:
        if collection.get(schema.PHOTO) == photo:
            return collection
    return None


def _import_one(context: bpy.types.Context, path: Path, label: str,
                collection: bpy.types.Collection) -> bpy.types.Object:
    objects = import_glb(path)
    for obj in objects:  # move from wherever the importer linked them into our collection
        for owner in list(obj.users_collection):
            owner.objects.unlink(obj)
        collection.objects.link(obj)
    view_layer_of(context).update()
    root = flatten(objects)
    root.name = label
    if root.type == "MESH":
        mesh_of(root).name = label
    for obj in [root, *root.children_recursive]:
        if isinstance(obj.data, bpy.types.Mesh):
            show_vertex_colours(obj.data)
    return root


class GlbRefusedError(GlbImportError):
    """The GLB gate refused the file: its sentence says why (nothing of it reached Blender)."""


@contextlib.contextmanager
def gated_copy(path: Path) -> Iterator[Path]:
    """A private copy of the GLB at `path` that passed the gate (raises GlbRefusedError otherwise)."""
    prefs = preferences.get()
    limit = prefs.max_download_mb * 1024 * 1024
    results = preferences.result_folder(prefs)  # its task folders may be swapped for links: reached from it
    root = results if Path(path).is_relative_to(results) else None
    folder = tempfile.mkdtemp(prefix="sam3d-import-")  # this process's own (0700)
    copy = Path(folder) / "result.glb"
    try:
        try:
            fd = files.open_regular(path, max_bytes=limit, root=root)
        except files.UnsafeFileError as exc:
            raise GlbRefusedError(rpt_("The result {} was not imported: {}.").format(path, exc.why)) from None
        except OSError as exc:
            raise GlbRefusedError(rpt_("The result {} cannot be read ({}).").format(path, exc.strerror or exc)) \
                from None
        with os.fdopen(fd, "rb") as source, open(copy, "xb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
            if target.tell() > limit:  # grown while copied
                raise GlbRefusedError(rpt_("The result {} is larger than the download limit set in the preferences."
                                      ).format(path))
        budget = prefs.max_triangles
        try:
            glb_gate.inspect_glb(copy, max_triangles=budget, max_vertices=budget)
        except Sam3dError as exc:
            raise GlbRefusedError(rpt_("{} The file is kept at {}.").format(exc.sentence, path)) from None
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def import_glb(path: Path) -> list[bpy.types.Object]:
    """Blender's glTF importer on a gated private copy of `path`; returns what it made (found by difference,
    not by selection)."""
    props = bpy.ops.import_scene.gltf.get_rna_type().properties.keys()  # type: ignore[call-arg]
    options = {k: v for k, v in _IMPORT_OPTIONS.items() if k in props}
    before = set(bpy.data.objects)
    with gated_copy(path) as copy:
        bpy.ops.import_scene.gltf(filepath=str(copy), **options)  # type: ignore[arg-type]
    made = [o for o in bpy.data.objects if o not in before]
    if not any(o.type == "MESH" for o in made):
        raise GlbImportError(rpt_("the file holds no mesh"))
    return made


def flatten(objects: list[bpy.types.Object]) -> bpy.types.Object:
    """A lone mesh under Empties becomes one object (its world transform kept); else the single root."""
    meshes = [o for o in objects if o.type == "MESH"]
    others = [o for o in objects if o.type != "MESH"]
    if len(meshes) == 1 and all(o.type == "EMPTY" for o in others):
        mesh = meshes[0]
        world = mesh.matrix_world.copy()
        mesh.parent = None
        mesh.matrix_world = world
        for empty in others:
            bpy.data.objects.remove(empty)
        return mesh
    roots = [o for o in objects if o.parent is None]
    if len(roots) == 1:
        return roots[0]
    holder = bpy.data.objects.new("root", None)  # several roots: give the result one handle
    for collection in roots[0].users_collection:
        collection.objects.link(holder)
    for root in roots:
        root.parent = holder
    return holder


def mesh_of(obj: bpy.types.Object) -> bpy.types.Mesh:
    """A mesh object's mesh."""
    mesh = obj.data
    assert isinstance(mesh, bpy.types.Mesh)
    return mesh


def world_bounds(root: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) corners in world space over every mesh vertex of `root` and its children."""
    lows, highs = [], []
    for obj in [root, *root.children_recursive]:
        if not isinstance(obj.data, bpy.types.Mesh) or not len(obj.data.vertices):
            continue
        pts = _points(obj.data)
        m = np.array(obj.matrix_world, dtype=np.float32)
        if not np.allclose(m, np.eye(4)):  # a baked mesh (the usual case) needs no transform
            pts = pts @ m[:3, :3].T + m[:3, 3]
        # Per column: numpy's min(axis=0) over an (n, 3) array is 20× slower on 113k vertices.
        lows.append(np.array([pts[:, i].min() for i in range(3)]))
        highs.append(np.array([pts[:, i].max() for i in range(3)]))
    if not lows:
        return np.zeros(3), np.zeros(3)
    return np.min(lows, axis=0), np.max(highs, axis=0)


def _points(mesh: bpy.types.Mesh) -> np.ndarray:
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def place_on_cursor(context: bpy.types.Context, roots: list[bpy.types.Object]) -> None:
    """Each object's bottom centre (origin moved there) on the 3D cursor; variants side by side along X."""
    cursor = scene_of(context).cursor.location.copy()
    widths = [set_origin_to_base(root) for root in roots]
    gap = GAP * max(widths, default=0.0)
    x = 0.0
    for n, root in enumerate(roots):
        if n:
            x += widths[n - 1] / 2 + gap + widths[n] / 2
        root.location = cursor + Vector((x, 0.0, 0.0))
    view_layer_of(context).update()


def set_origin_to_base(root: bpy.types.Object) -> float:
    """Bake the world transform into the mesh, put the origin at the bottom centre of its bounds, and
    return its width along X (read once: on the 227k-triangle sample each read of the vertices costs ms)."""
    low, high = world_bounds(root)
    base = Vector(((low[0] + high[0]) / 2, (low[1] + high[1]) / 2, low[2]))
    if root.type == "MESH" and not root.children:
        mesh = mesh_of(root)
        if root.matrix_world != Matrix.Identity(4):
            mesh.transform(root.matrix_world)  # world_bounds already saw these world positions
            root.matrix_world = Matrix.Identity(4)
        mesh.transform(Matrix.Translation(-base))
        mesh.update()
    else:  # a hierarchy: move the root's origin to the base, its children staying where they are
        children = [(child, child.matrix_world.copy()) for child in root.children]
        root.matrix_world = Matrix.Translation(base - root.matrix_world.translation) @ root.matrix_world
        for child, world in children:
            child.matrix_world = world
    return float(high[0] - low[0])


def show_vertex_colours(mesh: bpy.types.Mesh) -> None:
    """A mesh with vertex colours and no material shows grey: give it a material that reads them."""
    if not mesh.color_attributes or any(m is not None for m in mesh.materials):
        return
    attribute = (mesh.color_attributes.active_color or mesh.color_attributes[0]).name
    mesh.materials.append(vertex_colour_material(attribute))


def vertex_colour_material(attribute: str) -> bpy.types.Material:
    """The material of imported results: ours reading `attribute` when the file has one, else a new one."""
    for mat in bpy.data.materials:
        if mat.name.startswith(VERTEX_COLOUR_MATERIAL) and mat.get(schema.ATTRIBUTE) == attribute:
            return mat
    mat = attribute_material(VERTEX_COLOUR_MATERIAL, attribute)
    mat[schema.ATTRIBUTE] = attribute
    return mat


def principled_material(name: str) -> tuple[bpy.types.Material, bpy.types.Node]:
    """A new material with nodes and its Principled BSDF: the add-on's one rule for Blender 4 and 5 (4.x makes
    and uses node trees on request; 5.x always has them)."""
    mat = bpy.data.materials.new(name)
    if mat.node_tree is None or bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    tree = mat.node_tree
    assert tree is not None  # use_nodes made it
    bsdf = next((n for n in tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:  # not expected, but cheap to cover
        bsdf = tree.nodes.new("ShaderNodeBsdfPrincipled")
        output = next((n for n in tree.nodes if n.type == "OUTPUT_MATERIAL"), None)
        if output is None:
            output = tree.nodes.new("ShaderNodeOutputMaterial")
        tree.links.new(bsdf.outputs["BSDF"], output.inputs["Surface"])
    return mat, bsdf


def attribute_material(name: str, attribute: str) -> bpy.types.Material:
    """A material whose base colour is the colour attribute `attribute` (SAM 3D's vertex colours)."""
    mat, bsdf = principled_material(name)
    tree = mat.node_tree
    assert tree is not None
    node = tree.nodes.new("ShaderNodeVertexColor")
    cast(bpy.types.ShaderNodeVertexColor, node).layer_name = attribute
    node.location = (bsdf.location[0] - 300, bsdf.location[1])
    tree.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def objects_of_task(task_uuid: str) -> list[bpy.types.Object]:
    """The objects of this file that a task's results became (its provenance: `schema.TASK_UUID`)."""
    return [o for o in bpy.data.objects if o.get(schema.TASK_UUID) == task_uuid]


def tag(root: bpy.types.Object, prov: Provenance, path: Path) -> None:
    """Provenance as custom properties. The seed is a string: seeds run to 2**63-1, ID ints stop at 2**31."""
    root[schema.TASK_UUID] = prov.task_uuid
    root[schema.SEED] = "" if prov.seed is None else str(prov.seed)
    if prov.cost is not None:
        root[schema.COST] = float(prov.cost)
    root[schema.PROMPT] = prov.prompt
    root[schema.IMAGE] = prov.image
    root[schema.MASK] = prov.mask
    root[schema.MODEL] = prov.model
    root[schema.RESULT_INDEX] = prov.index
    root[schema.GLB] = str(path)


def select_only(context: bpy.types.Context, objects: list[bpy.types.Object]) -> None:
    view_layer = view_layer_of(context)
    for obj in view_layer.objects:
        if obj is not None:
            obj.select_set(False)
    for obj in objects:
        obj.select_set(True)
    if objects:
        view_layer.objects.active = objects[0]


def _snapshot() -> dict[str, set[bpy.types.ID]]:
    return {kind: set(getattr(bpy.data, kind)) for kind in _KINDS}


_KINDS = ("objects", "meshes", "materials", "images", "textures", "cameras", "lights", "node_groups")


def _remove_new(before: dict[str, set[bpy.types.ID]]) -> None:
    """Remove every datablock made since `before` (a failed import leaves nothing behind)."""
    for kind in _KINDS:
        data = getattr(bpy.data, kind)
        for block in [b for b in data if b not in before[kind]]:
            data.remove(block)


def uses_draco(path: Path) -> bool:
    """Whether a GLB's JSON chunk asks for Draco mesh compression."""
    try:
        with os.fdopen(files.open_regular(path), "rb") as f:
            header = f.read(20)
            length = struct.unpack("<I", header[12:16])[0] if len(header) == 20 else 0
            return b"KHR_draco_mesh_compression" in f.read(min(length, 1 << 24))
    except OSError:
        return False


QUAD_ANGLE = 0.7  # radians (40°): two triangles this close in normal and shape were one quad face


def join_quads(roots: list[bpy.types.Object]) -> None:
    """The quad faces an engine made, whole again: a GLB carries only triangles, each quad split in two."""
    for obj in (o for root in roots for o in (root, *root.children_recursive) if o.type == "MESH"):
        mesh = cast(bpy.types.Mesh, obj.data)
        bm = bmesh.new()
        try:
            bm.from_mesh(mesh)
            bmesh.ops.join_triangles(bm, faces=list(bm.faces), angle_face_threshold=QUAD_ANGLE,
                                     angle_shape_threshold=QUAD_ANGLE)
            bm.to_mesh(mesh)
        finally:
            bm.free()
        mesh.update()
