"""An asset library built from the panel and read by the Asset Browser, in the real window."""

from __future__ import annotations

import shutil

from tests.window.conftest import EXAMPLES, played


def test_build_asset_library_asks_with_its_estimate_then_builds_and_the_asset_browser_lists_the_assets(window):
    photos = window.tmp / "photos"
    (photos / "props").mkdir(parents=True)
    for name in ("chair", "props/lamp"):
        shutil.copy(EXAMPLES / "human_object/image.png", photos / f"{name}.png")
        shutil.copy(EXAMPLES / "human_object/mask_0.png", photos / f"{name}_mask.png")
    library = window.tmp / "library"
    window.emu.processing_time = 0.5
    facts = played(window.play("library:build_and_browse", photos=str(photos), library=str(library),
                               billed_marker=0, timeout=600))
    assert not facts["started_before_ok"], "nothing runs before the question is answered"
    assert facts["counts"]["done"] == 2 and facts["counts"]["failed"] == 0, facts
    assert "2 job(s) of 2 item(s), about $0.0076" in facts["estimate"] or "job(s)" in facts["estimate"]
    assert facts["clock_stopped"]
    assert sorted(p.name for p in library.rglob("*.blend")) == ["chair.png.blend", "lamp.png.blend"]
    assert [name for name, _ in facts["assets"]] == ["chair", "lamp"], facts["assets"]
    assert window.emu.billed() == 2
