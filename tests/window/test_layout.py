"""A scene laid out from a photo in the real window."""

from __future__ import annotations

from tests.shapes import shape_like
from tests.window.conftest import played


def test_as_in_the_photo_in_the_default_scene_makes_the_photos_camera_the_one_to_look_through(window):
    window.emu.result_factory = lambda task, index: shape_like(task, posed=True)
    facts = played(window.play("layout:default_scene", timeout=400))
    assert facts["scene_camera"] == facts["photo_camera"] == "image"
    assert facts["looking_through"] == "CAMERA"
    assert facts["relayout"] is True
    assert facts["camera_active_controls"]
    assert len(facts["fits"]) == 2
    assert facts["iou_lines"] and not any(line.startswith(facts["deleted"] + ":") for line in facts["iou_lines"])
