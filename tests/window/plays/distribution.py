"""A distribution build of Blender without `requests` (Debian's, on the system Python, may lack it)."""

from __future__ import annotations

import sys

import bpy
from common import ADDON, connect, drawn, settings


def without_requests(ui, **params):
    """The add-on enabled in a Blender whose Python has no `requests`: it enables, its panel says what to install,
    and every operator that needs the network says so in one sentence."""
    bpy.ops.preferences.addon_disable(module=ADDON)
    for name in [n for n in sys.modules if n == ADDON or n.startswith(ADDON + ".")]:
        del sys.modules[name]
    for name in [n for n in sys.modules if n.split(".")[0] in ("requests", "urllib3")]:
        del sys.modules[name]
    sys.modules["requests"] = None  # import requests now raises ImportError, as where it is not installed
    sys.modules["urllib3"] = None
    bpy.ops.preferences.addon_enable(module=ADDON)
    ui.record(enabled=ADDON in bpy.context.preferences.addons)
    connect(ui, params)
    region = yield from ui.sidebar("VIEW_3D")
    settings().image = bpy.data.images.new("photo", 64, 48)
    settings().mask = bpy.data.images.new("mask", 64, 48)
    texts = [t for t, _, _ in (yield from drawn(ui, region))]
    said = {}
    for name in ("reconstruct", "auto_mask", "box_mask", "batch", "test_connection", "retry"):
        try:
            ui.call(getattr(bpy.ops.sam3d, name))
            said[name] = ""
        except RuntimeError as exc:
            said[name] = str(exc)
    yield from ui.shot("distribution-without-requests")
    ui.record(panel=[t for t in texts if "requests" in t], operators=said)
