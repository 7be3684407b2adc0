"""What every play starts with: the add-on pointed at the emulator, and the sidebar open on its tab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy


def connect(ui: Any, params: dict[str, Any], **prefs: Any) -> None:
    """The preferences a tester sets: the emulator's URL and key, a result folder of the test's own."""
    ui.prefs(api_url=params["api_url"], api_key=params["api_key"], result_dir=params["results"], **prefs)


def image(params: dict[str, Any], relative: str) -> bpy.types.Image:
    """An image of examples/, loaded as Blender's Open does."""
    return bpy.data.images.load(str(Path(params["examples"]) / relative), check_existing=True)


def settings() -> Any:
    return bpy.context.scene.sam3d


def added(before: set[str]) -> list[bpy.types.Object]:
    return [o for o in bpy.data.objects if o.name not in before]


def names() -> set[str]:
    return {o.name for o in bpy.data.objects}


ADDON = "bl_ext.user_default.sam3d"


def addon(name: str) -> Any:
    import sys

    return sys.modules[f"{ADDON}.{name}"]


def jobs() -> list[Any]:
    """The session's jobs in the order they were asked for (operators/machinery/runner.py)."""
    return list(addon("operators.machinery.runner").RUNNER.jobs.values())


def inputs(params: dict[str, Any], photo: str = "human_object/image.png", mask: str | None = "human_object/mask_0.png",
           ) -> None:
    """The photo and mask picked in the panel, as a person's picks are: each an undo step."""
    settings().image = image(params, photo)
    settings().mask = image(params, mask) if mask else None
    bpy.ops.ed.undo_push(message="Pick the photo and mask")


def drawn(ui: Any, region: Any) -> Any:
    """Every text the add-on's panels draw into `region` at its next redraw (panels.text is where each one goes):
    [(text, available pixels, widest line's pixels)]."""
    panels = addon("panels")
    seen: list[tuple[str, float, float]] = []
    original = panels.text

    def recording(layout: Any, value: str, icon: str = "NONE") -> None:
        if bpy.context.region == region:
            width = panels.room(icon != "NONE")
            widest = max(panels.text_width(line) for line in panels.lines(value, width))
            seen.append((value, width, widest))
        original(layout, value, icon)

    panels.text = recording
    try:
        region.tag_redraw()
        yield from ui.frames(4)
    finally:
        panels.text = original
    return seen
