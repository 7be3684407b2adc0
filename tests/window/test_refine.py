"""Refine pressed in the real window (issue 23): the fitted mesh lands where the SAM 3D one stood, one undo step."""

from __future__ import annotations

import numpy as np

from tests import glb
from tests.utils.test_align import blob, turned
from tests.window.conftest import played


def blob_results(task: dict, index: int) -> bytes:
    """SAM 3D sends a coarse blob; TRELLIS.2 the same blob, finer, turned and scaled in its own frame."""
    if task["model"] == "meta:sam@3d":
        points, tris = blob(30, 15)
        return glb.make_glb((points * 0.4).tolist(), tris.tolist())
    points, tris = blob(48, 24)
    return glb.make_glb((points @ turned(5).T * 1.7).tolist(), tris.tolist())


def test_refine_fits_trellis_onto_the_sam3d_object_and_one_ctrl_z_takes_it_back(window):
    window.emu.result_factory = blob_results
    facts = played(window.play("refine:refine_and_undo"))
    assert facts["refined_from"] == facts["sam"] and facts["sam_hidden"] is True
    assert facts["fit_error"] < 0.02 and facts["centre_off"] < 0.01, facts
    assert abs(facts["size_ratio"] - 1) < 0.03, facts
    tasks = [t for r in window.emu.requests if r.body for t in r.body if t.get("taskType") == "3dInference"]
    assert [t["model"] for t in tasks] == ["meta:sam@3d", "microsoft:trellis-2@4b"]
    assert facts["refined_left"] is False and facts["after_undo"] == [], "one Ctrl+Z: the refined mesh gone"
    assert facts["sam_hidden_after_undo"] is False, "…and the SAM 3D object shown again"
    assert np.isfinite(facts["fit_error"])
