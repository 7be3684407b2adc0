"""Scene layout that lines up with the photo: the photo camera calibrated from posed results (placement
'CAMERA'), measured as Blender itself renders it.

Every silhouette here is Blender's render of one object through the photo's camera (Workbench, transparent
film: the alpha is the silhouette), compared with the object's mask brought to the render's size; nothing
goes through operators/calibration.py's own projection. The synthetic photos are Blender renders too: boxes
and ellipsoids seen through a camera of a known lens, each object's mask rendered alone, each object sent
back by the emulator as SAM 3D would pose it (its vertices in the camera's frame, OpenGL axes).
"""

from __future__ import annotations

import math
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import bmesh
import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from conftest import SAMPLES, load, new_objects, unchanged_outside
from mathutils import Euler, Matrix, Vector

from tests.glb import make_glb
from tests.shapes import box_of, mask_of, shape_like

HUMAN = SAMPLES / "human_object"
SAMPLE_PERCENT = 25  # the real sample's silhouettes: 400×224 of its 1600×898
SYNTHETIC_SIZE = (1280, 720)  # the synthetic photos
SYNTHETIC_PERCENT = 50  # their silhouettes: 640×360


# --- silhouettes as Blender renders them ------------------------------------------------------------------


def render_silhouette(obj: bpy.types.Object, path: Path, percent: int) -> np.ndarray:
    """(h, w) bool, top row first: `obj` (and its children) alone, rendered by Workbench through the scene's
    camera at `percent` of the scene's resolution, one sample per pixel; the alpha of a transparent film."""
    scene = bpy.context.scene
    render = scene.render
    members = {obj, *obj.children_recursive}
    hidden = {o: o.hide_render for o in scene.objects}
    kept = (render.engine, render.film_transparent, render.resolution_percentage, render.filepath,
            render.use_compositing, render.image_settings.file_format, render.image_settings.color_mode,
            scene.display.render_aa)
    try:
        for o in scene.objects:
            o.hide_render = o not in members
        render.engine = "BLENDER_WORKBENCH"
        scene.display.render_aa = "OFF"  # one sample at each pixel's centre (and 10× faster without a GPU)
        render.film_transparent = True
        render.use_compositing = False  # Composite over Photo would lay the photo under it
        render.resolution_percentage = percent
        render.image_settings.file_format = "PNG"
        render.image_settings.color_mode = "RGBA"
        render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
    finally:
        for o, value in hidden.items():
            o.hide_render = value
        (render.engine, render.film_transparent, render.resolution_percentage, render.filepath,
         render.use_compositing, render.image_settings.file_format, render.image_settings.color_mode,
         scene.display.render_aa) = kept
    return read_image(path)[..., 3] >= 0.5


def read_image(path: Path) -> np.ndarray:
    """(h, w, 4) float RGBA, top row first, decoded by Blender."""
    image = bpy.data.images.load(str(path))
    try:
        w, h = image.size
        buf = np.empty(w * h * 4, np.float32)
        image.pixels.foreach_get(buf)
        return buf.reshape(h, w, 4)[::-1].copy()
    finally:
        bpy.data.images.remove(image)


def read_mask(path: Path) -> np.ndarray:
    return read_image(path)[..., 0] > 0.5


