"""Asset library building: a folder of photos and masks in, a .blend of marked assets out.

Inputs, found under the folder (each sub-folder is a catalog):
- `name.png` with `name_mask.png` (any image type);
- a cut-out `name.png` with no `_mask` partner: its alpha is the mask;
- a folder `name/` holding `image.png` and mask files (Meta's layout): one asset per mask.
Every result becomes an asset: marked, a preview rendered of the object itself, its catalog, tags, a
description and the provenance. The library is written after each asset, so a crash loses nothing; a batch
run again skips what the library already holds (nothing paid twice). A JSON report lies beside it.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty
from mathutils import Matrix, Vector

from .. import preferences
from ..client import Job, Journal, RunwareError
from . import masks, reconstruct
from .mask_list import IMAGE_SUFFIXES, _natural
from .runner import RUNNER, RefusedError, Running, job_request, run_blocking

CATS_FILE = "blender_assets.cats.txt"
ROOT_CATALOG = "SAM 3D"
_NAMESPACE = uuid.UUID("6f1f6a1e-3d0b-4a57-9a44-5a3d0bdc0f3d")  # catalog UUIDs stable across runs


@dataclass
class Item:
    name: str
    photo: str
    mask: str = ""  # empty: the photo is a cut-out whose alpha is the mask
    catalog: str = ROOT_CATALOG
    status: str = "pending"  # pending, done, failed, skipped
    reason: str = ""
    task_uuid: str = ""
    cost: float = 0.0


def find_items(folder: Path) -> list[Item]:
    """Every photo and mask pair under `folder`, in a stable order."""
    items: list[Item] = []
    for directory in sorted([folder, *(p for p in folder.rglob("*") if p.is_dir())], key=_natural):
        images = sorted((p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                        key=_natural)
        relative = directory.relative_to(folder)
        photo = next((p for p in images if p.stem == "image"), None)
        if photo is not None and directory != folder:  # name/image.png + masks: one asset per mask
            catalog = "/".join([ROOT_CATALOG, *relative.parent.parts]) if relative.parent.parts else ROOT_CATALOG
            items += [Item(f"{directory.name}_{m.stem}", str(photo), str(m), catalog) for m in images if m != photo]
            continue
        catalog = "/".join([ROOT_CATALOG, *relative.parts])
        stems = {p.stem: p for p in images}
        for image in images:
            if image.stem.endswith("_mask"):
                continue
            partner = stems.get(f"{image.stem}_mask")
            items.append(Item(image.stem, str(image), str(partner) if partner else "", catalog))
    return items


def catalog_id(path: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, path))


def write_catalogs(library: Path, paths: set[str]) -> None:
    """The library's catalog file (Blender's format), keeping catalogs someone else wrote there."""
    cats = library.parent / CATS_FILE
    lines = cats.read_text().splitlines() if cats.exists() else ["VERSION 1", ""]
    known = {line.split(":")[0] for line in lines if ":" in line and not line.startswith("#")}
    for path in sorted(paths):
        if catalog_id(path) not in known:
            lines.append(f"{catalog_id(path)}:{path}:{path.replace('/', '-')}")
    cats.write_text("\n".join(lines) + "\n")


def library_names(library: Path) -> set[str]:
    if not library.exists():
        return set()
    with bpy.data.libraries.load(str(library)) as (source, _):
        return set(source.objects)


# --- one asset ------------------------------------------------------------------------------------------


@dataclass
class Options:
    target_size: float = 0.0  # longest side after scaling; 0 keeps SAM 3D's size
    triangle_budget: int = 0  # decimate above it; 0 keeps every triangle


def make_asset(root: bpy.types.Object, item: Item, options: Options, preview_dir: Path) -> None:
    """Clean the object for reuse and mark it as an asset with a rendered preview and its metadata."""
    root.location = (0.0, 0.0, 0.0)  # the origin is at the base already (placement on the cursor)
    if root.type == "MESH":
        size = max(root.dimensions)
        if options.target_size > 0 and size > 0:
            root.data.transform(Matrix.Scale(options.target_size / size, 4))
        if options.triangle_budget > 0:
            decimate(root, options.triangle_budget)
    root.asset_mark()
    meta = root.asset_data
    meta.description = (f"SAM 3D Objects reconstruction of {Path(item.mask).name or 'the cut-out'} in "
                        f"{Path(item.photo).name}. Task {root.get('sam3d_task_uuid')}, seed {root.get('sam3d_seed')}"
                        + (f", cost ${root['sam3d_cost']:.4f}" if root.get("sam3d_cost") is not None else "") + ".")
    meta.catalog_id = catalog_id(item.catalog)
    for tag in ("SAM 3D", item.catalog.split("/")[-1], Path(item.photo).stem):
        if tag not in meta.tags:
            meta.tags.new(tag)
    for key in ("sam3d_task_uuid", "sam3d_seed", "sam3d_cost", "sam3d_prompt"):
        if key in root:
            meta[key] = root[key]
    meta["sam3d_source_photo"] = item.photo
    render_preview(root, preview_dir / f"{item.name}.png")


def decimate(obj: bpy.types.Object, budget: int) -> None:
    triangles = sum(len(p.vertices) - 2 for p in obj.data.polygons)
    if triangles <= budget:
        return
    modifier = obj.modifiers.new("SAM3D Decimate", "DECIMATE")
    modifier.ratio = budget / triangles
    depsgraph = bpy.context.evaluated_depsgraph_get()
    mesh = bpy.data.meshes.new_from_object(obj.evaluated_get(depsgraph))
    obj.modifiers.remove(modifier)
    old, obj.data = obj.data, mesh
    mesh.name = old.name
    if old.users == 0:
        bpy.data.meshes.remove(old)


def render_preview(obj: bpy.types.Object, path: Path, size: int = 128) -> None:
    """A small Cycles render of the object alone, set as its asset preview (not Blender's blank icon)."""
    scene = bpy.data.scenes.new("SAM3D Preview")
    try:
        scene.collection.objects.link(obj)
        radius = max(max(obj.dimensions), 1e-3) * 0.9
        centre = obj.matrix_world.translation + Vector((0, 0, obj.dimensions.z / 2))
        camera = bpy.data.objects.new("SAM3D Preview Camera", bpy.data.cameras.new("SAM3D Preview Camera"))
        camera.location = centre + Vector((radius * 1.4, -radius * 2.0, radius * 1.1))
        camera.rotation_euler = (centre - camera.location).to_track_quat("-Z", "Y").to_euler()
        sun = bpy.data.objects.new("SAM3D Preview Sun", bpy.data.lights.new("SAM3D Preview Sun", "SUN"))
        sun.rotation_euler = (math.radians(40), 0, math.radians(30))
        for extra in (camera, sun):
            scene.collection.objects.link(extra)
        scene.camera = camera
        scene.render.engine = "CYCLES"
        scene.cycles.samples = 8
        scene.cycles.device = "CPU"
        scene.render.resolution_x = scene.render.resolution_y = size
        scene.render.film_transparent = True
        scene.render.filepath = str(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # No temp_override around operators here: Blender 4.2–5.0 read an override without holding Python's
        # lock, which crashes while our download threads run Python (tests/blender/test_threads.py).
        bpy.ops.render.render(write_still=True, scene=scene.name)
        set_preview(obj, path)
    finally:
        for extra in [o for o in scene.objects if o.name.startswith("SAM3D Preview")]:
            data = extra.data
            bpy.data.objects.remove(extra)
            if data is not None and data.users == 0:
                (bpy.data.cameras if isinstance(data, bpy.types.Camera) else bpy.data.lights).remove(data)
        bpy.data.scenes.remove(scene)


def set_preview(obj: bpy.types.Object, path: Path) -> None:
    """The rendered image as the object's asset preview (what Load Custom Preview does, without an operator)."""
    image = bpy.data.images.load(str(path))
    try:
        rgba = masks.pixels(image)[::-1]  # bottom row first, as Blender stores images and previews
        preview = obj.preview_ensure()
        preview.image_size = tuple(image.size)
        preview.image_pixels_float.foreach_set(rgba.ravel())  # also marks it edited: Blender won't redo it
    finally:
        bpy.data.images.remove(image)


# --- the batch ------------------------------------------------------------------------------------------


@dataclass
class Batch:
    """One batch: its items, what became of each, and the library it writes."""

    library: Path
    items: list[Item]
    options: Options = field(default_factory=Options)
    started: float = field(default_factory=time.monotonic)
    assets: list[str] = field(default_factory=list)
    previous: list[str] = field(default_factory=list)  # what an earlier run put in the library

    def __post_init__(self) -> None:
        self.previous = [o.name for o in _append_assets(self.library)]

    @property
    def report_path(self) -> Path:
        return self.library.with_suffix(".report.json")

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for i in self.items if i.status == s) for s in ("done", "failed", "skipped", "pending")}

    def cost(self) -> float:
        return sum(i.cost for i in self.items)

    def save(self) -> None:
        """The library with every asset so far, its catalogs, and the report (after each asset)."""
        self.library.parent.mkdir(parents=True, exist_ok=True)
        names = [*self.previous, *self.assets]
        objects = {bpy.data.objects[n] for n in names if n in bpy.data.objects}
        if objects:  # (Blender 4.2 crashes writing an empty set)
            bpy.data.libraries.write(str(self.library), objects, fake_user=True)
        write_catalogs(self.library, {i.catalog for i in self.items if i.status == "done"})
        self.report_path.write_text(json.dumps({"library": str(self.library), **self.counts(), "cost": self.cost(),
                                                "items": [asdict(i) for i in self.items]}, indent=1))


