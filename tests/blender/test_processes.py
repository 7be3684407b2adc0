"""Safe across processes: several real Blender processes (tests/blender/session.py, one session each) share
one result folder. A task a live Blender holds is neither offered for Resume nor imported by another; once
its holder is killed (SIGKILL) the other takes the dead holder's lock over and resumes it once; two processes
downloading one result never touch each other's partial files; no task is imported twice into one file."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import bpy
import pytest
from conftest import KEY, SAMPLES, module, reset_session, tick, use_inputs

from tests.watch import wait_for

SESSION = Path(__file__).with_name("session.py")
PHOTO, MASK = SAMPLES / "human_object" / "image.png", SAMPLES / "human_object" / "mask_0.png"


class Session:
    """One Blender process running session.py; its output is read as it comes."""

    def __init__(self, sam3d, zip_path: Path, *args: str) -> None:  # noqa: ANN001
        command = [sys.executable, str(SESSION), str(zip_path), str(sam3d.results), sam3d.emu.api_url, KEY, *args]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def said(self) -> list[dict]:
        """The JSON lines it printed so far."""
        return [json.loads(line) for line in list(self.lines) if line.startswith("{")]

    def output(self) -> str:
        return "".join(self.lines)[-4000:]

    def wait(self, timeout: float = 600) -> list[dict]:
        self.proc.stdin.close()
        self.proc.wait(timeout)
        self._reader.join(30)
        return self.said()

    def kill(self) -> None:
        """SIGKILL: no handler, no cleanup, its lock stays behind."""
        if self.alive:
            self.proc.kill()
        self.proc.wait(30)
        self._reader.join(30)


def session(sam3d, zip_path: Path, *args: str) -> list[dict]:  # noqa: ANN001
    """Run one session to its end; its JSON lines."""
    run = Session(sam3d, zip_path, *args)
    said = run.wait()
    assert run.proc.returncode == 0, run.output()
    return said



def finish_now(emu) -> None:  # noqa: ANN001
    """Every task of the emulator is done now, its files served."""
    now = time.monotonic()
    with emu.lock:
        for state in emu.tasks.values():
            for gen in state.results if state.task_type == "3dInference" else []:
                gen.done_at = min(gen.done_at, now)
        for stored in emu._files.values():
            stored.available_at = min(stored.available_at, now)


def journal(sam3d) -> dict:  # noqa: ANN001
    from client.journal import Journal

    return Journal(sam3d.results).tasks()


def lock_of(sam3d, uuid: str) -> Path:  # noqa: ANN001
    return sam3d.results / "locks" / f"{uuid}.lock"


def holder_pid(sam3d, uuid: str) -> int | None:  # noqa: ANN001
    try:
        return json.loads(lock_of(sam3d, uuid).read_text()).get("pid")
    except (OSError, ValueError):
        return None


def polls_since(emu, since: int) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(t.get("taskType"), t.get("taskUUID")) for r in emu.requests[since:]
            for t in (r.body if isinstance(r.body, list) else []) if isinstance(t, dict)]


def with_uuid(uuid: str) -> list[bpy.types.Object]:
    return [o for o in bpy.data.objects if o.get("sam3d_task_uuid") == uuid]


def downloaded_not_imported(sam3d) -> str:  # noqa: ANN001
    """A task downloaded by a Blender that died before importing it (its lock no more held)."""
    from client.locks import TaskLocks

    use_inputs()
    entry = module("operators.one_object.reconstruct").start_job(bpy.context)
    entry.owned = True
    wait_for(lambda: (entry.job.drain(), entry.job.done)[1], "the download")
    assert entry.job.outcome.kind == "done"
    module("operators.machinery.runner").RUNNER.jobs.clear()
    TaskLocks(sam3d.results).release(entry.job.task_uuid)
    reset_session()
    return entry.job.task_uuid


def test_a_task_a_live_blender_fetches_is_left_alone_until_its_holder_is_killed_then_resumed_once(sam3d, zip_path):
    sam3d.emu.processing_time = 600  # it processes for as long as the test needs
    holder = Session(sam3d, zip_path, "reconstruct", str(PHOTO), str(MASK))
    try:
        wait_for(lambda: sam3d.emu.billed_tasks() == 1 or not holder.alive, "the first Blender's submission")
        assert holder.alive, holder.output()
        [uuid] = [u for u, t in sam3d.emu.tasks.items() if t.task_type == "3dInference"]
        assert holder_pid(sam3d, uuid) == holder.pid, "held from submission on, by its process"
        other = session(sam3d, zip_path, "resume")
        assert other == [{"offered": []}, {"outcome": ["CANCELLED"], "again": ["CANCELLED"]}, {"objects": []}], \
            "a live holder's task is neither offered nor imported"
        assert holder.alive and holder_pid(sam3d, uuid) == holder.pid
        assert journal(sam3d)[uuid].status == "submitted"
    finally:
        holder.kill()
    assert holder_pid(sam3d, uuid) == holder.pid, "a killed Blender leaves its lock behind"

    finish_now(sam3d.emu)
    since = len(sam3d.emu.requests)
    taker = session(sam3d, zip_path, "resume")
    assert taker[0] == {"offered": [uuid]}, "the dead holder's task is offered"
    assert taker[1] == {"outcome": ["FINISHED"], "again": ["CANCELLED"]}, "resumed once"
    assert taker[2] == {"objects": [["mask_0", uuid]]}
    assert set(polls_since(sam3d.emu, since)) == {("getResponse", uuid)}, "fetched by its UUID, not sent again"
    assert sam3d.emu.billed_tasks() == 1 and sam3d.emu.tasks[uuid].submissions == 1
    assert not lock_of(sam3d, uuid).exists(), "the lock taken over, then given back after the import"
    assert journal(sam3d)[uuid].status == "imported"


def test_a_downloaded_task_held_by_a_live_blender_is_not_imported_elsewhere_until_its_holder_dies(sam3d, zip_path):
    uuid = downloaded_not_imported(sam3d)
    holder = Session(sam3d, zip_path, "hold", uuid)
    try:
        wait_for(lambda: holder.said() or not holder.alive, "the lock taken")
        assert holder.said() == [{"holding": uuid, "taken": True, "pid": holder.pid}], holder.output()
        since = len(sam3d.emu.requests)
        runner = module("operators.machinery.runner")
        runner.refresh_quietly(sam3d.results)
        assert uuid not in [t.task_uuid for t in runner.RUNNER.unfinished()], "not offered in this Blender"
        assert bpy.ops.sam3d.resume(task_uuid=uuid) == {"CANCELLED"} and with_uuid(uuid) == []
        other = session(sam3d, zip_path, "resume")
        assert other == [{"offered": []}, {"outcome": ["CANCELLED"], "again": ["CANCELLED"]}, {"objects": []}], \
            "its files are on disk, yet a live holder's task is not imported elsewhere"
        assert holder.alive and holder_pid(sam3d, uuid) == holder.pid
    finally:
        holder.kill()
    taker = session(sam3d, zip_path, "resume")
    assert taker == [{"offered": [uuid]}, {"outcome": ["FINISHED"], "again": ["CANCELLED"]},
                     {"objects": [["mask_0", uuid]]}]
    assert len(sam3d.emu.requests) == since, "from disk: nothing fetched"
    assert not lock_of(sam3d, uuid).exists() and journal(sam3d)[uuid].status == "imported"


def test_two_processes_downloading_one_result_never_touch_each_others_partial_files(sam3d, zip_path):
    """Through the add-on, one task is fetched by one process (its lock); the add-on's download code itself,
    run by two Blender processes into one destination, keeps a partial file of each process's own."""
    from tests.glb import pad_glb

    use_inputs()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    [uuid] = [u for u, t in sam3d.emu.tasks.items() if t.task_type == "3dInference"]
    url = journal(sam3d)[uuid].results[0]["url"]
    size = 256 * 1024
    whole = pad_glb(sam3d.emu.result_bytes, size)
    sam3d.emu.faults.download_size = size
    sam3d.emu.faults.declared_length = size  # each answer sends its first 64 KiB, then stalls
    dest = sam3d.tmp / "shared" / "mask_0_0.glb"
    parts = lambda: sorted(dest.parent.glob(f"{dest.name}.*.part"))  # noqa: E731
    a = Session(sam3d, zip_path, "download", url, str(dest))
    b = Session(sam3d, zip_path, "download", url, str(dest))
    try:
        wait_for(lambda: len(parts()) == 2 and all(p.stat().st_size == 64 * 1024 for p in parts())
                 or not (a.alive and b.alive), "both downloads under way")
        assert a.alive and b.alive, a.output() + b.output()
        assert [s["pid"] for s in a.said() + b.said()] == [a.pid, b.pid]
        owners = {int(p.name.split(".")[-2].split("-")[0]): p for p in parts()}
        assert set(owners) == {a.pid, b.pid}, "each partial file names its process"
        mine = owners[a.pid]
        a.kill()  # killed mid-download: its partial file stays
        kept = mine.read_bytes()
        assert kept == whole[:64 * 1024]
        sam3d.emu.faults.declared_length = None  # the stalled answer ends: b resumes, and finishes
        said = b.wait()
        assert b.proc.returncode == 0 and said[-1] == {"downloaded": str(dest)}, b.output()
    finally:
        a.kill()
        b.kill()
        sam3d.emu.faults.declared_length = None
    assert dest.read_bytes() == whole
    assert parts() == [mine] and mine.read_bytes() == kept, "b never wrote into, or removed, a's partial file"


