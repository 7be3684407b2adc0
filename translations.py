"""UI strings through Blender's translation functions, typed (the stubs declare them as returning None).

`iface_` for labels and buttons, `tip_` for tooltips and poll messages, `rpt_` for reports, as Blender's
bundled add-ons use them. `TRANSLATIONS` is registered with Blender: translators add a locale there,
{"fr_FR": {("*", "Reconstruct"): "Reconstruire", …}}, and every string wrapped here follows.
"""

from __future__ import annotations

from collections.abc import Callable

import bpy
from bpy.app import translations as _blender

TRANSLATIONS: dict[str, dict[tuple[str, str], str]] = {}
# The stubs type these as returning None and the dictionary's keys as strings: Blender's own contract is below.
iface_: Callable[[str], str] = _blender.pgettext_iface  # type: ignore[assignment]
tip_: Callable[[str], str] = _blender.pgettext_tip  # type: ignore[assignment]
rpt_: Callable[[str], str] = _blender.pgettext_rpt  # type: ignore[assignment]


def register() -> None:
    bpy.app.translations.register(__package__, TRANSLATIONS)  # type: ignore[arg-type]


def unregister() -> None:
    bpy.app.translations.unregister(__package__)
