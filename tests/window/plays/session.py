"""The session's machinery in the real window: disabling the add-on mid-job, quitting and starting again,
a cancelled paid job, a job whose file was closed, the messages of jobs nobody waits for."""

from __future__ import annotations

import re

import bpy
from common import ADDON, added, addon, connect, drawn, inputs, jobs, names

VIEW = "VIEW_3D"


def _sent(ui, region):
    yield from ui.click((yield from ui.find(region, "sam3d.reconstruct(")))
    yield from ui.until(lambda: jobs() and jobs()[0].job.submitted, 30, "the job was sent")
    return jobs()[0].job.task_uuid


def _texts(ui, region):
    return [t for t, _, _ in (yield from drawn(ui, region))]


def disable_mid_job(ui, **params):
    """Disabling the add-on while a job runs stops it, gives the status bar back, and raises nothing; enabled
    again, the add-on offers the job, and Resume fetches it without a second submission."""
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    inputs(params)
    idle = yield from ui.status_bar("disable-idle")
    task = yield from _sent(ui, region)
    bpy.ops.preferences.addon_disable(module=ADDON)  # what the add-on's checkbox in the preferences runs
    yield from ui.frames(10)
    gone = yield from ui.status_bar("disable-after")
    ui.record(task=task, status_restored=bool((abs(gone - idle) <= 0.1).all()))
    bpy.ops.preferences.addon_enable(module=ADDON)
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    yield from ui.until(lambda: addon("operators.machinery.runner").RUNNER.history is not None, 10, "the journal read")
    texts = yield from _texts(ui, region)
    ui.record(offered=[t for t in texts if "never imported" in t])
    before = names()
    yield from ui.click((yield from ui.find(region, 'sam3d.resume(task_uuid="")')))
    yield from ui.until(lambda: added(before) and not jobs(), 90, "the resumed job imported")
    ui.record(objects=[o.get("sam3d_task_uuid") for o in added(before)])


def quit_mid_job(ui, **params):
    """Ctrl+Q while a paid job runs, the file saved just before: Blender asks first. Then Blender is quit
    anyway, the job still running."""
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    inputs(params)
    bpy.ops.wm.save_as_mainfile(filepath=params["blend"])
    yield from ui.frames(3)
    ui.record(dirty_before=bpy.data.is_dirty)
    task = yield from _sent(ui, region)
    yield from ui.key("Q", ctrl=True, at=ui.center(ui.region(ui.area(VIEW), "WINDOW")))
    yield 2.0
    ui.record(task=task, still_running=True, dirty=bpy.data.is_dirty)
    yield from ui.shot("quit-asks")
    ui.flush()
    bpy.ops.wm.quit_blender()
    yield 30.0  # never reached: Blender quits


def resume_after_restart(ui, **params):
    """Blender started again on the same result folder: the job is offered, and Resume brings it in."""
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    yield from ui.until(lambda: addon("operators.machinery.runner").RUNNER.history is not None, 10, "the journal read")
    texts = yield from _texts(ui, region)
    before = names()
    yield from ui.click((yield from ui.find(region, 'sam3d.resume(task_uuid="")')))
    yield from ui.until(lambda: added(before) and not jobs(), 90, "the resumed job imported")
    ui.record(offered=[t for t in texts if "never imported" in t],
              objects=[o.get("sam3d_task_uuid") for o in added(before)])


def cancelled_paid_job(ui, **params):
    """Esc after the job was sent: the panel says it waits for Resume, offers Resume on its row, and the money
    of the session is not more than the folder's."""
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    inputs(params)
    task = yield from _sent(ui, region)
    yield from ui.key("ESC", at=ui.center(ui.region(ui.area(VIEW), "WINDOW")))
    yield from ui.until(lambda: not jobs(), 10, "the job ended")
    texts = yield from _texts(ui, region)
    money = {t.split(":")[0]: float(re.findall(r"\$([0-9.]+)", t)[0]) for t in texts if "$" in t and ":" in t}
    resume_row = yield from ui.find(region, f'sam3d.resume(task_uuid="{task}")', columns=(0.2, 0.15, 0.3),
                                 pages=4)  # the History panel, below the others
    yield from ui.shot("cancelled-paid-job")
    ui.record(task=task, texts=texts, money=money, resume_row=bool(resume_row))


def file_new_mid_job(ui, **params):
    """File › New while a job runs: the job goes on, the app timer imports it into the new file as one undo
    step, and its message stays in the Jobs panel until cleared."""
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    inputs(params)
    task = yield from _sent(ui, region)
    bpy.ops.wm.read_homefile(app_template="")  # File › New › General, the file's changes dropped
    yield 1.0  # the new file's screen drawn once (Blender 5.2 crashes setting a sidebar tab before that)
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    yield from ui.until(lambda: any(o.get("sam3d_task_uuid") == task for o in bpy.data.objects) and not jobs(),
                        60, "imported into the new file")
    yield from ui.frames(4)
    texts = yield from _texts(ui, region)
    ui.record(task=task, objects=[o.name for o in bpy.data.objects if o.get("sam3d_task_uuid") == task],
              message=[t for t in texts if "added" in t])
    yield from ui.click((yield from ui.find(region, "sam3d.messages_clear(", columns=(0.93, 0.9, 0.96))))
    texts = yield from _texts(ui, region)
    ui.record(message_after_clear=[t for t in texts if "added" in t])
    yield from ui.key("Z", ctrl=True, at=ui.center(ui.region(ui.area(VIEW), "WINDOW")))
    yield from ui.frames(5)
    ui.record(after_undo=[o.name for o in bpy.data.objects if o.get("sam3d_task_uuid") == task])