# --- no task imported twice into one file -----------------------------------------------------------------


def test_resume_pressed_twice_imports_a_downloaded_task_once(sam3d):
    uuid = downloaded_not_imported(sam3d)
    assert bpy.ops.sam3d.resume() == {"FINISHED"}
    assert bpy.ops.sam3d.resume() == {"CANCELLED"}
    assert bpy.ops.sam3d.resume(task_uuid=uuid) == {"CANCELLED"}
    assert len(with_uuid(uuid)) == 1 and journal(sam3d)[uuid].status == "imported"


def test_resume_pressed_again_while_the_first_fetch_runs_does_nothing(sam3d):
    sam3d.emu.processing_time = 600
    use_inputs()
    entry = module("operators.one_object.reconstruct").start_job(bpy.context)
    wait_for(lambda: sam3d.emu.billed_tasks() == 1 and entry.job.submitted, "the submission")
    uuid = entry.job.task_uuid
    reset_session()  # Blender quit while it processed
    history = module("operators.machinery.history")
    runner = module("operators.machinery.runner")
    runner.refresh_quietly(sam3d.results)
    fetching = history.start_from_record(bpy.context, runner.RUNNER.record(uuid), task_uuid=uuid,
                                         resume=True)  # what the UI's Resume starts: a job
    assert uuid in runner.RUNNER.jobs and fetching.job.request.resume
    assert bpy.ops.sam3d.resume() == {"CANCELLED"}, "pressed again: nothing more to resume"
    assert bpy.ops.sam3d.resume(task_uuid=uuid) == {"CANCELLED"}
    finish_now(sam3d.emu)
    wait_for(lambda: (tick(), not runner.RUNNER.jobs)[1], "the resumed job imported by the app timer")
    assert len(with_uuid(uuid)) == 1 and sam3d.emu.tasks[uuid].submissions == 1


