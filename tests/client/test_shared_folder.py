"""The second hostile round at the client level (no Blender): what a shared result folder holds, and what a server
reports as a price or a result address, is as untrusted as anything from outside.

- the result folder: a journal or index that is a link, a FIFO, a link to /dev/zero; a lock that is one; a journal
  line whose task UUID or file names a place outside the folder; an index with wrongly typed fields;
- a server's `cost`: negative, NaN, infinite, too small to be right: never unlocks a limit, never breaks a total;
- result addresses on this machine from an API that is not on it;
- an API key quoted in an error's `code`.
Each through the real code (client/journal.py, locks.py, money.py, http.py, jobs.py).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid

import pytest

from client import files
from client.errors import RunwareError, scrubbed
from client.http import check_url, is_loopback
from client.jobs import UPLOADS, Job, JobRequest
from client.journal import FILE, History, Journal, task_files
from client.locks import TaskLocks
from client.money import Ledger, Limit, checked
from tests.client.conftest import KEY
from tests.emulator import cutout_png

HANG = 10.0  # seconds: a hang detector, never a speed goal
PNG = cutout_png(64, 48)
SAM3D = "meta:sam@3d"


def ends_within(seconds: float, work) -> object:
    """`work()`'s value, failing the test if it did not end within `seconds` (run on a thread: a hang stays there)."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["value"] = work()
        except BaseException as exc:  # noqa: BLE001  # handed to the test's thread
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: it blocked"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("value")


def refused_or_empty(history: History) -> None:
    """A journal that is not a regular file of the folder is refused (an OSError the callers already treat as an
    unreadable journal), quickly; an index that is not one is ignored: no task either way."""
    try:
        tasks = ends_within(HANG, lambda: history.refresh().tasks)
    except files.UnsafeFileError:
        return
    assert tasks == {}


def task_id() -> str:
    return str(uuid.uuid4())


# --- the journal and its index ------------------------------------------------------------------------------


def test_a_journal_that_is_a_link_is_never_written_through(tmp_path):
    """A `journal.jsonl` linked to a shell start-up file: no job appends a line (a prompt, a name) to it."""
    target = tmp_path / "bashrc"
    target.write_text("# the user's own\n")
    results = tmp_path / "results"
    results.mkdir()
    (results / FILE).symlink_to(target)
    with pytest.raises(OSError):
        Journal(results).append("created", task_id(), info={"name": "$(touch /tmp/owned)", "prompt": "x"})
    assert target.read_text() == "# the user's own\n"
    assert (results / FILE).is_symlink(), "the link is left as it was (not ours to remove)"


def test_a_journal_lines_engine_settings_keep_only_names_and_plain_values(tmp_path):
    """A shared journal's `engine_values` (what Retry sends again) are names and scalars: a nested object, a list,
    a NaN, a huge text or a thousand settings never reach a request as they were written."""
    results = tmp_path / "results"
    a = task_id()
    hostile = {"quad": True, "faceLimit": 2000, "style": "x" * 100_000, "nested": {"k": 1}, "many": [1, 2],
               "nan": math.nan, "inf": math.inf, **{f"s{i}": i for i in range(1000)}}
    Journal(results).append("created", a, info={"name": "chair", "engine": "TRIPO", "engine_values": hostile})
    values = History(results).refresh().tasks[a].info["engine_values"]
    assert values["quad"] is True and values["faceLimit"] == 2000 and len(values["style"]) == 4096
    assert not {"nested", "many", "nan", "inf"} & set(values) and len(values) <= 32


def test_a_journal_index_that_is_a_link_is_replaced_never_followed(tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text("keep me")
    results = tmp_path / "results"
    journal = Journal(results)
    a = task_id()
    journal.append("created", a, info={"name": "one"})
    (results / "journal.index.json").symlink_to(target)
    history = History(results)
    assert a in history.refresh().tasks
    history.save_snapshot()
    assert target.read_text() == "keep me", "the link's target was never written"
    index = results / "journal.index.json"
    assert not index.is_symlink() and index.is_file(), "the index took the link's place"


@pytest.mark.parametrize("name", ["journal.index.json", FILE])
def test_a_fifo_in_the_result_folder_never_hangs_the_first_read(tmp_path, name):
    """A FIFO as the index or the journal: Blender's first tick reads them; a FIFO with no writer blocks an open."""
    results = tmp_path / "results"
    results.mkdir()
    os.mkfifo(results / name)
    refused_or_empty(History(results))


@pytest.mark.parametrize("name", ["journal.index.json", FILE])
def test_a_result_folder_file_linked_to_dev_zero_is_never_read(tmp_path, name):
    results = tmp_path / "results"
    results.mkdir()
    (results / name).symlink_to("/dev/zero")
    refused_or_empty(History(results))


def test_a_lock_linked_to_dev_zero_or_a_fifo_is_read_within_a_bound(tmp_path):
    """Lock files are read at every Jobs-panel draw: a link to /dev/zero or a FIFO must cost nothing."""
    locks = TaskLocks(tmp_path)
    (tmp_path / "locks").mkdir()
    zero, fifo = task_id(), task_id()
    (tmp_path / "locks" / f"{zero}.lock").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "locks" / f"{fifo}.lock")
    for task in (zero, fifo):
        holder = ends_within(HANG, lambda task=task: locks.holder(task))
        assert holder is None or holder["pid"] == -1, holder  # not a holder we can believe
        assert ends_within(HANG, lambda task=task: locks.held_elsewhere(task)) in (True, False)


