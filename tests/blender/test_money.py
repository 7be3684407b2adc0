"""Money in Blender: every paid entry point reserves its worst case before anything is sent and is refused by
a limit below its price with nothing sent; each is counted in the session's ledger when it goes through;
Resume and Re-import are free; an identical request in flight is not sent again; Retry only for tasks that
have ended; a batch identifies its work by what it is (issue "Money: every paid request counted before it is
sent, and never sent twice"). The emulator counts what was sent and billed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import bpy
import pytest
from conftest import SAMPLES, load, module, reset_session, tick, use_inputs

from tests.watch import wait_for

PRICE = 3800  # micro-dollars: 0.0038 USD per result, Runware's documented example (SAM 3D and RemBG alike)


def runner():  # noqa: ANN201
    return module("operators.machinery.runner").RUNNER


def money() -> tuple[int, int]:
    """(spent, reserved) this session, micro-dollars."""
    ledger = runner().ledger
    return ledger.spent, ledger.reserved


def kinds(emu, since: int = 0) -> list[str]:  # noqa: ANN001
    """The task types of every API request since `since`."""
    return [t.get("taskType") for r in emu.requests[since:] for t in (r.body if isinstance(r.body, list) else [])
            if isinstance(t, dict)]



def new_file(sam3d) -> None:  # noqa: ANN001
    """Another .blend opened (the fixture's `settings` follow it: they are read anew each time)."""
    bpy.ops.wm.read_homefile(use_empty=True)


def journal(sam3d) -> dict:  # noqa: ANN001
    from client.journal import Journal

    return Journal(sam3d.results).tasks()


def socrates_masks(sam3d, count: int) -> None:  # noqa: ANN001
    settings = sam3d.settings
    settings.image = load("socrates/image.png")
    settings.mask = None
    for n in range(1, count + 1):
        settings.masks.add().image = load(f"socrates/{n % 8}.png")


def submitted_then_quit(sam3d) -> str:  # noqa: ANN001
    """A task sent by a session that then quit (or crashed) while Runware processed it: its UUID."""
    sam3d.emu.processing_time = 600
    use_inputs()
    entry = module("operators.one_object.reconstruct").start_job(bpy.context)
    wait_for(lambda: sam3d.emu.billed_tasks() >= 1 and entry.job.submitted, "the submission")
    reset_session()  # Blender quits: a new session starts, with nothing spent
    return entry.job.task_uuid


def downloaded_not_imported(sam3d) -> str:  # noqa: ANN001
    """A task downloaded by a session that crashed before importing it."""
    from client.locks import TaskLocks

    use_inputs()
    entry = module("operators.one_object.reconstruct").start_job(bpy.context)
    entry.owned = True  # nobody imports it
    wait_for(lambda: (entry.job.drain(), entry.job.done)[1], "the download")
    assert entry.job.outcome.kind == "done"
    runner().jobs.clear()
    TaskLocks(sam3d.results).release(entry.job.task_uuid)  # the crashed session's lock is no more
    reset_session()
    return entry.job.task_uuid


# --- 2. every paid entry point: refused below its price with nothing sent, counted when it goes -----------


def test_reconstruct_is_refused_below_its_price_before_anything_is_sent_and_counted_when_it_goes(sam3d):
    use_inputs()
    sam3d.prefs.session_budget = 0.0037
    with pytest.raises(RuntimeError, match=r"needs up to \$0\.0038 more.*Spending Limit set in the preferences"):
        bpy.ops.sam3d.reconstruct()
    assert sam3d.emu.requests == [] and money() == (0, 0)
    sam3d.prefs.session_budget = 0.0038  # reaching the limit exactly is allowed
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    assert money() == (PRICE, 0) and runner().session_limit.committed == PRICE
    assert sam3d.emu.billed_tasks() == 1


def test_a_list_of_three_masks_is_reserved_at_once_and_refused_whole_when_only_two_fit(sam3d, monkeypatch):
    socrates_masks(sam3d, 3)
    sam3d.prefs.session_budget = 0.0076  # two fit, not three: none goes
    with pytest.raises(RuntimeError, match="Spending Limit"):
        bpy.ops.sam3d.reconstruct()
    assert sam3d.emu.requests == [], "not even the photo's upload"
    assert money() == (0, 0) and runner().session_limit.committed == 0, "the two that fitted were given back"

    seen = []
    add = runner().add

    def watched(entry):  # noqa: ANN001, ANN202
        seen.append((runner().ledger.reserved, len(sam3d.emu.requests)))
        return add(entry)

    monkeypatch.setattr(runner(), "add", watched)
    sam3d.prefs.session_budget = 0.0114
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    assert seen[0] == (3 * PRICE, 0), "all three were reserved before the first job started"
    assert len(seen) == 3 and sam3d.emu.billed_tasks() == 3
    assert money() == (3 * PRICE, 0)
    assert len([o for o in bpy.data.objects if o.get("sam3d_task_uuid")]) == 3


def test_retry_is_refused_below_its_price_and_counted_when_it_goes(sam3d):
    use_inputs()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    uuid = bpy.context.view_layer.objects.active["sam3d_task_uuid"]
    sam3d.prefs.session_budget = 0.0075
    before = len(sam3d.emu.requests)
    with pytest.raises(RuntimeError, match="Spending Limit"):
        bpy.ops.sam3d.retry(task_uuid=uuid)
    assert len(sam3d.emu.requests) == before and money() == (PRICE, 0)
    sam3d.prefs.session_budget = 0.0076
    assert bpy.ops.sam3d.retry(task_uuid=uuid) == {"FINISHED"}
    assert money() == (2 * PRICE, 0) and sam3d.emu.billed_tasks() == 2


def test_auto_mask_is_refused_below_its_price_and_counted_when_it_goes(sam3d):
    use_inputs(mask=None)
    sam3d.prefs.session_budget = 0.0037
    with pytest.raises(RuntimeError, match="Spending Limit"):
        bpy.ops.sam3d.auto_mask()
    assert sam3d.emu.requests == [] and sam3d.settings.mask is None and money() == (0, 0)
    sam3d.prefs.session_budget = 0.0038
    assert bpy.ops.sam3d.auto_mask() == {"FINISHED"}
    assert sam3d.settings.mask is not None and sam3d.emu.billed("removeBackground") == 1
    assert money() == (PRICE, 0), "RemBG reports no cost here: the worst case stays counted"


def test_box_to_mask_is_refused_below_its_price_and_counted_when_it_goes(sam3d):
    use_inputs(mask=None)
    sam3d.prefs.session_budget = 0.0037
    with pytest.raises(RuntimeError, match="Spending Limit"):
        bpy.ops.sam3d.box_mask(xmin=400, ymin=200, xmax=1200, ymax=800)
    assert sam3d.emu.requests == [] and len(sam3d.settings.masks) == 0 and money() == (0, 0)
    sam3d.prefs.session_budget = 0.0076
    assert bpy.ops.sam3d.box_mask(xmin=400, ymin=200, xmax=1200, ymax=800) == {"FINISHED"}
    assert bpy.ops.sam3d.box_mask(xmin=100, ymin=100, xmax=500, ymax=500) == {"FINISHED"}
    with pytest.raises(RuntimeError, match="Spending Limit"):
        bpy.ops.sam3d.box_mask(xmin=100, ymin=100, xmax=500, ymax=500)
    assert len(sam3d.settings.masks) == 2 and sam3d.emu.billed("removeBackground") == 2
    assert money() == (2 * PRICE, 0)


def photos(tmp: Path) -> Path:
    """Two items: a photo with its mask, and a cut-out in a sub-folder."""
    folder = tmp / "photos"
    (folder / "props").mkdir(parents=True)
    shutil.copy(SAMPLES / "human_object" / "image.png", folder / "bench.png")
    shutil.copy(SAMPLES / "human_object" / "mask_0.png", folder / "bench_mask.png")
    shutil.copy(SAMPLES / "socrates" / "5.png", folder / "props" / "cup.png")
    return folder


def report(library: Path) -> dict:
    return json.loads((library / "sam3d-report.json").read_text())


@pytest.mark.parametrize("limit", ["max_cost", "session_budget"])
def test_the_batch_operator_is_refused_below_its_price_and_counted_when_it_goes(sam3d, limit):
    folder = photos(sam3d.tmp)
    sam3d.prefs.max_jobs = 1
    if limit == "max_cost":
        bpy.ops.sam3d.batch(directory=str(folder), filepath=str(sam3d.tmp / "refused"), max_cost=0.0037)
        words = "the batch's Cost Limit"
    else:
        sam3d.prefs.session_budget = 0.0037
        bpy.ops.sam3d.batch(directory=str(folder), filepath=str(sam3d.tmp / "refused"))
        words = "the Spending Limit set in the preferences"
    items = report(sam3d.tmp / "refused")["items"]
    assert [i["status"] for i in items] == ["failed", "failed"] and all(words in i["reason"] for i in items)
    assert sam3d.emu.requests == [] and money() == (0, 0)

    sam3d.prefs.session_budget = 0.0
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(sam3d.tmp / "library"), max_cost=0.0076) == {
        "FINISHED"}
    assert report(sam3d.tmp / "library")["done"] == 2 and sam3d.emu.billed_tasks() == 2
    assert money() == (2 * PRICE, 0)


