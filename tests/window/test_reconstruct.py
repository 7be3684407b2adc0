"""One object from a photo in the real window: a click, the status bar, Esc, Edit Mode, Ctrl+Z, a second press."""

from __future__ import annotations

import re

from tests.window.conftest import played


def test_a_click_imports_one_named_selected_object_and_one_ctrl_z_removes_it(window):
    facts = played(window.play("reconstruct:click_and_undo"))
    assert facts["objects"] == ["mask_0"]
    assert facts["selected"] == ["mask_0"] and facts["active"] == "mask_0"
    assert facts["collection"] == "mask_0"
    assert any(r.startswith("SAM 3D: added mask_0 (cost $0.0038)") for r in facts["reports"]), facts["reports"]
    assert facts["after_undo"] == []
    assert facts["photo_after_undo"] == "image.png"  # the undo took the import only, not the picks before it
    # The status bar says what runs, and is Blender's own again once the job has ended.
    assert facts["status_changed_while_running"]
    assert facts["status_restored"]


def test_esc_stops_a_sent_job_with_a_sentence_and_nothing_is_imported(window):
    window.emu.processing_time = 30.0
    facts = played(window.play("reconstruct:escape"))
    assert facts["objects"] == []
    said = [r for r in facts["reports"] if r.startswith("Cancelled.")]
    assert said and facts["task"] in said[0] and "Resume" in said[0], facts["reports"]
    assert facts["status_restored"]
    assert window.emu.billed() == 1


def test_a_result_arriving_in_edit_mode_waits_says_so_and_lands_in_object_mode(window):
    facts = played(window.play("reconstruct:edit_mode_waits"))
    assert facts["while_editing"] == []
    assert "Object Mode" in facts["label"]
    assert facts["objects"] == ["mask_0"]


def test_a_second_identical_press_asks_naming_the_price_no_pays_nothing_and_progress_goes_on(window):
    window.emu.processing_time = 8.0
    window.emu.style.include_progress = True
    facts = played(window.play("reconstruct:duplicate", timeout=300))
    assert "$0.0038" in facts["question"] and "again" in facts["question"], facts["question"]
    assert facts["jobs_while_asking"] == 1 and facts["jobs_after_no"] == 1
    assert facts["jobs_after_yes"] == 2
    assert window.emu.billed() == 2
    # While the question is open, the running job's progress goes on, and its bar is drawn anew.
    assert facts["fraction_after"] > facts["fraction_before"]
    assert facts["bar_redrawn"]


def test_three_jobs_of_one_mask_are_told_apart_and_the_aimed_cancel_hits_its_job(window):
    window.emu.processing_time = 20.0
    facts = played(window.play("reconstruct:three_of_one_mask", timeout=300))
    assert len(set(facts["labels"])) == 3, facts["labels"]
    first, second, third = facts["order"]
    assert facts["rows"][0].endswith(": done") and facts["rows"][2].endswith("Processing"), facts["rows"]
    assert facts["imported"] == sorted([first, second])  # the third one, aimed at, was cancelled
    assert len(re.findall(r"\d+%", facts["status"])) <= 1, facts["status"]


def test_a_press_of_more_than_24_paid_tasks_asks_first_without_a_spending_limit(window):
    window.emu.processing_time = 30.0
    facts = played(window.play("reconstruct:many_masks", timeout=300))
    assert "25 paid reconstructions" in facts["question"] and "$0.0950" in facts["question"], facts["question"]
    assert facts["started_while_asking"] == 0 and facts["started_after_no"] == 0
    assert facts["started_after_yes"] == 25