def downscale(mask: np.ndarray, w: int, h: int, samples: int = 4) -> np.ndarray:
    """A full-size mask brought to a render of w×h of the same camera: square pixels, the longer side spanning
    the sensor (sensor fit Auto), centred; each pixel True when at least half of `samples`² points of it are."""
    big_h, big_w = mask.shape
    pitch = big_w / w if w >= h else big_h / h  # full-size pixels per render pixel
    sub = (np.arange(samples) + 0.5) / samples
    ys = big_h / 2 + ((np.arange(h)[:, None] + sub[None, :]).ravel() - h / 2) * pitch
    xs = big_w / 2 + ((np.arange(w)[:, None] + sub[None, :]).ravel() - w / 2) * pitch
    rows = np.clip(np.floor(ys).astype(int), 0, big_h - 1)
    cols = np.clip(np.floor(xs).astype(int), 0, big_w - 1)
    hits = mask[rows[:, None], cols[None, :]].astype(np.float32)
    return hits.reshape(h, samples, w, samples).mean(axis=(1, 3)) >= 0.5


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def write_png(path: Path, gray: np.ndarray) -> None:
    """An 8-bit grayscale PNG (top row first), filter 0 on every row: what tests/shapes.py decodes."""
    h, w = gray.shape
    raw = b"".join(b"\0" + row.tobytes() for row in np.ascontiguousarray(gray, np.uint8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# --- the panel, drawn into a recording layout -----------------------------------------------------------


class Recorder:
    """Stands in for UILayout in a panel's draw() and checks every property and operator it is given exists."""

    def __init__(self, calls: list) -> None:
        self.calls = calls
        self.enabled = self.use_property_split = self.use_property_decorate = True

    def _child(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        return Recorder(self.calls)

    row = column = box = split = _child

    def prop(self, data, name, **kwargs):  # noqa: ANN001, ANN003, ANN201
        assert name in data.bl_rna.properties, f"no property {name}"
        self.calls.append(("prop", name))

    def operator(self, idname, **kwargs):  # noqa: ANN001, ANN003, ANN201
        category, op = idname.split(".")
        assert hasattr(getattr(bpy.ops, category), op), f"no operator {idname}"
        self.calls.append(("operator", idname))
        return type("Props", (), {})()

    def label(self, text="", **kwargs):  # noqa: ANN001, ANN003, ANN201
        self.calls.append(("label", text))

    def separator(self, **kwargs):  # noqa: ANN003, ANN201
        pass


def layout_panel_labels() -> list[str]:
    calls: list = []
    bpy.types.SAM3D_PT_view3d_layout.draw(type("Panel", (), {"layout": Recorder(calls)})(), bpy.context)
    assert ("prop", "sam3d_lens_locked") in calls
    return [text for kind, text in calls if kind == "label"]


# --- (1) the real posed sample ---------------------------------------------------------------------------


def reconstruct_sample(sam3d) -> bpy.types.Object:  # noqa: ANN001
    """examples/human_object with mask_0, placement As in the Photo, the emulator answering with the real
    posed SAM 3D output."""
    sam3d.emu.result_bytes = (HUMAN / "sam3d_output_0.glb").read_bytes()
    settings = sam3d.settings
    settings.image = load("human_object/image.png")
    settings.mask = load("human_object/mask_0.png")
    settings.placement = "CAMERA"
    before = set(bpy.data.objects)
    started = time.perf_counter()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    print(f"real sample reconstructed, laid out and calibrated in {time.perf_counter() - started:.2f} s")
    [obj] = [o for o in new_objects(before) if o.type == "MESH"]
    assert obj["sam3d_frame"] == "POSED"
    return obj


def test_the_real_posed_sample_covers_its_mask_through_the_calibrated_photo_camera(sam3d):
    obj = reconstruct_sample(sam3d)
    scene = bpy.context.scene
    camera = scene.camera
    assert camera is not None and camera["sam3d_photo"] == "image.png"
    silhouette = render_silhouette(obj, sam3d.tmp / "sample.png", SAMPLE_PERCENT)
    h, w = silhouette.shape
    assert (w, h) == (400, 224)
    mask = downscale(read_mask(HUMAN / "mask_0.png"), w, h)
    score = float(iou(silhouette, mask))
    print(f"real sample: photo camera {camera.data.lens:.2f} mm (shift {camera.data.shift_x:+.3f}, "
          f"{camera.data.shift_y:+.3f}), silhouette IoU {score:.3f} as Blender renders it at {w}×{h}; "
          f"the fit says {camera['sam3d_fit'].to_dict()}")
    assert score >= 0.42, "through the first, uncalibrated 35 mm camera it is about 0.2 (test_calibration.py)"
    assert camera["sam3d_focal_mm"] == pytest.approx(camera.data.lens)
    assert set(camera["sam3d_fit"].keys()) == {obj.name}
    assert camera["sam3d_fit"][obj.name] == pytest.approx(score, abs=0.05), "the fit shown is the one rendered"
    labels = layout_panel_labels()
    assert f"Camera {camera.name}: {camera.data.lens:.1f} mm" in labels, labels
    assert f"{obj.name}: silhouette IoU {camera['sam3d_fit'][obj.name]:.2f}" in labels, labels


# --- (6) the composite ------------------------------------------------------------------------------------


def cycles_render(scene: bpy.types.Scene, path: Path, percent: int = 15, samples: int = 12) -> np.ndarray:
    scene.render.resolution_percentage = percent
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.cycles.device = "CPU"
    scene.cycles.seed = 1
    scene.render.dither_intensity = 0.0
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return read_image(path)[..., :3]


def hull_mask(points: np.ndarray, w: int, h: int) -> np.ndarray:
    """Pixels (top row first) whose centre is inside the convex hull of image points (x right, y down)."""
    pts = sorted(map(tuple, points))

    def half(seq):  # noqa: ANN001, ANN202
        out: list = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out

    hull = half(pts)[:-1] + half(pts[::-1])[:-1]
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    inside = np.ones((h, w), bool)
    for (x0, y0), (x1, y1) in zip(hull, hull[1:] + hull[:1], strict=True):
        inside &= (x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0) >= 0
    return inside


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    h, w = mask.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dx * dx + dy * dy <= r * r:
                out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] |= \
                    mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def test_the_composite_of_the_real_sample_changes_the_photo_only_at_the_object_and_its_shadow(sam3d):
    obj = reconstruct_sample(sam3d)
    scene = bpy.context.scene
    camera = scene.camera
    assert bpy.ops.sam3d.composite() == {"FINISHED"}
    sun = next(o for o in scene.objects if o.type == "LIGHT")
    [catcher] = [o for o in scene.objects if o.get("sam3d_shadow_catcher")]
    ground = catcher.matrix_world.translation.z
    started = time.perf_counter()
    result = cycles_render(scene, sam3d.tmp / "composite.png")
    obj.hide_render = True
    bare = cycles_render(scene, sam3d.tmp / "bare.png")  # the same catcher and compositor, no object
    obj.hide_render = False
    print(f"two Cycles renders in {time.perf_counter() - started:.1f} s")
    h, w, _ = result.shape
    silhouette = render_silhouette(obj, sam3d.tmp / "silhouette.png", 15)
    assert silhouette.shape == (h, w)
    direction = sun.matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0))
    corners = [obj.matrix_world @ Vector(c) for c in obj.bound_box]
    shadow = [c + direction * ((c.z - ground) / -direction.z) for c in corners]

    def image_points(points):  # noqa: ANN001, ANN202
        return np.array([(v.x * w, (1.0 - v.y) * h) for v in (world_to_camera_view(scene, camera, p)
                                                                for p in points)])

    shade = hull_mask(image_points(corners + shadow), w, h) & ~silhouette
    outside = ~dilate(silhouette | shade, 3)
    diff = np.abs(result - bare).mean(axis=2)
    darker = (bare - result).mean(axis=2)
    photo = bpy.data.images["image.png"].copy()
    photo.scale(w, h)
    try:
        pixels = np.empty(w * h * 4, np.float32)
        photo.pixels.foreach_get(pixels)
        reference = pixels.reshape(h, w, 4)[::-1, :, :3]
    finally:
        bpy.data.images.remove(photo)
    measured = {"size": (w, h), "object pixels": int(silhouette.sum()), "shadow pixels in view": int(shade.sum()),
                "outside fraction": round(float(outside.mean()), 3),
                "outside vs bare": float(diff[outside].mean()),
                "bare vs photo": float(np.abs(bare - reference).mean()),
                "object vs bare": float(diff[silhouette].mean()),
                "shadow darker (p90)": float(np.percentile(darker[shade], 90)) if shade.any() else None}
    print("composite of the real sample:", measured)
    assert silhouette.sum() >= 100, measured
    measured.update(unchanged_outside(diff, outside))  # nothing but the object and its shadow changed
    assert diff[silhouette].mean() > 0.1, measured
    limit = 0.06 if hasattr(bpy.types, "CompositorNodeComposite") else 0.01  # 4.x's Scale node aliases
    assert np.abs(bare - reference).mean() < limit, measured


