from __future__ import annotations

from common import connect
from photo import _editor_with_photo


def scan(ui, **params):
    connect(ui, params)
    editor, region, photo = yield from _editor_with_photo(ui, params)
    seen = {}
    for y in range(region.y + region.height - 6, region.y + region.height - 400, -6):
        for x in range(region.x + 4, region.x + region.width - 4, 8):
            under = yield from ui.button_at(region, x, y)
            if under:
                seen.setdefault(under, []).append((x - region.x, y - region.y))
    ui.record(seen={k: (v[0], v[-1], len(v)) for k, v in seen.items()}, width=region.width)
    yield from ui.shot("debug-scan")
