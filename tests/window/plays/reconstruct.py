"""One object from a photo, pressed, watched, cancelled and undone in the real window."""

from __future__ import annotations

import bpy
from common import added, addon, connect, inputs, jobs, names, settings

VIEW = "VIEW_3D"


def asked() -> int:
    """How many jobs this session started."""
    return addon("operators.machinery.runner").RUNNER.count


def click_and_undo(ui, **params):
    """Reconstruct clicked in the 3D Viewport's sidebar: the object lands, the status bar is ours while the job
    runs and Blender's again after it, and one Ctrl+Z takes the import away."""
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    inputs(params)
    idle = yield from ui.status_bar("reconstruct-idle")
    before = names()
    button = yield from ui.find(region, "sam3d.reconstruct(")
    yield from ui.click(button)
    yield from ui.until(lambda: jobs() and jobs()[0].job.submitted, 30, "the job was sent")
    busy = yield from ui.status_bar("reconstruct-running")
    yield from ui.until(lambda: added(before) and not jobs(), 60, "the object imported")
    yield from ui.frames(4)
    after = yield from ui.status_bar("reconstruct-done")
    objects = added(before)
    ui.record(objects=[o.name for o in objects], selected=[o.name for o in bpy.context.selected_objects],
              active=bpy.context.view_layer.objects.active.name, collection=objects[0].users_collection[0].name,
              status_changed_while_running=bool((abs(busy - idle) > 0.1).any()),
              status_restored=bool((abs(after - idle) <= 0.1).all()), reports=ui.reports())
    yield from ui.shot("reconstruct-imported")
    yield from ui.key("Z", ctrl=True, at=ui.center(ui.region(ui.area(VIEW), "WINDOW")))
    yield from ui.frames(5)
    ui.record(after_undo=[o.name for o in added(before)], photo_after_undo=getattr(settings().image, "name", None))


def escape(ui, **params):
    """Esc while a sent job runs: it stops at once with a sentence saying it may be billed and how to fetch it."""
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    inputs(params)
    idle = yield from ui.status_bar("escape-idle")
    before = names()
    yield from ui.click((yield from ui.find(region, "sam3d.reconstruct(")))
    yield from ui.until(lambda: jobs() and jobs()[0].job.submitted, 30, "the job was sent")
    task = jobs()[0].job.task_uuid
    yield from ui.key("ESC", at=ui.center(ui.region(ui.area(VIEW), "WINDOW")))
    yield from ui.until(lambda: not jobs(), 10, "the job ended")
    yield from ui.frames(4)
    after = yield from ui.status_bar("escape-done")
    ui.record(task=task, objects=[o.name for o in added(before)], reports=ui.reports(),
              status_restored=bool((abs(after - idle) <= 0.1).all()))


def edit_mode_waits(ui, **params):
    """A result that arrives while the artist is in Edit Mode waits, says so, and lands back in Object Mode."""
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    inputs(params)
    before = names()
    yield from ui.click((yield from ui.find(region, "sam3d.reconstruct(")))
    view = ui.center(ui.region(ui.area(VIEW), "WINDOW"))
    yield from ui.key("TAB", at=view)  # the default Cube is active: into Edit Mode
    yield from ui.until(lambda: bpy.context.mode == "EDIT_MESH", 10, "Edit Mode")
    yield from ui.until(lambda: jobs() and jobs()[0].job.done, 60, "the result arrived")
    yield from ui.frames(10)
    waiting = [o.name for o in added(before)]
    label = jobs()[0].label if jobs() else ""
    yield from ui.shot("edit-mode-waits")
    yield from ui.key("TAB", at=view)
    yield from ui.until(lambda: added(before), 20, "the import after Object Mode")
    ui.record(while_editing=waiting, label=label, objects=[o.name for o in added(before)])


