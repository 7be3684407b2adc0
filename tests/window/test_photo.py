"""The photo "from the editor" is pinned at its first use and never an image the add-on shows or made."""

from __future__ import annotations

import shutil

from tests.window.conftest import EXAMPLES, played


def test_load_folder_of_masks_skips_the_photo_in_that_folder_and_pins_it(window):
    folder = window.tmp / "bench"
    folder.mkdir()
    shutil.copy(EXAMPLES / "human_object/image.png", folder / "image.png")
    shutil.copy(EXAMPLES / "human_object/mask_0.png", folder / "mask_0.png")
    shutil.copy(EXAMPLES / "human_object/mask_0.png", folder / "mask_1.png")
    facts = played(window.play("photo:load_folder", folder=str(folder)))
    assert facts["masks"] == ["mask_0.png", "mask_1.png"]
    assert facts["field"] == "image.png" and facts["photo"] == "image.png"
    assert facts["browser_opened_at"][0].rstrip("/") == str(EXAMPLES / "human_object")  # where the photo is


def test_preview_never_becomes_the_photo(window):
    facts = played(window.play("photo:preview"))
    state = facts["after_preview"]
    assert state["editor"] == "SAM3D Mask Preview"  # what the person sees
    assert state["field"] == "image.png" and state["photo"] == "image.png"
    assert facts["sent_photo"] == "image.png"


def test_opening_the_mask_keeps_the_photo(window):
    facts = played(window.play("photo:mask_open", mask=str(EXAMPLES / "human_object/mask_0.png")))
    assert facts["mask"] == "mask_0.png"
    assert facts["field"] == "image.png" and facts["photo"] == "image.png"
    assert facts["reason"] == ""
