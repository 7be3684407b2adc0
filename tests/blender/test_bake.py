"""Bake to Texture (operators/bake/) of the installed add-on: the real SAM 3D sample (227k triangles)
coloured from its own photo, reduced, unwrapped and baked by Cycles, then checked against the original
surface point by point.

Timings are printed, never asserted (run with `-s` to see them)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace

import bpy
import numpy as np
import pytest
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from tests.glb import PBR_FACTORS, ellipsoid, make_glb, pbr_glb, read_glb

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "human_object"
TEXTURED_SPHERE = ROOT / "tests" / "data" / "textured_sphere.glb"
KINDS = ("objects", "meshes", "materials", "images")
N_SAMPLES = 20_000
PSNR_FLOOR = 30.0


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bake(addon: str) -> ModuleType:
    """operators/bake/ of the installed add-on (its operator registered by the add-on itself)."""
    return sys.modules[f"{addon}.operators.bake"]


@pytest.fixture(scope="session")
def coloured_glb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SAM 3D sample with COLOR_0 taken from its own photo (a pinhole through the camera frame it is posed
    in: OpenGL axes, camera at the origin looking down −Z, focal length 46/36 of the photo's width)."""
    doc, binary = read_glb((SAMPLE / "sam3d_output_0.glb").read_bytes())
    indices = _accessor(doc, binary, doc["meshes"][0]["primitives"][0]["indices"]).astype(np.int64)
    positions = _accessor(doc, binary, doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"])
    assert len(positions) == 113_498 and len(indices) == 3 * 227_278

    photo = bpy.data.images.load(str(SAMPLE / "image.png"))
    w, h = photo.size
    pixels = np.empty(w * h * 4, dtype=np.float32)
    photo.pixels.foreach_get(pixels)
    bpy.data.images.remove(photo)
    pixels = pixels.reshape(h, w, 4)[::-1, :, :3]  # top row first, sRGB-encoded
    assert (w, h) == (1600, 898)

    focal = 46 / 36 * w
    x, y, z = positions[:, 0], positions[:, 1], -positions[:, 2]
    u, v = w / 2 + focal * x / z, h / 2 - focal * y / z
    assert u.min() > 0 and u.max() < w and v.min() > 0 and v.max() < h, "the sample projects into its photo"
    colours = srgb_to_linear(bilinear(pixels, u - 0.5, v - 0.5))  # glTF's COLOR_0 is linear
    rgba = np.column_stack([colours, np.ones(len(colours))])

    path = tmp_path_factory.mktemp("bake") / "sam3d_coloured.glb"
    path.write_bytes(make_glb(positions.tolist(), indices.tolist(), rgba.tolist()))
    return path


def _accessor(doc: dict, binary: bytes, index: int) -> np.ndarray:
    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    dtype = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}[acc["componentType"]]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc["type"]]
    offset = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    data = np.frombuffer(binary, dtype=dtype, count=acc["count"] * width, offset=offset)
    return data.reshape(-1, width) if width > 1 else data


@pytest.fixture
def scene() -> bpy.types.Scene:
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene


# --- making SAM 3D-like results -----------------------------------------------------------------------------


def import_result(path: Path, name: str = "mask_0") -> bpy.types.Object:
    """Import a GLB the way the add-on does: one flat mesh object, named, tagged, its vertex colours shown."""
    before = set(bpy.data.objects)
    bpy.ops.import_scene.gltf(filepath=str(path))
    made = [o for o in bpy.data.objects if o not in before]
    obj = next(o for o in made if o.type == "MESH")
    world = obj.matrix_world.copy()
    obj.parent = None
    obj.matrix_world = world
    for other in made:
        if other is not obj:
            bpy.data.objects.remove(other)
    obj.name = obj.data.name = name
    mesh = obj.data
    if mesh.color_attributes and not any(mesh.materials):  # Blender 4.2's importer makes no material
        mesh.materials.append(vertex_colour_material(mesh.color_attributes[0].name))
    tag(obj)
    obj.location = (0.4, -1.2, 0.3)
    obj.rotation_euler = (0.3, 0.0, 0.8)
    obj.scale = (1.5, 1.5, 1.5)
    bpy.context.view_layer.update()
    return obj


