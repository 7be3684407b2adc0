"""An asset library built from the panel, and read by Blender's Asset Browser, in the real window."""

from __future__ import annotations

import bpy
from common import addon, connect, settings


def build_and_browse(ui, **params):
    """Build Asset Library from its sub-panel: it says how many jobs and about what they cost before anything
    runs, runs in the background, its clock stops when it ends; the Asset Browser then lists the assets."""
    connect(ui, params)
    region = yield from ui.sidebar("VIEW_3D")
    settings().batch_directory = params["photos"]
    settings().batch_library = params["library"]
    yield from ui.open_panel(region, "sam3d.batch(", index=1)
    batch = addon("operators.library.batch")
    yield from ui.click((yield from ui.find(region, "sam3d.batch(")))
    yield from ui.frames(6)
    yield from ui.shot("library-question")
    ui.record(started_before_ok=bool(batch.ACTIVE), billed_before_ok=params["billed_marker"])
    ui.flush()
    yield from ui.key("RET")
    yield from ui.until(lambda: batch.ACTIVE and not batch.ACTIVE[0].running, 180, "the batch ended")
    first = batch.ACTIVE[0].elapsed
    yield 1.5
    counts = batch.ACTIVE[0].counts()
    ui.record(counts=counts, clock_stopped=batch.ACTIVE[0].elapsed == first, estimate=batch.estimate_text(
        batch.ACTIVE[0]))
    yield from ui.shot("library-built")
    # The library in Blender's Asset Browser, as a person adds it: Preferences › File Paths › Asset Libraries.
    libraries = bpy.context.preferences.filepaths.asset_libraries
    libraries.new(name="SAM3D Test Library", directory=params["library"])
    browser = ui.area("VIEW_3D")
    browser.ui_type = "ASSETS"
    yield from ui.frames(6)
    browser.spaces[0].params.asset_library_reference = "SAM3D Test Library"
    yield 2.0
    view = ui.region(browser, "WINDOW")
    yield from ui.key("A", at=ui.center(view))  # select all
    yield 1.0
    with bpy.context.temp_override(window=ui.window, area=browser, region=view):
        assets = [(a.name, a.id_type) for a in (bpy.context.selected_assets or [])]
    yield from ui.shot("library-asset-browser")
    ui.record(assets=sorted(assets))
