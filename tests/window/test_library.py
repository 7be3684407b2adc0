"""An asset library built from the panel and read by the Asset Browser, in the real window."""

from __future__ import annotations

import html
import json
import re
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
    sheet = read_in_chromium(window, library)
    assert sorted(sheet["loaded"]) == ["previews/chair.png.png", "previews/props/lamp.png.png"], sheet
    assert sheet["images"] == 2 and sheet["width"] == [128, 128], "each preview decoded, at its size"
    assert "chair" in sheet["text"] and "SAM 3D/props" in sheet["text"] and "2 asset(s), 0 failed" in sheet["text"]


# A page beside the sheet that reads it as a person's browser shows it: which images decoded, and the text.
HARNESS = """<!DOCTYPE html><html><body><iframe id="f" src="index.html"></iframe><pre id="out">pending</pre>
<script>
document.getElementById("f").onload = () => {
  const d = document.getElementById("f").contentDocument, imgs = [...d.images];
  document.getElementById("out").textContent = JSON.stringify({images: imgs.length,
    loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).map(i => i.getAttribute("src")),
    width: imgs.map(i => i.naturalWidth), text: d.body.innerText});
};
</script></body></html>"""


def read_in_chromium(window, library) -> dict:  # noqa: ANN001
    """The contact sheet opened from disk in Debian's Chromium (headless, no network, no server)."""
    harness = library / "sam3d-test-harness.html"
    harness.write_text(HARNESS)
    try:
        done = window.stage.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                 "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
                                 harness.as_uri()], display=False, timeout=120)
    finally:
        harness.unlink()
    found = re.search(r'<pre id="out">(.*?)</pre>', done.stdout, re.S)
    assert found and found[1] != "pending", done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(html.unescape(found[1]))