def vertex_colour_material(attribute: str) -> bpy.types.Material:
    """What the add-on's import gives a mesh that only has vertex colours (operators/machinery/importing.py)."""
    mat = bpy.data.materials.new("SAM3D Vertex Colour")
    if mat.node_tree is None:
        mat.use_nodes = True
    bsdf = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    colour = mat.node_tree.nodes.new("ShaderNodeVertexColor")
    colour.layer_name = attribute
    mat.node_tree.links.new(colour.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def tag(obj: bpy.types.Object, uuid: str = "0b1d6f4e-8f43-4c55-a3a5-2f7b9e1d2c3a") -> None:
    obj["sam3d_task_uuid"] = uuid
    obj["sam3d_seed"] = "9223372036854775807"
    obj["sam3d_cost"] = 0.0038
    obj["sam3d_prompt"] = "a bench"


def small_result(name: str, hue: float) -> bpy.types.Object:
    """A small vertex-coloured ellipsoid (colour attribute, no material), tagged as a SAM 3D result."""
    positions, tris, colours = ellipsoid(segments=48, rings=24)
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(positions, [], tris)
    attribute = mesh.color_attributes.new("Col", "FLOAT_COLOR", "POINT")
    rgba = np.array(colours, dtype=np.float32)
    rgba[:, 2] = hue
    attribute.data.foreach_set("color", rgba.ravel())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    tag(obj, uuid=f"uuid-{name}")
    return obj


# --- reading surfaces and images ----------------------------------------------------------------------------


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, None)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def bilinear(pixels: np.ndarray, x: np.ndarray, y: np.ndarray, wrap: bool = False) -> np.ndarray:
    """Bilinear samples of an (h, w, c) array at pixel coordinates (x, y), pixel centres on integers."""
    h, w = pixels.shape[:2]
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]

    def at(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        if wrap:
            return pixels[yy % h, xx % w]
        return pixels[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]

    return ((at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx) * (1 - fy)
            + (at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx) * fy)


def sample_uv(image: bpy.types.Image, uv: np.ndarray, wrap: bool = False) -> np.ndarray:
    """Linear RGB of a byte sRGB image at UV coordinates (bilinear, as Blender's Linear interpolation)."""
    w, h = image.size
    pixels = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)  # bottom row first, sRGB-encoded values
    pixels = pixels.reshape(h, w, 4)[:, :, :3]
    return srgb_to_linear(bilinear(pixels, uv[:, 0] * w - 0.5, uv[:, 1] * h - 0.5, wrap=wrap))


def triangles(mesh: bpy.types.Mesh) -> SimpleNamespace:
    """Positions, the vertices and corners (loops) of every triangle, and per-corner UVs if any."""
    mesh.calc_loop_triangles()
    n = len(mesh.loop_triangles)
    verts, loops = np.empty(n * 3, dtype=np.int32), np.empty(n * 3, dtype=np.int32)
    mesh.loop_triangles.foreach_get("vertices", verts)
    mesh.loop_triangles.foreach_get("loops", loops)
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    uv = None
    if mesh.uv_layers:
        uv = np.empty(len(mesh.loops) * 2, dtype=np.float32)
        mesh.uv_layers.active.data.foreach_get("uv", uv)
        uv = uv.reshape(-1, 2).astype(np.float64)
    return SimpleNamespace(co=co.reshape(-1, 3).astype(np.float64), verts=verts.reshape(-1, 3),
                           loops=loops.reshape(-1, 3), uv=uv)


def corner_colours(mesh: bpy.types.Mesh, name: str) -> np.ndarray:
    """The colour attribute per corner (linear RGB), whatever its domain."""
    attribute = mesh.color_attributes[name]
    values = np.empty(len(attribute.data) * 4, dtype=np.float32)
    attribute.data.foreach_get("color", values)
    values = values.reshape(-1, 4)[:, :3].astype(np.float64)
    if attribute.domain == "POINT":
        corner_vert = np.empty(len(mesh.loops), dtype=np.int32)
        mesh.loops.foreach_get("vertex_index", corner_vert)
        values = values[corner_vert]
    return values