def _append_assets(library: Path) -> list[bpy.types.Object]:
    """The assets an earlier run put in the library, appended, so that rewriting it keeps them."""
    if not library.exists():
        return []
    with bpy.data.libraries.load(str(library)) as (source, target):
        target.objects = list(source.objects)
    return [o for o in target.objects if o is not None]


def start(context: bpy.types.Context, batch: Batch) -> list[Running]:
    """Queue a job per item not yet in the library; items whose inputs are bad fail here, with why. An item
    an earlier run already sent (the journal knows its task) is fetched by its task UUID, not paid again."""
    present = library_names(batch.library)
    journal = Journal(preferences.result_folder(preferences.get(context))).tasks()
    sent = {(t.info.get("name"), t.info.get("image"), t.info.get("mask")): t for t in journal.values()
            if t.unfinished}
    runnings = []
    for item in batch.items:
        if item.name in present:
            item.status, item.reason = "skipped", "already in the library"
            continue
        try:
            photo = bpy.data.images.load(item.photo, check_existing=True)
            mask = bpy.data.images.load(item.mask, check_existing=True) if item.mask else None
            inputs = masks.read_inputs(photo, mask, use_photo_alpha=mask is None)
            mask_name = mask.name if mask else f"{photo.name} (alpha)"
            earlier = sent.get((item.name, photo.name, mask_name))
            fields: dict = ({"task_uuid": earlier.task_uuid, "resume": True} if earlier else
                            {"prepare": inputs.encode})
            request = job_request(context, name=item.name, image_name=photo.name, mask_name=mask_name,
                                  placement="CURSOR", prompt=item.name.replace("_", " "), **fields)
        except (masks.MaskError, RuntimeError, RunwareError, RefusedError) as exc:
            item.status, item.reason = "failed", str(exc)
            continue
        running = Running(Job(request), item.name, photo.name, request.mask_name, "CURSOR")
        running.after_import = _asset_maker(batch, item)
        running.on_failure = _failure_noter(batch, item)
        runnings.append(RUNNER.add(running))
    return runnings


