"""client/jobs.py and client/journal.py: a job on its worker thread, its events, cancel, resume, its journal."""

from __future__ import annotations

import threading
import time

import pytest

from client import tasks
from client.jobs import INPUT_FILES, CaptionRequest, Job, JobRequest
from client.journal import FILE, History, Journal
from client.money import Ledger, micro
from tests.client.conftest import KEY
from tests.emulator import cutout_png


def request(emu, tmp_path, **kwargs) -> JobRequest:
    png = cutout_png(64, 48)
    kwargs.setdefault("prepare", lambda: (png, png))
    return JobRequest(api_key=KEY, result_dir=tmp_path, name="cube", api_url=emu.api_url, poll_first_delay=0.05,
                      **kwargs)


def run(job: Job) -> Job:
    job.start()
    while not job.done:
        job.drain(block=0.1)
    assert job.join(2)
    return job


def events(tmp_path) -> list[str]:
    return [r["event"] for r in Journal(tmp_path).read()[0]]


def test_job_runs_on_a_worker_and_reports_its_phases(emu, tmp_path):
    seen_threads = []
    req = request(emu, tmp_path, number_results=2)
    inner = req.prepare
    req.prepare = lambda: (seen_threads.append(threading.current_thread()), inner())[1]
    job = Job(req)
    phases, texts = [], []
    job.start()
    while not job.done:
        drained = [e for e in job.drain(block=0.1) if e.kind == "phase"]
        phases += [e.phase for e in drained]
        texts += [(e.text, e.values) for e in drained]
    assert seen_threads and seen_threads[0] is not threading.main_thread()
    assert job.outcome.kind == "done" and len(job.outcome.results) == 2
    assert all(r.path.exists() and r.path.parent.name == job.task_uuid for r in job.outcome.results)
    assert all((tmp_path / job.task_uuid / name).exists() for name in INPUT_FILES), "Retry needs the inputs"
    order = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    assert order[:2] == ["preparing", "uploading"] and order[-1] == "downloading" and "processing" in order
    assert events(tmp_path) == ["created", "submitted", "results", "downloaded"]
    # Texts are English templates with their values apart, so that the UI can translate them first.
    assert ("Downloading {}/{}", (2, 2)) in texts and all("{" not in v for _, values in texts for v in map(str, values))
    assert job.progress_text(lambda t: t.replace("Downloading", "Téléchargement")).startswith("Téléchargement 2/2")
    assert job.progress_text(lambda t: "{} {} {} {} {}").startswith("Downloading 2/2"), "a bad translation: English"


def test_task_uuid_is_journalled_before_the_request_goes_out(emu, tmp_path):
    run(Job(request(emu, tmp_path / "earlier")))  # the photo is uploaded (and cached): the next job only submits
    sent_before = len(emu.requests)
    emu.faults.status_sequence = [503] * 10  # the submission never gets through
    emu.faults.retry_after = 0
    job = run(Job(request(emu, tmp_path)))
    assert job.outcome.kind == "failed"
    records, broken = Journal(tmp_path).read()
    assert broken == 0 and [r["event"] for r in records] == ["created", "submitted", "failed"]
    first = emu.requests[sent_before].body[0]
    assert first["taskType"] == "3dInference" and records[1]["task_uuid"] == job.task_uuid == first["taskUUID"]
    assert records[2]["resumable"], "it may have reached Runware: Resume stays offered"
    assert KEY not in (tmp_path / FILE).read_text()


def test_cancel_before_submission_sends_nothing(emu, tmp_path):
    gate = threading.Event()
    req = request(emu, tmp_path)
    inner = req.prepare
    req.prepare = lambda: (gate.wait(5), inner())[1]
    job = Job(req).start()
    job.cancel()
    gate.set()
    while not job.done:
        job.drain(block=0.1)
    assert job.outcome.error.code == "cancelled" and emu.requests == []
    assert Journal(tmp_path).tasks()[job.task_uuid].status == "cancelled"


def test_cancel_after_submission_leaves_the_task_resumable(emu, tmp_path):
    emu.processing_time = 30
    job = Job(request(emu, tmp_path)).start()
    while emu.billed_tasks() == 0:
        job.drain(block=0.05)
    job.cancel()
    while not job.done:
        job.drain(block=0.1)
    assert Journal(tmp_path).tasks()[job.task_uuid].unfinished


def test_resume_fetches_by_task_uuid_without_submitting_again(emu, tmp_path):
    emu.processing_time = 0.5
    first = Job(request(emu, tmp_path)).start()
    while emu.billed_tasks() == 0:
        first.drain(block=0.05)
    first.cancel()  # as if Blender had quit here
    first.join(2)
    again = run(Job(request(emu, tmp_path, task_uuid=first.task_uuid, resume=True, prepare=None)))
    assert again.outcome.kind == "done" and len(again.outcome.results) == 1
    assert emu.billed_tasks() == 1 and emu.tasks[first.task_uuid].submissions == 1
    assert Journal(tmp_path).tasks()[first.task_uuid].status == "downloaded"