def test_a_task_uuid_of_another_form_is_never_a_path(tmp_path):
    """A journal line whose task UUID climbs out of the folder: never listed (Retry would upload from there)."""
    results = tmp_path / "results"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "photo.png").write_bytes(PNG)
    journal = Journal(results)
    good = task_id()
    journal.append("created", good, info={"name": "good"})
    with open(results / FILE, "a") as f:
        f.write(json.dumps({"time": 1, "event": "created", "task_uuid": "../outside", "info": {"name": "bad"}}) + "\n")
    tasks = History(results).refresh().tasks
    assert set(tasks) == {good}
    assert not files.is_uuid("../outside") and files.is_uuid(good) and not files.is_uuid(good.upper())
    with pytest.raises(OSError):
        TaskLocks(results).path("../outside")


def test_journal_file_paths_that_point_outside_the_task_folder_are_never_offered(tmp_path):
    """Re-import imports the journal's GLB paths: a path anywhere on disk is dropped, a name inside is kept."""
    results = tmp_path / "results"
    journal = Journal(results)
    a = task_id()
    (results / a).mkdir(parents=True)
    (results / a / "object_0.glb").write_bytes(b"glTF")
    secret = tmp_path / "secret.glb"
    secret.write_bytes(b"glTF")
    journal.append("created", a, info={"name": "object"})
    journal.append("submitted", a)
    journal.append("downloaded", a, files=[{"path": str(secret), "index": 0},
                                           {"path": str(results / a / "object_0.glb"), "index": 1}])
    record = History(results).refresh().tasks[a]
    assert task_files(record, results) is None, "secret.glb is not in the task's folder: nothing to re-import"
    (results / a / "secret.glb").write_bytes(b"glTF")  # the same name inside the task's folder is what is used
    found = task_files(record, results)
    assert found is not None and [p for p, _ in found] == [results / a / "secret.glb", results / a / "object_0.glb"]


def test_an_index_with_wrongly_typed_fields_is_rebuilt_from_the_journal(tmp_path):
    results = tmp_path / "results"
    journal = Journal(results)
    a = task_id()
    journal.append("created", a, info={"name": "one"})
    journal.append("submitted", a)
    history = History(results)
    history.refresh()
    history.save_snapshot()
    index = results / "journal.index.json"
    data = json.loads(index.read_text())
    broken = {k: ([] if isinstance(v, (int, float, str)) else 7) for k, v in data.items()}
    index.write_text(json.dumps(broken))
    tasks = History(results).refresh().tasks  # no TypeError: a broken index is no index
    assert tasks[a].status == "submitted"


# --- a server's price -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-0.5, float("nan"), float("inf"), -float("inf"), 1e-9, 0.0, "x", None, True,
                                   1e6])
def test_a_price_that_cannot_be_right_is_no_price(value):
    assert checked(value) is None
    ledger = Ledger()
    before = ledger.price("3dInference", SAM3D)
    if isinstance(value, float):
        ledger.learn("3dInference", SAM3D, value)
    assert ledger.price("3dInference", SAM3D) == before, "never learnt as the next reservation's price"


def test_a_price_that_can_be_right_is_kept():
    assert checked(0.0038) == 0.0038 and checked("0.0041") == 0.0041 and checked(0.0114, 3) == 0.0114


@pytest.fixture
def _no_upload_cache():
    UPLOADS.clear()
    yield
    UPLOADS.clear()


