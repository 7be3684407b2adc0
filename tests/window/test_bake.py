"""Bake to Texture in the real window."""

from __future__ import annotations

import pytest

from tests.window.conftest import played


@pytest.mark.parametrize("where", ["VIEW_3D", "IMAGE_EDITOR"])
def test_bake_from_either_sidebar_bakes_and_leaves_the_image_editor_and_the_photo_as_they_were(window, where):
    facts = played(window.play("bake:from_sidebar", where=where, timeout=400))
    assert facts["baked"] == ["mask_0"], facts["reports"]
    assert facts["editor"] == "image.png"
    assert facts["field"] == "image.png" and facts["reason"] == ""


def test_bake_is_there_without_a_photo_camera_runs_one_object_a_step_and_esc_stops_between(window):
    facts = played(window.play("bake:without_camera", timeout=400))
    assert len(facts["objects"]) == 3
    assert facts["baked"] == facts["objects"][:2], facts
    assert facts["progress_shown"]["active"] and 0 < facts["progress_shown"]["fraction"] < 1
    assert any("Cancelled: 1 object left as they were." in r for r in facts["reports"]), facts["reports"]
