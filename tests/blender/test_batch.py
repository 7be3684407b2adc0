"""Asset library building: a folder mixing the three input conventions → a .blend the Asset Browser opens."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import bpy
import numpy as np
from conftest import MODULE, SAMPLES


def batch_module():  # noqa: ANN201
    return sys.modules[f"{MODULE}.operators.batch"]


def photos(tmp: Path) -> Path:
    """name.png + name_mask.png; a cut-out in a sub-folder; a folder name/ with image.png and masks."""
    folder = tmp / "photos"
    (folder / "props").mkdir(parents=True)
    (folder / "socrates").mkdir()
    shutil.copy(SAMPLES / "human_object" / "image.png", folder / "bench.png")
    shutil.copy(SAMPLES / "human_object" / "mask_0.png", folder / "bench_mask.png")
    shutil.copy(SAMPLES / "socrates" / "5.png", folder / "props" / "cup.png")
    for name in ("image.png", "1.png", "2.png"):
        shutil.copy(SAMPLES / "socrates" / name, folder / "socrates" / name)
    return folder


def test_items_are_found_in_all_three_conventions(addon, tmp_path):
    items = batch_module().find_items(photos(tmp_path))
    found = {(i.name, Path(i.photo).name, Path(i.mask).name if i.mask else "", i.catalog) for i in items}
    assert found == {("bench", "bench.png", "bench_mask.png", "SAM 3D"), ("cup", "cup.png", "", "SAM 3D/props"),
                     ("socrates_1", "image.png", "1.png", "SAM 3D"), ("socrates_2", "image.png", "2.png", "SAM 3D")}


def read_library(path: Path) -> list[bpy.types.Object]:
    bpy.ops.wm.read_homefile(use_empty=True)
    with bpy.data.libraries.load(str(path), assets_only=True) as (source, target):
        target.objects = list(source.objects)
    return [o for o in target.objects if o is not None]


def test_a_folder_becomes_an_asset_library_with_previews_catalogs_and_provenance(sam3d):
    library = sam3d.tmp / "out" / "library.blend"
    assert bpy.ops.sam3d.batch(directory=str(photos(sam3d.tmp)), filepath=str(library), target_size=1.0) == {
        "FINISHED"}
    report = json.loads(library.with_suffix(".report.json").read_text())
    assert (report["done"], report["failed"], report["skipped"]) == (4, 0, 0)
    cats = (library.parent / "blender_assets.cats.txt").read_text()
    assets = read_library(library)
    assert sorted(o.name for o in assets) == ["bench", "cup", "socrates_1", "socrates_2"]
    for obj in assets:
        meta = obj.asset_data
        assert meta is not None and meta.catalog_id in cats and "SAM 3D" in [t.name for t in meta.tags]
        assert meta["sam3d_task_uuid"] == obj["sam3d_task_uuid"] and "Task" in meta.description
        preview = obj.preview
        assert preview is not None and preview.image_size[0] > 0
        pixels = np.array(preview.image_pixels_float[:])
        assert pixels.std() > 0.01, f"{obj.name}: the preview is blank"
        assert max(obj.dimensions) == __import__("pytest").approx(1.0, rel=1e-3)
    cup = next(o for o in assets if o.name == "cup")
    assert "SAM 3D/props" in cats and cup.asset_data.catalog_id == batch_module().catalog_id("SAM 3D/props")


def test_a_batch_run_again_submits_only_what_is_missing(sam3d):
    folder = photos(sam3d.tmp)
    library = sam3d.tmp / "library.blend"
    (folder / "socrates" / "2.png").rename(sam3d.tmp / "later.png")  # not there for the first run
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library)) == {"FINISHED"}
    first = sam3d.emu.billed_tasks()
    (sam3d.tmp / "later.png").rename(folder / "socrates" / "2.png")
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library)) == {"FINISHED"}
    assert sam3d.emu.billed_tasks() == first + 1
    report = json.loads(library.with_suffix(".report.json").read_text())
    assert (report["done"], report["skipped"]) == (1, 3)
    assert sorted(o.name for o in read_library(library)) == ["bench", "cup", "socrates_1", "socrates_2"]


def test_a_failing_item_is_reported_and_the_rest_succeed_and_the_command_says_so(sam3d, capsys):
    folder = photos(sam3d.tmp)
    empty = np.zeros((898, 1600, 4), np.float32)  # an empty mask: refused before anything is paid
    empty[..., 3] = 1.0
    image = bpy.data.images.new("empty", 1600, 898)
    image.pixels.foreach_set(empty.ravel())
    image.filepath_raw = str(folder / "bench_mask.png")
    image.file_format = "PNG"
    image.save()
    library = sam3d.tmp / "cli.blend"
    code = batch_module().cli(["batch", str(folder), "-o", str(library)])
    out = capsys.readouterr().out
    assert code == 1, "items failed: the exit status says so"
    assert "failed   bench: The mask" in out and "3 done, 1 failed" in out
    assert sorted(o.name for o in read_library(library)) == ["cup", "socrates_1", "socrates_2"]
    code = batch_module().cli(["batch", str(folder / "props"), "-o", str(sam3d.tmp / "ok.blend")])
    assert code == 0


def test_from_the_ui_the_batch_runs_in_the_background_and_the_panel_follows_it(sam3d):
    runner = sys.modules[f"{MODULE}.operators.runner"]
    library = sam3d.tmp / "ui.blend"
    batch = batch_module().run(bpy.context, photos(sam3d.tmp), library, batch_module().Options(), print,
                               blocking=False)
    assert [batch] == batch_module().ACTIVE and batch.counts()["pending"] == 4
    import time

    deadline = time.monotonic() + 60
    while runner.RUNNER.jobs and time.monotonic() < deadline:
        runner.tick()  # Blender's app timer: each job's asset is made and the library written as it ends
        time.sleep(0.05)
    assert batch.counts() == {"done": 4, "failed": 0, "skipped": 0, "pending": 0}
    assert sorted(o.name for o in read_library(library)) == ["bench", "cup", "socrates_1", "socrates_2"]


def test_make_batch_runs_the_same_headless_and_exits_with_the_status(tmp_path):
    import subprocess

    root = Path(__file__).parents[2]
    folder = photos(tmp_path)
    out = subprocess.run([sys.executable, str(root / "tools" / "batch.py"), str(folder / "props"), "-o",
                          str(tmp_path / "lib.blend")], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "RUNWARE_API_KEY": ""})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "EMULATOR" in out.stdout and "1 done, 0 failed" in out.stdout
    assert (tmp_path / "lib.blend").exists()


def test_a_batch_over_its_cost_limit_is_refused_before_anything_is_sent(sam3d):
    sam3d.settings.batch_max_cost = 0.01  # 4 jobs at 0.0038
    with __import__("pytest").raises(RuntimeError, match="over its limit"):
        bpy.ops.sam3d.batch(directory=str(photos(sam3d.tmp)), filepath=str(sam3d.tmp / "lib.blend"))
    assert sam3d.emu.requests == []


def test_clean_for_reuse_decimates_to_the_triangle_budget(sam3d):
    folder = photos(sam3d.tmp) / "props"
    library = sam3d.tmp / "small.blend"
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library), triangle_budget=300) == {"FINISHED"}
    [cup] = read_library(library)
    triangles = sum(len(p.vertices) - 2 for p in cup.data.polygons)
    assert 100 < triangles <= 330, triangles  # the emulator's result has 1216
    assert not cup.modifiers and tuple(cup.location) == (0.0, 0.0, 0.0)


def test_a_batch_cut_off_midway_fetches_what_was_already_paid_instead_of_paying_again(sam3d):
    import time

    runner = sys.modules[f"{MODULE}.operators.runner"]
    folder = photos(sam3d.tmp)
    library = sam3d.tmp / "cut.blend"
    sam3d.emu.processing_time = 3.0
    sam3d.prefs.max_jobs = 4
    batch_module().run(bpy.context, folder, library, batch_module().Options(), print, blocking=False)
    deadline = time.monotonic() + 30
    while sam3d.emu.billed_tasks() < 4 and time.monotonic() < deadline:
        runner.tick()
        time.sleep(0.05)
    runner.RUNNER.shutdown(join=2.0)  # Blender quits (or crashes) while all four are processing
    assert sam3d.emu.billed_tasks() == 4 and not library.exists()
    bpy.ops.wm.read_homefile(use_empty=True)
    sam3d.emu.processing_time = 0.2
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library)) == {"FINISHED"}
    assert sam3d.emu.billed_tasks() == 4, "the second run fetched the four paid tasks by their UUIDs"
    assert sorted(o.name for o in read_library(library)) == ["bench", "cup", "socrates_1", "socrates_2"]
