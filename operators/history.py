"""The jobs of earlier sessions, from the journal: Resume (fetch a paid task by its UUID, never submit it
again), Re-import (from the GLB on disk, no request), Retry (same inputs, a new task), Open Folder."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty

from .. import preferences
from ..client import Job, RunwareError, TaskRecord
from ..client.jobs import INPUT_FILES
from . import importing
from .reconstruct import refuse, why_offline
from .runner import RUNNER, RefusedError, Running, job_request, note_imported, run_blocking


def _record(context: bpy.types.Context, task_uuid: str) -> TaskRecord | None:
    RUNNER.refresh_history(preferences.result_folder(preferences.get(context)))
    return RUNNER.history.get(task_uuid)


def _on_disk(record: TaskRecord) -> bool:
    return bool(record.files) and all(Path(f.get("path", "")).is_file() for f in record.files)


def _seed(value: object) -> int | None:
    return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else None


def import_record(context: bpy.types.Context, record: TaskRecord) -> list[bpy.types.Object]:
    """The GLBs a task left on disk, imported like a fresh result (no request)."""
    info = record.info
    files = sorted(record.files, key=lambda f: f.get("index", 0))
    provenance = [importing.Provenance(record.task_uuid, _seed(f.get("seed")), f.get("cost"), info.get("prompt", ""),
                                       info.get("image", ""), info.get("mask", ""), info.get("model", ""),
                                       int(f.get("index", 0))) for f in files]
    objects = importing.import_results(context, [Path(f["path"]) for f in files], provenance,
                                       name=info.get("name", "object"), placement=info.get("placement", "CURSOR"))
    folder = RUNNER.history_folder or Path()
    note_imported(folder, record.task_uuid, objects)
    RUNNER.refresh_history(folder)
    return objects


def start_from_record(context: bpy.types.Context, record: TaskRecord, **fields: object) -> Running:
    """A job with the journalled settings of `record` (Resume: the same task; Retry: a new one)."""
    info = record.info
    request = job_request(context, name=info.get("name", "object"), image_name=info.get("image", ""),
                          mask_name=info.get("mask", ""), placement=info.get("placement", "CURSOR"),
                          prompt=info.get("prompt", ""), seed=_seed(info.get("seed")),
                          number_results=int(info.get("number_results", 1)), **fields)
    return RUNNER.add(Running(Job(request), request.name, request.image_name, request.mask_name, request.placement))


def _blocking(op: bpy.types.Operator) -> bool:
    return bpy.app.background or not op.options.is_invoke


class SAM3D_OT_reimport(bpy.types.Operator):
    """Import a finished job again from its GLB on disk (no request, nothing paid)"""

    bl_idname = "sam3d.reimport"
    bl_label = "Re-import"
    bl_options = {"UNDO"}  # not REGISTER: Repeat Last must never pay again

    task_uuid: StringProperty(name="Task", default="", options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[str]:
        record = _record(context, self.task_uuid)
        if record is None:
            self.report({"ERROR"}, f"The journal has no task {self.task_uuid}.")
            return {"CANCELLED"}
        if not _on_disk(record):
            self.report({"ERROR"}, "The result of this task is not on disk"
                        + (": use Resume to fetch it." if record.unfinished else "."))
            return {"CANCELLED"}
        try:
            objects = import_record(context, record)
        except importing.GlbImportError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"SAM 3D: re-imported {', '.join(o.name for o in objects)}")
        return {"FINISHED"}


class SAM3D_OT_resume(bpy.types.Operator):
    """Fetch and import the jobs that were submitted but never finished (after a quit or a crash).
    They are fetched by task UUID: nothing is submitted or paid again"""

    bl_idname = "sam3d.resume"
    bl_label = "Resume"
    bl_options = {"UNDO"}  # not REGISTER: Repeat Last must never pay again

    task_uuid: StringProperty(  # type: ignore[valid-type]
        name="Task", default="", description="Empty: every unfinished job", options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        RUNNER.refresh_history(preferences.result_folder(preferences.get(context)))
        todo = [t for t in RUNNER.unfinished() if not self.task_uuid or t.task_uuid == self.task_uuid]
        if not todo:
            self.report({"INFO"}, "Nothing to resume.")
            return {"CANCELLED"}
        runnings, imported = [], 0
        for record in todo:
            if _on_disk(record):  # downloaded before the crash: only the import is missing
                try:
                    imported += len(import_record(context, record))
                except importing.GlbImportError as exc:
                    self.report({"ERROR"}, str(exc))
                continue
            reason = why_offline(context)
            if reason:
                self.report({"ERROR"}, reason)
                return {"CANCELLED"}
            try:
                runnings.append(self._fetch(context, record))
            except (RefusedError, RunwareError) as exc:
                self.report({"ERROR"}, str(exc))
                return {"CANCELLED"}
        if _blocking(self) and runnings:
            return run_blocking(context, runnings, self.report)
        if runnings:
            self.report({"INFO"}, f"SAM 3D: resuming {len(runnings)} job(s); they import when they finish.")
        return {"FINISHED"} if runnings or imported else {"CANCELLED"}

    @staticmethod
    def _fetch(context: bpy.types.Context, record: TaskRecord) -> Running:
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

    def execute(self, context: bpy.types.Context) -> set[str]:
        record = _record(context, self.task_uuid)
        folder = (RUNNER.history_folder or Path()) / self.task_uuid
        if record is None:
            self.report({"ERROR"}, f"The journal has no task {self.task_uuid}.")
            return {"CANCELLED"}
        if not all((folder / name).is_file() for name in INPUT_FILES):
            self.report({"ERROR"}, "The inputs of this job are not on disk any more: reconstruct it from the panel.")
            return {"CANCELLED"}
        photo, mask = ((folder / name).read_bytes() for name in INPUT_FILES)
        try:
            running = start_from_record(context, record, prepare=lambda: (photo, mask))
        except RefusedError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if _blocking(self):
            return run_blocking(context, [running], self.report)
        self.report({"INFO"}, f"SAM 3D: retrying {running.name}; it imports when it finishes.")
        return {"FINISHED"}


class SAM3D_OT_open_folder(bpy.types.Operator):
    """Open the folder of a job's results (or the result folder) in the file manager"""

    bl_idname = "sam3d.open_folder"
    bl_label = "Open Folder"

    task_uuid: StringProperty(name="Task", default="", options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> set[str]:
        folder = preferences.result_folder(preferences.get(context))
        if self.task_uuid and (folder / self.task_uuid).is_dir():
            folder = folder / self.task_uuid
        bpy.ops.wm.path_open(filepath=str(folder))
        return {"FINISHED"}


classes = (SAM3D_OT_reimport, SAM3D_OT_resume, SAM3D_OT_retry, SAM3D_OT_open_folder)
