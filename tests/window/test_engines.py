"""Another engine picked, set and pressed in the real window (issue 23)."""

from __future__ import annotations

import shutil

from tests.window.conftest import EXAMPLES, played


def test_ctrl_wheel_picks_trellis_a_click_ticks_its_setting_and_the_result_lands_with_pbr(window):
    facts = played(window.play("engines:pick_and_press"))
    assert facts["engine"] == "TRELLIS2"
    assert facts["price"] == ["One press: 1 task(s), at most $0.1000"], "its worst case, not SAM 3D's price"
    [task] = [t for r in window.emu.requests if r.body for t in r.body if t.get("taskType") == "3dInference"]
    assert task["model"] == "microsoft:trellis-2@4b" and "mask" not in task["inputs"]
    assert task["settings"] == {"textureSize": 2048}, "the ticked setting at its default, and nothing else"
    assert {"BSDF_PRINCIPLED", "TEX_IMAGE"} <= set(facts["nodes"]), facts["nodes"]
    assert facts["at_cursor"] is True


def test_other_views_are_picked_in_the_file_browser_and_sent_after_the_cut_out(window):
    view = window.tmp / "bench_back.png"
    shutil.copy(EXAMPLES / "human_object/image.png", view)
    facts = played(window.play("engines:views", view=str(view)))
    assert facts["views"] == ["bench_back.png"], "the + under Hunyuan's settings, then the File Browser's pick"
    [task] = [t for r in window.emu.requests if r.body for t in r.body if t.get("taskType") == "3dInference"]
    assert task["model"] == "tencent:hunyuan-3d@3.1-pro" and len(task["inputs"]["images"]) == 2
    assert facts["imported"], "the object landed"


def test_baking_trellis_pbr_result_keeps_its_maps(window):
    facts = played(window.play("engines:pbr_bake", timeout=400))
    assert facts["baked"] == 2048, facts["reports"]
    assert facts["linked"] == ["Base Color", "Emission Color", "Metallic", "Normal", "Roughness"], facts
    assert len(facts["images"]) == 5, facts["images"]
