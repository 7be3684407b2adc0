"""An asset library on disk, written one asset at a time: a folder Blender's Asset Browser reads as one library.

    LIBRARY/
      <item key>.blend            one asset per file (`props/cup.png.blend`), written once, atomically
      blender_assets.cats.txt     the catalogs, updated under a lock and replaced atomically
      sam3d-report[.K-of-N].json  what became of each item of a run (per shard)
      .sam3d/<item key>.json      each item's provenance: its source files' hashes, its task, its state

An item is done when its provenance says so and its asset file exists, never because of an object's name.
Its provenance is written (`claimed`, with the task UUID) before the task is sent, so a run killed at any
moment, on any machine sharing the folder, fetches that task again instead of paying for it twice.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ... import preferences
from ...client import files
from ...utils import schema
from .. import bake
from ..machinery import pixels
from ..machinery.importing import mesh_of

CATS_FILE = "blender_assets.cats.txt"
STATE_DIR = ".sam3d"
MAX_STATE_BYTES = 16 * 1024 * 1024  # an item's provenance is a few hundred bytes; the catalogs a few KB
_NAMESPACE = uuid.UUID("6f1f6a1e-3d0b-4a57-9a44-5a3d0bdc0f3d")  # catalog UUIDs stable across runs


def catalog_id(path: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, path))


def write_atomically(path: Path, data: bytes, root: Path | None = None) -> None:
    """Write a file so that readers see the old one or the new one, never half of one (client/files.py: a
    temporary file of an unpredictable name, renamed over it; never through a link below `root`)."""
    files.write_atomically(path, data, root=root)


@contextlib.contextmanager
def file_lock(path: Path, root: Path, wait: float = 30.0) -> Iterator[None]:
    """A short-lived lock between processes (shards) writing one shared file; a stale one (a killed holder)
    is broken after `wait` seconds."""
    lock = path.with_name(path.name + ".lock")
    deadline = time.monotonic() + wait
    while True:
        try:
            os.close(files.create_exclusive(lock, root=root))
            break
        except FileExistsError:
            if time.monotonic() > deadline:
                lock.unlink(missing_ok=True)
                deadline = time.monotonic() + wait
            time.sleep(0.02)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


class Library:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def asset_path(self, key: str) -> Path:
        return self.folder / f"{key}.blend"

    def state_path(self, key: str) -> Path:
        return self.folder / STATE_DIR / f"{key}.json"  # one file per key: keys are distinct relative paths

    def state(self, key: str) -> dict[str, Any]:
        """An item's provenance (another machine may have written it: read as every shared file is, and its
        task UUID kept only in UUID form); {} when there is none, or none that can be read."""
        try:
            data = json.loads(files.read_bytes(self.state_path(key), max_bytes=MAX_STATE_BYTES, root=self.folder))
        except (OSError, ValueError, RecursionError):
            return {}
        if not isinstance(data, dict):
            return {}
        if "task_uuid" in data and not files.is_uuid(data["task_uuid"]):
            data.pop("task_uuid")
        return data

    def set_state(self, key: str, **fields: Any) -> None:
        write_atomically(self.state_path(key), json.dumps({"key": key, "time": time.time(), **fields}).encode(),
                         self.folder)

    def is_done(self, key: str, hashes: dict[str, str]) -> bool:
        state = self.state(key)
        return state.get("state") == "done" and state.get("hashes") == hashes and \
            files.is_regular(self.asset_path(key), root=self.folder)

    def write_asset(self, key: str, root: bpy.types.Object) -> Path:
        """The asset and what it uses (mesh, materials, packed images) as its own .blend, atomically: written
        to a new file of an unpredictable name beside it, then renamed over it (never through a link)."""
        path = self.asset_path(key)
        files.ensure_dir(self.folder, *Path(key).parent.parts)
        fd, name = tempfile.mkstemp(prefix=f".{path.name[:60]}.", suffix=".tmp.blend", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            # Paths relative to the asset (a baked texture beside it): the library can move, or be shared.
            # Compressed: the sample's asset is half the size (5.6 MB, was 11.2), for 0.08 s more.
            bpy.data.libraries.write(str(tmp), {root}, fake_user=True, path_remap="RELATIVE_ALL", compress=True)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def add_catalogs(self, paths: set[str]) -> None:
        """The library's catalog file (Blender's format), keeping catalogs anyone else wrote there."""
        cats = self.folder / CATS_FILE
        with file_lock(cats, self.folder):
            try:
                text = files.read_bytes(cats, max_bytes=MAX_STATE_BYTES, root=self.folder).decode("utf-8", "replace")
                lines = text.splitlines()
            except FileNotFoundError:
                lines = ["VERSION 1", ""]
            known = {line.split(":")[0] for line in lines if ":" in line and not line.startswith("#")}
            missing = [p for p in sorted(paths) if catalog_id(p) not in known]
            if missing:
                lines += [f"{catalog_id(p)}:{p}:{p.replace('/', '-')}" for p in missing]
                write_atomically(cats, ("\n".join(lines) + "\n").encode(), self.folder)


# --- one asset ------------------------------------------------------------------------------------------


def make_asset(root: bpy.types.Object, *, catalog: str, description: str, tags: list[str],
               provenance: dict[str, Any], target_size: float = 0.0, real_height: float = 0.0,
               triangle_budget: int = 0, preview: bool = False) -> bytes:
    """Clean the object for reuse and mark it as an asset with its metadata and a rendered preview; the
    preview's PNG (empty without one)."""
    root.location = (0.0, 0.0, 0.0)  # the origin is at the base already (placement on the cursor)
    if root.type == "MESH":
        if real_height > 0 and _size(root)[2] > 0:  # a real size from the file name or sizes.csv
            mesh_of(root).transform(Matrix.Scale(real_height / _size(root)[2], 4))
            root[schema.REAL_HEIGHT] = real_height
        elif target_size > 0 and _longest(root) > 0:
            mesh_of(root).transform(Matrix.Scale(target_size / _longest(root), 4))
        if triangle_budget > 0:
            bake.decimate(root, triangle_budget)
    root.asset_mark()
    meta = root.asset_data
    assert meta is not None  # asset_mark made it
    meta.description = description
    prefs = preferences.get()  # what a studio fills once (Preferences › Asset Library)
    meta.author, meta.license, meta.copyright = prefs.asset_author, prefs.asset_license, prefs.asset_copyright
    meta.catalog_id = catalog_id(catalog)
    for tag in tags:
        if tag and tag not in meta.tags:
            meta.tags.new(tag)
    for key, value in provenance.items():
        meta[key] = value
    return render_preview(root) if preview else b""