def test_the_command_line_max_cost_refuses_below_the_price_and_counts_what_goes(sam3d, capsys):
    cli = module("operators.library.cli").cli
    folder = photos(sam3d.tmp)
    assert cli(["batch", str(folder), "-o", str(sam3d.tmp / "refused"), "--max-cost", "0.0037"]) == 1
    out = capsys.readouterr().out
    assert out.count("the batch's Cost Limit") == 2 and "0 done, 2 failed" in out
    assert sam3d.emu.requests == [] and money() == (0, 0)
    assert cli(["batch", str(folder), "-o", str(sam3d.tmp / "library"), "--max-cost", "0.0076"]) == 0
    assert "2 done, 0 failed" in capsys.readouterr().out
    assert sam3d.emu.billed_tasks() == 2 and money() == (2 * PRICE, 0)


def test_a_result_without_a_reported_price_stays_at_the_worst_case_so_six_cannot_go_under_half_a_cent(
        sam3d, monkeypatch):
    """The emulator has no switch to leave `cost` out (it adds it whenever a task asks `includeCost`, and the
    add-on always asks): here the add-on's task goes without includeCost, so Runware's answer has no cost."""
    tasks = module("client.tasks")
    inner = tasks.inference_task

    def without_cost(**kwargs):  # noqa: ANN003, ANN202
        task = inner(**kwargs)
        task.pop("includeCost")
        return task

    monkeypatch.setattr(tasks, "inference_task", without_cost)
    sam3d.prefs.session_budget = 0.005
    use_inputs()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    assert bpy.context.view_layer.objects.active.get("sam3d_cost") is None, "no cost was reported"
    assert money() == (PRICE, 0), "the worst case stays counted: never 0"
    sent = len(sam3d.emu.requests)
    for _ in range(5):
        with pytest.raises(RuntimeError, match="Spending Limit"):
            bpy.ops.sam3d.reconstruct()
    socrates_masks(sam3d, 6)
    with pytest.raises(RuntimeError, match="Spending Limit"):
        bpy.ops.sam3d.reconstruct()
    assert len(sam3d.emu.requests) == sent and sam3d.emu.billed_tasks() == 1