# --- (2)–(5) synthetic photos of a known lens -------------------------------------------------------------


@dataclass
class Thing:
    """One object of a synthetic photo, placed in the view so that every lens frames a similar picture."""

    kind: str  # "box" or "ellipsoid"
    u: float  # where its centre projects: half-widths right of the centre (beyond ±1: out of frame)
    v: float  # half-heights above the centre
    depth: float  # along the camera's axis, scene units
    size: tuple[float, float, float]  # its x, y, z extents, as fractions of the view's width at its depth
    turn: tuple[float, float, float]  # its rotation in the camera's frame (Euler XYZ, degrees)


THINGS = [
    Thing("box", -0.45, -0.35, 4.0, (0.22, 0.16, 0.25), (10.0, 35.0, 5.0)),
    Thing("ellipsoid", 0.35, 0.2, 6.5, (0.16, 0.26, 0.2), (0.0, 0.0, 20.0)),
    Thing("box", 0.9, -0.15, 3.0, (0.14, 0.45, 0.2), (0.0, 25.0, 0.0)),  # partly out of frame (right)
    Thing("ellipsoid", -0.25, 0.55, 9.0, (0.12, 0.09, 0.1), (30.0, 0.0, 0.0)),
    Thing("box", 0.05, -0.82, 2.5, (0.3, 0.12, 0.2), (0.0, -20.0, -10.0)),  # partly out of frame (bottom)
]
# Where the synthetic camera stands in its world (any pose: what SAM 3D returns is in the camera's frame).
SYNTHETIC_CAMERA = (Matrix.Translation((0.4, -0.3, 1.3))
                    @ Euler((math.radians(84.0), 0.0, math.radians(8.0))).to_matrix().to_4x4())


