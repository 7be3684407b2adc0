"""Asset library building: a folder of photos and masks in, a library of assets out (library.py writes it).

Inputs, found under the folder (each sub-folder is a catalog):
- `name.png` with `name_mask.png` (any image type);
- a cut-out `name.png` with no `_mask` partner: its alpha is the mask;
- a folder `name/` holding `image.png` and mask files (Meta's layout): one asset per mask.
A real size comes from the file name (`chair@0.9m.png`: 0.9 m high) or a `sizes.csv` beside the photos.

The batch *feeds* the jobs: only a few items are read and in flight at a time (Jobs at Once, plus one), each
item's asset is written to its own file as soon as its result is imported and then leaves the open file,
so time and memory per asset stay flat over thousands of photos. An item is known by what it is (its
source files, relative to the folder, and their content hashes), never by a datablock's name: an item done
is skipped, an item already sent is fetched by its task UUID, and `--shard K/N` splits the items the same
way on every machine, so N processes build one library without collisions or double payments.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from ... import preferences
from ...client import Job, Sam3dError, files
from ...client.engines import ENGINES
from ...client.errors import Code
from ...client.jobs import Event
from ...client.journal import task_files
from ...client.money import Limit
from ...client.photo_folder import Item, file_hash, find_items, shard
from ...client.tasks import CAPTION_MODEL
from ...properties import engine_values
from ...translations import iface_, rpt_, tip_
from ...utils import captions, contact_sheet, schema
from ..machinery import pixels
from ..machinery.checks import is_blocking, refuse, why_offline
from ..machinery.inputs import settings_of, window_manager_of
from ..machinery.job_requests import job_request
from ..machinery.outcomes import conclude, tell
from ..machinery.runner import RUNNER, TICK, Report, SceneJob
from . import allocator
from .assets import Library, make_asset, remove_from_file, render_preview

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

log = logging.getLogger(__name__)
SHEET = "index.html"  # the contact sheet, beside the report
REPORT_EVERY = 2.0  # seconds between rewrites of the report while a batch runs
MAX_NAME = 63  # characters of an asset's name read back from a (shared) state file: Blender's own name limit




# --- the batch ------------------------------------------------------------------------------------------


@dataclass
class Options:
    target_size: float = 0.0  # longest side after scaling; 0 keeps SAM 3D's size
    triangle_budget: int = 0  # decimate above it; 0 keeps every triangle
    bake: int = 0  # bake colours into a texture of this size; 0: keep vertex colours
    max_cost: float = 0.0  # the batch's own cost limit, USD; 0: none (the session's limit still holds)
    shard: tuple[int, int] = (1, 1)
    caption: bool = False  # caption each new item (paid): names, descriptions and tags from what is in it
    engine: str = "SAM3D"  # the engine of client/engines.py that makes each asset
    engine_values: dict[str, Any] = field(default_factory=dict)  # its settings to send (the panel's ticked ones)


@dataclass
class Batch:
    """One run over a folder: its items, what became of each, and the library it writes."""

    folder: Path
    library: Library
    items: list[Item]
    options: Options = field(default_factory=Options)
    started: float = field(default_factory=time.monotonic)
    limit: Limit = field(default_factory=lambda: Limit("the batch's Cost Limit"))
    cancelled: bool = False
    ended: float | None = None  # when its last item ended (the panel's clock stops there)
    _next: int = 0
    _active: dict[str, Item] = field(default_factory=dict)  # task UUID → item, jobs in flight
    _captions: dict[str, dict[str, str]] = field(default_factory=dict)  # item key → its caption's UUID and text
    _reported: float = 0.0
    _collect: bool = False  # an item ended since the last garbage collection

    @property
    def report_path(self) -> Path:
        k, n = self.options.shard
        return self.library.folder / ("sam3d-report.json" if n == 1 else f"sam3d-report.{k}-of-{n}.json")

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for i in self.items if i.status == s) for s in ("done", "failed", "skipped", "pending")}

    def cost(self) -> float:
        return sum(i.cost for i in self.items)

    @property
    def elapsed(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    @property
    def running(self) -> bool:
        return bool(self._active) or (self._next < len(self.items) and not self.cancelled)

    def feed(self, context: bpy.types.Context) -> list[SceneJob]:
        """Start jobs for the next items until Jobs at Once (plus one waiting) are in flight."""
        self.collect()
        started = []
        room = preferences.get(context).max_jobs + 1
        while not self.cancelled and self._next < len(self.items) and len(self._active) < room:
            item = self.items[self._next]
            self._next += 1
            if item.status != "pending":  # refused when found (a real size that cannot be right)
                continue
            entry = self._start(context, item)
            if entry is not None:
                self._active[entry.job.task_uuid] = item
                started.append(entry)
        self.save_report()
        return started

    def collect(self) -> None:
        """Free what the items ended since the last call left in reference cycles. The glTF importer leaves
        cycles that hold its calls' frames (the parsed GLB, the item's job, its photo's pixels); Python's full
        collection comes rarely, and a batch of 160 assets had grown by over 1 GB before it did."""
        if self._collect:
            self._collect = False
            gc.collect()
            allocator.trim()

    def cancel(self) -> None:
        """Stop feeding and cancel this batch's jobs (and no others)."""
        self.cancelled = True
        RUNNER.cancel(batch=self)
        for item in self.items:
            if item.status == "pending" and item not in self._active.values():
                item.status, item.reason = "skipped", "the batch was cancelled"

    def _start(self, context: bpy.types.Context, item: Item) -> SceneJob | None:
        """The item's job: skipped when done, fetched by UUID when already sent, else a new (paid) task."""
        try:
            hashes = {"photo": file_hash(item.photo), "mask": file_hash(item.mask) if item.mask else ""}
            if self.library.is_done(item.key, hashes):
                item.status, item.reason = "skipped", "already in the library"
                state = self.library.state(item.key)  # the sheet shows it as it was made
                item.caption = _caption_of_state(state).get("caption", "")
                if isinstance(state.get("name"), str) and state["name"].strip():
                    item.name = captions.clean(state["name"])[:MAX_NAME]
                return None
            earlier = self._earlier(context, item, hashes)
            kept = self._captions[item.key] = _caption_of_state(self.library.state(item.key))
            fields: dict[str, Any] = {
                "name": item.name, "image_name": item.photo, "mask_name": item.mask or f"{item.photo} (alpha)",
                "placement": "CURSOR", "prompt": item.name.replace("_", " "), "source": {"key": item.key, **hashes},
                "engine": self.options.engine, "engine_values": dict(self.options.engine_values)}
            if earlier:
                request = job_request(context, **earlier, **fields)
            else:
                inputs = self._inputs(context, item)
                ask = self.options.caption and "caption_uuid" not in kept  # a caption is never asked twice
                cutout = not ENGINES[self.options.engine].posed  # an engine without a mask input: the cut-out
                prepare = (lambda inputs=inputs: (inputs.cutout_png(), inputs.encode()[1])) if cutout else inputs.encode
                request = job_request(context, limits=(self.limit,), prepare=prepare,
                                      caption=inputs.cutout_png if ask else None, **fields)
                if request.caption is not None:
                    kept["caption_uuid"] = request.caption.task_uuid
                try:  # written before anything is sent: a kill from here on is resumed by this UUID, anywhere
                    self.library.set_state(item.key, state="claimed", task_uuid=request.task_uuid, hashes=hashes,
                                           **kept)
                except OSError:
                    for held in (request.reservation, request.caption.reservation if request.caption else None):
                        if held is not None:  # nothing was sent: the money goes back
                            held.release()
                    raise
        except (OSError, pixels.MaskError, RuntimeError, Sam3dError) as exc:
            item.status, item.reason = "failed", _sentence(exc)
            return None
        entry = SceneJob(Job(request), batch=self)
        entry.after_import = lambda objects, item=item, hashes=hashes, entry=entry: self._made(
            item, hashes, objects, entry.job.outcome)
        entry.on_failure = lambda reason, item=item, entry=entry: self._failed(item, reason, entry)
        return RUNNER.add(entry)

    def _earlier(self, context: bpy.types.Context, item: Item, hashes: dict[str, str]) -> dict:
        """How to bring this item's earlier task, when one was sent and may still bring its result: from the
        files on disk (`downloaded`), or fetched by its UUID (`task_uuid`). Empty: send a new task."""
        state = self.library.state(item.key)  # a task UUID of UUID form only (Library.state)
        uuid = state.get("task_uuid")
        if state.get("state") != "claimed" or state.get("hashes") != hashes or not files.is_uuid(uuid):
            return {}
        assert isinstance(uuid, str)
        folder = preferences.result_folder(preferences.get(context))
        RUNNER.refresh_history(folder)
        record = RUNNER.record(uuid)
        if record is None:  # another machine's journal: Runware knows the task by its UUID
            return {"task_uuid": uuid, "resume": True}
        if task_files(record, folder) is not None:  # its files, in its own folder of this result folder
            return {"task_uuid": uuid, "resume": True, "downloaded": list(record.files)}
        return {"task_uuid": uuid, "resume": True} if record.unfinished else {}

    def _journalled(self, item: Item) -> str:
        """The caption this machine's journal holds for the item's task (asked by an earlier, killed run)."""
        record = RUNNER.record(item.task_uuid) if files.is_uuid(item.task_uuid) else None
        return str(record.info.get("caption", "")) if record is not None else ""

    def _inputs(self, context: bpy.types.Context, item: Item) -> pixels.Inputs:
        """The item's pixels at the size sent; its images leave the open file at once (memory stays flat)."""
        loaded = []
        try:
            photo = bpy.data.images.load(item.photo)
            loaded.append(photo)
            mask = bpy.data.images.load(item.mask) if item.mask else None
            if mask is not None:
                loaded.append(mask)
            return pixels.read_inputs(photo, mask, use_photo_alpha=mask is None,
                                      max_megapixels=preferences.get(context).max_photo_megapixels)
        finally:
            for image in loaded:
                bpy.data.images.remove(image)

    def _made(self, item: Item, hashes: dict[str, str], objects: list[bpy.types.Object],
              outcome: Event | None = None) -> None:
        """The result is in the open file: make it an asset, write it to its own file, then take it out."""
        self._active.pop(str(objects[0].get(schema.TASK_UUID, "")), None)
        root = objects[0]
        item.task_uuid = str(root.get(schema.TASK_UUID, ""))
        item.cost = float(root.get(schema.COST) or 0.0) + float(outcome.caption_cost or 0.0 if outcome else 0.0)
        source = Path(item.mask or item.photo).name
        kept = self._captions.pop(item.key, {})
        item.caption = captions.clean(root.get(schema.CAPTION) or kept.get("caption") or self._journalled(item))
        if item.caption:
            kept["caption"] = item.caption
            named = captions.short_name(item.caption)
            if named and captions.is_anonymous(Path(item.key).stem.split("@")[0]):
                item.name = named  # IMG_4471, 0, image: the caption says what it is
        catalog = item.catalog.split("/")[-1]
        engine = ENGINES[self.options.engine]
        tags = ["SAM 3D", engine.label, *captions.tags(item.caption, catalog), catalog, Path(item.photo).stem]
        make_asset(root, catalog=item.catalog, tags=list(dict.fromkeys(tags)),
                   description=((item.caption + "\n\n" if item.caption else "")
                                + f"{engine.label} reconstruction of {source} in {Path(item.photo).name}. "
                                f"Task {item.task_uuid}, seed {root.get(schema.SEED)}"
                                + (f", cost ${item.cost:.4f}" if root.get(schema.COST) is not None else "") + "."),
                   provenance={**{k: root[k] for k in (schema.TASK_UUID, schema.SEED, schema.COST, schema.PROMPT)
                                  if root.get(k) is not None}, schema.SOURCE: item.key,
                               schema.SOURCE_PHOTO: item.photo},
                   target_size=self.options.target_size, real_height=item.height,
                   triangle_budget=0 if self.options.bake else self.options.triangle_budget)
        if self.options.bake:
            from ..bake import bake_object  # only batches that bake need it

            textures = files.ensure_dir(self.library.folder, *Path(item.key).parent.parts, "textures")  # no link
            bake_object(bpy.context, root, resolution=self.options.bake, max_triangles=self.options.triangle_budget,
                        save_dir=textures)
        preview = render_preview(root)  # of the finished asset: its real size, its budget, its baked texture
        try:
            with _lent_name(root, item.name):
                self.library.write_asset(item.key, root)
            self.library.add_catalogs({item.catalog})
            files.write_atomically(self.library.folder / contact_sheet.preview_path(item.key), preview,
                                   root=self.library.folder)
            self.library.set_state(item.key, state="done", task_uuid=item.task_uuid, hashes=hashes,
                                   asset=self.library.asset_path(item.key).name, cost=item.cost, name=item.name,
                                   **kept)
        except OSError as exc:  # the item fails with a sentence; its result stays in the result folder
            raise Sam3dError(Code.BAD_LIBRARY, rpt_(
                "{} could not be written to the library ({}); its result is kept, and running the batch again "
                "writes it without paying again.").format(item.name, exc.strerror or exc)) from exc
        finally:
            remove_from_file(root)
        item.status = "done"
        self._collect = True
        self.save_report()

    def _failed(self, item: Item, reason: str, entry: SceneJob) -> None:
        self._active = {u: i for u, i in self._active.items() if i is not item}
        self._collect = True
        item.status, item.reason = "failed", reason
        error = entry.job.outcome.error if entry.job.outcome is not None else None
        lost = (Code.TASK_FAILED_OR_NOT_FOUND, Code.NOT_FOUND)
        if entry.job.request.resume and error is not None and error.code in lost:  # the next run sends it
            self.library.set_state(item.key, state="lost", task_uuid=entry.job.task_uuid,
                                   **self._captions.get(item.key, {}))
        self._captions.pop(item.key, None)
        self.save_report()

    def save_report(self, force: bool = False) -> None:
        """The report, replaced atomically; at most every REPORT_EVERY seconds while the batch runs. Called as
        each item ends: the batch's clock stops with its last one."""
        now = time.monotonic()
        if self.ended is None and not self.running:
            self.ended = now
        if not force and self.running and now - self._reported < REPORT_EVERY:
            return
        self._reported = now
        data = {"library": str(self.library.folder), "shard": list(self.options.shard), **self.counts(),
                "cost": self.cost(), "items": [asdict(i) for i in self.items]}
        from .assets import write_atomically

        write_atomically(self.report_path, json.dumps(data, indent=1).encode(), self.library.folder)
        write_atomically(self.library.folder / SHEET, self.sheet().encode(), self.library.folder)

    def sheet(self) -> str:
        """The contact sheet of this run's items (index.html): previews by relative path, as written."""
        folder = self.library.folder
        entries = [contact_sheet.Entry(i.name, i.key, i.catalog, i.status, i.reason, i.cost,
                                       preview=i.status in ("done", "skipped") and
                                       files.is_regular(folder / contact_sheet.preview_path(i.key), root=folder),
                                       caption=i.caption)
                   for i in self.items]
        return contact_sheet.page(f"SAM 3D asset library: {folder.name}", entries, self.cost())