def render_preview(obj: bpy.types.Object, size: int = 128) -> bytes:
    """A small Cycles render of the object alone, set as its asset preview (not Blender's blank icon); its PNG
    (for the library's contact sheet)."""
    scene = bpy.data.scenes.new("SAM3D Preview")
    try:
        scene.collection.objects.link(obj)
        extent = _size(obj)  # read once: it walks every vertex
        radius = max(max(extent), 1e-3) * 0.9
        centre = obj.matrix_world.translation + Vector((0, 0, extent[2] / 2))
        lens = bpy.data.cameras.new("SAM3D Preview Camera")
        lens.clip_start, lens.clip_end = radius * 0.1, radius * 10  # a 2 cm ring or a tower: never cut
        camera = bpy.data.objects.new("SAM3D Preview Camera", lens)
        camera.location = centre + Vector((radius * 1.4, -radius * 2.0, radius * 1.1))
        camera.rotation_euler = (centre - camera.location).to_track_quat("-Z", "Y").to_euler()
        sun = bpy.data.objects.new("SAM3D Preview Sun", bpy.data.lights.new("SAM3D Preview Sun", "SUN"))
        sun.rotation_euler = (math.radians(40), 0, math.radians(30))
        for extra in (camera, sun):
            scene.collection.objects.link(extra)
        scene.camera = camera
        scene.render.engine = "CYCLES"  # type: ignore[assignment]  # the stubs list Blender's own engines only
        cycles = scene.cycles
        assert cycles is not None  # the Cycles add-on's settings (never None: missing, reading them raises)
        # Lit by the sun alone (no world), so bounces add little but noise: direct light at 16 samples looks as
        # clean at 128 px as 32 with bounces, in 0.09 s, not 0.15; denoising cost 0.2-0.4 s and blurred thin legs.
        cycles.samples, cycles.max_bounces, cycles.use_denoising = 16, 0, False
        cycles.device = "CPU"
        scene.render.resolution_x = scene.render.resolution_y = size
        scene.render.film_transparent = True
        private = Path(tempfile.mkdtemp(prefix="sam3d-preview-"))  # never a file of the shared library
        scene.render.filepath = str(private / "preview.png")
        had_result = "Render Result" in bpy.data.images
        # No temp_override around operators here: Blender 4.2–5.0 read an override without holding Python's
        # lock, which crashes while our download threads run Python (tests/blender/test_threads.py).
        try:
            bpy.ops.render.render(write_still=True, scene=scene.name)
            set_preview(obj, private / "preview.png")
            png = (private / "preview.png").read_bytes()  # our own render, in our own private folder
        finally:
            shutil.rmtree(private, ignore_errors=True)
        if not had_result and "Render Result" in bpy.data.images:  # leave the file as it was
            bpy.data.images.remove(bpy.data.images["Render Result"])
    finally:
        for extra in [o for o in scene.objects if o.name.startswith("SAM3D Preview")]:
            data = extra.data
            bpy.data.objects.remove(extra)
            if isinstance(data, bpy.types.Camera) and data.users == 0:
                bpy.data.cameras.remove(data)
            elif isinstance(data, bpy.types.Light) and data.users == 0:
                bpy.data.lights.remove(data)
        bpy.data.scenes.remove(scene)
    return png