@dataclass
class Photo:
    lens: float
    path: Path  # the photo
    masks: dict[str, Path]  # object name → its mask (PNG, white = object)
    full: dict[str, np.ndarray]  # object name → its mask, (h, w) bool
    glbs: dict[str, bytes]  # object name → the posed GLB SAM 3D would return (camera frame, OpenGL axes)


def _mesh(kind: str) -> bpy.types.Mesh:
    mesh = bpy.data.meshes.new(kind)
    bm = bmesh.new()
    if kind == "box":
        bmesh.ops.create_cube(bm, size=1.0)
    else:
        bmesh.ops.create_uvsphere(bm, u_segments=32, v_segments=16, radius=0.5)
    bm.to_mesh(mesh)
    bm.free()
    return mesh


def make_photo(folder: Path, lens: float, things: list[Thing] = THINGS, size: tuple[int, int] = SYNTHETIC_SIZE,
               shift: tuple[float, float] = (0.0, 0.0)) -> Photo:
    """A photo of `things` through a `lens` mm camera (36 mm sensor on the longer side, `size`, its principal
    point moved by the lens `shift`), rendered by Blender; each object's mask rendered alone; each object's
    posed GLB. The scene is left empty again."""
    folder.mkdir(parents=True, exist_ok=True)
    scene = bpy.context.scene
    before = set(bpy.data.objects)
    camera = bpy.data.objects.new("synthetic camera", bpy.data.cameras.new("synthetic camera"))
    camera.data.lens, camera.data.sensor_width, camera.data.sensor_fit = lens, 36.0, "AUTO"
    camera.data.shift_x, camera.data.shift_y = shift
    camera.matrix_world = SYNTHETIC_CAMERA
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y = size
    half = 18.0 / lens  # the half-width of the view, per unit of depth, along the longer side (AUTO fit)
    tx, ty = (half, half * size[1] / size[0]) if size[0] >= size[1] else (half * size[0] / size[1], half)
    objects = {}
    for n, thing in enumerate(things):
        width = 2 * tx * thing.depth  # of the view at its depth
        local = (Matrix.Translation((thing.u * tx * thing.depth, thing.v * ty * thing.depth, -thing.depth))
                 @ Euler([math.radians(a) for a in thing.turn]).to_matrix().to_4x4()
                 @ Matrix.Diagonal([*(s * width for s in thing.size), 1.0]))
        obj = bpy.data.objects.new(f"thing_{n}", _mesh(thing.kind))
        obj.matrix_world = SYNTHETIC_CAMERA @ local
        scene.collection.objects.link(obj)
        objects[obj.name] = obj
    bpy.context.view_layer.update()
    masks, full, glbs = {}, {}, {}
    to_camera = np.array(SYNTHETIC_CAMERA.inverted())
    for name, obj in objects.items():
        full[name] = render_silhouette(obj, folder / f"{name}_render.png", 100)
        assert full[name].any(), f"{name} is out of the picture"
        masks[name] = folder / f"{name}.png"
        write_png(masks[name], full[name].astype(np.uint8) * 255)
        mesh = obj.data
        co = np.empty(len(mesh.vertices) * 3, np.float64)
        mesh.vertices.foreach_get("co", co)
        matrix = to_camera @ np.array(obj.matrix_world)
        points = co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
        mesh.calc_loop_triangles()
        tris = np.empty(len(mesh.loop_triangles) * 3, np.int32)
        mesh.loop_triangles.foreach_get("vertices", tris)
        glbs[name] = make_glb(points.tolist(), tris.reshape(-1, 3).tolist())
    render = scene.render
    render.engine = "BLENDER_WORKBENCH"
    render.film_transparent = False
    render.resolution_percentage = 100
    scene.display.shading.color_type = "RANDOM"
    scene.display.render_aa = "OFF"
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGB"
    path = folder / "photo.png"
    render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    for obj in new_objects(before):
        bpy.data.objects.remove(obj)
    scene.camera = None
    return Photo(lens, path, masks, full, glbs)


