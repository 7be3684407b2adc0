"""Jobs that never freeze Blender and never lose a paid result: several at once, history, resume, cost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bpy
import pytest
from conftest import KEY, MODULE, SAMPLES, tick, use_inputs

from tests.watch import until, wait_for

SESSION = Path(__file__).with_name("session.py")


def runner():  # noqa: ANN201
    return sys.modules[f"{MODULE}.operators.machinery.runner"]


def reconstruct_module():  # noqa: ANN201
    return sys.modules[f"{MODULE}.operators.one_object.reconstruct"]


def tick_until_idle(timeout: float = 30.0) -> None:
    """Do what Blender's app timer does in the UI until every job has ended and been imported."""
    wait_for(lambda: (tick(), not runner().RUNNER.jobs)[1], "every job ended and imported", timeout)


def journal(sam3d) -> dict:  # noqa: ANN001
    from client.journal import Journal

    return Journal(sam3d.results).tasks()


def test_jobs_queue_behind_the_concurrency_limit(sam3d):
    sam3d.prefs.max_jobs = 2
    sam3d.emu.processing_time = 0.6
    use_inputs()
    for _ in range(5):
        reconstruct_module().start_job(bpy.context)
    peak = 0

    def idle() -> bool:
        nonlocal peak
        peak = max(peak, runner().RUNNER.active())
        tick()
        return not runner().RUNNER.jobs

    until(idle, 30)
    assert peak == 2
    created = sorted(t.created for t in sam3d.emu.tasks.values() if t.task_type == "3dInference")
    assert created[2] - created[0] >= 0.5, "a third job went out before a slot was free"
    made = [o for o in bpy.data.objects if o.get("sam3d_task_uuid")]
    assert len(made) == 5 and len({o["sam3d_task_uuid"] for o in made}) == 5
    assert sam3d.emu.billed_tasks() == 5


def test_cancel_one_or_all_by_task_uuid(sam3d):
    sam3d.emu.processing_time = 30
    use_inputs()
    a, b, c = (reconstruct_module().start_job(bpy.context) for _ in range(3))
    assert bpy.ops.sam3d.cancel(task_uuid=a.job.task_uuid) == {"FINISHED"}
    wait_for(lambda: (tick(), a.job.task_uuid not in runner().RUNNER.jobs)[1])
    assert a.job.task_uuid not in runner().RUNNER.jobs and b.job.task_uuid in runner().RUNNER.jobs
    assert bpy.ops.sam3d.cancel() == {"FINISHED"}  # empty: all
    tick_until_idle()
    assert not [o for o in bpy.data.objects if o.get("sam3d_task_uuid")]


def test_history_cost_reimport_and_retry(sam3d):
    use_inputs()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    first = bpy.context.view_layer.objects.active
    uuid = first["sam3d_task_uuid"]
    record = journal(sam3d)[uuid]
    assert record.status == "imported" and record.info["image"] == "image.png" and record.info["mask"] == "mask_0.png"
    assert runner().RUNNER.ledger.spent == 3800, "0.0038 USD, in micro-dollars"
    assert runner().RUNNER.total_cost() == pytest.approx(0.0038)

    requests_before = len(sam3d.emu.requests)
    assert bpy.ops.sam3d.reimport(task_uuid=uuid) == {"FINISHED"}
    again = bpy.context.view_layer.objects.active
    assert again != first and again["sam3d_task_uuid"] == uuid and again["sam3d_seed"] == first["sam3d_seed"]
    assert len(sam3d.emu.requests) == requests_before, "re-import must not touch the network"

    bpy.ops.wm.read_homefile(use_empty=True)  # Retry works from any file: the inputs are kept on disk
    assert bpy.ops.sam3d.retry(task_uuid=uuid) == {"FINISHED"}
    retried = bpy.context.view_layer.objects.active
    assert retried["sam3d_task_uuid"] != uuid and sam3d.emu.billed_tasks() == 2
    sent = [t for r in sam3d.emu.requests for t in r.body if t.get("taskType") == "3dInference"]
    assert sent[0]["inputs"] == sent[1]["inputs"]


def test_spending_limit_refuses_new_jobs_with_a_sentence(sam3d):
    sam3d.prefs.session_budget = 0.005  # one task (0.0038) fits, a second would cross it
    use_inputs()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    with pytest.raises(RuntimeError, match="Spending Limit set in the preferences"):
        bpy.ops.sam3d.reconstruct()
    assert sam3d.emu.billed_tasks() == 1


def test_the_spending_limit_has_an_exact_edge(sam3d):
    sam3d.prefs.session_budget = 0.0076  # exactly two tasks: reaching the limit is allowed, crossing it is not
    use_inputs()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    with pytest.raises(RuntimeError, match="Spending Limit"):
        bpy.ops.sam3d.reconstruct()
    assert sam3d.emu.billed_tasks() == 2


def test_a_limit_below_one_task_refuses_before_anything_is_sent(sam3d):
    sam3d.prefs.session_budget = 0.003  # under the worst case of one task (0.0038)
    use_inputs()
    with pytest.raises(RuntimeError, match="needs up to \\$0.0038"):
        bpy.ops.sam3d.reconstruct()
    assert sam3d.emu.requests == []