def duplicate(ui, **params):
    """A second press of an identical request asks first, naming the price; Esc in that question pays nothing
    and raises nothing, and the running job's progress goes on meanwhile; OK sends it again."""
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    inputs(params)
    button = yield from ui.find(region, "sam3d.reconstruct(")
    yield from ui.click(button)
    yield from ui.until(lambda: jobs() and jobs()[0].job.submitted, 30, "the first job was sent")
    yield from ui.click(button)  # the same request again: a question
    yield from ui.frames(6)
    question = ui.module("operators.one_object.reconstruct").duplicate_question(bpy.context)
    first = jobs()[0].job.fraction
    shot_a = yield from ui.shot("duplicate-question")
    yield 2.5
    shot_b = yield from ui.shot("duplicate-question-later")
    bar = _progress_rows(ui, region)
    moved = bool((abs(ui.pixels(shot_a)[bar] - ui.pixels(shot_b)[bar]) > 0.05).any())
    ui.record(question=question, fraction_before=first, fraction_after=jobs()[0].job.fraction if jobs() else 1.0,
              bar_redrawn=moved, jobs_while_asking=len(jobs()))
    yield from no_then_yes(ui, button, "jobs_after_no")
    yield from ui.until(lambda: asked() == 2, 10, "a second job")
    ui.record(jobs_after_yes=asked(), reports=ui.reports())
    yield from ui.until(lambda: not jobs(), 60, "both imported")


def no_then_yes(ui, button, fact: str):
    """A question is open: Esc answers No (`fact` records how many jobs started then), a new press asks again,
    and Enter answers Yes."""
    yield from ui.key("ESC")
    yield from ui.frames(6)
    ui.record(**{fact: asked()})
    yield from ui.click(button)
    yield from ui.frames(6)
    yield from ui.key("RET")


def _progress_rows(ui, region):
    """The rows of the screenshot where the main panel's progress bars are drawn (below Reconstruct)."""
    height = ui.window.height
    top = height - (region.y + region.height)
    return slice(top, height - region.y), slice(region.x, region.x + region.width)


def three_of_one_mask(ui, **params):
    """Three jobs of one mask: told apart in the panel; a click on the third one's ✕, aimed before the first one
    ends and made after it, cancels the third; the status bar gives one percentage."""
    connect(ui, params)
    region = yield from ui.sidebar(VIEW)
    inputs(params)
    before = names()
    button = yield from ui.find(region, "sam3d.reconstruct(")
    order = []
    for n in range(3):
        yield from ui.click(button)
        if n:
            yield from ui.frames(6)
            yield from ui.key("RET")  # yes, again
        yield from ui.until(lambda n=n: asked() == n + 1 and jobs()[-1].job.submitted, 30, "sent")
        order.append(jobs()[-1].job.task_uuid)
        yield 6.0 if n == 1 else 0.8  # the third one ends well after the second: the click has time to land
    labels = [e.label for e in jobs()]
    yield from ui.shot("three-jobs")
    third = yield from ui.find(region, f'cancel(task_uuid="{order[2]}")', columns=(0.93,), below=button[1])
    yield from ui.move(*third)
    yield from ui.until(lambda: order[0] not in {e.job.task_uuid for e in jobs()}, 60, "the first one ended")
    yield from ui.frames(6)
    status = ui.module("operators.one_object.reconstruct").status_line(jobs()[0]) if jobs() else ""
    yield from ui.shot("three-jobs-one-ended")
    rows = [r.label for r in addon("operators.machinery.runner").RUNNER.rows()]
    yield from ui.move(third[0] - 60, third[1] + 40)  # the hand leaves (a tooltip closes) and comes back
    yield from ui.click(third)
    yield from ui.until(lambda: not jobs(), 60, "all ended")
    ui.record(labels=labels, order=order, status=status, rows=rows,
              imported=sorted({o.get("sam3d_task_uuid") for o in added(before)}))


def many_masks(ui, **params):
    """A press of 25 ticked masks with no Spending Limit asks first, naming the count and the price; Esc sends
    nothing; OK sends them all (then Esc stops them)."""
    connect(ui, params, session_budget=0.0)
    region = yield from ui.sidebar(VIEW)
    inputs(params)
    for _ in range(25):
        settings().masks.add().image = settings().mask
    bpy.ops.ed.undo_push(message="Pick 25 masks")
    button = yield from ui.find(region, "sam3d.reconstruct(")
    yield from ui.click(button)
    yield from ui.frames(6)
    yield from ui.shot("many-masks-question")
    question = ui.module("operators.one_object.reconstruct").many_question(bpy.context, 25)
    ui.record(question=question, started_while_asking=asked())
    yield from no_then_yes(ui, button, "started_after_no")
    yield from ui.until(lambda: asked() == 25, 30, "25 jobs")
    ui.record(started_after_yes=asked())
    yield from ui.key("ESC", at=ui.center(ui.region(ui.area(VIEW), "WINDOW")))
    yield from ui.until(lambda: not jobs(), 60, "all stopped")
