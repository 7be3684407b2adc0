"""The Bake to Texture operator and its modal run: one object per timer event, Esc between objects, a progress
bar the panel draws (`PROGRESS`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import IntProperty

from ...translations import iface_, rpt_, tip_
from ...utils import schema
from .baking import bake_object
from .errors import BakeError

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems, WmReportItems

# The module-level progress of the modal run, drawn by a panel with `layout.progress(...)`.
PROGRESS: dict[str, Any] = {"active": False, "fraction": 0.0, "text": ""}


def is_sam3d(obj: bpy.types.Object | None) -> bool:
    return obj is not None and obj.type == "MESH" and obj.get(schema.TASK_UUID) is not None


def targets(context: bpy.types.Context) -> list[bpy.types.Object]:
    """The selected SAM 3D results (mesh objects carrying sam3d_task_uuid)."""
    return [o for o in (context.selected_objects or []) if is_sam3d(o)]


def _set_progress(active: bool, fraction: float, text: str) -> None:
    PROGRESS.update(active=active, fraction=max(0.0, min(1.0, fraction)), text=text)


def _redraw(context: bpy.types.Context) -> None:
    wm = getattr(context, "window_manager", None)
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            area.tag_redraw()


def _status(context: bpy.types.Context, text: str | None) -> None:
    workspace = getattr(context, "workspace", None)
    if workspace is not None:
        workspace.status_text_set(text)


def _summary(baked: list[str], failed: list[tuple[str, str]], skipped: int, cancelled: bool,
             seconds: float) -> tuple[WmReportItems, str]:
    """(report kind, sentence) for what a run did."""
    parts = []
    if baked:
        names = ", ".join(f"“{n}”" for n in baked[:3])
        if len(baked) > 3:
            names = rpt_("{} and {} more").format(names, len(baked) - 3)
        parts.append(rpt_("Baked {} in {:.1f} s.").format(names, seconds))
    for who, why in failed:
        parts.append(why if who in why else rpt_("“{}”: {}").format(who, why))
    if cancelled:
        parts.append((rpt_("Cancelled: {} object left as they were.") if skipped == 1 else
                      rpt_("Cancelled: {} objects left as they were.")).format(skipped))
    text = " ".join(parts) or rpt_("Nothing was baked.")
    kind: WmReportItems = "ERROR" if failed and not baked else (
        "WARNING" if failed or (cancelled and not baked) else "INFO")
    return kind, text


class BakeRun:
    """What the modal operator does, apart from it so that tests (Blender runs no modal handlers in
    background mode) can drive it with plain events: one object per TIMER event, Esc cancels between
    objects (the ones already baked stay baked)."""

    def __init__(self, names: list[str], *, resolution: int = 2048, max_triangles: int = 0,
                 save_dir: Path | None = None) -> None:
        self.names = list(names)
        self.resolution, self.max_triangles, self.save_dir = resolution, max_triangles, save_dir
        self.index = 0
        self.baked: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.cancelled = False
        self.started = time.monotonic()
        self.fractions: list[float] = []  # every fraction reported, for tests and the panel
        self.last_event = time.monotonic()  # when the run last handled an event (a dropped run stops)

    @property
    def done(self) -> bool:
        return self.cancelled or self.index >= len(self.names)

    def start(self, context: bpy.types.Context) -> None:
        self.started = time.monotonic()
        self._progress(context, 0.0, iface_("Baking {} object(s)").format(len(self.names)))

    def _progress(self, context: bpy.types.Context, fraction: float, text: str) -> None:
        self.fractions.append(fraction)
        _set_progress(True, fraction, text)
        _status(context, f"SAM 3D · {text} · {fraction:.0%}  " + iface_("(Esc to cancel)"))
        _redraw(context)

    def on_event(self, context: bpy.types.Context, kind: str, value: str = "") -> set[OperatorReturnItems]:
        try:
            return self._on_event(context, kind, value)
        finally:
            self.last_event = time.monotonic()

    def _on_event(self, context: bpy.types.Context, kind: str, value: str) -> set[OperatorReturnItems]:
        if kind == "ESC" and value == "PRESS":
            self.cancelled = True
            return self._end(context)
        if kind != "TIMER":
            return {"PASS_THROUGH"}
        if self.done:
            return self._end(context)
        if context.mode != "OBJECT":  # the user went into Edit Mode meanwhile: wait
            _status(context, "SAM 3D · " + iface_("Bake waiting for Object Mode") + "  " + iface_("(Esc to cancel)"))
            return {"PASS_THROUGH"}
        self.step(context)
        return self._end(context) if self.done else {"PASS_THROUGH"}

    def step(self, context: bpy.types.Context) -> None:
        """Bake the next object."""
        n, i = len(self.names), self.index
        name = self.names[i]
        self.index += 1
        obj = bpy.data.objects.get(name)
        if obj is None:
            self.failed.append((name, rpt_("“{}” no longer exists.").format(name)))
            return

        def progress(fraction: float, text: str) -> None:
            self._progress(context, (i + fraction) / n, text)

        try:
            bake_object(context, obj, resolution=self.resolution, max_triangles=self.max_triangles,
                        save_dir=self.save_dir, progress=progress)
        except BakeError as exc:
            self.failed.append((name, str(exc)))
        else:
            self.baked.append(obj.name)
        self._progress(context, (i + 1) / n, iface_("{} of {} done").format(self.index, n))

    def run(self, context: bpy.types.Context) -> None:
        """Everything, blocking (scripts and background mode)."""
        self.start(context)
        while not self.done:
            self.step(context)
        self._end(context)

    def result(self) -> tuple[WmReportItems, str]:
        return _summary(self.baked, self.failed, len(self.names) - self.index, self.cancelled,
                        time.monotonic() - self.started)

    def _end(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        _set_progress(False, 1.0 if not self.cancelled else PROGRESS["fraction"], "")
        _status(context, None)
        _redraw(context)
        return {"FINISHED"} if self.baked else {"CANCELLED"}


_RUN: dict[str, Any] = {"run": None, "timer": None}  # the running modal bake (never on the operator)


def running() -> BakeRun | None:
    """The modal run in progress, if any. One that has seen no event for 10 s was dropped without being
    cancelled (its timer ticks every 0.1 s, and a bake in progress holds the UI, so no poll happens then)."""
    run: BakeRun | None = _RUN["run"]
    if run is not None and time.monotonic() - run.last_event > 10.0:
        _RUN["run"] = _RUN["timer"] = None
        _set_progress(False, 0.0, "")
        return None
    return run


class SAM3D_OT_bake(bpy.types.Operator):
    """Bake the selected SAM 3D results into a lighter mesh with UV-mapped textures (a PBR result's maps too)"""

    bl_idname = "sam3d.bake"
    bl_label = "Bake to Texture"
    bl_options = {"REGISTER", "UNDO"}

    resolution: IntProperty(  # type: ignore[valid-type]
        name="Resolution", description="Width and height of the baked texture in pixels",
        default=2048, min=64, max=8192, subtype="PIXEL")
    max_triangles: IntProperty(  # type: ignore[valid-type]
        name="Max Triangles", description="Reduce the mesh to at most this many triangles (0 keeps every one)",
        default=0, min=0)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if running() is not None:
            cls.poll_message_set(tip_("A bake is already running (Esc cancels it)"))
            return False
        if context.mode != "OBJECT":
            cls.poll_message_set(tip_("Switch to Object Mode to bake"))
            return False
        if not targets(context):
            cls.poll_message_set(tip_("Select a SAM 3D result to bake (a mesh object made by SAM 3D)"))
            return False
        return True

    def _run(self, context: bpy.types.Context) -> BakeRun:
        return BakeRun([o.name for o in targets(context)], resolution=self.resolution,
                       max_triangles=self.max_triangles)

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        run = self._run(context)
        run.run(context)
        kind, text = run.result()
        self.report({kind}, text)
        return {"FINISHED"} if run.baked else {"CANCELLED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        if bpy.app.background or not context.window:
            return self.execute(context)
        run = self._run(context)
        run.start(context)
        wm = context.window_manager
        assert wm is not None  # there is a window (checked above)
        _RUN["run"], _RUN["timer"] = run, wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        run: BakeRun | None = _RUN["run"]
        if run is None:
            return {"CANCELLED"}
        result = run.on_event(context, event.type, event.value)
        if "FINISHED" in result or "CANCELLED" in result:
            self._stop(context)
            kind, text = run.result()
            self.report({kind}, text)
        elif event.type == "ESC":
            return {"RUNNING_MODAL"}
        return result

    def cancel(self, context: bpy.types.Context) -> None:
        run: BakeRun | None = _RUN["run"]
        if run is not None:
            run.cancelled = True
            run._end(context)
        self._stop(context)

    @staticmethod
    def _stop(context: bpy.types.Context) -> None:
        if _RUN["timer"] is not None:
            wm = context.window_manager
            assert wm is not None  # the timer was added to it
            wm.event_timer_remove(_RUN["timer"])
        _RUN["run"] = _RUN["timer"] = None


classes = (SAM3D_OT_bake,)
