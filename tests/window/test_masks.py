"""The masks of a photo in the real window."""

from __future__ import annotations

from tests.window.conftest import played


def test_one_press_sends_the_ticked_masks_once_and_a_new_box_alone_is_sent_next(window):
    facts = played(window.play("masks:list_and_box", timeout=400))
    assert facts["mask_field_note"], "the Mask field says the list's masks are sent instead"
    assert facts["first_press"] == 2 and facts["ticked_after"] == [False, False]
    assert facts["box_ticked"] and facts["box_mask"].startswith("image_box_")
    assert facts["second_press"] == 1, "only the new box's mask was sent again"
    assert facts["collections"] == ["image"]
    assert window.emu.billed() == 3 and window.emu.billed("removeBackground") == 1


def test_the_same_mask_twice_lands_in_one_collection(window):
    facts = played(window.play("masks:same_mask_twice"))
    assert facts["collections"] == ["mask_0", "mask_0"]
    assert facts["scene_collections"].count("mask_0") == 1 and "mask_0.001" not in facts["scene_collections"]