def test_a_broken_journal_line_is_skipped_and_the_rest_stays(sam3d):
    use_inputs()
    bpy.ops.sam3d.reconstruct()
    with open(sam3d.results / "journal.jsonl", "a") as f:
        f.write('{"time": 1, "event": "subm')  # the disk filled up mid-line
    bpy.ops.sam3d.reconstruct()
    history = runner().RUNNER.refresh_history(sam3d.results)
    assert history.broken == 1
    assert [t.status for t in history.tasks.values()] == ["imported", "imported"]


def test_resume_imports_a_job_cut_off_after_download(sam3d):
    sam3d.emu.processing_time = 0.3
    use_inputs()
    running = reconstruct_module().start_job(bpy.context)
    running.owned = True  # nobody will import it: as if Blender crashed right after the download
    while not running.job.done:
        running.job.drain(block=0.1)
    runner().RUNNER.jobs.clear()
    assert journal(sam3d)[running.job.task_uuid].status == "downloaded"
    requests_before = len(sam3d.emu.requests)
    assert bpy.ops.sam3d.resume() == {"FINISHED"}
    assert bpy.data.objects["mask_0"]["sam3d_task_uuid"] == running.job.task_uuid
    assert len(sam3d.emu.requests) == requests_before  # from disk, no request
    assert journal(sam3d)[running.job.task_uuid].status == "imported"


def test_blender_killed_while_processing_then_resumed_once_without_paying_again(sam3d, zip_path):
    """A real Blender process is killed mid-job; a new one resumes the task by its UUID and imports it."""
    sam3d.emu.processing_time = 5.0
    args = [sys.executable, str(SESSION), str(zip_path), str(sam3d.results), sam3d.emu.api_url, KEY]
    photo, mask = SAMPLES / "human_object" / "image.png", SAMPLES / "human_object" / "mask_0.png"
    first = subprocess.Popen([*args, "reconstruct", str(photo), str(mask)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: sam3d.emu.billed_tasks() or first.poll() is not None, "the first session's submission", 60)
        assert sam3d.emu.billed_tasks(), "the first session never submitted"
        first.kill()  # mid-processing: no result yet
    finally:
        first.wait(10)
    [uuid] = [u for u, t in sam3d.emu.tasks.items() if t.task_type == "3dInference"]
    assert journal(sam3d)[uuid].status == "submitted"

    polls_before = len(sam3d.emu.requests)
    second = subprocess.run([*args, "resume"], capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in second.stdout.splitlines() if line.startswith("{")]
    assert lines, second.stdout + second.stderr
    assert lines[0] == {"offered": [uuid]}  # the panel offers it at start...
    assert lines[1] == {"outcome": ["FINISHED"], "again": ["CANCELLED"]}  # ...and Resume brings it once
    assert lines[2]["objects"] == [["mask_0", uuid]]
    resumed = [t for r in sam3d.emu.requests[polls_before:] for t in r.body]
    assert {t["taskType"] for t in resumed} == {"getResponse"} and {t["taskUUID"] for t in resumed} == {uuid}
    assert sam3d.emu.billed_tasks() == 1 and sam3d.emu.tasks[uuid].submissions == 1
    assert journal(sam3d)[uuid].status == "imported"


def test_results_wait_for_object_mode_instead_of_throwing_the_artist_out_of_edit_mode(sam3d):
    bpy.ops.mesh.primitive_cube_add()
    bpy.ops.object.mode_set(mode="EDIT")
    use_inputs()
    running = reconstruct_module().start_job(bpy.context)
    until(lambda: (tick(), running.job.done)[1], 20)
    for _ in range(5):
        tick()
    assert bpy.context.mode == "EDIT_MESH", "a finished job must not change the artist's mode"
    assert "mask_0" not in bpy.data.objects and "Object Mode" in running.job.text
    bpy.ops.object.mode_set(mode="OBJECT")
    tick_until_idle()
    assert bpy.data.objects["mask_0"]["sam3d_task_uuid"] == running.job.task_uuid


def test_the_spending_limit_counts_jobs_still_running(sam3d):
    use_inputs()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}  # Runware reported 0.0038 per result
    sam3d.prefs.session_budget = 0.0115  # room for two more (0.0038 each), not three
    sam3d.emu.processing_time = 5
    try:
        started = [reconstruct_module().start_job(bpy.context) for _ in range(2)]
        with pytest.raises(RuntimeError, match="already spent or reserved"):
            bpy.ops.sam3d.reconstruct(allow_duplicate=True)  # the same inputs: a double click otherwise
    finally:
        sam3d.prefs.session_budget = 0.0
        for running in started:
            running.job.cancel()
        tick_until_idle()


def test_a_task_that_failed_on_our_side_after_it_was_sent_is_offered_for_resume(sam3d):
    sam3d.emu.faults.corrupt_downloads = 99  # Runware made (and billed) it; the download keeps failing here
    use_inputs()
    with pytest.raises(RuntimeError, match="not a valid GLB"):
        bpy.ops.sam3d.reconstruct()
    [uuid] = [u for u, t in sam3d.emu.tasks.items() if t.task_type == "3dInference"]
    assert [t.task_uuid for t in runner().RUNNER.unfinished()] == [uuid]
    sam3d.emu.faults.corrupt_downloads = 0
    assert bpy.ops.sam3d.resume() == {"FINISHED"}
    assert bpy.data.objects["mask_0"]["sam3d_task_uuid"] == uuid and sam3d.emu.billed_tasks() == 1