def reconstruct_photo(sam3d, photo: Photo, names: list[str] | None = None,  # noqa: ANN001
                      canonical: frozenset[str] = frozenset()) -> list[bpy.types.Object]:
    """Reconstruct the photo's masks (`names`, default all) as one list, placement As in the Photo; the
    emulator answers each task with the posed GLB of the mask it sent (or a canonical stand-in for the names
    in `canonical`)."""
    names = list(photo.masks) if names is None else names

    def answer(task: dict, index: int) -> bytes:
        sent = mask_of(task)
        name = max(photo.full, key=lambda n: iou(photo.full[n], sent) if photo.full[n].shape == sent.shape else -1)
        return shape_like(task, posed=False) if name in canonical else photo.glbs[name]

    settings = bpy.context.scene.sam3d
    settings.image = bpy.data.images.load(str(photo.path), check_existing=True)
    for item in settings.masks:
        item.enabled = False
    for name in names:
        image = bpy.data.images.load(str(photo.masks[name]), check_existing=True)
        item = next((i for i in settings.masks if i.image == image), None) or settings.masks.add()
        item.image, item.enabled = image, True
    settings.placement = "CAMERA"
    sam3d.prefs.max_jobs = 8
    sam3d.emu.result_factory = answer
    before = set(bpy.data.objects)
    started = time.perf_counter()
    try:
        assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    finally:
        sam3d.emu.result_factory = None
    print(f"{len(names)} mask(s) reconstructed, laid out and calibrated in {time.perf_counter() - started:.2f} s")
    made = [o for o in new_objects(before) if o.type == "MESH"]
    assert sorted(o.name for o in made) == sorted(names)
    return made


