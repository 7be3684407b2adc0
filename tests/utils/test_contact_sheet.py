"""The asset library's contact sheet (utils/contact_sheet.py, no Blender): self-contained, every name escaped,
previews by relative path, failures with their sentence."""

from __future__ import annotations

from html.parser import HTMLParser

from utils.contact_sheet import Entry, page, preview_path


class Parsed(HTMLParser):
    """What a browser would build: elements, their attributes, the text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):  # noqa: ANN001, ANN201
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):  # noqa: ANN001, ANN201
        self.text.append(data)


HOSTILE = '<script>alert(1)</script>" onerror="x'


def test_the_sheet_shows_each_asset_with_its_preview_and_each_failure_with_its_sentence():
    entries = [Entry("cup", "props/cup.png", "SAM 3D/props", "done", cost=0.0038, preview=True),
               Entry("bench", "bench.png", "SAM 3D", "skipped", "already in the library", preview=True),
               Entry("lamp", "lamp.png", "SAM 3D", "failed", "The mask is empty."),
               Entry("late", "late.png", "SAM 3D", "skipped", "the batch was cancelled")]
    parsed = Parsed(page("SAM 3D asset library: props", entries, 0.0038))
    images = [a["src"] for t, a in parsed.tags if t == "img"]
    assert images == ["previews/props/cup.png.png", "previews/bench.png.png"]
    assert images[0] == preview_path("props/cup.png")
    text = " ".join(parsed.text)
    assert "cup" in text and "SAM 3D/props" in text and "$0.0038" in text and "already in the library" in text
    assert "lamp" in text and "The mask is empty." in text
    assert "late" not in text, "cancelled items are not assets"
    assert "2 asset(s), 1 failed" in text


def test_nothing_is_loaded_from_anywhere_and_no_name_becomes_markup():
    entry = Entry(HOSTILE, f"{HOSTILE}/x #?.png", HOSTILE, "done", preview=True, caption=HOSTILE)
    failed = Entry(HOSTILE, "y.png", "SAM 3D", "failed", HOSTILE)
    parsed = Parsed(page(HOSTILE, [entry, failed], 0.0))
    tags = {t for t, _ in parsed.tags}
    assert "script" not in tags and tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p",
                                             "div", "figure", "img", "figcaption", "b", "br", "small", "ul", "li", "i"}
    assert all(not k.startswith("on") for _, attrs in parsed.tags for k in attrs), "no event handler"
    (src,) = [a["src"] for t, a in parsed.tags if t == "img"]
    assert src is not None and "://" not in src and not src.startswith("/") and "#" not in src and "?" not in src
    assert " ".join(parsed.text).count(HOSTILE) == 8, "each shown as text, whole (the caption too)"
    links = [a for t, a in parsed.tags if t in ("link", "script", "iframe")] + \
        [a for t, a in parsed.tags if t == "img" and not a["src"].startswith("previews/")]
    assert links == []
