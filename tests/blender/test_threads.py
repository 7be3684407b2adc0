"""Blender's work on the main thread while our download threads run Python.

Blender 4.2 and 5.0 release Python's lock inside every operator called from Python, then read a
`temp_override` dictionary without it: with another thread running Python at that moment the process
crashes (seen within 40 renders, every run). The add-on calls no operator under an override; these tests
do the main-thread work that used one — preview renders, adopted imports — while threads run Python, and
would crash the test process on those Blenders if an override came back.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bpy
import numpy as np
from conftest import MODULE

DATA = Path(__file__).parents[1] / "data"


@contextmanager
def busy_threads(count: int = 4) -> Iterator[list[int]]:
    """Threads that run Python (allocating, as a download does) until the block ends; yields their rounds."""
    stop, rounds = threading.Event(), [0] * count

    def work(index: int) -> None:
        while not stop.is_set():
            chunks = {i: bytes(64) + str(i).encode() for i in range(500)}
            rounds[index] += len(chunks) > 0

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield rounds
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def test_asset_previews_render_while_threads_run_python(sam3d):
    library = sys.modules[f"{MODULE}.operators.library.assets"]
    bpy.ops.mesh.primitive_monkey_add()
    monkey = bpy.context.object
    with busy_threads() as rounds:
        for _ in range(15):
            library.render_preview(monkey, size=48)
    assert min(rounds) > 0, "the threads ran while Blender rendered"
    pixels = np.array(monkey.preview.image_pixels_float[:])
    assert tuple(monkey.preview.image_size) == (48, 48) and pixels.std() > 0.01
    assert [s.name for s in bpy.data.scenes] == ["Scene"], "the preview scenes are removed"


def test_results_import_while_threads_run_python(sam3d):
    importing = sys.modules[f"{MODULE}.operators.machinery.importing"]
    with busy_threads() as rounds:
        for _ in range(15):
            made = importing.import_glb(DATA / "two_parts.glb")
            assert any(o.type == "MESH" for o in made)
    assert min(rounds) > 0
