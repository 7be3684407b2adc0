"""Money at the client level: client/money.py (prices, reservations, limits), what a Job does with its
reservation whatever the server answers, and the History that keeps the spending and the unfinished jobs
cheap to read (client/journal.py).

Every test here counts with the emulator or with exact micro-dollars: each fails if money is released for a
request Runware may have billed, or kept for one it certainly did not, or if a limit lets a request through.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from client import tasks as task_module
from client.errors import RunwareError
from client.jobs import UPLOADS, Job, JobRequest
from client.journal import FILE, INDEX, History, Journal, TaskRecord
from client.locks import TaskLocks
from client.money import DEFAULT_PRICES, FALLBACK_PRICE, MICRO, Ledger, Limit, micro
from tests.client.conftest import KEY
from tests.emulator import cutout_png

ROOT = Path(__file__).resolve().parents[2]
SAM3D = "meta:sam@3d"


# --- Ledger: prices --------------------------------------------------------------------------------------


def test_the_default_price_of_a_sam3d_result_is_runwares_documented_example():
    ledger = Ledger()
    assert ledger.price("3dInference", SAM3D) == 3800 == micro(0.0038)
    assert ledger.estimate("3dInference", SAM3D, 3) == pytest.approx(0.0114)
    assert ledger.price("removeBackground", "runware:109@1") == 3800, "RemBG: the documented example too"


def test_a_learnt_price_replaces_the_default_for_its_task_type_and_model_only():
    ledger = Ledger()
    ledger.learn("3dInference", SAM3D, 0.0051)
    assert ledger.price("3dInference", SAM3D) == 5100
    assert ledger.price("3dInference", "meta:sam@3d-next") == micro(FALLBACK_PRICE), "another model: not learnt"
    assert ledger.price("removeBackground", "runware:109@1") == 3800
    ledger.learn("3dInference", SAM3D, 0.0)  # a report of nothing is no price
    ledger.learn("3dInference", SAM3D, -1.0)
    assert ledger.price("3dInference", SAM3D) == 5100
    ledger.learn("3dInference", SAM3D, 0.0042)  # cheaper now: the last report wins
    assert ledger.price("3dInference", SAM3D) == 4200
    ledger.learn("3dInference", SAM3D, 0.0029)  # but never below the documented default
    assert ledger.price("3dInference", SAM3D) == 3800


def test_a_price_planted_in_the_shared_journal_cannot_lower_what_a_limit_lets_through():
    """Prices are learnt from the shared folder's journal too: a planted $0.0001 would let Jobs at Once
    tasks through a limit meant for two."""
    ledger = Ledger()
    ledger.learn("3dInference", SAM3D, 0.0001)
    ledger.learn("3dInference", "meta:sam@3d-next", 0.0001)  # a model we know no price for: the fallback holds
    assert ledger.price("3dInference", "meta:sam@3d-next") == micro(FALLBACK_PRICE)
    limit = Limit("Spending Limit", 0.008)
    held = [ledger.reserve("3dInference", SAM3D, 1, [limit]) for _ in range(2)]
    with pytest.raises(RunwareError):
        ledger.reserve("3dInference", SAM3D, 1, [limit])
    assert len(held) == 2


def test_a_settled_cost_teaches_the_price_per_result():
    ledger = Ledger()
    ledger.reserve("3dInference", SAM3D, 3, []).settle(0.0123, 3)
    assert ledger.price("3dInference", SAM3D) == 4100


@pytest.mark.parametrize("task_type, model", [("upscale", "runware:500@1"), ("3dInference", "meta:sam@4"),
                                              ("removeBackground2", "")])
def test_an_unknown_task_type_or_model_gets_the_cautious_fallback(task_type, model):
    assert (task_type, model) not in DEFAULT_PRICES
    assert max(DEFAULT_PRICES.values()) < FALLBACK_PRICE, "the fallback is cautious: above every known price"
    assert Ledger().price(task_type, model) == micro(FALLBACK_PRICE)


# --- Ledger: reserve, settle, release ----------------------------------------------------------------------


def test_reaching_a_limit_exactly_is_allowed_and_crossing_it_by_one_micro_dollar_is_not():
    ledger = Ledger()
    limit = Limit("the Spending Limit set in the preferences", 0.0076)
    first = ledger.reserve("3dInference", SAM3D, 1, [limit])
    second = ledger.reserve("3dInference", SAM3D, 1, [limit])
    assert limit.committed == limit.limit == 7600 and ledger.reserved == 7600
    with pytest.raises(RunwareError) as refused:
        ledger.reserve("3dInference", SAM3D, 1, [limit])
    assert refused.value.code == "spendingLimit"
    assert "the Spending Limit set in the preferences ($0.0076)" in str(refused.value)
    assert "$0.0038 more" in str(refused.value) and "$0.0076 is already spent or reserved" in str(refused.value)
    assert limit.committed == 7600 and ledger.reserved == 7600, "a refusal holds nothing"
    first.release()
    second.settle(None)
    tight = Limit("a tight limit", 0.003799)  # one micro-dollar short of one result
    with pytest.raises(RunwareError, match="a tight limit"):
        ledger.reserve("3dInference", SAM3D, 1, [tight])
    exact = Limit("an exact limit", 0.0038)
    ledger.reserve("3dInference", SAM3D, 1, [exact])
    assert exact.committed == exact.limit


def test_a_reservation_holds_the_worst_case_of_every_result():
    ledger = Ledger()
    limit = Limit("a limit", 0.0114)
    held = ledger.reserve("3dInference", SAM3D, 3, [limit])
    assert held.amount == 11400 and limit.committed == 11400 and ledger.reserved == 11400
    with pytest.raises(RunwareError):
        ledger.reserve("3dInference", SAM3D, 1, [limit])
    ledger.learn("3dInference", SAM3D, 0.0050)
    with pytest.raises(RunwareError, match=r"needs up to \$0\.0200"):
        ledger.reserve("3dInference", SAM3D, 4, [Limit("four", 0.0199)])


def test_a_limit_of_zero_is_no_limit():
    ledger = Ledger()
    none = Limit("no limit")
    for _ in range(1000):
        ledger.reserve("3dInference", SAM3D, 4, [none])
    assert none.committed == ledger.reserved == 1000 * 4 * 3800


def test_settle_holds_the_reported_cost_and_release_gives_everything_back():
    ledger = Ledger()
    limit = Limit("a limit", 0.0125)
    paid = ledger.reserve("3dInference", SAM3D, 2, [limit])
    paid.settle(0.0070, 2)  # cheaper than the worst case: the difference comes back to the limit
    assert (ledger.spent, ledger.reserved, limit.committed) == (7000, 0, 7000)
    unpaid = ledger.reserve("3dInference", SAM3D, 1, [limit])
    assert limit.committed == 7000 + 3800, "a cheaper report (0.0035) never lowers the documented worst case"
    unpaid.release()
    assert (ledger.spent, ledger.reserved, limit.committed) == (7000, 0, 7000)
    ledger.reserve("3dInference", SAM3D, 1, [limit]).settle(0.0045, 1)  # dearer: the next worst case
    assert ledger.price("3dInference", SAM3D) == 4500


def test_settle_with_no_reported_cost_keeps_the_worst_case_never_zero():
    ledger = Ledger()
    limit = Limit("a limit", 0.005)
    ledger.reserve("3dInference", SAM3D, 1, [limit]).settle(None)
    assert ledger.spent == 3800 and limit.committed == 3800 and ledger.reserved == 0
    assert ledger.price("3dInference", SAM3D) == 3800, "no report: nothing learnt"
    sent = 1
    for _ in range(5):  # six tasks cannot go out under $0.005 when Runware reports no price
        try:
            ledger.reserve("3dInference", SAM3D, 1, [limit]).settle(None)
            sent += 1
        except RunwareError:
            pass
    assert sent == 1 and ledger.spent == 3800


def test_settle_and_release_are_idempotent_in_any_order():
    ledger = Ledger()
    limit = Limit("a limit", 1.0)
    a = ledger.reserve("3dInference", SAM3D, 1, [limit])
    a.settle(0.0038, 1)
    a.settle(0.0500, 1)
    a.release()
    a.settle(None)
    b = ledger.reserve("3dInference", SAM3D, 1, [limit])
    b.release()
    b.release()
    b.settle(0.0038, 1)
    assert (ledger.spent, ledger.reserved, limit.committed) == (3800, 0, 3800)


def test_several_limits_at_once_each_refuse_with_their_own_name_and_a_refusal_holds_nothing():
    ledger = Ledger()
    session = Limit("the Spending Limit set in the preferences", 0.0114)
    batch = Limit("the batch's Cost Limit", 0.0076)
    ledger.reserve("3dInference", SAM3D, 1, [session, batch])
    ledger.reserve("3dInference", SAM3D, 1, [session, batch])
    with pytest.raises(RunwareError, match="the batch's Cost Limit"):
        ledger.reserve("3dInference", SAM3D, 1, [session, batch])
    assert (session.committed, batch.committed) == (7600, 7600), "the session's limit was not charged either"
    ledger.reserve("3dInference", SAM3D, 1, [session])  # a job outside the batch still fits the session
    other_batch = Limit("another batch's Cost Limit", 1.0)
    with pytest.raises(RunwareError, match="the Spending Limit set in the preferences") as refused:
        ledger.reserve("3dInference", SAM3D, 1, [session, other_batch])
    assert "batch" not in str(refused.value).split("cross")[1]
    assert other_batch.committed == 0 and session.committed == 11400 and ledger.reserved == 11400


def test_many_threads_reserving_against_one_limit_never_exceed_it():
    ledger = Ledger()
    limit = Limit("a shared limit", 0.5)  # 131 results of 3800 fit (497,800), the 132nd would cross
    threads = 16
    phase = threading.Barrier(threads)
    granted: list[list] = [[] for _ in range(threads)]
    refused = [0] * threads

    def worker(n: int) -> None:
        phase.wait()
        for i in range(40):  # first: reserve, settle and release, all at once
            try:
                held = ledger.reserve("3dInference", SAM3D, 1, [limit])
            except RunwareError:
                refused[n] += 1
                continue
            if i % 3 == 0:
                held.settle(None)
                granted[n].append(held)
            elif i % 3 == 1:
                held.release()
            else:
                granted[n].append(held)
        phase.wait()
        for _ in range(20):  # then only reserve: the limit fills up, exactly
            try:
                granted[n].append(ledger.reserve("3dInference", SAM3D, 1, [limit]))
            except RunwareError:
                refused[n] += 1

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    held = [r for g in granted for r in g]
    assert limit.committed <= limit.limit
    assert limit.committed == sum(r.amount for r in held) == ledger.spent + ledger.reserved
    assert len(held) == 131 and sum(refused) > 0, "the limit is full, and exactly full"


# --- a Job and its reservation --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_cached_upload():
    UPLOADS.clear()  # the emulator forgets its uploads between tests
    yield
    UPLOADS.clear()


PNG = cutout_png(64, 48)


def paid(emu, tmp_path: Path, ledger: Ledger, limit: Limit, **kwargs) -> JobRequest:
    """A request as the add-on makes it: its worst case reserved before anything can be sent."""
    kwargs.setdefault("prepare", lambda: (PNG, PNG))
    kwargs.setdefault("api_key", KEY)
    req = JobRequest(result_dir=tmp_path, name="cube", api_url=emu.api_url, poll_first_delay=0.05, **kwargs)
    req.reservation = ledger.reserve("3dInference", req.model, req.number_results, [limit])
    return req


def run(job: Job) -> Job:
    job.start()
    deadline = time.monotonic() + 120  # a hang detector only
    while not job.done:
        assert time.monotonic() < deadline, "the job never ended"
        job.drain(block=0.1)
    assert job.join(10)
    return job


def prime(emu, tmp_path: Path) -> None:
    """A first job uploads the photo: later jobs with it send their submission first."""
    job = run(Job(JobRequest(api_key=KEY, result_dir=tmp_path / "prime", prepare=lambda: (PNG, PNG),
                             api_url=emu.api_url, poll_first_delay=0.05)))
    assert job.outcome.kind == "done"


def submissions(emu) -> list:
    """(status, code) of every 3dInference submission the emulator received."""
    out = []
    for rec in emu.requests:
        for t in rec.body if isinstance(rec.body, list) else []:
            if isinstance(t, dict) and t.get("taskType") == "3dInference":
                errors = rec.response.get("errors") if isinstance(rec.response, dict) else None
                out.append((rec.status, errors[0]["code"] if errors else None))
    return out


@pytest.mark.parametrize("refusal", ["401 invalid key", "402 no credits", "400 bad parameter"])
def test_a_submission_the_api_refuses_gives_its_reservation_back(emu, tmp_path, refusal):
    prime(emu, tmp_path)
    billed = emu.billed_tasks()
    ledger, limit = Ledger(), Limit("a limit", 1.0)
    fields = {}
    if refusal.startswith("401"):
        fields["api_key"] = KEY + "-revoked"
    elif refusal.startswith("402"):
        emu.faults.insufficient_credits = True
    else:
        fields["model"] = "meta:sam@9"  # a model Runware refuses: 400 invalidModel
    job = run(Job(paid(emu, tmp_path, ledger, limit, **fields)))
    code = {"401": "invalidApiKey", "402": "insufficientCredits", "400": "invalidModel"}[refusal[:3]]
    assert job.outcome.error.code == code
    assert submissions(emu)[-1] == (int(refusal[:3]), code), "the submission itself was sent, and refused"
    assert emu.billed_tasks() == billed, "no task exists"
    assert (ledger.spent, ledger.reserved, limit.committed) == (0, 0, 0), "nothing billed: all given back"
    assert not Journal(tmp_path).tasks()[job.task_uuid].unfinished, "nothing to resume"


def test_a_submission_whose_answer_was_lost_with_every_retry_keeps_its_reservation(emu, tmp_path):
    prime(emu, tmp_path)
    ledger, limit = Ledger(), Limit("a limit", 1.0)
    emu.faults.status_sequence = [503] * 3  # Runware busy for the first attempts…
    emu.faults.retry_after = 0
    emu.faults.drop_after_submit = 1  # …then the last one is accepted (and billed) and its answer lost
    job = run(Job(paid(emu, tmp_path, ledger, limit)))
    assert job.outcome.error.code == "network" and job.submitted
    assert [s for s, _ in submissions(emu)][-4:] == [503, 503, 503, None], "retries exhausted on a lost answer"
    assert emu.billed_tasks() == 2, "Runware created (and billed) it"
    assert (ledger.spent, ledger.reserved, limit.committed) == (3800, 0, 3800), "kept: it may be billed"
    assert Journal(tmp_path).tasks()[job.task_uuid].status == "interrupted", "and Resume can fetch it"


def test_a_submission_answered_only_by_503s_keeps_its_reservation(emu, tmp_path):
    prime(emu, tmp_path)
    ledger, limit = Ledger(), Limit("a limit", 1.0)
    emu.faults.status_sequence = [503] * 4  # every attempt: we cannot know whether it went through
    emu.faults.retry_after = 0
    job = run(Job(paid(emu, tmp_path, ledger, limit)))
    assert job.outcome.error.code == "serviceUnavailable"
    assert [s for s, _ in submissions(emu)][-4:] == [503] * 4
    assert (ledger.spent, ledger.reserved, limit.committed) == (3800, 0, 3800)


@pytest.mark.parametrize("fault", ["corrupt download", "expired link"])
def test_a_task_billed_then_failing_on_our_side_stays_counted(emu, tmp_path, fault):
    ledger, limit = Ledger(), Limit("a limit", 1.0)
    if fault == "corrupt download":
        emu.faults.corrupt_downloads = 10  # an HTML error page with 200, every time
    else:
        emu.faults.file_status = 403  # what an expired signed URL answers
    job = run(Job(paid(emu, tmp_path, ledger, limit)))
    assert job.outcome.error.code == ("notGlb" if fault == "corrupt download" else "resultExpired")
    assert emu.billed_tasks() == 1
    assert (ledger.spent, ledger.reserved, limit.committed) == (3800, 0, 3800), "Runware's reported cost, kept"
    assert Journal(tmp_path).tasks()[job.task_uuid].status == "interrupted"


def test_a_finished_job_holds_the_reported_cost_and_teaches_the_price(emu, tmp_path):
    ledger, limit = Ledger(), Limit("a limit", 1.0)
    ledger.learn("3dInference", SAM3D, 0.01)  # an old, higher price: the worst case
    job = run(Job(paid(emu, tmp_path, ledger, limit, number_results=2)))
    assert job.outcome.kind == "done"
    assert (ledger.spent, ledger.reserved, limit.committed) == (7600, 0, 7600)
    assert ledger.price("3dInference", SAM3D) == 3800


def test_a_job_cancelled_before_it_starts_gives_its_money_back_and_sends_nothing(emu, tmp_path):
    ledger, limit = Ledger(), Limit("a limit", 1.0)
    job = Job(paid(emu, tmp_path, ledger, limit))
    job.cancel()
    assert job.done and job.outcome.error.code == "cancelled"
    assert (ledger.spent, ledger.reserved, limit.committed) == (0, 0, 0)
    assert emu.requests == []


def test_a_job_cancelled_while_preparing_or_waiting_for_a_slot_gives_its_money_back(emu, tmp_path):
    ledger, limit = Ledger(), Limit("a limit", 1.0)
    gate = threading.Event()
    preparing = threading.Event()

    def prepare():
        preparing.set()
        gate.wait(30)
        return PNG, PNG

    first = Job(paid(emu, tmp_path, ledger, limit, prepare=prepare)).start()
    slots = threading.Semaphore(0)  # no free slot: it waits
    second = Job(paid(emu, tmp_path, ledger, limit), slots=slots).start()
    assert preparing.wait(30)
    assert limit.committed == 7600
    first.cancel()
    second.cancel()
    gate.set()
    for job in (first, second):
        run_to_end(job)
        assert job.outcome.error.code == "cancelled"
    assert (ledger.spent, ledger.reserved, limit.committed) == (0, 0, 0)
    assert submissions(emu) == [] and emu.billed_tasks() == 0


def run_to_end(job: Job) -> None:
    deadline = time.monotonic() + 60
    while not job.done:
        assert time.monotonic() < deadline, "the job never ended"
        job.drain(block=0.1)
    job.join(10)


def test_a_task_another_process_holds_gives_the_money_of_a_new_job_back(emu, tmp_path):
    ledger, limit = Ledger(), Limit("a limit", 1.0)
    req = paid(emu, tmp_path, ledger, limit)
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        TaskLocks(tmp_path).folder.mkdir(parents=True)
        from client.locks import ME, start_time

        TaskLocks(tmp_path).path(req.task_uuid).write_text(json.dumps(
            {**ME, "pid": holder.pid, "start": start_time(holder.pid), "time": time.time()}))
        job = run(Job(req))
    finally:
        holder.kill()
        holder.wait()
    assert job.outcome.error.code == "taskLocked" and emu.requests == []
    assert (ledger.spent, ledger.reserved, limit.committed) == (0, 0, 0)


def test_a_task_sent_again_after_its_forgotten_photo_stays_counted_and_resumable(emu, tmp_path):
    prime(emu, tmp_path)
    emu.uploads.clear()  # Runware deleted the photo upload (30 days unused): the first submission is refused
    emu.processing_time = 30
    ledger, limit = Ledger(), Limit("a limit", 1.0)
    job = run(Job(paid(emu, tmp_path, ledger, limit, job_timeout=4.0)))
    assert [s for s, _ in submissions(emu)][-2:] == [400, 200], "refused, then re-sent with a new upload"
    assert emu.billed_tasks() == 2 and job.outcome.error.code == "jobTimeout"
    assert Journal(tmp_path).tasks()[job.task_uuid].unfinished, "Runware may still finish it: resumable"
    assert (ledger.spent, ledger.reserved, limit.committed) == (3800, 0, 3800), "billed: kept"


def test_a_result_without_a_reported_cost_keeps_the_worst_case(emu, tmp_path, monkeypatch):
    """The emulator has no switch to omit `cost` (it adds it whenever the task asks `includeCost`): the add-on's
    task is sent without includeCost, so the answer carries no cost, as a Runware that reports none would."""
    inner = task_module.inference_task

    def without_cost(**kwargs):
        task = inner(**kwargs)
        task.pop("includeCost")
        return task

    monkeypatch.setattr(task_module, "inference_task", without_cost)
    ledger, limit = Ledger(), Limit("a limit", 0.005)
    job = run(Job(paid(emu, tmp_path, ledger, limit)))
    assert job.outcome.kind == "done" and job.outcome.results[0].cost is None
    assert (ledger.spent, ledger.reserved, limit.committed) == (3800, 0, 3800), "the worst case, never 0"
    refused = 0
    for _ in range(5):
        try:
            paid(emu, tmp_path, ledger, limit)
        except RunwareError:
            refused += 1
    assert refused == 5 and emu.billed_tasks() == 1


# --- History: a snapshot plus the tail, agreeing with the whole journal -----------------------------------

TASKS, LINES = 20_000, 100_000
NEW_1, NEW_2 = "00000001-aaaa-4aaa-8aaa-000000000001", "00000002-aaaa-4aaa-8aaa-000000000002"


def _line(t: float, event: str, uuid: str, **fields) -> str:
    return json.dumps({"time": t, "event": event, "task_uuid": uuid, **fields}) + "\n"


def write_journal(folder: Path, tasks: int = TASKS, lines: int = LINES, seed: int = 7) -> set[str]:
    """A realistic journal of exactly `lines` lines: tasks four at a time, interleaved; most imported, some
    failed on the server or cancelled, a few unfinished in every way, and re-imports of recent tasks. Returns
    the unfinished tasks."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    clock = [1_700_000_000.0]

    def now() -> float:
        clock[0] += 0.001
        return round(clock[0], 3)

    uuids = [f"{i:08d}-0000-4000-8000-{rng.getrandbits(48):012x}" for i in range(tasks)]
    spots = (3, tasks * 23 // 100, tasks // 2, tasks * 3 // 4, tasks - 10)
    unfinished = {uuids[i]: kind for i, kind in zip(spots, (
        "submitted", "processed", "downloaded", "interrupted", "interrupted-after-results"), strict=True)}
    others = [u for u in uuids if u not in unfinished]
    failed = set(rng.sample(others, tasks * 3 // 200))
    cancelled = set(rng.sample([u for u in others if u not in failed], tasks // 200))

    def steps(u: str, n: int) -> list:
        info = {"name": f"mask_{n}", "image": f"photo_{n % 97}.png", "mask": f"mask_{n}.png", "prompt": "a thing",
                "seed": str(n), "model": SAM3D, "number_results": 1, "placement": "CURSOR"}
        results = [{"index": 0, "url": f"https://files/{u}.glb", "seed": str(n), "cost": 0.0038}]
        files = [{"path": f"/r/{u}/mask_{n}_0.glb", "index": 0, "seed": str(n), "cost": 0.0038}]
        created = [("created", {"info": info})]
        sent = created + [("submitted", {"info": info})]
        if u in cancelled:
            return created + [("cancelled", {})]
        if u in failed:
            return sent + [("failed", {"code": "inferenceError", "resumable": False})]
        full = sent + [("results", {"results": results}), ("downloaded", {"files": files})]
        return {None: full + [("imported", {"objects": [info["name"]], "info": info})],
                "submitted": sent, "processed": full[:3], "downloaded": full,
                "interrupted": sent + [("failed", {"code": "network", "resumable": True})],
                "interrupted-after-results": full[:3] + [("failed", {"code": "downloadFailed", "resumable": True})],
                }[unfinished.get(u)]

    plans = [(u, steps(u, n)) for n, u in enumerate(uuids)]
    groups = [plans[i:i + 4] for i in range(0, len(plans), 4)]
    reimports = lines - sum(len(p) for _, p in plans)
    assert reimports >= 0
    extra: dict[int, list[str]] = {}
    for _ in range(reimports):  # Re-import of a task of the last few groups: one line "imported" again
        g = rng.randrange(8, len(groups))
        extra.setdefault(g, []).append(rng.choice(
            [u for group in groups[g - 8:g] for u, p in group if p[-1][0] == "imported"]))
    out: list[str] = []
    for g, group in enumerate(groups):
        for step in range(max(len(p) for _, p in group)):
            for u, p in group:
                if step < len(p):
                    event, fields = p[step]
                    out.append(_line(now(), event, u, **fields))
        for u in extra.get(g, []):
            out.append(_line(now(), "imported", u, objects=["again"], info={}))
    assert len(out) == lines
    (folder / FILE).write_text("".join(out), encoding="utf-8")
    return set(unfinished)


def full_fold(folder: Path) -> tuple[dict[str, TaskRecord], int]:
    """Every task as folding the whole journal tells it, and the broken lines skipped on the way."""
    journal = Journal(folder)
    return journal.tasks(), journal.broken


def assert_agrees(history: History, folder: Path, fold: tuple[dict[str, TaskRecord], int] | None = None) -> None:
    everything, broken = fold or full_fold(folder)
    assert {t.task_uuid: t for t in history.unfinished()} == {u: t for u, t in everything.items() if t.unfinished}
    assert history.total_cost == pytest.approx(sum(t.cost for t in everything.values()), rel=1e-12, abs=1e-9)
    newest = sorted(everything.values(), key=lambda t: t.time, reverse=True)
    assert history.recent(8) == newest[:8]
    assert history.broken == broken


def rchar() -> int:
    """Bytes this process has read through read() and the like (Linux): every way of reading counts."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def timed_first_read(folder: Path) -> tuple[History, float, int]:
    before, started = rchar(), time.perf_counter()
    history = History(folder).refresh()
    return history, time.perf_counter() - started, rchar() - before


@pytest.fixture(scope="module")
def big_journal(tmp_path_factory) -> tuple[Path, set[str]]:
    folder = tmp_path_factory.mktemp("big")
    return folder, write_journal(folder)


def test_history_of_100000_lines_agrees_with_the_whole_journal_and_then_reads_only_the_tail(big_journal,
                                                                                          tmp_path, capsys):
    source, unfinished = big_journal
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / FILE).write_bytes((source / FILE).read_bytes())
    size = (folder / FILE).stat().st_size
    assert (folder / FILE).read_bytes().count(b"\n") == LINES

    first, cold, _ = timed_first_read(folder)
    assert {t.task_uuid for t in first.unfinished()} == unfinished
    assert_agrees(first, folder, full_fold(folder))
    assert (folder / INDEX).is_file(), "the first read leaves the index for the next one"

    journal = Journal(folder)  # the next session's work: a new task, an unfinished one ends, one more is sent
    journal.append("created", NEW_1, info={"name": "late"})
    journal.append("submitted", NEW_1, info={"name": "late"})
    journal.append("results", NEW_1, results=[{"index": 0, "url": "u", "seed": "1", "cost": 0.0041}])
    journal.append("downloaded", NEW_1, files=[{"path": "/r/x.glb", "index": 0, "seed": "1", "cost": 0.0041}])
    journal.append("imported", NEW_1, objects=["late"], info={"name": "late"})
    done = sorted(unfinished)[0]
    journal.append("results", done, results=[{"index": 0, "url": "u", "seed": "2", "cost": 0.0038}])
    journal.append("downloaded", done, files=[{"path": "/r/y.glb", "index": 0, "seed": "2", "cost": 0.0038}])
    journal.append("imported", done, objects=["resumed"], info={})
    journal.append("created", NEW_2, info={"name": "pending"})
    journal.append("submitted", NEW_2, info={"name": "pending"})

    second, warm, read = timed_first_read(folder)
    assert read < size / 10, f"read {read} bytes of a {size}-byte journal: the index was not used"
    fold = full_fold(folder)
    assert_agrees(second, folder, fold)
    assert {t.task_uuid for t in second.unfinished()} == unfinished - {done} | {NEW_2}
    with capsys.disabled():
        print(f"\n[History] first read of {LINES:,} lines ({size / 1e6:.1f} MB): {cold * 1000:.0f} ms without the "
              f"index, {warm * 1000:.1f} ms with it (read {read / 1e3:.0f} kB)")

    first.refresh()  # the History that wrote the index, refreshed: the same answer again
    assert_agrees(first, folder, fold)


def test_the_first_read_without_an_index_holds_a_window_of_tasks_not_the_journal(big_journal, tmp_path):
    """Streamed: what the read holds is a piece, a line and at most a window of finished tasks, whatever the
    journal's length (a 300 MB journal costs what this 26 MB one does). It held every task until the end: 39 MB
    of Python objects here, 1.2 GB for 300 MB."""
    source, unfinished = big_journal
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / FILE).write_bytes((source / FILE).read_bytes())
    tracemalloc.start()
    try:
        history = History(folder).refresh()
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert {t.task_uuid for t in history.unfinished()} == unfinished
    assert len(history.tasks) <= History.KEEP_RECENT + len(unfinished)
    assert peak < 10, f"{peak:.1f} MB of Python objects at the peak of reading {LINES:,} lines"


def test_history_agrees_at_every_cut_of_a_journal_read_in_pieces(tmp_path):
    """Lines appended between refreshes, snapshots written on the way (COMPACT_EVERY), a new History at each
    step: each agrees with folding the whole journal."""
    source = tmp_path / "source"
    write_journal(source, tasks=2_000, lines=10_000, seed=3)
    text = (source / FILE).read_bytes().splitlines(keepends=True)
    folder = tmp_path / "results"
    folder.mkdir()
    live = History(folder)
    at = 0
    for cut in (1, 700, 1_300, 1_301, 4_000, 9_999, 10_000):
        with open(folder / FILE, "ab") as f:
            f.write(b"".join(text[at:cut]))
        at = cut
        assert_agrees(live.refresh(), folder)
        assert_agrees(History(folder).refresh(), folder)


def test_a_journal_replaced_by_a_shorter_one_is_not_trusted(tmp_path):
    folder = tmp_path / "results"
    write_journal(folder, tasks=1_000, lines=5_000, seed=1)
    live = History(folder).refresh()
    assert (folder / INDEX).is_file()
    write_journal(folder, tasks=200, lines=1_000, seed=2)  # another journal, shorter than the index says
    assert_agrees(History(folder).refresh(), folder)
    assert_agrees(live.refresh(), folder)


@pytest.mark.parametrize("how", ["an index copied from another folder", "a journal replaced by a shorter one"])
def test_an_index_made_from_another_journal_is_not_trusted(tmp_path, how):
    folder = tmp_path / "results"
    if how == "an index copied from another folder":
        other = tmp_path / "other"
        write_journal(other, tasks=1_000, lines=5_000, seed=1)
        History(other).refresh()
        write_journal(folder, tasks=2_000, lines=10_000, seed=2)
        (folder / INDEX).write_bytes((other / INDEX).read_bytes())
    else:
        write_journal(folder, tasks=1_000, lines=5_000, seed=1)
        History(folder).refresh()  # the index covers these 5,000 lines…
        with open(folder / FILE, "ab") as f:  # …then the journal grows, and is replaced by a shorter one that is
            f.write((folder / FILE).read_bytes())  # still longer than what the index covers
        write_journal(folder, tasks=1_400, lines=7_000, seed=2)
    assert_agrees(History(folder).refresh(), folder)


def test_a_line_about_an_old_task_keeps_what_the_journal_knows_of_it(tmp_path):
    folder = tmp_path / "results"
    write_journal(folder, tasks=500, lines=2_500, seed=4)
    history = History(folder).refresh()
    oldest = next(u for u, t in full_fold(folder)[0].items() if t.status == "imported" and t.files)
    assert oldest not in history.tasks, "pruned from memory: only the latest finished tasks are kept"
    Journal(folder).append("imported", oldest, objects=["again"], info={})  # what Re-import writes
    history.refresh()
    everything = full_fold(folder)[0]
    assert history.get(oldest) == everything[oldest], "Re-import needs its files, the panel its cost"
    assert history.recent(1) == [everything[oldest]]


def test_lines_of_tasks_never_created_cost_a_look_up_per_batch_not_per_line(tmp_path, monkeypatch):
    """Each line about a task the History does not hold asks the journal what came before it: once per line,
    20,000 planted orphan lines (a hostile shared folder) took 300 s at the first read, quadratic."""
    folder = tmp_path / "results"
    write_journal(folder, tasks=200, lines=1_000, seed=5)
    journal = Journal(folder)
    orphans = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(3 * History.BATCH)]
    for uuid in orphans:
        journal.append("results", uuid, results=[{"index": 0, "url": "u", "seed": "1", "cost": 0.0038}])
    passes = []
    find = History.find
    monkeypatch.setattr(History, "find", lambda self, uuids, until=None: passes.append(len(uuids)) or
                        find(self, uuids, until))
    history = History(folder).refresh()
    assert len(passes) <= 4, f"{len(passes)} passes over the journal for {len(orphans):,} lines of unknown tasks"
    assert_agrees(history, folder)


APPENDER = """
import sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from client.journal import Journal
folder, tag, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
journal = Journal(folder)
deadline = time.monotonic() + 60
while not go.exists():  # both start together
    assert time.monotonic() < deadline
    time.sleep(0.001)
for i in range(2000):
    journal.append("created", f"{{tag}}-{{i}}", info={{"n": i, "pad": tag * 6000}})
"""


@pytest.fixture(scope="module")
def two_writers(tmp_path_factory) -> list[bytes]:
    """Two processes appending 2,000 lines each to one journal with Journal.append, at the same time."""
    tmp = tmp_path_factory.mktemp("writers")
    folder, go, script = tmp / "results", tmp / "go", tmp / "append.py"
    script.write_text(APPENDER.format(root=str(ROOT)))
    procs = [subprocess.Popen([sys.executable, str(script), str(folder), tag, str(go)]) for tag in "AB"]
    go.touch()
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    raw = (folder / FILE).read_bytes().split(b"\n")
    assert raw[-1] == b"", "the journal ends with a whole line"
    return raw[:-1]


def test_two_processes_appending_at_once_never_interleave_lines(two_writers):
    records = [json.loads(line) for line in two_writers if line]  # every line parses: none glued or cut
    assert len(records) == 4000
    for tag in "AB":
        mine = [r for r in records if r["task_uuid"].startswith(tag)]
        assert [r["info"]["n"] for r in mine] == list(range(2000)), "each writer's lines whole, in order"
        assert all(r["info"]["pad"] == tag * 6000 for r in mine)
    order = [r["task_uuid"][0] for r in records]
    assert sum(1 for a, b in zip(order, order[1:], strict=False) if a != b) > 10, "they did write at once"


def test_two_processes_appending_at_once_leave_one_json_object_on_every_line(two_writers):
    blank = sum(1 for line in two_writers if not line)
    assert blank == 0, f"{blank} blank line(s) among {len(two_writers)}"


def test_micro_dollars_make_the_edges_exact():
    assert MICRO == 1_000_000
    assert micro(0.0038) * 3 == micro(0.0114) and micro(0.0038) * 2 == micro(0.0076)
    for n in range(1, 200):
        assert micro(0.0038 * n) == 3800 * n, n


def test_a_task_runware_already_holds_on_the_first_try_keeps_its_money(emu, tmp_path):
    """Another process (or an earlier run that crashed before journalling its answer) already sent this task UUID:
    the first try meets `conflictTaskUUID`. Runware holds (and bills) the task, so its money stays counted."""
    first = run(Job(JobRequest(api_key=KEY, result_dir=tmp_path / "other", prepare=lambda: (PNG, PNG),
                               api_url=emu.api_url, poll_first_delay=0.05)))
    assert first.outcome.kind == "done"
    ledger, limit = Ledger(), Limit("a limit", 1.0)
    again = run(Job(paid(emu, tmp_path, ledger, limit, task_uuid=first.task_uuid)))
    assert any(code == "conflictTaskUUID" for _, code in submissions(emu)), submissions(emu)
    assert ledger.spent + ledger.reserved == 3800 and limit.committed == 3800, "counted, never given back"
    assert emu.billed("3dInference") == 1, again.outcome