def test_resume_and_reimport_are_free_even_under_a_tiny_limit(sam3d):
    uuid = submitted_then_quit(sam3d)
    sam3d.prefs.session_budget = 0.0001
    with pytest.raises(RuntimeError, match="Spending Limit"):
        bpy.ops.sam3d.reconstruct(allow_duplicate=True)  # the limit is live: anything paid is refused
    sam3d.emu.finish()
    since = len(sam3d.emu.requests)
    assert bpy.ops.sam3d.resume() == {"FINISHED"}
    assert [o["sam3d_task_uuid"] for o in bpy.data.objects if o.get("sam3d_task_uuid")] == [uuid]
    assert set(kinds(sam3d.emu, since)) == {"getResponse"}, "fetched by its UUID: no submission, no upload"
    assert sam3d.emu.billed_tasks() == 1 and sam3d.emu.tasks[uuid].submissions == 1
    assert money() == (0, 0) and runner().session_limit.committed == 0
    since = len(sam3d.emu.requests)
    assert bpy.ops.sam3d.reimport(task_uuid=uuid) == {"FINISHED"}
    assert len(sam3d.emu.requests) == since and money() == (0, 0)
    assert len([o for o in bpy.data.objects if o.get("sam3d_task_uuid") == uuid]) == 2


def test_resume_of_a_downloaded_task_is_free_under_a_tiny_limit(sam3d):
    uuid = downloaded_not_imported(sam3d)
    sam3d.prefs.session_budget = 0.0001
    since = len(sam3d.emu.requests)
    assert bpy.ops.sam3d.resume() == {"FINISHED"}
    assert bpy.data.objects["mask_0"]["sam3d_task_uuid"] == uuid
    assert len(sam3d.emu.requests) == since and money() == (0, 0)


