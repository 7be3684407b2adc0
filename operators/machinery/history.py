"""The jobs of earlier sessions, from the journal: Resume (fetch a paid task by its UUID, never submit it
again), Re-import (from the GLB on disk, no request), Retry (same inputs, a new task), Open Folder."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import bpy
from bpy.props import StringProperty

from ... import preferences
from ...client import Job, Sam3dError, TaskRecord, files
from ...client.engines import ENGINES, MAX_VIEWS
from ...client.imagesize import dimensions
from ...client.jobs import INPUT_FILES, view_file
from ...client.journal import task_files
from ...client.locks import TaskLocks
from ...translations import rpt_
from ...utils import raster
from . import fitting, importing
from .checks import is_blocking, refuse, why_offline
from .job_requests import job_request
from .outcomes import note_imported, run_blocking, tell
from .runner import RUNNER, SceneJob

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

ENDED = {"imported", "failed", "cancelled", "created"}  # what Retry may send again: nothing can still be billed


MAX_INPUT_BYTES = 64 * 1024 * 1024  # a photo sent is a PNG of at most 2048 px a side: far less than this


def _record(context: bpy.types.Context, task_uuid: str) -> TaskRecord | None:
    if not files.is_uuid(task_uuid):  # a task UUID names a folder: only of UUID form
        return None
    RUNNER.refresh_history(preferences.result_folder(preferences.get(context)))
    return RUNNER.record(task_uuid)


def _folder(context: bpy.types.Context) -> Path:
    return preferences.result_folder(preferences.get(context))


def why_not_retry(record: TaskRecord | None, task_uuid: str) -> str:
    """Retry sends a new, paid task: only for a task that has ended (one that may still finish is resumed)."""
    if record is None:
        return rpt_("The journal has no task {}.").format(task_uuid)
    if task_uuid in RUNNER.jobs:
        return rpt_("This task is still running: wait for it, or cancel it first.")
    if record.status not in ENDED:
        return rpt_("This task was sent and may still finish (and be billed): use Resume to fetch it instead of "
                    "paying for a new one.")
    return ""


def _on_disk(context: bpy.types.Context, record: TaskRecord) -> bool:
    """Its GLBs are in its own folder of the result folder (regular files, reached without a link)."""
    return task_files(record, _folder(context)) is not None


def _seed(value: object) -> int | None:
    return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else None


def import_record(context: bpy.types.Context, record: TaskRecord) -> list[bpy.types.Object]:
    """The GLBs a task left on disk, imported like a fresh result (no request)."""
    info = record.info
    folder = _folder(context)
    found = task_files(record, folder)  # each GLB by its name in the task's own folder, never where a line says
    if found is None:
        raise importing.GlbImportError(rpt_("The result of this task is not on disk."))
    provenance = [importing.Provenance(record.task_uuid, _seed(f.get("seed")), f.get("cost"), info.get("prompt", ""),
                                       info.get("image", ""), info.get("mask", ""), info.get("model", ""),
                                       f["index"]) for _, f in found]
    objects = importing.import_results(context, [path for path, _ in found], provenance,
                                       name=info.get("name", "object"), placement=info.get("placement", "CURSOR"))
    engine = ENGINES.get(str(info.get("engine", "SAM3D")), ENGINES["SAM3D"])
    if engine.wants_quads(dict(info.get("engine_values", {}))):  # as when it first landed
        importing.join_quads(objects)
    for sentence in fitting.lay_over(context, objects, str(info["refine_of"])) if info.get("refine_of") else []:
        tell({"WARNING"}, sentence)
    note_imported(folder, record.task_uuid, [o.name for o in objects], info)
    RUNNER.refresh_history(folder)
    return objects


def start_from_record(context: bpy.types.Context, record: TaskRecord, **fields: object) -> SceneJob:
    """A job with the journalled settings of `record` (Resume: the same task, free; Retry: a new, paid one)."""
    info = record.info
    request = job_request(context, name=info.get("name", "object"), image_name=info.get("image", ""),
                          mask_name=info.get("mask", ""), placement=info.get("placement", "CURSOR"),
                          prompt=info.get("prompt", ""), seed=_seed(info.get("seed")),
                          number_results=int(info.get("number_results", 1)),
                          engine=info.get("engine", "SAM3D"), refine_of=str(info.get("refine_of", "")),
                          text_only=bool(info.get("text_only")), engine_values=dict(info.get("engine_values", {})),
                          view_names=list(info.get("views", [])), **fields)  # type: ignore[arg-type]
    return RUNNER.add(SceneJob(Job(request)))


def retry_inputs(result_dir: Path, task_uuid: str, same_size: bool = True) -> tuple[bytes, bytes] | None:
    """The photo and mask a task sent, from its own folder: regular files reached without a link, within a bound,
    two PNGs no larger than what is ever sent, of one size (`same_size`; an engine shown the cut-out was sent the
    object's crop). None otherwise (the panel's sentence says so)."""
    found = _sent_pngs(result_dir, task_uuid, INPUT_FILES)
    if found is None:
        return None
    (photo, photo_size), (mask, mask_size) = found
    return (photo, mask) if photo_size == mask_size or not same_size else None


def retry_views(result_dir: Path, task_uuid: str, count: int) -> list[bytes] | None:
    """The other views a task sent (`count` of them, as journalled), read as `retry_inputs` reads its photo."""
    found = _sent_pngs(result_dir, task_uuid, [view_file(n) for n in range(1, min(count, MAX_VIEWS) + 1)])
    return None if found is None else [data for data, _ in found]


def _sent_pngs(result_dir: Path, task_uuid: str, names: Iterable[str]) -> list[tuple[bytes, tuple[int, int]]] | None:
    found = []
    for name in names:
        try:
            data = files.read_bytes(Path(result_dir) / task_uuid / name, max_bytes=MAX_INPUT_BYTES, root=result_dir)
        except OSError:
            return None
        size = dimensions(data[:4096]) if data.startswith(b"\x89PNG") else None
        if size is None or max(size) > raster.MAX_SIDE:
            return None
        found.append((data, size))
    return found


class SAM3D_OT_reimport(bpy.types.Operator):
    """Import a finished job again from its GLB on disk (no request, nothing paid)"""

    bl_idname = "sam3d.reimport"
    bl_label = "Re-import"
    bl_options = {"UNDO"}  # not REGISTER: Repeat Last must never pay again

    task_uuid: StringProperty(name="Task", default="", options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        record = _record(context, self.task_uuid)
        if record is None:
            self.report({"ERROR"}, rpt_("The journal has no task {}.").format(self.task_uuid))
            return {"CANCELLED"}
        if not _on_disk(context, record):
            self.report({"ERROR"}, rpt_("The result of this task is not on disk: use Resume to fetch it.")
                        if record.unfinished else rpt_("The result of this task is not on disk."))
            return {"CANCELLED"}
        try:
            objects = import_record(context, record)
        except importing.GlbImportError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, rpt_("SAM 3D: re-imported {}").format(", ".join(o.name for o in objects)))
        return {"FINISHED"}


class SAM3D_OT_resume(bpy.types.Operator):
    """Fetch and import the jobs that were submitted but never finished (after a quit or a crash).
    They are fetched by task UUID: nothing is submitted or paid again"""

    bl_idname = "sam3d.resume"
    bl_label = "Resume"
    bl_options = {"UNDO"}  # not REGISTER: Repeat Last must never pay again

    task_uuid: StringProperty(  # type: ignore[valid-type]
        name="Task", default="", description="Empty: every unfinished job", options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        RUNNER.refresh_history(preferences.result_folder(preferences.get(context)))
        todo = [t for t in RUNNER.unfinished() if not self.task_uuid or t.task_uuid == self.task_uuid]
        if not todo:
            self.report({"INFO"}, rpt_("Nothing to resume."))
            return {"CANCELLED"}
        entries, imported = [], 0
        for record in todo:
            if _on_disk(context, record):  # downloaded before the crash: only the import is missing
                try:
                    imported += len(self._from_disk(context, record))
                except importing.GlbImportError as exc:
                    self.report({"ERROR"}, str(exc))
                continue
            reason = why_offline(context)
            if reason:
                self.report({"ERROR"}, reason)
                return {"CANCELLED"}
            try:
                entries.append(self._fetch(context, record))
            except Sam3dError as exc:
                self.report({"ERROR"}, str(exc))
                return {"CANCELLED"}
        if is_blocking(self, context) and entries:
            return run_blocking(context, entries, self.report)
        if entries:
            self.report({"INFO"}, rpt_("SAM 3D: resuming {} job(s); they import when they finish.").format(
                len(entries)))
        return {"FINISHED"} if entries or imported else {"CANCELLED"}

    @staticmethod
    def _from_disk(context: bpy.types.Context, record: TaskRecord) -> list[bpy.types.Object]:
        """Import a downloaded task once: never twice into one file, never while another Blender holds it."""
        folder = preferences.result_folder(preferences.get(context))
        already = importing.objects_of_task(record.task_uuid)
        if already:
            note_imported(folder, record.task_uuid, [o.name for o in already], record.info)
            RUNNER.refresh_history(folder)
            return []
        locks = TaskLocks(folder)
        if not locks.acquire(record.task_uuid):
            return []
        try:
            return import_record(context, record)
        finally:
            locks.release(record.task_uuid)

    @staticmethod
    def _fetch(context: bpy.types.Context, record: TaskRecord) -> SceneJob:
        return start_from_record(context, record, task_uuid=record.task_uuid, resume=True)


class SAM3D_OT_retry(bpy.types.Operator):
    """Run a job again with the same inputs and settings, as a new task"""

    bl_idname = "sam3d.retry"
    bl_label = "Retry"
    bl_options = {"UNDO"}  # not REGISTER: Repeat Last must never pay again

    task_uuid: StringProperty(name="Task", default="", options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse(cls, why_offline(context))

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        record = _record(context, self.task_uuid)
        reason = why_not_retry(record, self.task_uuid)
        if reason:
            self.report({"ERROR"}, reason)
            return {"CANCELLED"}
        assert record is not None
        engine = ENGINES.get(str(record.info.get("engine", "SAM3D")), ENGINES["SAM3D"])
        text_only = bool(record.info.get("text_only"))  # a prompt alone: nothing to read from disk
        inputs = (b"", b"") if text_only else retry_inputs(_folder(context), record.task_uuid, same_size=engine.posed)
        views = retry_views(_folder(context), record.task_uuid, len(record.info.get("views", [])))
        if inputs is None or views is None:
            self.report({"ERROR"}, rpt_("The inputs of this job are not on disk any more: reconstruct it from the "
                                        "panel."))
            return {"CANCELLED"}
        photo, mask = inputs
        try:
            entry = start_from_record(context, record, prepare=lambda: (photo, mask),
                                      views=(lambda: views) if views else None)
        except Sam3dError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if is_blocking(self, context):
            return run_blocking(context, [entry], self.report)
        self.report({"INFO"}, rpt_("SAM 3D: retrying {}; it imports when it finishes.").format(entry.name))
        return {"FINISHED"}


class SAM3D_OT_open_folder(bpy.types.Operator):
    """Open the folder of a job's results (or the result folder) in the file manager"""

    bl_idname = "sam3d.open_folder"
    bl_label = "Open Folder"

    task_uuid: StringProperty(name="Task", default="", options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        folder = _folder(context)
        if files.is_uuid(self.task_uuid) and (folder / self.task_uuid).is_dir() and \
                not (folder / self.task_uuid).is_symlink():
            folder = folder / self.task_uuid
        bpy.ops.wm.path_open(filepath=str(folder))
        return {"FINISHED"}


classes = (SAM3D_OT_reimport, SAM3D_OT_resume, SAM3D_OT_retry, SAM3D_OT_open_folder)
