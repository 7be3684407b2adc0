"""The session's machinery in the real window."""

from __future__ import annotations

from tests.window.conftest import played


def test_disabling_the_add_on_mid_job_gives_the_status_bar_back_and_enabled_again_it_resumes(window):
    window.emu.processing_time = 15.0
    facts = played(window.play("session:disable_mid_job", timeout=300))
    assert facts["status_restored"]
    assert facts["offered"]
    assert facts["objects"] == [facts["task"]]
    assert window.emu.billed() == 1


def test_quitting_mid_job_asks_first_and_after_a_restart_resume_brings_the_job_in_without_paying_again(window):
    window.emu.processing_time = 10.0
    first = played(window.play("session:quit_mid_job", blend=str(window.tmp / "saved.blend"), timeout=300),
                   quits=True)
    assert not first["dirty_before"] and first["still_running"] and first["dirty"]
    second = played(window.play("session:resume_after_restart", timeout=300))
    assert second["offered"] == ["1 job(s) were sent but never imported"]
    assert second["objects"] == [first["task"]]
    assert window.emu.billed() == 1


def test_a_cancelled_paid_job_waits_for_resume_and_the_session_never_costs_more_than_the_folder(window):
    window.emu.processing_time = 30.0
    facts = played(window.play("session:cancelled_paid_job", timeout=300))
    assert "mask_0: sent, not imported: Resume fetches it" in facts["texts"], facts["texts"]
    assert facts["resume_row"]
    money = facts["money"]
    session = money["This session"]
    everything = money["Reconstructions here, all sessions"]
    assert 0.0038 <= session <= everything, money


def test_a_job_whose_file_was_closed_lands_in_the_new_file_as_one_undo_step_and_its_message_can_be_cleared(window):
    window.emu.processing_time = 4.0
    facts = played(window.play("session:file_new_mid_job", timeout=300))
    assert facts["objects"] == ["mask_0"]
    assert facts["message"] and not facts["message_after_clear"]
    assert facts["after_undo"] == []