# --- 5. no accidental repeats ---------------------------------------------------------------------------


def test_an_identical_request_in_flight_is_refused_unless_allowed_and_another_seed_is_not_a_duplicate(sam3d):
    use_inputs()
    settings = sam3d.settings
    settings.use_random_seed, settings.seed = False, 1
    sam3d.emu.processing_time = 600
    first = module("operators.one_object.reconstruct").start_jobs(bpy.context)[0]
    wait_for(lambda: sam3d.emu.billed_tasks() == 1, "the first submission")
    sam3d.emu.processing_time = 0.2
    sent = len(sam3d.emu.requests)
    with pytest.raises(RuntimeError, match="identical reconstruction of mask_0 is already running.*allow_duplicate"):
        bpy.ops.sam3d.reconstruct()
    assert kinds(sam3d.emu, sent).count("3dInference") == 0 and sam3d.emu.billed_tasks() == 1
    assert money() == (0, PRICE), "only the first is held"
    settings.seed = 2  # another seed: another request
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    settings.seed = 1
    assert bpy.ops.sam3d.reconstruct(allow_duplicate=True) == {"FINISHED"}
    assert sam3d.emu.billed_tasks() == 3 and not first.job.done
    seeds = sorted(t.payload.get("seed") for t in sam3d.emu.tasks.values() if t.task_type == "3dInference")
    assert seeds == [1, 1, 2]


def test_random_seeds_are_still_duplicates_while_in_flight(sam3d):
    use_inputs()  # the default: a random seed, chosen by Runware
    sam3d.emu.processing_time = 600
    module("operators.one_object.reconstruct").start_jobs(bpy.context)
    wait_for(lambda: sam3d.emu.billed_tasks() == 1, "the first submission")
    with pytest.raises(RuntimeError, match="identical reconstruction"):
        bpy.ops.sam3d.reconstruct()
    assert kinds(sam3d.emu).count("3dInference") == 1 and money() == (0, PRICE)


def running_here(sam3d) -> str:  # noqa: ANN001
    sam3d.emu.processing_time = 600
    use_inputs()
    entry = module("operators.one_object.reconstruct").start_job(bpy.context)
    wait_for(lambda: sam3d.emu.billed_tasks() >= 1, "the submission")
    return entry.job.task_uuid


def processed_not_downloaded(sam3d) -> str:  # noqa: ANN001
    """Results came, and Blender quit while downloading them."""
    sam3d.emu.faults.declared_length = 10**7  # the download stalls
    use_inputs()
    entry = module("operators.one_object.reconstruct").start_job(bpy.context)
    wait_for(lambda: getattr(journal(sam3d).get(entry.job.task_uuid), "status", "") == "processed", "the results")
    reset_session()
    sam3d.emu.faults.declared_length = None
    return entry.job.task_uuid


def interrupted_by_a_bad_download(sam3d) -> str:  # noqa: ANN001
    sam3d.emu.faults.corrupt_downloads = 10
    use_inputs()
    with pytest.raises(RuntimeError, match="not a valid GLB"):
        bpy.ops.sam3d.reconstruct()
    sam3d.emu.faults.corrupt_downloads = 0
    [uuid] = [u for u, t in sam3d.emu.tasks.items() if t.task_type == "3dInference"]
    return uuid


MAY_STILL_FINISH = {
    "submitted": (submitted_then_quit, "may still finish"),
    "running here": (running_here, "still running"),
    "processed": (processed_not_downloaded, "may still finish"),
    "downloaded": (downloaded_not_imported, "may still finish"),
    "interrupted": (interrupted_by_a_bad_download, "may still finish"),
}


