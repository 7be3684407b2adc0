"""client/jobs.py: a job on its worker thread, its events, cancel, and its journal."""

from __future__ import annotations

import threading

from client.jobs import Job, JobRequest, Journal
from tests.client.conftest import KEY
from tests.emulator import cutout_png


def request(emu, tmp_path, **kwargs) -> JobRequest:
    png = cutout_png(64, 48)
    return JobRequest(api_key=KEY, prepare=lambda: (png, png), result_dir=tmp_path, name="cube",
                      api_url=emu.api_url, poll_first_delay=0.05, **kwargs)


def run(job: Job) -> Job:
    job.start()
    while not job.done:
        job.drain(block=0.1)
    assert job.join(2)
    return job


def test_job_runs_on_a_worker_and_reports_its_phases(emu, tmp_path):
    seen_threads = []
    req = request(emu, tmp_path, number_results=2)
    inner = req.prepare
    req.prepare = lambda: (seen_threads.append(threading.current_thread()), inner())[1]
    job = Job(req)
    phases = []
    job.start()
    while not job.done:
        phases += [e.phase for e in job.drain(block=0.1) if e.kind == "phase"]
    assert seen_threads and seen_threads[0] is not threading.main_thread()
    assert job.outcome.kind == "done" and len(job.outcome.results) == 2
    assert all(r.path.exists() and r.path.parent.name == job.task_uuid for r in job.outcome.results)
    order = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    assert order[:2] == ["preparing", "uploading"] and order[-1] == "downloading" and "processing" in order


def test_task_uuid_is_journalled_before_the_request_goes_out(emu, tmp_path):
    emu.faults.status_sequence = [503] * 10  # the submission never gets through
    emu.faults.retry_after = 0
    job = run(Job(request(emu, tmp_path)))
    assert job.outcome.kind == "failed"
    records, broken = Journal(tmp_path).read()
    assert broken == 0 and [r["event"] for r in records] == ["submitted", "failed"]
    assert records[0]["task_uuid"] == job.task_uuid == emu.requests[0].body[0]["taskUUID"]
    assert KEY not in (tmp_path / Journal.FILE).read_text()


def test_cancel_before_submission_sends_nothing(emu, tmp_path):
    gate = threading.Event()
    req = request(emu, tmp_path)
    inner = req.prepare
    req.prepare = lambda: (gate.wait(5), inner())[1]
    job = Job(req).start()
    job.cancel()
    gate.set()
    run_to_end = job
    while not run_to_end.done:
        job.drain(block=0.1)
    assert job.outcome.error.code == "cancelled" and emu.requests == []


def test_a_broken_journal_line_is_skipped(emu, tmp_path):
    run(Job(request(emu, tmp_path)))
    path = tmp_path / Journal.FILE
    with open(path, "a") as f:
        f.write('{"event": "submitted", "task_uu')  # a crash mid-write
    run(Job(request(emu, tmp_path)))
    records, broken = Journal(tmp_path).read()
    assert broken == 1
    events = [(r["task_uuid"], r["event"]) for r in records]
    assert len({uuid for uuid, _ in events}) == 2
    assert [e for _, e in events] == ["submitted", "results", "downloaded"] * 2  # nothing glued to the broken line


def test_failed_job_carries_the_servers_code_and_a_sentence(emu, tmp_path):
    emu.faults.insufficient_credits = True
    job = run(Job(request(emu, tmp_path)))
    assert job.outcome.error.code == "insufficientCredits"
    assert "credits" in str(job.outcome.error)
