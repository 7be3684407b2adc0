"""`make demo`: build the extension, install it into a headless Blender, reconstruct the example photo,
then lay out eight objects of the Socrates painting through a camera calibrated to it, composited over it.

Against the Runware emulator (a local stand-in: it serves the real SAM 3D output of examples/human_object,
and for the painting a posed stand-in made from each mask, as SAM 3D would pose it through a 35 mm lens)
unless RUNWARE_API_KEY is set, in which case the real Runware API is used (and billed, about 0.004 USD per
task, 9 tasks).
Writes out/demo.blend and a Cycles render out/demo.png; out/layout.blend and out/layout.png (the painting's
objects rendered over the painting by Composite over Photo), and a reduced copy out/layout_small.png (what
docs/layout.png was made from: copy it there by hand when it should change). Besides out/, it writes only the
zip it builds (dist/) and a temporary folder it removes: both out/ and dist/ are git-ignored.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out"
EXAMPLE = ROOT / "examples" / "human_object"
PAINTING = ROOT / "examples" / "socrates"
USER = Path(tempfile.mkdtemp(prefix="sam3d-demo-user-"))
atexit.register(shutil.rmtree, USER, ignore_errors=True)  # whatever happens
os.environ["BLENDER_USER_RESOURCES"] = str(USER)  # a throw-away Blender user folder, read when bpy starts
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402
from mathutils import Vector  # noqa: E402

from tools.build import build  # noqa: E402


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def install(zip_path: Path) -> str:
    bpy.context.preferences.system.use_online_access = True  # the user's "Allow Online Access"
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    return "bl_ext.user_default.sam3d"


def reconstruct(module: str, api_url: str | None, key: str) -> bpy.types.Object:
    prefs = bpy.context.preferences.addons[module].preferences
    prefs.api_key = key
    if api_url:
        prefs.api_url = api_url
    prefs.result_dir = str(OUT / "results")
    settings = bpy.context.scene.sam3d
    settings.image = bpy.data.images.load(str(EXAMPLE / "image.png"))
    settings.mask = bpy.data.images.load(str(EXAMPLE / "mask_0.png"))
    settings.prompt = "a wooden bench"
    before = set(bpy.data.objects)
    started = time.monotonic()
    bpy.ops.sam3d.reconstruct()  # executed from a script: blocks until the object is in the scene
    made = [o for o in bpy.data.objects if o not in before]
    obj = made[0]
    say(f"reconstructed '{obj.name}' in {time.monotonic() - started:.1f} s: {len(obj.data.polygons):,} "
        f"triangles, task {obj['sam3d_task_uuid']}, seed {obj['sam3d_seed']}")
    return obj


def stage(obj: bpy.types.Object) -> None:
    """A clay material, a floor, a sun and a camera framing the object, for the render."""
    scene = bpy.context.scene
    clay = bpy.data.materials.new("Demo Clay")
    if clay.node_tree is None:  # Blender < 5 makes node trees on request only
        clay.use_nodes = True
    clay.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (0.8, 0.55, 0.4, 1)
    if not obj.data.materials:
        obj.data.materials.append(clay)
    size = max(obj.dimensions)
    bpy.ops.mesh.primitive_plane_add(size=size * 20, location=(0, 0, 0))
    bpy.ops.object.light_add(type="SUN", rotation=(math.radians(40), math.radians(10), math.radians(30)))
    bpy.context.object.data.energy = 3.0
    centre = Vector((0, 0, obj.dimensions.z / 2))
    bpy.ops.object.camera_add(location=centre + Vector((size * 0.9, -size * 1.6, size * 0.9)))
    camera = bpy.context.object
    camera.rotation_euler = (centre - camera.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera
    world = bpy.data.worlds.new("Demo World")
    if world.node_tree is None:
        world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.6, 0.65, 0.75, 1)
    scene.world = world


def render(path: Path, size: tuple[int, int] | None = (960, 540)) -> None:
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 24
    if size:
        scene.render.resolution_x, scene.render.resolution_y = size
    else:  # the photo's camera: keep its aspect, at a demo's size
        scene.render.resolution_percentage = 40
    scene.render.filepath = str(path)
    scene.render.use_stamp_filename = False  # the picture may be shared: no path of this machine in it
    started = time.monotonic()
    bpy.ops.render.render(write_still=True)
    say(f"rendered {path.relative_to(ROOT)} with Cycles in {time.monotonic() - started:.1f} s")


def lay_out(module: str) -> list[bpy.types.Object]:
    """Eight masks of the painting, placement As in the Photo: one collection, one camera, calibrated from the
    posed results (its focal length, and its principal point as a lens shift)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    settings = bpy.context.scene.sam3d
    settings.image = bpy.data.images.load(str(PAINTING / "image.png"))
    bpy.ops.sam3d.masks_load_folder(directory=str(PAINTING))
    settings.placement = "CAMERA"
    bpy.context.preferences.addons[module].preferences.max_jobs = 8
    before = set(bpy.data.objects)
    started = time.monotonic()
    bpy.ops.sam3d.reconstruct()
    made = [o for o in bpy.data.objects if o not in before and o.type != "CAMERA"]
    camera = bpy.context.scene.camera
    say(f"laid out {len(made)} objects of the painting in {time.monotonic() - started:.1f} s, "
        f"through the camera '{camera.name}'")
    posed = [o for o in made if o.get("sam3d_frame") == "POSED"]
    fits = dict(camera.get("sam3d_fit") or {})
    if fits:
        mean = sum(fits.values()) / len(fits)
        say(f"calibrated the camera from {len(posed)} posed results: {camera.data.lens:.1f} mm on a "
            f"{camera.data.sensor_width:g} mm sensor (lens shift {camera.data.shift_x:+.3f}, "
            f"{camera.data.shift_y:+.3f}); mean silhouette IoU {mean:.2f} (lowest {min(fits.values()):.2f})")
    else:
        say(f"no posed result to calibrate from: the camera keeps {camera.data.lens:.1f} mm")
    return made