def silhouette_ious(photo: Photo, objects: list[bpy.types.Object], folder: Path) -> dict[str, float]:
    """Each object's silhouette as Blender renders it through the photo camera, against its mask."""
    scores = {}
    for obj in objects:
        rendered = render_silhouette(obj, folder / f"{obj.name}_through_photo_camera.png", SYNTHETIC_PERCENT)
        h, w = rendered.shape
        scores[obj.name] = round(float(iou(rendered, downscale(photo.full[obj.name], w, h))), 4)
    return scores


def photo_camera() -> bpy.types.Object:
    camera = bpy.context.scene.camera
    assert camera is not None and camera.get("sam3d_photo") == "photo.png"
    return camera


@pytest.mark.parametrize("lens", [24.0, 50.0, 85.0])
def test_a_synthetic_photo_gives_its_lens_back_and_every_object_covers_its_mask(sam3d, lens):
    photo = make_photo(sam3d.tmp / "photo", lens)
    made = reconstruct_photo(sam3d, photo)
    camera = photo_camera()
    assert {o["sam3d_frame"] for o in made} == {"POSED"}
    scores = silhouette_ious(photo, made, sam3d.tmp)
    print(f"synthetic {lens:g} mm: the photo camera has {camera.data.lens:.2f} mm "
          f"({100 * (camera.data.lens / lens - 1):+.1f} %), shift ({camera.data.shift_x:+.4f}, "
          f"{camera.data.shift_y:+.4f}); silhouette IoU as rendered {scores}; the fit says "
          f"{camera['sam3d_fit'].to_dict()}")
    assert camera.data.lens == pytest.approx(lens, rel=0.05)
    assert camera.data.sensor_width == 36.0 and camera.data.sensor_fit == "AUTO"
    assert min(scores.values()) >= 0.8, scores
    assert camera["sam3d_focal_mm"] == pytest.approx(camera.data.lens)
    assert sorted(camera["sam3d_fit"].keys()) == sorted(scores)
    labels = layout_panel_labels()
    assert f"Camera {camera.name}: {camera.data.lens:.1f} mm" in labels, labels
    assert all(f"{name}: silhouette IoU {camera['sam3d_fit'][name]:.2f}" in labels for name in scores), labels


def test_a_portrait_photo_with_an_off_centre_principal_point_gives_both_back(sam3d):
    """A portrait photo (the sensor fits its height) whose principal point is off the centre: the fit finds the
    lens and the shift, each of its sign, and every object covers its mask."""
    size, shift = (SYNTHETIC_SIZE[1], SYNTHETIC_SIZE[0]), (0.03, -0.04)
    photo = make_photo(sam3d.tmp / "photo", 35.0, size=size, shift=shift)
    made = reconstruct_photo(sam3d, photo)
    camera = photo_camera()
    scene = bpy.context.scene
    assert (scene.render.resolution_x, scene.render.resolution_y) == size
    scores = silhouette_ious(photo, made, sam3d.tmp)
    found = (camera.data.shift_x, camera.data.shift_y)
    print(f"portrait 35 mm, shift {shift}: {camera.data.lens:.2f} mm, shift ({found[0]:+.4f}, {found[1]:+.4f}); "
          f"IoU {scores}")
    assert camera.data.lens == pytest.approx(35.0, rel=0.05)
    assert found == pytest.approx(shift, abs=0.01)
    assert min(scores.values()) >= 0.8, scores
    bottoms = sorted(min((o.matrix_world @ v.co).z for v in o.data.vertices) for o in made)
    assert bottoms[0] == pytest.approx(0.0, abs=1e-3), "the lowest posed object stands on the ground"
    assert bottoms[-1] > 0.05, "the others stand higher (so the ground is the lowest's, not any one's)"