@pytest.mark.parametrize("state", list(MAY_STILL_FINISH))
def test_retry_is_refused_for_a_task_that_may_still_finish(sam3d, state):
    make, words = MAY_STILL_FINISH[state]
    uuid = make(sam3d)
    expected = {"running here": "submitted"}.get(state, state)
    assert journal(sam3d)[uuid].status == expected
    billed, sent, held = sam3d.emu.billed_tasks(), len(sam3d.emu.requests), money()
    with pytest.raises(RuntimeError, match=words):
        bpy.ops.sam3d.retry(task_uuid=uuid)
    assert sam3d.emu.billed_tasks() == billed and money() == held
    assert "3dInference" not in kinds(sam3d.emu, sent)
    why = module("operators.machinery.history").why_not_retry(runner().record(uuid), uuid)
    assert words in why


@pytest.mark.parametrize("state", ["imported", "failed on the server"])
def test_retry_is_allowed_for_a_task_that_has_ended(sam3d, state):
    use_inputs()
    if state == "imported":
        assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    else:
        sam3d.emu.faults.task_error = "inferenceError"
        with pytest.raises(RuntimeError, match="failed on this image"):
            bpy.ops.sam3d.reconstruct()
        sam3d.emu.faults.task_error = None
    [uuid] = [u for u, t in sam3d.emu.tasks.items() if t.task_type == "3dInference"]
    assert journal(sam3d)[uuid].status == state.split()[0]
    assert module("operators.machinery.history").why_not_retry(runner().record(uuid), uuid) == ""
    assert bpy.ops.sam3d.retry(task_uuid=uuid) == {"FINISHED"}
    assert sam3d.emu.billed_tasks() == 2 and sam3d.emu.tasks[uuid].submissions == 1