def cut_journal(sam3d, uuid: str, keep: set[str]) -> None:  # noqa: ANN001
    """As if Blender died before the task's later lines were written."""
    path = sam3d.results / "journal.jsonl"
    lines = [line for line in path.read_text().splitlines(keepends=True)
             if json.loads(line)["task_uuid"] != uuid or json.loads(line)["event"] in keep]
    path.write_text("".join(lines))
    (sam3d.results / "journal.index.json").unlink(missing_ok=True)


@pytest.mark.parametrize("left", ["downloaded", "submitted"])
def test_resume_of_a_task_whose_objects_are_already_in_the_file_imports_nothing(sam3d, left):
    use_inputs()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    uuid = bpy.context.view_layer.objects.active["sam3d_task_uuid"]
    assert len(with_uuid(uuid)) == 1
    steps = {"created", "submitted"} | ({"results", "downloaded"} if left == "downloaded" else set())
    cut_journal(sam3d, uuid, steps)  # imported, but the journal never said so
    reset_session()
    assert journal(sam3d)[uuid].status == left
    assert bpy.ops.sam3d.resume() in ({"FINISHED"}, {"CANCELLED"})
    assert len(with_uuid(uuid)) == 1, "it is in this file already: not imported twice"
    assert journal(sam3d)[uuid].status == "imported", "and the journal now says so"
    assert sam3d.emu.billed_tasks() == 1 and sam3d.emu.tasks[uuid].submissions == 1
    assert bpy.ops.sam3d.resume() == {"CANCELLED"}


def test_a_task_found_locked_by_another_blender_stays_resumable_after_that_blender_dies(sam3d, zip_path):
    import shutil

    folder = sam3d.tmp / "photos"
    folder.mkdir()
    shutil.copy(PHOTO, folder / "bench.png")
    shutil.copy(MASK, folder / "bench_mask.png")
    library = sam3d.tmp / "library"
    sam3d.emu.processing_time = 600
    holder = Session(sam3d, zip_path, "batch", str(folder), str(library), "--jobs", "1")
    try:
        wait_for(lambda: sam3d.emu.billed_tasks() == 1 or not holder.alive, "the first Blender's submission")
        [uuid] = [u for u, t in sam3d.emu.tasks.items() if t.task_type == "3dInference"]
        wait_for(lambda: holder_pid(sam3d, uuid) == holder.pid, "its lock")
        bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library))  # the same batch, here, meanwhile
        [item] = json.loads((library / "sam3d-report.json").read_text())["items"]
        assert item["status"] == "failed" and "Another Blender is fetching" in item["reason"]
        assert sam3d.emu.billed_tasks() == 1
    finally:
        holder.kill()
    assert journal(sam3d)[uuid].unfinished, "the holder died: the paid task must stay resumable"
    runner = module("operators.machinery.runner")
    runner.refresh_quietly(sam3d.results)
    assert uuid in [t.task_uuid for t in runner.RUNNER.unfinished()]
    finish_now(sam3d.emu)
    sam3d.emu.processing_time = 0.2
    bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library))
    assert json.loads((library / "sam3d-report.json").read_text())["done"] == 1
    assert sam3d.emu.billed_tasks() == 1, "fetched by its UUID, not paid again"