def _asset_maker(batch: Batch, item: Item):  # noqa: ANN202
    def made(objects: list[bpy.types.Object]) -> None:
        root = objects[0]
        item.task_uuid = str(root.get("sam3d_task_uuid", ""))
        item.cost = float(root.get("sam3d_cost") or 0.0)
        make_asset(root, item, batch.options, batch.library.parent / "previews")
        item.status = "done"
        batch.assets.append(root.name)
        batch.save()
    return made


def _failure_noter(batch: Batch, item: Item):  # noqa: ANN202
    def failed(reason: str) -> None:
        item.status, item.reason = "failed", reason
        batch.save()
    return failed


ACTIVE: list[Batch] = []  # the batch the panel shows (the last one started from the UI)


def run(context: bpy.types.Context, directory: Path, library: Path, options: Options, report,  # noqa: ANN001
        blocking: bool = True) -> Batch:
    """The batch: blocking (scripts, the command line) returns it with every item's outcome; otherwise its
    jobs run in the background and the app timer makes each asset as its job ends."""
    batch = Batch(library, find_items(directory), options)
    runnings = start(context, batch)
    batch.save()
    if blocking and runnings:
        run_blocking(context, runnings, report)
    elif runnings:
        ACTIVE[:] = [batch]
    return batch


class SAM3D_OT_batch(bpy.types.Operator):
    """Reconstruct every photo of a folder with its mask and write the results as an asset library"""

    bl_idname = "sam3d.batch"
    bl_label = "Build Asset Library"
    bl_options = set()  # no REGISTER, no UNDO: a paid batch must never run again from Repeat Last

    directory: StringProperty(name="Photos", subtype="DIR_PATH", description="Empty: the panel's")  # type: ignore[valid-type]
    filepath: StringProperty(name="Library", subtype="FILE_PATH", description="Empty: the panel's")  # type: ignore[valid-type]
    max_cost: FloatProperty(  # type: ignore[valid-type]
        name="Cost Limit", default=0.0, min=0.0, description="Refuse a batch that would cost more (USD). 0: no limit")
    target_size: FloatProperty(  # type: ignore[valid-type]
        name="Target Size", default=0.0, min=0.0, description="Scale each asset so its longest side is this. 0: keep")
    triangle_budget: IntProperty(  # type: ignore[valid-type]
        name="Triangle Budget", default=0, min=0, description="Decimate assets above this many triangles. 0: keep")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return reconstruct.refuse(cls, reconstruct.why_offline(context))

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.sam3d
        directory = Path(bpy.path.abspath(self.directory or settings.batch_directory))
        library = Path(bpy.path.abspath(self.filepath or settings.batch_library))
        if library.suffix != ".blend":
            self.report({"ERROR"}, "Name the library file, ending in .blend.")
            return {"CANCELLED"}
        if not directory.is_dir():
            self.report({"ERROR"}, f"{directory} is not a folder.")
            return {"CANCELLED"}
        items = find_items(directory)
        todo = len(items) - len(library_names(library) & {i.name for i in items})
        unit = next((r["cost"] for t in RUNNER.history.values() for r in t.results if r.get("cost")), 0.0038)
        self.report({"INFO"}, f"SAM 3D batch: {todo} job(s) of {len(items)}, about ${todo * unit:.4f}")
        limit = self.max_cost or settings.batch_max_cost
        if limit and todo * unit > limit:
            self.report({"ERROR"}, f"The batch would cost about ${todo * unit:.4f}, over its limit of ${limit:.4f}.")
            return {"CANCELLED"}
        options = Options(self.target_size or settings.batch_target_size,
                          self.triangle_budget or settings.batch_triangle_budget)
        blocking = bpy.app.background or not self.options.is_invoke
        batch = run(context, directory, library, options, self.report, blocking=blocking)
        if not blocking:
            self.report({"INFO"}, f"SAM 3D batch: {len(batch.items)} item(s) under way; the library is written "
                                  f"after each asset: {library}")
            return {"FINISHED"}
        counts = batch.counts()
        for item in batch.items:
            if item.status == "failed":
                self.report({"WARNING"}, f"{item.name}: {item.reason}")
        self.report({"INFO"}, f"SAM 3D batch: {counts['done']} done, {counts['failed']} failed, "
                              f"{counts['skipped']} skipped; library {library}, report {batch.report_path}")
        return {"FINISHED"} if counts["done"] or counts["skipped"] else {"CANCELLED"}