@contextlib.contextmanager
def _lent_name(root: bpy.types.Object, name: str) -> Iterator[None]:
    """The asset carries its item's name even when an unrelated object of the open file has it: that object
    lends its name for the time the asset is written, and gets it back."""
    other = bpy.data.objects.get(name)
    if other is root:
        other = None
    if other is not None:
        other.name = f"{name}.sam3d-lent"
    root.name = name
    try:
        yield
    finally:
        if other is not None:
            if root.name == name:
                root.name = f"{name}.sam3d-asset"
            other.name = name


def _caption_of_state(state: dict[str, Any]) -> dict[str, str]:
    """What an item's state (a shared file) says of its caption: the UUID it was asked under, and its text."""
    kept = {k: state[k] for k in ("caption_uuid", "caption") if isinstance(state.get(k), str)}
    if "caption_uuid" in kept and not files.is_uuid(kept["caption_uuid"]):
        kept.pop("caption_uuid")
    if "caption" in kept:
        kept["caption"] = captions.clean(kept["caption"])
    return kept


def _sentence(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return f"cannot read {getattr(exc, 'filename', '') or 'a file'}: {exc.strerror or exc}"
    return str(exc)


ACTIVE: list[Batch] = []  # the batch the panel shows (the last one started from the UI)


def prepare(folder: Path, library_folder: Path, options: Options) -> Batch:
    """A batch over the folder's items of its shard (nothing read or sent yet)."""
    if library_folder.suffix.lower() == ".blend":
        raise Sam3dError(Code.BAD_LIBRARY, rpt_("The library is a folder (one .blend per asset, which the Asset "
                                              "Browser reads as one library): give a folder, e.g. {}.").format(
            library_folder.with_suffix("")))
    if not folder.is_dir():
        raise Sam3dError(Code.BAD_LIBRARY, rpt_("{} is not a folder.").format(folder))
    k, n = options.shard
    items = shard(find_items(folder), k, n)
    if options.engine != "SAM3D":  # another engine's asset is another asset: its own file and state, beside SAM 3D's
        for item in items:
            item.key = f"{item.key}@{options.engine.lower()}"
    batch = Batch(folder, Library(library_folder), items, options)
    batch.limit.set(options.max_cost)
    return batch


def estimate(batch: Batch) -> tuple[int, float]:
    """(items not yet in the library, their cost at the next reservation's price): the batch's own words."""
    todo = sum(1 for i in batch.items if i.status == "pending" and batch.library.state(i.key).get("state") != "done")
    prefs = preferences.get()  # the price of the models the next reservations use
    spec = ENGINES[batch.options.engine]
    cost = RUNNER.ledger.estimate("3dInference", preferences.engine_model(prefs, spec.id), todo,
                                  floor=spec.worst_case_price)
    if batch.options.caption:  # an upper bound: an item captioned by an earlier run is not asked again
        cost += RUNNER.ledger.estimate("caption", prefs.caption_model.strip() or CAPTION_MODEL, todo)
    return todo, cost


def estimate_text(batch: Batch) -> str:
    """How many jobs a batch runs, of how many items, and about what they cost (its limit named)."""
    todo, cost = estimate(batch)
    limit = batch.options.max_cost
    text = rpt_("{} job(s) of {} item(s), about ${:.4f}").format(todo, len(batch.items), cost)
    return text + (rpt_("; items past the cost limit of ${:.4f} are refused").format(limit) if limit else "")


def run(context: bpy.types.Context, batch: Batch, report: Report, blocking: bool = True) -> Batch:
    """The batch: blocking (scripts, the command line) returns it with every item's outcome; otherwise the
    app timer feeds it, and makes each asset as its job ends."""
    if blocking:
        try:
            _run_blocking(context, batch, report)
        finally:
            batch.save_report(force=True)
    else:
        ACTIVE[:] = [batch]
        RUNNER.feeders[:] = [lambda: _feed_in_background(batch)]
        _feed_in_background(batch)
    return batch


def _run_blocking(context: bpy.types.Context, batch: Batch, report: Report) -> None:
    entries = {e.job.task_uuid: e for e in batch.feed(context)}
    for entry in entries.values():
        entry.owned = True
    while entries:
        RUNNER.step()
        for uuid in [u for u, e in entries.items() if e.job.done]:
            conclude(context, entries.pop(uuid), lambda kind, text: None)
        for entry in batch.feed(context):
            entry.owned = True
            entries[entry.job.task_uuid] = entry
        if entries:
            next(iter(entries.values())).job.drain(block=TICK)
    batch.collect()  # the last items' (feed collected the others')


def _feed_in_background(batch: Batch) -> None:
    batch.feed(bpy.context)
    if not batch.running:
        RUNNER.feeders[:] = []
        batch.save_report(force=True)
        counts = batch.counts()
        tell({"INFO"}, rpt_("SAM 3D batch: {} done, {} failed, {} skipped; library {}").format(
            counts["done"], counts["failed"], counts["skipped"], batch.library.folder))


class SAM3D_OT_batch(bpy.types.Operator):
    """Reconstruct every photo of a folder with its mask and write the results as an asset library"""

    bl_idname = "sam3d.batch"
    bl_label = "Build Asset Library"
    bl_options = set()  # no REGISTER, no UNDO: a paid batch must never run again from Repeat Last

    # Each is the panel's setting unless given (a script, or the redo of a batch).
    directory: StringProperty(name="Photos", subtype="DIR_PATH", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    filepath: StringProperty(name="Library", subtype="DIR_PATH", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    max_cost: FloatProperty(name="Cost Limit", min=0.0, options={"SKIP_SAVE"})  # type: ignore[valid-type]
    target_size: FloatProperty(name="Target Size", min=0.0, options={"SKIP_SAVE"})  # type: ignore[valid-type]
    triangle_budget: IntProperty(name="Triangle Budget", min=0, options={"SKIP_SAVE"})  # type: ignore[valid-type]
    bake: IntProperty(name="Bake Texture", min=0, max=8192, options={"SKIP_SAVE"})  # type: ignore[valid-type]
    caption: BoolProperty(name="Name from Caption", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    engine: EnumProperty(  # type: ignore[valid-type]
        name="Engine", options={"SKIP_SAVE"}, items=[(e.id, e.label, e.description) for e in ENGINES.values()])
    confirmed: BoolProperty(default=False, options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse(cls, why_offline(context) or (tip_("A batch is running: cancel it or wait") if any(
            b.running for b in ACTIVE) else ""))

    def _setting(self, context: bpy.types.Context, name: str, panel_name: str) -> Any:
        """The operator's value when the caller gave one, else the panel's (one rule for every setting)."""
        source = self if self.properties.is_property_set(name) else settings_of(context)
        return getattr(source, name if source is self else panel_name)

    def _prepared(self, context: bpy.types.Context) -> Batch:
        directory = Path(bpy.path.abspath(str(self._setting(context, "directory", "batch_directory"))))
        library = Path(bpy.path.abspath(str(self._setting(context, "filepath", "batch_library"))))
        options = Options(float(self._setting(context, "target_size", "batch_target_size")),
                          int(self._setting(context, "triangle_budget", "batch_triangle_budget")),
                          int(self._setting(context, "bake", "batch_bake")),
                          float(self._setting(context, "max_cost", "batch_max_cost")),
                          caption=bool(self._setting(context, "caption", "batch_caption")),
                          engine=str(self._setting(context, "engine", "batch_engine")))
        options.engine_values = engine_values(settings_of(context), options.engine)
        return prepare(directory, library, options)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        """From the panel: say how many jobs it runs and about what they cost, and start only on OK."""
        if is_blocking(self, context):
            return self.execute(context)
        try:
            batch = self._prepared(context)
        except Sam3dError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.confirmed = True  # the question's OK runs execute: in the background, as from the panel
        return window_manager_of(context).invoke_confirm(  # type: ignore[call-arg]  # 4.1+: not in older stubs
            self, event, title=iface_("Build Asset Library"), message=estimate_text(batch),
            confirm_text=iface_("Build"), icon="INFO")

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        try:
            batch = self._prepared(context)
        except Sam3dError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        library = batch.library.folder
        self.report({"INFO"}, "SAM 3D batch: " + estimate_text(batch))
        blocking = is_blocking(self, context) and not (self.confirmed and context.window is not None
                                                      and not bpy.app.background)
        run(context, batch, self.report, blocking=blocking)
        if not blocking:
            self.report({"INFO"}, rpt_("SAM 3D batch: {} item(s) under way; each asset is written to {} as it is "
                                       "made").format(len(batch.items), library))
            return {"FINISHED"}
        counts = batch.counts()
        for item in batch.items:
            if item.status == "failed":
                self.report({"WARNING"}, rpt_("{}: {}").format(item.name, item.reason))
        self.report({"INFO"}, rpt_("SAM 3D batch: {} done, {} failed, {} skipped; library {}, report {}").format(
            counts["done"], counts["failed"], counts["skipped"], library, batch.report_path))
        return {"FINISHED"} if counts["done"] or counts["skipped"] else {"CANCELLED"}


class SAM3D_OT_batch_cancel(bpy.types.Operator):
    """Stop the asset-library batch: its running jobs are cancelled (a task already sent stays resumable: the
    next run of the batch fetches it without paying again); other reconstructions go on"""

    bl_idname = "sam3d.batch_cancel"
    bl_label = "Cancel Batch"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse(cls, "" if any(b.running for b in ACTIVE) else tip_("No batch is running"))

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        for batch in ACTIVE:
            batch.cancel()
        return {"FINISHED"}


classes = (SAM3D_OT_batch, SAM3D_OT_batch_cancel)


def unregister() -> None:
    for batch in ACTIVE:
        batch.cancel()
    ACTIVE.clear()