def kept_lens(sam3d) -> tuple[Photo, bpy.types.Object, list[bpy.types.Object]]:  # noqa: ANN001
    """A 50 mm photo: its first object calibrates the camera, then the user sets 35 mm and keeps it, then two
    more posed results arrive. (photo, camera, the three objects)."""
    photo = make_photo(sam3d.tmp / "photo", 50.0, THINGS[:3])
    [first] = reconstruct_photo(sam3d, photo, ["thing_0"])
    camera = photo_camera()
    assert camera.data.lens == pytest.approx(50.0, rel=0.05), "one posed object calibrates the lens"
    assert set(camera["sam3d_fit"].keys()) == {"thing_0"}
    camera.data.lens = 35.0  # the user's lens, kept
    camera.data.sam3d_lens_locked = True
    bpy.context.view_layer.update()  # thing_0 follows the new lens
    made = reconstruct_photo(sam3d, photo, ["thing_1", "thing_2"])
    return photo, camera, [first, *made]


def test_keep_this_lens_keeps_a_hand_set_lens_and_still_records_each_fit(sam3d):
    photo, camera, made = kept_lens(sam3d)
    assert camera.data.lens == 35.0, "new posed results leave the kept lens alone"
    assert camera["sam3d_focal_mm"] == pytest.approx(50.0, rel=0.05), "and record the lens their poses imply"
    assert (camera.data.shift_x, camera.data.shift_y) == (0.0, 0.0)
    fits = camera["sam3d_fit"].to_dict()
    scores = silhouette_ious(photo, made, sam3d.tmp)
    print(f"Keep This Lens at 35 mm (SAM 3D's poses are for 50 mm): the fit says {fits}, rendered {scores}")
    assert sorted(fits) == ["thing_0", "thing_1", "thing_2"], "the fit of every posed object is recorded"
    assert all(0.0 <= v <= 1.0 for v in fits.values())
    assert scores["thing_0"] >= 0.8, "laid out before the lens changed, it followed the lens"
    labels = layout_panel_labels()
    assert "Camera photo: 35.0 mm" in labels, labels
    assert all(f"{name}: silhouette IoU {v:.2f}" in labels for name, v in fits.items()), labels


def test_under_a_kept_lens_new_posed_results_cover_their_masks_and_the_panel_says_how_well(sam3d):
    photo, camera, made = kept_lens(sam3d)
    fits = camera["sam3d_fit"].to_dict()
    scores = silhouette_ious(photo, made, sam3d.tmp)
    print(f"Keep This Lens: the fit says {fits}, rendered {scores}")
    assert min(scores.values()) >= 0.8, scores
    assert all(fits[name] == pytest.approx(score, abs=0.1) for name, score in scores.items()), (fits, scores)


def extent(obj: bpy.types.Object) -> np.ndarray:
    """Its world bounds' size along X, Y, Z, over every vertex."""
    co = np.empty(len(obj.data.vertices) * 3, np.float64)
    obj.data.vertices.foreach_get("co", co)
    m = np.array(obj.matrix_world)
    points = co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
    return points.max(axis=0) - points.min(axis=0)