def test_a_broken_journal_line_is_skipped(emu, tmp_path):
    run(Job(request(emu, tmp_path)))
    with open(tmp_path / FILE, "a") as f:
        f.write('{"event": "submitted", "task_uu')  # a crash mid-write
    run(Job(request(emu, tmp_path)))
    records, broken = Journal(tmp_path).read()
    assert broken == 1
    tasks = Journal(tmp_path).tasks()
    assert len(tasks) == 2 and all(t.status == "downloaded" for t in tasks.values())  # nothing glued on


def test_journal_folds_each_task_and_its_cost(emu, tmp_path):
    job = run(Job(request(emu, tmp_path, number_results=3)))
    task = Journal(tmp_path).tasks()[job.task_uuid]
    assert task.info["name"] == "cube" and task.info["number_results"] == 3
    assert task.cost == pytest.approx(3 * 0.0038) and len(task.files) == 3
    assert task.unfinished, "downloaded but not imported: Resume imports it from disk"


def test_failed_job_carries_the_servers_code_and_a_sentence(emu, tmp_path):
    emu.faults.insufficient_credits = True
    job = run(Job(request(emu, tmp_path)))
    assert job.outcome.error.code == "insufficientCredits"
    assert "credits" in str(job.outcome.error)
    assert Journal(tmp_path).tasks()[job.task_uuid].code == "insufficientCredits"


def test_one_photo_is_uploaded_once_for_many_jobs(emu, tmp_path):
    from client.jobs import UPLOADS

    UPLOADS.clear()
    photo, mask = cutout_png(640, 480), cutout_png(640, 480)
    jobs = [Job(request(emu, tmp_path, prepare=lambda: (photo, mask))) for _ in range(4)]
    for job in jobs:
        job.start()
    for job in jobs:
        while not job.done:
            job.drain(block=0.1)
    assert all(j.outcome.kind == "done" for j in jobs)
    uploads = [t for r in emu.requests for t in r.body if t.get("taskType") == "imageUpload"]
    images = {t["inputs"]["image"] for r in emu.requests for t in r.body if t.get("taskType") == "3dInference"}
    assert len(uploads) == 1 and len(images) == 1 and images == set(emu.uploads)


def test_an_upload_the_server_forgot_is_sent_again(emu, tmp_path):
    from client.jobs import UPLOADS

    UPLOADS.clear()
    run(Job(request(emu, tmp_path)))
    emu.uploads.clear()  # deleted server-side (30 days unused)
    job = run(Job(request(emu, tmp_path)))
    assert job.outcome.kind == "done"
    assert len([t for r in emu.requests for t in r.body if t.get("taskType") == "imageUpload"]) == 2
    assert emu.billed_tasks() == 2


def test_an_endpoint_without_image_upload_gets_the_photo_inline(emu, tmp_path, monkeypatch):
    from client import tasks as task_module
    from client.jobs import UPLOADS

    UPLOADS.clear()
    # An upload task the server does not know: what an endpoint without imageUpload answers.
    def unknown_task(png: bytes, task_uuid: str | None = None) -> dict:
        return {"taskType": "imageUploadX", "taskUUID": task_module.new_task_uuid()}

    monkeypatch.setattr(task_module, "upload_task", unknown_task)
    job = run(Job(request(emu, tmp_path)))
    assert job.outcome.kind == "done"
    [task] = [t for r in emu.requests for t in r.body if t.get("taskType") == "3dInference"]
    assert task["inputs"]["image"].startswith("data:image/png;base64,")


def test_a_sent_task_that_failed_on_our_side_stays_resumable(emu, tmp_path):
    emu.processing_time = 30
    job = run(Job(request(emu, tmp_path, job_timeout=1.0)))
    assert job.outcome.error.code == "jobTimeout"
    task = Journal(tmp_path).tasks()[job.task_uuid]
    assert task.status == "interrupted" and task.unfinished, "Runware may still finish (and bill) it"


def test_a_key_with_invisible_characters_is_refused_before_any_request(emu, tmp_path):
    job = run(Job(JobRequest(api_key=KEY + "\u200b", result_dir=tmp_path, prepare=lambda: (b"", b""),
                             api_url=emu.api_url)))
    assert job.outcome.error.code == "invalidApiKey" and emu.requests == []
    assert "\u200b" not in str(job.outcome.error)