def surface_samples(tri: SimpleNamespace, n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n points spread uniformly over the surface: (triangle index, barycentric weights, position)."""
    a, b, c = (tri.co[tri.verts[:, k]] for k in range(3))
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    rng = np.random.default_rng(seed)
    which = rng.choice(len(area), size=n, p=area / area.sum())
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    bary = np.column_stack([1 - r1, r1 * (1 - r2), r1 * r2])
    points = np.einsum("nk,nkj->nj", bary, tri.co[tri.verts[which]])
    return which, bary, points


def interpolate(per_corner: np.ndarray, tri: SimpleNamespace, which: np.ndarray, bary: np.ndarray) -> np.ndarray:
    return np.einsum("nk,nkj->nj", bary, per_corner[tri.loops[which]])


def baked_colours(obj: bpy.types.Object, points: np.ndarray) -> np.ndarray:
    """Linear RGB of the baked texture at the surface points nearest to `points` (object space) on the
    object's mesh: BVH nearest → triangle → barycentric → its UVs → bilinear sample of the image."""
    tri = triangles(obj.data)
    tree = BVHTree.FromPolygons(tri.co.tolist(), tri.verts.tolist(), all_triangles=True)
    found = [tree.find_nearest(Vector(p)) for p in points.tolist()]
    index = np.array([f[2] for f in found])
    location = np.array([tuple(f[0]) for f in found])
    a, b, c = (tri.co[tri.verts[index, k]] for k in range(3))
    v0, v1, v2 = b - a, c - a, location - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    denom = np.where(np.abs(d00 * d11 - d01 * d01) > 1e-30, d00 * d11 - d01 * d01, 1e-30)
    wb, wc = (d11 * d20 - d01 * d21) / denom, (d00 * d21 - d01 * d20) / denom
    bary = np.column_stack([1 - wb - wc, wb, wc])
    uv = interpolate(tri.uv, tri, index, bary)
    return sample_uv(base_colour_image(obj), uv)


def base_colour_image(obj: bpy.types.Object) -> bpy.types.Image:
    link = base_colour_link(obj.active_material)
    assert link is not None and link.from_node.type == "TEX_IMAGE"
    return link.from_node.image


def principled(mat: bpy.types.Material) -> bpy.types.Node:
    return next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")


def base_colour_link(mat: bpy.types.Material):  # noqa: ANN201
    links = principled(mat).inputs["Base Color"].links
    return links[0] if links else None


# --- snapshots ----------------------------------------------------------------------------------------------


def data_names() -> dict[str, set[str]]:
    return {kind: {b.name for b in getattr(bpy.data, kind)} for kind in KINDS}


def orphans() -> list[str]:
    return [f"{kind}:{b.name}" for kind in KINDS[1:] for b in getattr(bpy.data, kind)
            if b.users == 0 and not b.use_fake_user]


def object_state(obj: bpy.types.Object) -> dict:
    bpy.context.view_layer.update()  # matrix_world follows location & co. only once the view layer updates
    return {"name": obj.name, "matrix": [tuple(round(v, 6) for v in row) for row in obj.matrix_world],
            "location": tuple(obj.location), "rotation": tuple(obj.rotation_euler), "scale": tuple(obj.scale),
            "props": dict(obj.items())}


def scene_settings(scene: bpy.types.Scene) -> dict:
    settings = {"engine": scene.render.engine, "samples": scene.cycles.samples}
    for prop in scene.render.bake.bl_rna.properties:
        if prop.type in {"BOOLEAN", "INT", "FLOAT", "ENUM", "STRING"} and not prop.is_readonly:
            value = getattr(scene.render.bake, prop.identifier)
            settings[prop.identifier] = set(value) if isinstance(value, set) else value
    return settings


def mesh_state(obj: bpy.types.Object) -> dict:
    mesh = obj.data
    return {"mesh": mesh.name, "verts": len(mesh.vertices), "polys": len(mesh.polygons),
            "uv": [u.name for u in mesh.uv_layers], "materials": [m.name if m else None for m in mesh.materials],
            "modifiers": len(obj.modifiers)}


EXPORT = """
import os, sys
import bpy
blend, name, out = sys.argv[1:4]
bpy.ops.wm.open_mainfile(filepath=blend)
obj = bpy.data.objects[name]
for other in bpy.context.view_layer.objects:
    other.select_set(other == obj)
bpy.context.view_layer.objects.active = obj
image = obj.active_material.node_tree.nodes["Baked Colour"].image
pixels = [0.0] * (image.size[0] * image.size[1] * 4)
image.pixels.foreach_get(pixels)
print("PACKED", image.packed_file is not None, "MEAN", *(sum(pixels[k::4]) / (len(pixels) // 4) for k in range(3)),
      flush=True)
bpy.ops.export_scene.gltf(filepath=out, use_selection=True, export_format="GLB")
print("EXPORTED", flush=True)
os._exit(0)  # skip interpreter teardown: PyPI's bpy 4.2 crashes there once its glTF exporter has run
"""


def export_glb(obj: bpy.types.Object, tmp: Path) -> tuple[dict, bytes, str]:
    """The object exported by Blender's glTF exporter (selection only), from the .blend saved as it is now.

    In a child process: the exporter of PyPI's bpy 4.2 leaves Blender crashing at interpreter exit."""
    blend, out = tmp / "baked.blend", tmp / "baked.glb"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
    run = subprocess.run([sys.executable, "-c", EXPORT, str(blend), obj.name, str(out)], capture_output=True,
                         text=True, timeout=600, env=os.environ.copy())
    assert "EXPORTED" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
    return (*read_glb(out.read_bytes()), run.stdout)


# --- the sample, baked once for several tests ----------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_bake(bake: ModuleType, coloured_glb: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The coloured sample baked to 20,000 triangles at 1024², once for the tests below: everything they check,
    read before and after the bake as plain values (other tests reset the scene, in any order)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    helper = bpy.data.objects.new("helper", None)  # another selected object: its selection must stay
    scene.collection.objects.link(helper)
    obj = import_result(coloured_glb)
    mesh = obj.data
    attribute = mesh.color_attributes[0].name
    original = triangles(mesh)
    colours = corner_colours(mesh, attribute)
    which, bary, points = surface_samples(original, N_SAMPLES)
    expected = interpolate(colours, original, which, bary)
    helper.select_set(True)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = helper
    f = SimpleNamespace(state=object_state(obj), settings=scene_settings(scene), before=data_names(),
                        attribute=attribute, old_mean=colours.mean(axis=0))

    f.steps = []
    start = time.perf_counter()
    f.returned_obj = bake.bake_object(bpy.context, obj, resolution=1024, max_triangles=20_000,
                                      progress=lambda fraction, text: f.steps.append((fraction, text))) == obj
    seconds = time.perf_counter() - start
    print(f"\nbake 227k→20k at 1024²: {seconds:.1f} s (Blender {bpy.app.version_string})")
    print("  steps:", ", ".join(f"{fraction:.2f} {text}" for fraction, text in f.steps))

    got = baked_colours(obj, points)
    f.psnr_linear, f.psnr_srgb = psnr(got, expected), psnr(linear_to_srgb(got), linear_to_srgb(expected))
    print(f"  colour fidelity over {N_SAMPLES} surface points: PSNR {f.psnr_linear:.1f} dB (linear), "
          f"{f.psnr_srgb:.1f} dB (sRGB)")

    mesh = obj.data
    f.after_state, f.after_settings = object_state(obj), scene_settings(scene)
    f.after, f.orphans, f.mesh_name = data_names(), orphans(), mesh.name
    f.selected, f.active = obj.select_get(), bpy.context.view_layer.objects.active == obj
    f.helper_selected = helper.select_get()
    f.triangles = sum(len(p.vertices) - 2 for p in mesh.polygons)
    f.uv_maps = [u.name for u in mesh.uv_layers]
    uv = np.empty(len(mesh.loops) * 2, dtype=np.float32)
    mesh.uv_layers[0].data.foreach_get("uv", uv)
    f.uv_range = (float(uv.min()), float(uv.max()))
    f.modifiers = len(obj.modifiers)
    f.materials = [m.name for m in mesh.materials]
    f.active_material = obj.active_material.name
    link = base_colour_link(obj.active_material)
    f.base_colour_from = link.from_node.type if link else None
    image = link.from_node.image if link else None
    f.image = (image.name, tuple(image.size), image.packed_file is not None) if image else None
    vector = link.from_node.inputs["Vector"].links if link else []
    f.vector_from = (vector[0].from_node.type, getattr(vector[0].from_node, "uv_map", "")) if vector else None
    f.node_types = {n.type for n in obj.active_material.node_tree.nodes}
    f.colour_attributes = [a.name for a in mesh.color_attributes]
    kept = corner_colours(mesh, attribute) if attribute in mesh.color_attributes else np.zeros((1, 3))
    f.kept_mean, f.kept_std = kept.mean(axis=0), float(kept.std())
    pixels = np.empty(1024 * 1024 * 4, dtype=np.float32)
    base_colour_image(obj).pixels.foreach_get(pixels)
    f.pixel_mean = pixels.reshape(-1, 4)[:, :3].mean(axis=0)
    f.gltf, f.bin, f.child = export_glb(obj, tmp_path_factory.mktemp("export"))
    return f


# --- the tests ----------------------------------------------------------------------------------------------


def test_sample_is_reduced_unwrapped_and_textured(sample_bake: SimpleNamespace) -> None:
    s = sample_bake
    assert s.returned_obj
    assert 15_000 < s.triangles <= 20_000
    assert s.after_state["props"]["sam3d_triangles"] == s.triangles
    assert s.after_state["props"]["sam3d_baked"] == 1024
    assert s.uv_maps == ["UVMap"]
    assert s.uv_range[0] >= 0.0 and s.uv_range[1] <= 1.0
    assert s.modifiers == 0
    assert s.materials == ["mask_0 Baked"] and s.active_material == "mask_0 Baked"
    assert s.base_colour_from == "TEX_IMAGE"
    assert s.image == ("mask_0 Baked", (1024, 1024), True), "a 1024² image, packed"
    assert s.vector_from == ("UVMAP", "UVMap"), "the image is read through the UV map"
    assert not s.node_types & {"VERTEX_COLOR", "ATTRIBUTE"}, "the material reads the texture, not vertex colours"
    # The vertex colours survive the decimation as a colour attribute, close to the original on average.
    assert s.attribute in s.colour_attributes
    assert np.abs(s.kept_mean - s.old_mean).max() < 0.05 and s.kept_std > 0.02


def test_sample_object_keeps_identity_and_leaves_nothing_behind(sample_bake: SimpleNamespace) -> None:
    s = sample_bake
    assert s.after_state["name"] == s.state["name"] == "mask_0"
    for key in ("matrix", "location", "rotation", "scale"):
        assert s.after_state[key] == s.state[key]
    assert s.after_state["props"] == {**s.state["props"], "sam3d_baked": 1024, "sam3d_triangles": s.triangles}
    assert s.selected and s.active
    assert s.helper_selected, "the rest of the selection is as it was"
    assert s.after_settings == s.settings, "every scene setting the bake changed is restored"
    assert s.orphans == []
    assert s.after["objects"] == s.before["objects"]
    assert s.after["meshes"] == {"mask_0"} and s.mesh_name == "mask_0"
    assert s.after["materials"] == {"mask_0 Baked"}
    assert s.after["images"] == s.before["images"] | {"mask_0 Baked"}
    fractions = [fraction for fraction, _ in s.steps]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(text for _, text in s.steps)


def test_sample_colour_fidelity(sample_bake: SimpleNamespace) -> None:
    print(f"\nPSNR 227k→20k at 1024²: {sample_bake.psnr_linear:.1f} dB linear, {sample_bake.psnr_srgb:.1f} dB sRGB")
    assert sample_bake.psnr_linear >= PSNR_FLOOR
    assert sample_bake.psnr_srgb >= PSNR_FLOOR


@pytest.mark.parametrize("budget", [0, 1500])
def test_a_flat_shaded_mesh_each_face_with_its_own_vertices_bakes_its_colours(bake: ModuleType,
                                                                             scene: bpy.types.Scene,
                                                                             budget: int) -> None:
    import bmesh

    obj = small_result("flat", 0.3)
    bm = bmesh.new()
    bm.from_mesh(obj.data)
    bmesh.ops.split_edges(bm, edges=bm.edges[:])  # every face its own vertices, as a flat-shaded export has
    bm.to_mesh(obj.data)
    bm.free()
    assert len(obj.data.vertices) == 3 * len(obj.data.polygons)
    original = triangles(obj.data)
    which, bary, points = surface_samples(original, 4000)
    expected = interpolate(corner_colours(obj.data, "Col"), original, which, bary)
    bake.bake_object(bpy.context, obj, resolution=256, max_triangles=budget)
    assert budget == 0 or obj["sam3d_triangles"] <= budget
    assert psnr(baked_colours(obj, points), expected) >= PSNR_FLOOR


def test_baked_sample_exports_to_gltf(sample_bake: SimpleNamespace) -> None:
    doc = sample_bake.gltf
    line = next(line for line in sample_bake.child.splitlines() if line.startswith("PACKED"))
    assert line.split()[1] == "True", "the image is packed into the saved .blend"
    reopened = np.array([float(v) for v in line.split()[3:6]])
    assert np.abs(reopened - sample_bake.pixel_mean).max() < 1 / 255, "the packed image holds the baked pixels"
    (mesh,) = doc["meshes"]
    assert all("TEXCOORD_0" in p["attributes"] for p in mesh["primitives"])
    # COLOR_0 multiplies the base colour in glTF: the exporter writes the kept vertex colours as COLOR_1 and
    # a white COLOR_0 (its "export all vertex colors"), so the texture shows as baked.
    for primitive in mesh["primitives"]:
        if "COLOR_0" in primitive["attributes"]:
            colour = _accessor(doc, sample_bake.bin, primitive["attributes"]["COLOR_0"])
            white = 1.0 if colour.dtype == np.float32 else np.iinfo(colour.dtype).max
            assert (colour == white).all()
    (material,) = doc["materials"]
    texture = material["pbrMetallicRoughness"]["baseColorTexture"]
    assert doc["images"][doc["textures"][texture["index"]]["source"]]["mimeType"] == "image/png"


def test_saves_png_when_given_a_folder(bake: ModuleType, coloured_glb: Path, scene: bpy.types.Scene,
                                       tmp_path: Path) -> None:
    obj = import_result(coloured_glb)
    folder = tmp_path / "textures"
    start = time.perf_counter()
    bake.bake_object(bpy.context, obj, resolution=2048, max_triangles=20_000, save_dir=folder)
    print(f"\nbake 227k→20k at 2048²: {time.perf_counter() - start:.1f} s (Blender {bpy.app.version_string})")
    image = base_colour_image(obj)
    assert image.packed_file is None and image.source == "FILE"
    path = Path(image.filepath)
    assert path.is_absolute() and path.parent == folder.resolve() and path.suffix == ".png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert tuple(image.size) == (2048, 2048)
    assert orphans() == []


@pytest.mark.parametrize("metallic", [0.0, 1.0])
def test_textured_original_bakes_its_texture(bake: ModuleType, scene: bpy.types.Scene, metallic: float) -> None:
    """Metal too: Cycles' Diffuse colour of a metallic surface is black, so its base colour is baked as shown."""
    before = set(bpy.data.objects)
    bpy.ops.import_scene.gltf(filepath=str(TEXTURED_SPHERE))
    obj = next(o for o in bpy.data.objects if o not in before and o.type == "MESH")
    tag(obj)
    principled(obj.active_material).inputs["Metallic"].default_value = metallic
    original = triangles(obj.data)
    texture = base_colour_image(obj)
    which, bary, points = surface_samples(original, N_SAMPLES)
    expected = sample_uv(texture, interpolate(original.uv, original, which, bary), wrap=True)

    bake.bake_object(bpy.context, obj, resolution=512, max_triangles=0)
    assert sum(len(p.vertices) - 2 for p in obj.data.polygons) == len(original.verts), "every triangle kept"
    assert [u.name for u in obj.data.uv_layers] == ["UVMap"]
    got = baked_colours(obj, points)
    linear, srgb = psnr(got, expected), psnr(linear_to_srgb(got), linear_to_srgb(expected))
    print(f"\nPSNR textured sphere at 512²: {linear:.1f} dB linear, {srgb:.1f} dB sRGB")
    assert linear >= PSNR_FLOOR and srgb >= PSNR_FLOOR
    assert principled(obj.active_material).inputs["Metallic"].default_value == metallic, "one value: copied"
    assert [i.name for i in principled(obj.active_material).inputs if i.is_linked] == ["Base Color"]
    assert orphans() == [], "the original texture and material went with the original mesh"


def test_an_engines_pbr_result_keeps_its_metallic_roughness_normal_and_emission(
        bake: ModuleType, scene: bpy.types.Scene, tmp_path: Path) -> None:
    """The maps of the emulator's PBR result (what TRELLIS.2 and the others send) baked into maps of their own,
    each read back at its known value: metallic 60/255 × 0.25, roughness 150/255 × 0.6, emission (0.1, 0.2, 0.3),
    a flat normal map (tangent-space up) on a smooth surface; each saved as a PNG beside the colour."""
    path = tmp_path / "pbr.glb"
    path.write_bytes(pbr_glb())
    before = set(bpy.data.objects)
    bpy.ops.import_scene.gltf(filepath=str(path))
    obj = next(o for o in bpy.data.objects if o not in before and o.type == "MESH")
    tag(obj)
    obj.name = "chair"
    bake.bake_object(bpy.context, obj, resolution=128, save_dir=tmp_path / "textures")
    bsdf = principled(obj.active_material)
    linked = {i.name: i.links[0].from_node for i in bsdf.inputs if i.is_linked}
    assert sorted(linked) == ["Base Color", "Emission Color", "Metallic", "Normal", "Roughness"]
    assert linked["Normal"].type == "NORMAL_MAP" and linked["Normal"].uv_map == "UVMap"
    assert bsdf.inputs["Emission Strength"].default_value == 1.0
    images = {name: node.image for name, node in linked.items() if node.type == "TEX_IMAGE"}
    images["Normal"] = linked["Normal"].inputs["Color"].links[0].from_node.image
    assert {n: i.colorspace_settings.name for n, i in images.items()} == {
        "Base Color": "sRGB", "Emission Color": "sRGB", "Metallic": "Non-Color", "Roughness": "Non-Color",
        "Normal": "Non-Color"}
    texels = {name: np.array(image.pixels[:]).reshape(-1, 4)[:, :3] for name, image in images.items()}
    assert np.median(texels["Metallic"]) == pytest.approx(60 / 255 * PBR_FACTORS["metallic"], abs=0.01)
    assert np.median(texels["Roughness"]) == pytest.approx(150 / 255 * PBR_FACTORS["roughness"], abs=0.01)
    emission = srgb_to_linear(np.median(texels["Emission Color"], axis=0))
    assert emission == pytest.approx(PBR_FACTORS["emissive"], abs=0.02)
    assert np.median(texels["Normal"], axis=0) == pytest.approx((0.5, 0.5, 1.0), abs=0.05)
    assert sorted(p.name for p in (tmp_path / "textures").iterdir()) == [
        "chair_baked.png", "chair_emission.png", "chair_metallic.png", "chair_normal.png", "chair_roughness.png"]
    assert sorted(i.name for i in images.values()) == [
        "chair Baked", "chair Baked Emission", "chair Baked Metallic", "chair Baked Normal", "chair Baked Roughness"]
    assert orphans() == [] and not [m for m in bpy.data.materials if m.users == 0], "no emission copy left"


def test_refuses_what_it_cannot_bake_and_changes_nothing(bake: ModuleType, scene: bpy.types.Scene) -> None:
    empty = bpy.data.objects.new("not a mesh", None)
    scene.collection.objects.link(empty)
    tag(empty)
    grey = bpy.data.objects.new("grey", bpy.data.meshes.new("grey"))
    grey.data.from_pydata([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)], [], [(0, 1, 2, 3)])
    scene.collection.objects.link(grey)
    tag(grey)
    grey.location = (1, 2, 3)
    for obj, words in ((empty, "not a mesh"), (grey, "no colour")):
        state, mesh, before = object_state(obj), obj.data and mesh_state(obj), data_names()
        with pytest.raises(bake.BakeError) as caught:
            bake.bake_object(bpy.context, obj, resolution=256)
        text = str(caught.value)
        assert words in text and text.endswith(".") and "Traceback" not in text
        assert object_state(obj) == state and (obj.data is None or mesh_state(obj) == mesh)
        assert data_names() == before