@pytest.mark.parametrize("canonical", [frozenset(), frozenset({"thing_1", "thing_3"})], ids=["posed", "mixed"])
def test_set_real_size_scales_the_whole_photo_and_keeps_every_projection(sam3d, canonical):
    photo = make_photo(sam3d.tmp / "photo", 50.0)
    made = reconstruct_photo(sam3d, photo, canonical=canonical)
    assert {o.name for o in made if o["sam3d_frame"] == "CANONICAL"} == canonical
    camera = photo_camera()
    lens, shift = camera.data.lens, (camera.data.shift_x, camera.data.shift_y)
    rotation = camera.matrix_world.to_3x3().copy()
    position = camera.matrix_world.translation.copy()
    pivot = Vector((position.x, position.y, 0.0))
    sizes = {o.name: extent(o) for o in made}
    before = silhouette_ious(photo, made, sam3d.tmp / "before")
    chosen = next(o for o in made if o.name == (min(canonical) if canonical else "thing_1"))
    factor = float(0.45 / sizes[chosen.name][2])
    bpy.context.view_layer.objects.active = chosen
    assert bpy.ops.sam3d.set_real_size(size=0.45, axis="HEIGHT") == {"FINISHED"}
    bpy.context.view_layer.update()
    after = silhouette_ious(photo, made, sam3d.tmp / "after")
    print(f"Set Real Size ({'posed' if not canonical else 'posed and canonical'}): {chosen.name} 0.45 high, "
          f"factor {factor:.4f}; silhouette IoU before {before}, after {after}")
    assert extent(chosen)[2] == pytest.approx(0.45, rel=1e-4)
    for obj in made:
        assert extent(obj) == pytest.approx(sizes[obj.name] * factor, rel=1e-4), obj.name
        assert obj["sam3d_scale"] == pytest.approx(factor, rel=1e-6), obj.name
        assert abs(after[obj.name] - before[obj.name]) < 0.01, (obj.name, before, after)
    assert tuple(camera.matrix_world.translation) == pytest.approx(tuple(pivot + factor * (position - pivot)),
                                                                   abs=1e-5), "scaled about the ground under it"
    assert (camera.matrix_world.translation - position).length > 0.1, "the camera moved"
    assert np.allclose(np.array(camera.matrix_world.to_3x3()), np.array(rotation), atol=1e-6), "looking the same way"
    assert (camera.data.lens, camera.data.shift_x, camera.data.shift_y) == (lens, *shift)
    if not canonical:
        assert min(after.values()) >= 0.8, after


def projected_box(obj: bpy.types.Object) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of its bounding box as the scene's camera sees it, fractions of the frame."""
    scene = bpy.context.scene
    points = [world_to_camera_view(scene, scene.camera, obj.matrix_world @ Vector(c)) for c in obj.bound_box]
    xs, ys = [p.x for p in points], [1.0 - p.y for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def box_iou(a, b) -> float:  # noqa: ANN001
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return float(inter) / float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("lens", [24.0, 85.0])
def test_canonical_results_of_a_calibrated_photo_are_laid_out_through_the_calibrated_camera(sam3d, lens):
    photo = make_photo(sam3d.tmp / "photo", lens)
    canonical = frozenset({"thing_0", "thing_3"})
    made = reconstruct_photo(sam3d, photo, canonical=canonical)
    camera = photo_camera()
    assert camera.data.lens == pytest.approx(lens, rel=0.05), "calibrated by the three posed results"
    scores = {o.name: round(box_iou(projected_box(o), box_of(photo.full[o.name])), 3) for o in made
              if o.name in canonical}
    camera.data.lens = 35.0  # the camera as it was before calibration (read at once: nothing is laid out again)
    uncalibrated = {o.name: round(box_iou(projected_box(o), box_of(photo.full[o.name])), 3) for o in made
                    if o.name in canonical}
    print(f"canonical results of a {lens:g} mm photo: projected box IoU {scores}; through a 35 mm lens it would "
          f"be {uncalibrated}")
    assert min(scores.values()) >= 0.5, scores
    assert max(uncalibrated.values()) < 0.5, "the check tells the calibrated camera from the first one"


# --- the ground under posed results -----------------------------------------------------------------------


def test_the_real_posed_sample_stands_on_the_ground_its_shadow_is_caught_on(sam3d):
    obj = reconstruct_sample(sam3d)
    assert bpy.ops.sam3d.composite() == {"FINISHED"}
    [catcher] = [o for o in bpy.context.scene.objects if o.get("sam3d_shadow_catcher")]
    co = np.empty(len(obj.data.vertices) * 3, np.float64)
    obj.data.vertices.foreach_get("co", co)
    m = np.array(obj.matrix_world)
    lowest = float((co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3])[:, 2].min())
    print(f"the bench's lowest point is at z = {lowest:.3f}, the shadow catcher at {catcher.location.z:.3f}")
    assert lowest == pytest.approx(catcher.matrix_world.translation.z, abs=0.05)