def test_history_reads_only_what_was_appended_and_waits_for_a_line_being_written(tmp_path):
    from client.journal import History

    A, B = "0000000a-0000-4000-8000-00000000000a", "0000000b-0000-4000-8000-00000000000b"  # noqa: N806
    history = History(tmp_path)
    assert history.refresh().tasks == {}
    journal = Journal(tmp_path)
    journal.append("created", A, info={"name": "one"})
    journal.append("submitted", A, info={"name": "one"})
    assert history.refresh().tasks[A].status == "submitted"
    with open(tmp_path / FILE, "a") as f:
        f.write(f'{{"time": 1, "event": "imported", "task_uuid": "{A}"')  # still being written: no newline yet
    assert history.refresh().tasks[A].status == "submitted" and history.broken == 0
    with open(tmp_path / FILE, "a") as f:
        f.write("}\n")
    assert history.refresh().tasks[A].status == "imported"
    journal.append("created", B, info={"name": "two"})
    assert set(history.refresh().tasks) == {A, B}
    assert history.refresh().tasks == Journal(tmp_path).tasks(), "the same as reading it all again"


# --- what must hold whatever the server does (each of these fails if the behaviour is broken) -------------


def test_a_submission_whose_answer_never_comes_stays_resumable(emu, tmp_path):
    """The task is marked as sent *before* the request: an answer lost on the way (here it trickles past the
    job's time limit) leaves a task Runware created, and billed, that Resume can still fetch."""
    from client.jobs import UPLOADS

    UPLOADS.clear()
    run(Job(request(emu, tmp_path)))  # the photo is uploaded: the next job only submits
    emu.faults.trickle, emu.faults.trickle_api = 0.3, True
    job = run(Job(request(emu, tmp_path, job_timeout=3.0)))
    emu.faults.trickle = None
    assert job.outcome.error.code in ("jobTimeout", "timeout") and job.submitted
    assert emu.billed_tasks() == 2, "Runware created the second task"
    record = Journal(tmp_path).tasks()[job.task_uuid]
    assert record.status == "interrupted" and record.unfinished


def test_a_resumed_task_runware_no_longer_has_says_so(emu, tmp_path):
    first = run(Job(request(emu, tmp_path)))
    emu.forget(first.task_uuid)
    again = run(Job(request(emu, tmp_path, task_uuid=first.task_uuid, resume=True, prepare=None)))
    assert again.outcome.error.code == "taskFailedOrNotFound"
    assert "no longer has this task" in str(again.outcome.error)
    assert emu.billed_tasks() == 1, "nothing sent again"


@pytest.mark.parametrize("mode", [
    {"style.range_ignored": True, "faults.truncate_downloads": 1},
    {"style.literal_results": True},
    {"style.status_on_success": False},
    {"style.list_finished_only": True},
    {"style.include_progress": True},
    {"style.result_form": "base64"},
    {"style.result_form": "dataURI"},
    {"style.result_form": "modelURL"},
    {"style.multi_form": "files"},
    {"style.result_index": "absent"},
    {"style.retry_after_form": "none", "faults.status_sequence": [429]},
    {"style.retry_after_form": "date", "faults.status_sequence": [503]},
    {"style.echo_task_type": "getResponse", "style.status_word": "pending"},
], ids=lambda mode: ",".join(f"{k.split('.')[1]}={v}" for k, v in mode.items()))
def test_a_job_brings_every_result_whatever_shape_runware_answers_in(emu, tmp_path, mode):
    for path, value in mode.items():
        group, name = path.split(".")
        setattr(getattr(emu, group), name, value)
    emu.faults.retry_after = 0.1
    job = run(Job(request(emu, tmp_path, number_results=2)))
    assert job.outcome.kind == "done", job.outcome.error
    paths = [r.path for r in job.outcome.results]
    assert len(paths) == 2 and len(set(paths)) == 2
    assert all(p.read_bytes() == emu.result_bytes for p in paths), "every file whole and exact"
    assert emu.billed_tasks() == 1


def test_duplicate_and_absurd_result_indexes_still_give_every_result_its_own_file(emu, tmp_path):
    for form in ("duplicate", "huge"):
        emu.style.result_index = form
        job = run(Job(request(emu, tmp_path, number_results=3)))
        assert job.outcome.kind == "done", job.outcome.error
        paths = sorted(r.path.name for r in job.outcome.results)
        assert paths == ["cube_0.glb", "cube_1.glb", "cube_2.glb"], form
        assert all(0 <= r.index < 2**16 for r in job.outcome.results)