@pytest.mark.usefixtures("_no_upload_cache")
@pytest.mark.parametrize("cost", [-1.0, float("nan"), "1e309", 1e-9])
def test_a_hostile_cost_never_unlocks_the_spending_limit_nor_breaks_the_totals(emu, tmp_path, cost):
    """Seven tasks tried under a limit that allows two: the reported cost (negative, NaN, beyond a float, below
    a micro-dollar) is treated as unknown, so each result stays counted at its worst case and the third is
    refused before it is sent."""
    emu.faults.cost = cost
    ledger, limit = Ledger(), Limit("the Spending Limit set in the preferences", 0.0076)
    done = refused = 0
    for n in range(7):
        req = JobRequest(api_key=KEY, result_dir=tmp_path, name=f"cube{n}", api_url=emu.api_url,
                         prepare=lambda: (PNG, PNG), poll_first_delay=0.05)
        try:
            req.reservation = ledger.reserve("3dInference", req.model, req.number_results, [limit])
        except RunwareError:
            refused += 1
            continue
        job = Job(req).start()
        deadline = time.monotonic() + 60
        while not job.done:
            assert time.monotonic() < deadline
            job.drain(block=0.05)
        job.join(10)
        assert job.outcome is not None and job.outcome.kind == "done", job.outcome
        done += 1
    assert (done, refused) == (2, 5)
    assert emu.billed("3dInference") == 2
    assert math.isfinite(ledger.spent) and ledger.spent == 7600 and ledger.reserved == 0
    total = History(tmp_path).refresh()
    assert all(t.cost is None or math.isfinite(t.cost) and t.cost >= 0 for t in total.tasks.values())


# --- this machine on behalf of a server ----------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.1", "2130706433", "0x7f000001", "[::1]",
                                  "[::ffff:127.0.0.1]", "0.0.0.0", "app.localhost", "LOCALHOST."])
def test_a_remote_api_never_makes_the_add_on_fetch_from_this_machine(host):
    assert is_loopback(host.strip("[]"))
    for scheme in ("http", "https"):
        with pytest.raises(RunwareError) as caught:
            check_url(f"{scheme}://{host}:6379/flushall", "result URL", local=False)
        assert caught.value.code == "localResultUrl"
    check_url(f"http://{host}:8765/files/x.glb", "result URL", local=True)  # an API here (the emulator) may


def test_the_api_url_itself_may_be_on_this_machine_over_plain_http():
    check_url("http://127.0.0.1:8765/v1")
    with pytest.raises(RunwareError):
        check_url("http://api.example.com/v1")


# --- a key quoted back ---------------------------------------------------------------------------------


def test_an_api_key_quoted_in_an_errors_code_is_scrubbed_from_every_field():
    error = RunwareError(f"invalidApiKey:{KEY}", f"The key {KEY} is wrong.")
    error.parameter = f"apiKey={KEY}"
    clean = scrubbed(error, KEY)
    assert KEY not in clean.code and KEY not in clean.sentence and KEY not in str(clean.parameter)


# --- two of the breaks earlier tests let through ------------------------------------------------------


def test_a_lock_of_a_reused_process_id_is_taken_over(tmp_path):
    """The holder died and its pid now names another live process (here: this test's parent, which started at
    another time than the lock says): the lock is a dead one's, so the task can be fetched."""
    from client.locks import ME

    locks = TaskLocks(tmp_path)
    task = task_id()
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / f"{task}.lock").write_text(json.dumps(
        {"host": ME["host"], "pid": os.getppid(), "start": "1", "time": time.time()}))  # a live pid, reused
    assert not locks.held_elsewhere(task)
    assert locks.acquire(task)
    assert json.loads((tmp_path / "locks" / f"{task}.lock").read_text())["start"] == ME["start"]


def test_a_live_holders_lock_is_respected(tmp_path):
    """The control: the same lock with the holder's real start time is a live one's."""
    from client.locks import ME, start_time

    parent = os.getppid()
    locks = TaskLocks(tmp_path)
    task = task_id()
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / f"{task}.lock").write_text(json.dumps(
        {"host": ME["host"], "pid": parent, "start": start_time(parent), "time": time.time()}))
    assert locks.held_elsewhere(task) and not locks.acquire(task)


def test_an_index_of_a_replaced_journal_whose_first_line_still_matches_is_not_trusted(tmp_path):
    """The journal is replaced by another (restored, rewritten) that starts with the same line and is as long:
    the old index must not stand for it."""
    results = tmp_path / "results"
    journal = Journal(results)
    first, old, new = task_id(), task_id(), task_id()
    journal.append("created", first, info={"name": "first"})
    journal.append("created", old, info={"name": "old-one"})
    history = History(results)
    history.refresh()
    history.save_snapshot()
    text = (results / FILE).read_text()
    (results / FILE).write_text(text.replace(old, new).replace("old-one", "new-one"))  # same first line, same size
    assert len((results / FILE).read_text()) == len(text)
    tasks = History(results).refresh().tasks
    assert set(tasks) == {first, new}, "the replaced journal's tasks, not the index's"
