"""Numbers a shared result folder may hold that no Blender wrote: a 400-digit integer or a time of 1e300 in a
journal line, an index or a lock is a broken entry (skipped, or the index rebuilt), never an OverflowError that
reaches a person as a traceback (found by the second attacker's try)."""

from __future__ import annotations

import json

import pytest

from client.journal import FILE, INDEX, History, Journal, parse
from client.locks import TaskLocks

UUID = "00000000-0000-4000-8000-000000000001"
HUGE = int("1" + "0" * 400)


@pytest.mark.parametrize("stamp", [HUGE, 1e300, -5])
def test_a_journal_line_with_a_time_no_blender_wrote_is_broken(stamp) -> None:
    line = json.dumps({"time": stamp, "event": "submitted", "task_uuid": UUID}).encode()
    assert parse(line) is None


def test_a_journal_and_index_with_huge_numbers_read_without_an_error(tmp_path) -> None:
    Journal(tmp_path).append("created", UUID, info={"name": "ok"})
    Journal(tmp_path).append("submitted", UUID, info={"name": "ok"})
    with open(tmp_path / FILE, "a") as f:
        f.write(json.dumps({"time": HUGE, "event": "imported", "task_uuid": UUID}) + "\n")
    history = History(tmp_path).refresh()
    assert history.broken == 1 and [t.task_uuid for t in history.unfinished()] == [UUID]
    history.save_snapshot()
    index = json.loads((tmp_path / INDEX).read_text())
    index["total_cost"] = HUGE
    (tmp_path / INDEX).write_text(json.dumps(index))
    again = History(tmp_path).refresh()  # the index refused: the journal read again
    assert [t.task_uuid for t in again.unfinished()] == [UUID]


def test_a_lock_with_a_huge_time_counts_as_old(tmp_path) -> None:
    locks = TaskLocks(tmp_path)
    locks.path(UUID).parent.mkdir(parents=True, exist_ok=True)
    locks.path(UUID).write_text(json.dumps({"host": "elsewhere", "pid": 7, "start": "", "time": HUGE}))
    assert locks.held_elsewhere(UUID) is False, "a time no Blender wrote: a stale lock, not a traceback"