def composite() -> None:
    """Composite over Photo: a shadow catcher under the objects, the render laid over the painting."""
    bpy.ops.sam3d.composite()
    bpy.context.scene.render.image_settings.color_mode = "RGB"  # the painting is opaque: so is the picture
    catcher = next(o for o in bpy.context.scene.objects if o.get("sam3d_shadow_catcher"))
    say(f"set up Composite over Photo: the shadow catcher '{catcher.name}' at z = "
        f"{catcher.matrix_world.translation.z:.2f}, the render laid over the painting in the compositor")


def reduced_copy(source: Path, target: Path, width: int = 800) -> None:
    image = bpy.data.images.load(str(source))
    w, h = image.size
    image.scale(width, round(h * width / w))
    image.filepath_raw = str(target)
    image.file_format = "PNG"
    image.save()
    say(f"copied {source.relative_to(ROOT)} to {target.relative_to(ROOT)} at {width}×{round(h * width / w)}")
    bpy.data.images.remove(image)


def main() -> int:
    OUT.mkdir(exist_ok=True)
    shutil.rmtree(OUT / "results", ignore_errors=True)
    zip_path = build(ROOT / "dist")
    say(f"built {zip_path.relative_to(ROOT)} with Blender {bpy.app.version_string}'s own extension builder")
    module = install(zip_path)
    say(f"installed and enabled {module}")
    bpy.ops.wm.read_homefile(use_empty=True)
    key = os.environ.get("RUNWARE_API_KEY", "")
    emulator = None
    if key:
        say("RUNWARE_API_KEY is set: using the real Runware API (this task is billed, about 0.004 USD)")
        api_url = os.environ.get("RUNWARE_API_URL") or None
    else:
        from tests.emulator import Emulator

        key = "demo-key"
        emulator = Emulator(api_key=key, processing_time=3.0,
                            result_glb=str(EXAMPLE / "sam3d_output_0.glb")).start()
        api_url = emulator.api_url
        say(f"RUNWARE_API_KEY is not set: using the local Runware EMULATOR at {api_url}, which answers with "
            "the real SAM 3D output for this photo (examples/README.md); set the key to use Runware itself")
    try:
        obj = reconstruct(module, api_url, key)
        stage(obj)
        bpy.ops.wm.save_as_mainfile(filepath=str(OUT / "demo.blend"))
        say("saved out/demo.blend")
        render(OUT / "demo.png")
        if emulator:
            from tests.shapes import shape_like

            emulator.result_factory = lambda task, index: shape_like(task, posed=True)
            say("the emulator answers each mask of the painting with a posed stand-in (tests/shapes.py), made "
                "for a 35 mm lens: the calibration should find about 35 mm")
        lay_out(module)
    except RuntimeError as exc:
        say(f"failed: {exc}")
        return 1
    finally:
        if emulator:
            emulator.stop()
    composite()
    bpy.ops.wm.save_as_mainfile(filepath=str(OUT / "layout.blend"))
    say("saved out/layout.blend")
    render(OUT / "layout.png", size=None)
    reduced_copy(OUT / "layout.png", OUT / "layout_small.png")
    say("done: out/demo.blend, out/demo.png, out/layout.blend and out/layout.png"
        + (", made against the emulator" if emulator else ""))
    shutil.rmtree(USER, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