def test_failure_midway_leaves_object_as_it_was(bake: ModuleType, scene: bpy.types.Scene,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    obj = small_result("midway", 0.2)
    obj.location = (2, 0, 0)
    state, mesh, before, settings = object_state(obj), mesh_state(obj), data_names(), scene_settings(scene)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("Error: simulated failure inside Blender\n")

    monkeypatch.setattr(sys.modules[f"{bake.__name__}.baking"], "bake_colour", broken)  # Cycles' step fails
    with pytest.raises(bake.BakeError, match="simulated failure") as caught:
        bake.bake_object(bpy.context, obj, resolution=128, max_triangles=500)
    assert "unchanged" in str(caught.value)
    assert object_state(obj) == state and mesh_state(obj) == mesh
    assert data_names() == before and orphans() == []
    assert scene_settings(scene) == settings and bpy.context.mode == "OBJECT"


def test_poll_explains_when_nothing_sam3d_is_selected(bake: ModuleType, scene: bpy.types.Scene) -> None:
    plain = bpy.data.objects.new("plain", bpy.data.meshes.new("plain"))
    scene.collection.objects.link(plain)
    plain.select_set(True)
    bpy.context.view_layer.objects.active = plain
    assert not bpy.ops.sam3d.bake.poll()
    with pytest.raises(RuntimeError, match="Select a SAM 3D result"):
        bpy.ops.sam3d.bake()


def test_operator_bakes_every_selected_result(bake: ModuleType, scene: bpy.types.Scene) -> None:
    a, b = small_result("a", 0.1), small_result("b", 0.9)
    plain = bpy.data.objects.new("plain", bpy.data.meshes.new("plain"))
    scene.collection.objects.link(plain)
    for obj in (a, b, plain):
        obj.select_set(True)
    bpy.context.view_layer.objects.active = plain
    assert bpy.ops.sam3d.bake.poll()
    assert bpy.ops.sam3d.bake(resolution=128, max_triangles=600) == {"FINISHED"}
    for obj in (a, b):
        assert obj["sam3d_baked"] == 128 and obj["sam3d_triangles"] <= 600
        assert base_colour_image(obj).packed_file is not None
    assert "sam3d_baked" not in plain
    assert orphans() == []


def test_baking_again_reads_the_baked_texture(bake: ModuleType, scene: bpy.types.Scene) -> None:
    obj = small_result("again", 0.5)
    bake.bake_object(bpy.context, obj, resolution=256, max_triangles=1000)
    first = triangles(obj.data)
    which, bary, points = surface_samples(first, 4000)
    expected = baked_colours(obj, points)
    bake.bake_object(bpy.context, obj, resolution=128, max_triangles=500)
    assert obj["sam3d_baked"] == 128 and obj["sam3d_triangles"] <= 500
    assert obj.active_material.name == "again Baked" and base_colour_image(obj).name == "again Baked"
    assert tuple(base_colour_image(obj).size) == (128, 128)
    assert {m.name for m in bpy.data.materials} == {"again Baked"} and orphans() == []
    assert "Col" in obj.data.color_attributes, "the vertex colours are still kept"
    got = baked_colours(obj, points)
    print(f"\nPSNR baked again (256² → 128², 1000 → 500 triangles): {psnr(got, expected):.1f} dB")
    assert psnr(got, expected) >= PSNR_FLOOR


def test_modal_run_bakes_one_object_per_timer_and_reports_progress(bake: ModuleType,
                                                                  scene: bpy.types.Scene) -> None:
    objects = [small_result("first", 0.1), small_result("second", 0.8)]
    run = bake.BakeRun([o.name for o in objects], resolution=128, max_triangles=600)
    run.start(bpy.context)
    assert bake.PROGRESS["active"] and bake.PROGRESS["fraction"] == 0.0
    assert run.on_event(bpy.context, "MOUSEMOVE", "NOTHING") == {"PASS_THROUGH"}
    assert run.on_event(bpy.context, "TIMER") == {"PASS_THROUGH"}
    assert "sam3d_baked" in objects[0] and "sam3d_baked" not in objects[1]
    assert bake.PROGRESS["active"] and 0.4 < bake.PROGRESS["fraction"] < 0.6
    assert run.on_event(bpy.context, "TIMER") == {"FINISHED"}
    assert all("sam3d_baked" in o for o in objects)
    assert run.fractions == sorted(run.fractions) and run.fractions[-1] == 1.0
    assert len(set(run.fractions)) > 4, "progress moves within each object too"
    assert not bake.PROGRESS["active"]
    kind, text = run.result()
    assert kind == "INFO" and "first" in text and "second" in text


def test_esc_between_objects_leaves_the_rest_untouched(bake: ModuleType, scene: bpy.types.Scene) -> None:
    objects = [small_result("first", 0.1), small_result("second", 0.8)]
    second = mesh_state(objects[1])
    run = bake.BakeRun([o.name for o in objects], resolution=128, max_triangles=600)
    run.start(bpy.context)
    assert run.on_event(bpy.context, "TIMER") == {"PASS_THROUGH"}
    assert run.on_event(bpy.context, "ESC", "PRESS") == {"FINISHED"}  # one object baked: one undo step
    assert "sam3d_baked" in objects[0]
    assert "sam3d_baked" not in objects[1] and mesh_state(objects[1]) == second
    assert not bake.PROGRESS["active"]
    kind, text = run.result()
    assert "Cancelled" in text and "1 object" in text
    nothing = bake.BakeRun(["second"], resolution=128)
    nothing.start(bpy.context)
    assert nothing.on_event(bpy.context, "ESC", "PRESS") == {"CANCELLED"}
    assert "sam3d_baked" not in objects[1]