def test_polls_quicken_around_the_time_tasks_have_taken():
    from client.runware import FAST_POLL, next_delay

    assert next_delay(2.0, 3.0, None, None, 0.5, 2.0) == 2.0, "no history: a plain backoff"
    assert next_delay(2.0, 3.0, None, 10.0, 0.5, 2.0) == 2.0, "long before the expected end: the backoff"
    assert next_delay(2.0, 7.9, None, 10.0, 0.5, 2.0) == pytest.approx(0.6), "it wakes up at 85 %"
    assert next_delay(2.0, 9.0, None, 10.0, 0.5, 2.0) == FAST_POLL
    assert next_delay(0.75, 1.8, None, 2.0, 0.5, 2.0) == pytest.approx(0.1), "a 2 s task: quicker than FAST_POLL"
    assert next_delay(1.0, 20.0, None, 10.0, 0.5, 2.0) == 1.5, "far past it: back to the backoff"
    assert next_delay(2.0, 5.0, 50, 10.0, 0.5, 2.0) == 2.0 and next_delay(2.0, 1.0, 80, None, 0.5, 2.0) == 0.25


def test_jobs_started_together_learn_how_long_tasks_take_from_the_first_to_end(emu, tmp_path, monkeypatch):
    from client import jobs, runware

    emu.processing_time = 0.6
    real, entered = runware.RunwareClient.wait, []
    monkeypatch.setattr(runware.RunwareClient, "wait", lambda self, *a, **kw: (entered.append(time.monotonic()),
                                                                                real(self, *a, **kw))[1])
    first = run(Job(request(emu, tmp_path)))
    key = (emu.api_url, first.request.model)
    made_at = max(g.done_at for g in emu.tasks[first.task_uuid].results)
    # timed from the wait's start (after the submit's round trip): it ends after the result is made
    assert first.outcome.kind == "done" and jobs.RECENT.median(key) >= made_at - entered[0], "seen after made"
    assert made_at - entered[0] > 0.3, "most of the processing time was left to wait for"
    assert jobs.RECENT.median(("https://elsewhere.example/v1", first.request.model)) is None, "per endpoint"
    seen = []
    monkeypatch.setattr(runware.RunwareClient, "wait", lambda self, *a, **kw: (seen.append(kw["typical"]),
                                                                                real(self, *a, **kw))[1])
    second = run(Job(request(emu, tmp_path)))  # made with no figure from the journal, as a batch's are
    assert second.outcome.kind == "done" and seen == [jobs.RECENT.durations(key)[0]], "it polls by the first one's time"
    resumed = run(Job(request(emu, tmp_path, task_uuid=second.task_uuid, resume=True)))
    assert resumed.outcome.kind == "done" and len(jobs.RECENT.durations(key)) == 2, "a resumed wait: not a task's time"


def caption_request(ledger, png: bytes | None = None) -> CaptionRequest:
    shown = png or cutout_png(32, 32)
    return CaptionRequest(tasks.CAPTION_MODEL, lambda: shown,
                          reservation=ledger.reserve("caption", tasks.CAPTION_MODEL, 1, []))


def test_a_caption_is_asked_once_with_the_new_task_journalled_and_settled(emu, tmp_path):
    ledger = Ledger()
    emu.caption_text = "A brass desk lamp."
    ask = caption_request(ledger)
    job = run(Job(request(emu, tmp_path, caption=ask)))
    assert job.outcome.kind == "done" and job.outcome.caption == "A brass desk lamp." and emu.billed("caption") == 1
    [sent] = [r.body[0] for r in emu.requests if r.body and r.body[0].get("taskType") == "caption"]
    assert sent["taskUUID"] == ask.task_uuid
    assert events(tmp_path) == ["created", "submitted", "caption_sent", "caption", "results", "downloaded"]
    history = History(tmp_path)
    history.refresh()
    assert history.tasks[job.task_uuid].info["caption"] == "A brass desk lamp."
    assert history.total_cost == pytest.approx(0.0019 + 0.0038)  # the caption counts in what was spent
    assert ledger.reserved == 0 and ledger.spent == micro(0.0019)


def test_a_failed_caption_is_a_warning_and_a_resumed_task_asks_none(emu, tmp_path):
    ledger = Ledger()
    emu.caption_text = lambda task: None  # an answer with no text: Runware may have billed it
    job = run(Job(request(emu, tmp_path, caption=caption_request(ledger))))
    assert job.outcome.kind == "done" and job.outcome.caption == ""
    assert any("No caption" in w for w in job.outcome.warnings)
    assert ledger.reserved == 0 and ledger.spent == micro(0.0026), "sent: its worst case stays counted"
    again = caption_request(ledger)
    resumed = run(Job(request(emu, tmp_path, task_uuid=job.task_uuid, resume=True, caption=again)))
    assert resumed.outcome.kind == "done" and emu.billed("caption") == 1
    assert again.reservation is not None and again.reservation.settled and ledger.reserved == 0  # given back


def test_a_cancelled_job_gives_its_caption_money_back(emu, tmp_path):
    ledger = Ledger()
    job = Job(request(emu, tmp_path, caption=caption_request(ledger)))
    job.cancel()
    assert ledger.reserved == 0 and ledger.spent == 0 and emu.billed("caption") == 0