def cli(argv: list[str]) -> int:
    """`blender --command sam3d batch DIR -o LIBRARY.blend [--max-cost USD] [--size M] [--triangles N]`"""
    import argparse

    parser = argparse.ArgumentParser(prog="blender --command sam3d")
    sub = parser.add_subparsers(dest="command", required=True)
    batch = sub.add_parser("batch", help="photos and masks of a folder → an asset library (.blend)")
    batch.add_argument("directory")
    batch.add_argument("-o", "--output", required=True)
    batch.add_argument("--max-cost", type=float, default=0.0)
    batch.add_argument("--size", type=float, default=0.0)
    batch.add_argument("--triangles", type=int, default=0)
    args = parser.parse_args(argv)
    bpy.context.preferences.system.use_online_access = True  # asked for on the command line
    reason = reconstruct.why_offline(bpy.context)
    if reason:
        print(f"sam3d: {reason}")
        return 2

    def report(kind: set[str], text: str) -> None:
        print(f"sam3d: {text}", flush=True)

    done = run(bpy.context, Path(args.directory), Path(args.output).absolute(), Options(args.size, args.triangles),
               report)
    for item in done.items:
        print(f"sam3d: {item.status:8} {item.name}" + (f": {item.reason}" if item.reason else ""), flush=True)
    counts = done.counts()
    print(f"sam3d: {counts['done']} done, {counts['failed']} failed, {counts['skipped']} skipped, "
          f"${done.cost():.4f}; report {done.report_path}", flush=True)
    return 1 if counts["failed"] else 0


classes = (SAM3D_OT_batch,)
_cli_handle = None


def register() -> None:
    global _cli_handle
    _cli_handle = bpy.utils.register_cli_command("sam3d", cli)


def unregister() -> None:
    global _cli_handle
    if _cli_handle is not None:
        bpy.utils.unregister_cli_command(_cli_handle)
        _cli_handle = None
