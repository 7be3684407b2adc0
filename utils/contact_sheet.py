"""The asset library's contact sheet (`LIBRARY/index.html`): every asset's preview, name, catalog, caption, cost
and source, and the failures with their sentence. One self-contained page: no script, no style sheet, font or image
from anywhere but the library folder itself (previews by relative path), so it opens from disk in any browser,
with no server and no network. Every text is escaped: file and folder names come from a photo folder, which may
hold `<script>` in a name. Pure: never imports bpy."""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

PREVIEWS = "previews"  # the folder of the previews' PNGs, beside index.html


@dataclass
class Entry:
    name: str
    key: str  # the item's source path in the photo folder, as the report gives it
    catalog: str
    status: str  # done, failed, skipped, pending
    reason: str = ""
    cost: float = 0.0
    preview: bool = False  # a PNG of it is at preview_path(key)
    caption: str = ""  # what a caption said it is (Name from Caption), if asked


def preview_path(key: str) -> str:
    """Where an item's preview is, relative to the library folder (one per source, like its .blend)."""
    return f"{PREVIEWS}/{key}.png"


def page(title: str, entries: Iterable[Entry], total_cost: float) -> str:
    """The sheet: the assets (done, or already in the library) as cards, then the failures as a list."""
    made, failed = [], []
    for entry in entries:
        if entry.status in ("done", "skipped") and entry.reason != "the batch was cancelled":
            made.append(_card(entry))
        elif entry.status == "failed":
            failed.append(f"<li><b>{_text(entry.name)}</b> ({_text(entry.key)}): {_text(entry.reason)}</li>")
    summary = f"{len(made)} asset(s), {len(failed)} failed, ${total_cost:.4f} this run"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_text(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{_text(title)}</h1>", f'<p id="summary">{_text(summary)}</p>',
             '<div id="assets">', *made, "</div>"]
    if failed:
        parts += ["<h2>Failed</h2>", '<ul id="failed">', *failed, "</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _card(entry: Entry) -> str:
    image = (f'<img src="{_text(quote(preview_path(entry.key)))}" alt="{_text(entry.name)}" width="128" '
             f'height="128">' if entry.preview else '<div class="none">no preview</div>')
    cost = f"${entry.cost:.4f}" if entry.status == "done" else "already in the library"
    return (f'<figure class="asset">{image}<figcaption><b>{_text(entry.name)}</b><br>{_text(entry.catalog)}<br>'
            + (f'<i class="caption">{_text(entry.caption)}</i><br>' if entry.caption else "")
            + f"{_text(cost)}<br><small>{_text(entry.key)}</small></figcaption></figure>")


def _text(value: str) -> str:
    return html.escape(value, quote=True)


_STYLE = ("body{font-family:sans-serif;margin:1.5em;background:#222;color:#ddd}"
          "figure.asset{display:inline-block;width:150px;margin:6px;vertical-align:top;text-align:center}"
          "figure.asset img,.none{background:#333;border-radius:4px}"
          ".none{width:128px;height:128px;line-height:128px;margin:auto;color:#888}"
          "figcaption{font-size:12px;word-wrap:break-word}li{margin:4px 0}")
