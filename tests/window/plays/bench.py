"""`make bench`'s real-window rows: how long Blender's main loop stalls while jobs run and import."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import bpy
from common import added, connect, image, jobs, names, settings


def main_loop(ui, **params):
    """8 masks of the painting sent by one click, 8 jobs at once, each answered with the real 227k-triangle result:
    the gaps between two turns of Blender's main loop (a timer at interval 0 runs once per turn), in the click
    (which reads the 8 masks) and from then until the last object landed; and the same gap for the glTF importer
    alone on the same file, in the same window and scene (an import there costs the import and the redraws of a
    viewport holding more triangles: Mesa's software OpenGL draws them slowly)."""
    connect(ui, params, max_jobs=8)
    region = yield from ui.sidebar("VIEW_3D")
    settings().image = image(params, "socrates/image.png")
    for n in range(8):
        settings().masks.add().image = image(params, f"socrates/{n}.png")
    bpy.ops.ed.undo_push(message="Pick the photo and masks")
    before = names()
    button = yield from ui.find(region, "sam3d.reconstruct(")
    turns: list[float] = []

    def turn() -> float:
        turns.append(time.perf_counter())
        return 0.0

    bpy.app.timers.register(turn, first_interval=0.0)
    clicked = time.perf_counter()
    yield from ui.click(button)
    yield from ui.until(lambda: jobs(), 30, "the jobs started")
    started = time.perf_counter()
    yield from ui.until(lambda: not jobs() and len([o for o in added(before) if o.type == "MESH"]) >= 8, 600,
                        "8 objects imported")
    ended = time.perf_counter()
    # The glTF importer alone on the same file, in this window with the 8 objects still in the scene, each import
    # made in one turn as ours are: the longest gap around it (the import and the redraws that follow it).
    imports, bare = [], []
    glb = str(Path(params["examples"]) / "human_object" / "sam3d_output_0.glb")
    for _ in range(3):
        had = names()
        yield from ui.frames(4)
        began = time.perf_counter()
        bpy.ops.import_scene.gltf(filepath=glb)
        imports.append(time.perf_counter() - began)
        yield from ui.frames(8)
        bare.append(max(b - a for a, b in zip(turns, turns[1:], strict=False) if b > began))
        for obj in added(had):
            bpy.data.objects.remove(obj)
    bpy.app.timers.unregister(turn)
    pairs = [(a, b) for a, b in zip(turns, turns[1:], strict=False) if b <= ended]
    stalls = sorted(((b - a, a - clicked) for a, b in pairs), reverse=True)[:5]
    press = max((b - a for a, b in pairs if a < started), default=0.0)  # the click: 8 masks read, jobs started
    gaps = sorted(b - a for a, b in pairs if a >= started)
    ui.record(turns=len(gaps), press=press, p50=statistics.median(gaps), p99=gaps[int(0.99 * (len(gaps) - 1))],
              max=gaps[-1], importer=statistics.median(imports), bare=statistics.median(bare),
              stalls=[[round(g, 3), round(t, 2)] for g, t in stalls])
