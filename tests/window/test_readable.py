"""Readable at Blender's default sidebar width (screenshots in out/ui/ for a person to look at)."""

from __future__ import annotations

from tests.window.conftest import played


def test_every_text_the_panels_lay_out_fits_the_default_sidebar_in_both_editors(window):
    facts = played(window.play("readable:everything", timeout=400))
    for editor in ("image-editor", "3d-viewport"):
        texts = facts[editor]
        assert len(texts) > 10, texts
        for value, room, widest in texts:
            assert widest <= room, (editor, value, widest, room)
        drawn = [value for value, _, _ in texts]
        assert "image.png · 1600×898" in drawn and "mask_0.png · 1600×898" not in drawn  # the list is used
        assert any(v.startswith("Webhook: results are also sent to https://hooks.example.com") for v in drawn)
        assert "Spending Limit: $0.5000" in drawn
    assert any(s.endswith("readable-preferences.png") for s in facts["shots"])