class Recording:
    """A UILayout stand-in that records each operator button with the layouts it sits in, so that whether it
    is enabled (its own layout's `enabled` and every parent's) can be read after the panel drew."""

    def __init__(self, buttons: list, parent: Recording | None = None) -> None:
        self.buttons, self.parent = buttons, parent
        self.enabled = self.active = self.use_property_split = self.use_property_decorate = True
        self.alert = False
        self.scale_y = 1.0

    def _child(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        return Recording(self.buttons, self)

    row = column = box = split = _child

    def operator(self, idname, **kwargs):  # noqa: ANN001, ANN003, ANN201
        category, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, category), name), f"no operator {idname}"
        props = type("Props", (), {})()
        self.buttons.append((idname, kwargs.get("text", ""), props, self))
        return props

    def is_enabled(self) -> bool:
        layout: Recording | None = self
        while layout is not None:
            if not layout.enabled:
                return False
            layout = layout.parent
        return True

    def label(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        pass

    prop = progress = separator = template_list = template_ID = label  # noqa: N815


def draw_jobs_panel() -> dict[tuple[str, str], bool]:
    """{(operator, task UUID): enabled} of the Jobs and History panels' buttons."""
    buttons: list = []
    for panel in (bpy.types.SAM3D_PT_view3d_jobs, bpy.types.SAM3D_PT_view3d_history):

        class Drawing:  # the panel as draw() sees it: our layout, the panel's own attributes
            layout = Recording(buttons)

            def __getattr__(self, name: str, panel=panel):  # noqa: ANN204, ANN001
                return getattr(panel, name)

        panel.draw(Drawing(), bpy.context)
    return {(idname, getattr(props, "task_uuid", "")): layout.is_enabled() for idname, _, props, layout in buttons}


def test_the_jobs_panel_disables_retry_for_tasks_that_may_still_finish(sam3d):
    from client.journal import Journal

    j = Journal(sam3d.results)
    info = {"name": "x", "image": "image.png", "mask": "mask_0.png", "number_results": 1}
    results = [{"index": 0, "url": "u", "seed": "1", "cost": 0.0038}]
    files = [{"path": str(sam3d.tmp / "x.glb"), "index": 0, "seed": "1", "cost": 0.0038}]
    lines = {
        "imported": [("created", {}), ("submitted", {}), ("results", {"results": results}),
                     ("downloaded", {"files": files}), ("imported", {"objects": ["x"]})],
        "failed": [("created", {}), ("submitted", {}), ("failed", {"code": "inferenceError", "resumable": False})],
        "cancelled": [("created", {}), ("cancelled", {})],
        "submitted": [("created", {}), ("submitted", {})],
        "processed": [("created", {}), ("submitted", {}), ("results", {"results": results})],
        "downloaded": [("created", {}), ("submitted", {}), ("results", {"results": results}),
                       ("downloaded", {"files": files})],
        "interrupted": [("created", {}), ("submitted", {}), ("failed", {"code": "network", "resumable": True})],
    }
    uuids = {}
    for status, steps in lines.items():
        uuid = f"00000000-0000-4000-8000-{len(uuids):012d}"
        uuids[status] = uuid
        for event, fields in steps:
            if event in ("created", "submitted"):
                fields = {**fields, "info": info}
            j.append(event, uuid, **fields)
    running = running_here(sam3d)  # sent by this session, still processing
    module("operators.machinery.runner").refresh_quietly(sam3d.results)
    assert {t.status for t in runner().history.recent(16)} >= set(lines)
    enabled = draw_jobs_panel()
    for status in ("imported", "failed", "cancelled"):
        assert enabled[("sam3d.retry", uuids[status])], f"Retry of a task {status} is offered"
    for status in ("submitted", "processed", "downloaded", "interrupted"):
        assert not enabled.get(("sam3d.retry", uuids[status])), f"Retry of a task {status} is not offered"
        assert enabled[("sam3d.resume", uuids[status])], f"a task {status} may still finish: Resume it is"
    assert not enabled.get(("sam3d.retry", running)), "a task running here may still finish"
    assert ("sam3d.resume", running) not in enabled, "a task running here is not offered for Resume"
    assert enabled[("sam3d.resume", "")], "what may still finish is offered for Resume instead"


def test_redrawing_the_jobs_panel_reads_no_lock_file(sam3d, monkeypatch):
    """The panel offers Resume for tasks no other Blender holds, which takes reading their lock files: once
    (then at most every 2 s), not at every redraw (a panel is drawn many times a second while a job runs)."""
    from client.journal import Journal

    journal = Journal(sam3d.results)
    for n in range(20):
        uuid = f"00000000-0000-4000-8000-{n:012d}"
        journal.append("created", uuid, info={"name": f"m{n}"})
        journal.append("submitted", uuid, info={"name": f"m{n}"})
    module("operators.machinery.runner").refresh_quietly(sam3d.results)
    locks = module("client.locks").TaskLocks
    looked: list[str] = []
    real = locks.held_elsewhere
    monkeypatch.setattr(locks, "held_elsewhere", lambda self, uuid: looked.append(uuid) or real(self, uuid))
    assert enabled_resume_all()
    assert len(looked) == 20, "the first draw reads each task's lock (the control)"
    for _ in range(10):
        assert enabled_resume_all()
    assert len(looked) == 20, f"{len(looked) - 20} lock reads by 10 redraws"
    assert len(runner().unfinished()) == 20 and len(looked) == 40, "Resume itself asks anew"


def enabled_resume_all() -> bool:
    return draw_jobs_panel().get(("sam3d.resume", ""), False)


# --- 3. work identified by what it is -------------------------------------------------------------------


def two_folders_of_image_png(tmp: Path, same_mask: bool) -> Path:
    folder = tmp / "photos"
    for name, mask in (("chair", "1.png"), ("table", "1.png" if same_mask else "2.png")):
        (folder / name).mkdir(parents=True)
        shutil.copy(SAMPLES / "socrates" / "image.png", folder / name / "image.png")
        shutil.copy(SAMPLES / "socrates" / mask, folder / name / "mask.png")
    return folder


@pytest.mark.parametrize("same_mask", [False, True], ids=["two masks", "identical photo and mask"])
def test_a_batch_cut_off_midway_is_resumed_without_a_single_second_submission(sam3d, same_mask):
    """Two photos named image.png in two folders (even with identical content: two items, two assets): the
    run is cut off while both process; the next run sends no submission and no upload, only polls."""
    folder = two_folders_of_image_png(sam3d.tmp, same_mask)
    library = sam3d.tmp / "library"
    batch_module = module("operators.library.batch")
    sam3d.emu.processing_time = 600
    batch = batch_module.prepare(folder, library, batch_module.Options())
    batch_module.run(bpy.context, batch, print, blocking=False)
    wait_for(lambda: (tick(), sam3d.emu.billed_tasks() == 2)[1], "both submissions")
    reset_session()  # Blender is killed while both process
    new_file(sam3d)
    sam3d.emu.finish()
    since = len(sam3d.emu.requests)
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library)) == {"FINISHED"}
    assert set(kinds(sam3d.emu, since)) == {"getResponse"}, "fetched by UUID: no submission, no upload"
    assert all(t.submissions == 1 for t in sam3d.emu.tasks.values())
    items = report(library)["items"]
    assert sorted(i["name"] for i in items if i["status"] == "done") == ["chair_mask", "table_mask"]
    assert len({i["task_uuid"] for i in items}) == 2 and money() == (0, 0)
    since = len(sam3d.emu.requests)
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library)) == {"FINISHED"}
    assert len(sam3d.emu.requests) == since and report(library)["skipped"] == 2