def set_preview(obj: bpy.types.Object, path: Path) -> None:
    """The rendered image as the object's asset preview (what Load Custom Preview does, without an operator)."""
    image = bpy.data.images.load(str(path))
    try:
        rgba = pixels.pixels(image)[::-1]  # bottom row first, as Blender stores images and previews
        preview = obj.preview_ensure()
        preview.image_size = tuple(image.size)
        pixels_of_preview: Any = preview.image_pixels_float  # the stubs say float: it is a float array
        pixels_of_preview.foreach_set(rgba.ravel())  # also marks it edited: Blender won't redo it
    finally:
        bpy.data.images.remove(image)


def _size(obj: bpy.types.Object) -> tuple[float, float, float]:
    """The object's size now, from its mesh's vertices: `obj.dimensions` keeps the size before a mesh was scaled
    until the next depsgraph update (a preview framed on it cut an asset given its real size)."""
    if obj.type != "MESH" or not len(mesh_of(obj).vertices):
        d = obj.dimensions
        return float(d.x), float(d.y), float(d.z)
    mesh = mesh_of(obj)
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    scale = obj.matrix_world.to_scale()
    extent = np.ptp(co.reshape(-1, 3), axis=0) * np.abs(np.array(scale, np.float32))
    return float(extent[0]), float(extent[1]), float(extent[2])


def _longest(obj: bpy.types.Object) -> float:
    return max(_size(obj))


def remove_from_file(root: bpy.types.Object) -> None:
    """Take a written asset (and what only it used) out of the open file: the batch's memory stays flat."""
    objects = [root, *root.children_recursive]
    datas = [o.data for o in objects if o.data is not None]
    materials = {m for d in datas if hasattr(d, "materials") for m in d.materials if m is not None}
    images = {image for m in materials if m.node_tree for n in m.node_tree.nodes
              if (image := getattr(n, "image", None)) is not None}
    collections = {c for o in objects for c in o.users_collection if c.get(schema.MADE)}
    bpy.data.batch_remove(objects)
    for blocks in (datas, materials, images):
        leftover = [b for b in blocks if b.users == 0]
        if leftover:
            bpy.data.batch_remove(leftover)
    for collection in collections:
        if not collection.all_objects:
            bpy.data.collections.remove(collection)