@pytest.mark.parametrize("layout", ["chair/v2 and chair__v2", "cup.png and cup.jpg"])
def test_two_different_items_never_share_their_provenance(sam3d, layout):
    folder = sam3d.tmp / "photos"
    folder.mkdir()
    if layout == "chair/v2 and chair__v2":
        (folder / "chair").mkdir()
        shutil.copy(SAMPLES / "socrates" / "image.png", folder / "chair" / "image.png")
        shutil.copy(SAMPLES / "socrates" / "1.png", folder / "chair" / "v2.png")  # key chair/v2
        shutil.copy(SAMPLES / "human_object" / "image.png", folder / "chair__v2.png")  # key chair__v2
        shutil.copy(SAMPLES / "human_object" / "mask_0.png", folder / "chair__v2_mask.png")
    else:
        shutil.copy(SAMPLES / "socrates" / "5.png", folder / "cup.png")
        shutil.copy(SAMPLES / "socrates" / "6.png", folder / "cup.jpg")  # another photo of another cup
    library = sam3d.tmp / "library"
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library)) == {"FINISHED"}
    assert sam3d.emu.billed_tasks() == 2
    for _ in range(2):
        new_file(sam3d)
        bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library))
        assert report(library)["skipped"] == 2
    assert sam3d.emu.billed_tasks() == 2, "nothing paid again"


def test_a_batch_item_that_fails_before_it_is_sent_gives_its_money_back(sam3d):
    folder = photos(sam3d.tmp)
    library = sam3d.tmp / "library"
    library.mkdir()
    (library / ".sam3d").write_text("not a folder")  # its provenance cannot be written
    bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library))
    assert [i["status"] for i in report(library)["items"]] == ["failed", "failed"]
    assert sam3d.emu.requests == []
    assert money() == (0, 0) and runner().session_limit.committed == 0


def test_an_auto_mask_whose_answer_was_lost_stays_counted(sam3d, monkeypatch):
    emu = sam3d.emu
    inner = emu._remove_background
    dropped = []

    def accepted_then_lost(task, out):  # noqa: ANN001, ANN202
        inner(task, out)
        if not dropped:  # the first one is created (and billed), then the connection drops
            dropped.append(task["taskUUID"])
            out.drop = True

    monkeypatch.setattr(emu, "_remove_background", accepted_then_lost)
    use_inputs(mask=None)
    with pytest.raises(RuntimeError):
        bpy.ops.sam3d.auto_mask()
    assert emu.billed("removeBackground") == 1 and emu.tasks[dropped[0]].submissions == 2
    assert money() == (PRICE, 0), "Runware billed it: the worst case stays counted"


def test_an_old_task_can_be_reimported_again_and_again(sam3d):
    from client.journal import Journal

    use_inputs()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    uuid = bpy.context.view_layer.objects.active["sam3d_task_uuid"]
    j = Journal(sam3d.results)
    for n in range(70):  # the history goes on: 70 newer tasks
        other = f"00000000-0000-4000-8000-{n:012d}"
        j.append("created", other, info={"name": f"t{n}"})
        j.append("submitted", other, info={"name": f"t{n}"})
        j.append("imported", other, objects=[f"t{n}"], info={})
    reset_session()
    since = len(sam3d.emu.requests)
    for _ in range(3):
        assert bpy.ops.sam3d.reimport(task_uuid=uuid) == {"FINISHED"}
    assert len([o for o in bpy.data.objects if o.get("sam3d_task_uuid") == uuid]) == 4
    assert len(sam3d.emu.requests) == since and money() == (0, 0)
