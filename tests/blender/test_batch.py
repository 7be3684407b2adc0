"""Asset library building: a folder mixing the three input conventions → a folder of .blend assets that the
Asset Browser reads as one library; provenance, not names, decides what is done; nothing is paid twice."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from conftest import KEY, SAMPLES, module, reset_session, tick
from mathutils import Matrix

from tests.utils.test_contact_sheet import Parsed
from tests.utils.test_photo_folder import photos
from tests.watch import wait_for

SESSION = Path(__file__).with_name("session.py")
ALL = ["bench", "cup", "socrates_1", "socrates_2"]


def batch_module():  # noqa: ANN201
    return module("operators.library.batch")


def cli_module():  # noqa: ANN201
    return module("operators.library.cli")


def read_library(folder: Path) -> list[bpy.types.Object]:
    """Every asset of a library folder, read as the Asset Browser does (each .blend's assets)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    found = []
    for path in sorted(folder.rglob("*.blend")):
        with bpy.data.libraries.load(str(path), assets_only=True) as (source, target):
            target.objects = list(source.objects)
        found += [o for o in target.objects if o is not None]
    return found


def names(folder: Path) -> list[str]:
    return sorted(o.name for o in read_library(folder))


def report(library: Path) -> dict:
    return json.loads((library / "sam3d-report.json").read_text())


def test_a_folder_becomes_an_asset_library_with_previews_catalogs_and_provenance(sam3d):
    library = sam3d.tmp / "library"
    assert bpy.ops.sam3d.batch(directory=str(photos(sam3d.tmp)), filepath=str(library), target_size=1.0) == {
        "FINISHED"}
    data = report(library)
    assert (data["done"], data["failed"], data["skipped"]) == (4, 0, 0)
    assert sorted(p.relative_to(library).as_posix() for p in library.rglob("*.blend")) == [
        "bench.png.blend", "props/cup.png.blend", "socrates/1.png.blend", "socrates/2.png.blend"], "one per asset"
    cats = (library / "blender_assets.cats.txt").read_text()
    assets = read_library(library)
    assert sorted(o.name for o in assets) == ALL
    for obj in assets:
        meta = obj.asset_data
        assert meta is not None and meta.catalog_id in cats and "SAM 3D" in [t.name for t in meta.tags]
        assert meta["sam3d_task_uuid"] == obj["sam3d_task_uuid"] and "Task" in meta.description
        assert meta["sam3d_source"] in ("bench.png", "props/cup.png", "socrates/1.png", "socrates/2.png")
        pixels = np.array(obj.preview.image_pixels_float[:])
        assert obj.preview.image_size[0] > 0 and pixels.std() > 0.01, f"{obj.name}: the preview is blank"
        assert max(obj.dimensions) == pytest.approx(1.0, rel=1e-3)
    catalog_id = module("operators.library.assets").catalog_id
    catalogs = {o.name: o.asset_data.catalog_id for o in assets}
    assert catalogs["cup"] == catalog_id("SAM 3D/props") and "SAM 3D/props" in cats
    assert catalogs["socrates_1"] == catalogs["socrates_2"] == catalog_id("SAM 3D/socrates"), "name/ is a catalog"
    assert "SAM 3D/socrates" in cats and catalogs["bench"] == catalog_id("SAM 3D")
    with open(library / "bench.png.blend", "rb") as f:
        assert f.read(4) == b"\x28\xb5\x2f\xfd", "written compressed (zstd): half the size"
    sheet = Parsed((library / "index.html").read_text())  # the contact sheet, beside the report
    images = sorted(a["src"] for t, a in sheet.tags if t == "img")
    assert images == sorted(f"previews/{k}.png" for k in data_keys(data)), "every asset's preview, relative"
    for src in images:
        png = (library / src).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 1000, f"{src}: a real render"
    assert all(name in " ".join(sheet.text) for name in ALL)


def data_keys(data: dict) -> list[str]:
    return [i["key"] for i in data["items"] if i["status"] == "done"]


def test_every_asset_carries_the_author_licence_and_copyright_a_studio_set_once(sam3d):
    sam3d.prefs.asset_author, sam3d.prefs.asset_license = "Northwind Studio", "CC-BY-4.0"
    sam3d.prefs.asset_copyright = "© 2026 Northwind Studio"
    library = sam3d.tmp / "library"
    assert bpy.ops.sam3d.batch(directory=str(photos(sam3d.tmp) / "props"), filepath=str(library)) == {"FINISHED"}
    (asset,) = read_library(library)
    meta = asset.asset_data
    assert (meta.author, meta.license, meta.copyright) == ("Northwind Studio", "CC-BY-4.0", "© 2026 Northwind Studio")
    assert "Task" in meta.description and meta["sam3d_task_uuid"], "the provenance stays"


@pytest.mark.parametrize("height", [0.02, 0.45, 120.0])
def test_an_asset_preview_shows_the_whole_object_at_any_real_size(sam3d, height):
    """A photo named with its real size (a 2 cm ring, a 120 m tower) gives an asset of that size: its preview
    neither clips it at the camera's near or far plane nor cuts it at the frame."""
    bpy.ops.mesh.primitive_monkey_add()
    monkey = bpy.context.object
    monkey.scale *= height / monkey.dimensions.z
    bpy.context.view_layer.update()
    monkey.location.z = -min((monkey.matrix_world @ v.co).z for v in monkey.data.vertices) + monkey.location.z
    module("operators.library.assets").render_preview(monkey, size=48)
    alpha = np.array(monkey.preview.image_pixels_float[:]).reshape(48, 48, 4)[..., 3] > 0.5
    assert alpha.mean() > 0.08, f"{alpha.mean():.0%} of the preview shows the object"
    border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
    assert not border.any(), "the object touches the preview's frame: it is cut"


@pytest.mark.parametrize("height", [0.3, 3.0])
def test_a_preview_is_framed_on_the_asset_at_its_real_size(sam3d, height):
    """make_asset scales the mesh to its real size (`bench@0.9m.png`), then frames the preview on what it made:
    the object fills the preview without touching its border. It was framed on the size before the scaling
    (Blender's `dimensions` are stale until the next update): a 3 m asset was cut."""
    bpy.ops.mesh.primitive_monkey_add()
    monkey = bpy.context.object
    lowest = min(v.co.z for v in monkey.data.vertices)
    monkey.data.transform(Matrix.Translation((0.0, 0.0, -lowest)))  # its origin at its base, as results have
    bpy.context.view_layer.update()
    module("operators.library.assets").make_asset(monkey, catalog="SAM 3D", description="", tags=[], provenance={},
                                           real_height=height, preview=True)
    bpy.context.view_layer.update()
    assert monkey.dimensions.z == pytest.approx(height, rel=1e-3)
    w, h = monkey.preview.image_size
    alpha = np.array(monkey.preview.image_pixels_float[:]).reshape(h, w, 4)[..., 3] > 0.5
    border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
    assert not border.any() and alpha.mean() > 0.08, f"{alpha.mean():.0%} shown, border touched: {border.any()}"


def test_an_asset_written_again_is_replaced_whole_or_not_at_all(sam3d, monkeypatch):
    """A crash while an asset is written again (here: before its rename) leaves the asset as it was, and no
    temporary file among the assets."""
    library = module("operators.library.assets").Library(sam3d.tmp / "lib")
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.object
    first = library.write_asset("props/cup.png", cube)
    before = first.read_bytes()
    bpy.ops.object.modifier_add(type="SUBSURF")  # the asset changes: a write of other bytes
    bpy.ops.object.modifier_apply(modifier="Subdivision")

    def crash(source: object, target: object) -> None:
        raise OSError("the machine went down")

    monkeypatch.setattr(module("operators.library.assets").os, "replace", crash)
    with pytest.raises(OSError):
        library.write_asset("props/cup.png", cube)
    monkeypatch.undo()
    assert first.read_bytes() == before
    assert [p.name for p in first.parent.iterdir()] == [first.name], "no temporary file left"


def test_an_item_another_machine_already_sent_is_fetched_by_its_uuid_never_paid_again(sam3d):
    """Machine A claimed the item in the shared library and sent its task (its journal is on machine A): machine
    B, running the same batch, finds the claim and fetches that task by its UUID."""
    from client.jobs import Job, JobRequest

    folder = sam3d.tmp / "photos"
    folder.mkdir()
    for name, source in (("bench.png", "image.png"), ("bench_mask.png", "mask_0.png")):
        shutil.copy(SAMPLES / "human_object" / source, folder / name)
    png = (folder / "bench.png").read_bytes()
    elsewhere = Job(JobRequest(api_key=KEY, result_dir=sam3d.tmp / "machine-a", prepare=lambda: (png, png),
                               api_url=sam3d.emu.api_url, poll_first_delay=0.05)).start()
    while not elsewhere.done:
        elsewhere.drain(block=0.05)
    assert sam3d.emu.billed("3dInference") == 1
    library = sam3d.tmp / "library"
    batch = module("operators.library.batch")
    hashes = {"photo": batch.file_hash(str(folder / "bench.png")),
              "mask": batch.file_hash(str(folder / "bench_mask.png"))}
    module("operators.library.assets").Library(library).set_state("bench.png", state="claimed",
                                                           task_uuid=elsewhere.task_uuid, hashes=hashes)
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library)) == {"FINISHED"}
    assert report(library)["done"] == 1
    assert sam3d.emu.billed("3dInference") == 1, "fetched by its UUID, not sent again"


def test_the_open_file_keeps_nothing_of_the_batch(sam3d):
    bpy.ops.mesh.primitive_cube_add()
    before = {kind: len(getattr(bpy.data, kind)) for kind in ("objects", "meshes", "materials", "images",
                                                                "collections", "scenes")}
    assert bpy.ops.sam3d.batch(directory=str(photos(sam3d.tmp) / "props"), filepath=str(sam3d.tmp / "lib")) == {
        "FINISHED"}
    after = {kind: len(getattr(bpy.data, kind)) for kind in before}
    assert after == before, "each asset leaves the open file once written: memory stays flat"


def test_each_finished_item_is_freed_at_once_not_by_a_later_garbage_collection(sam3d, monkeypatch):
    """The glTF importer leaves reference cycles that hold the calls that made an asset (and with them the item's
    job, its photo's pixels, the parsed GLB): left to Python's rare full collection, they piled up (a batch of
    160 grew by over 1 GB). The batch collects them as each item ends."""
    jobs, batch = module("client.jobs"), batch_module()
    sam3d.prefs.max_jobs = 1  # one job at a time (and one waiting): at most two alive whenever the batch feeds
    alive: list[int] = []
    real_feed = batch.Batch.feed

    def feed(self, context):  # noqa: ANN001, ANN202
        started = real_feed(self, context)
        alive.append(sum(1 for o in gc.get_objects() if type(o) is jobs.Job))  # type(): a removed bpy struct
        return started                                                         # raises on isinstance

    monkeypatch.setattr(batch.Batch, "feed", feed)
    gc.collect()
    gc.disable()  # what a cycle keeps alive stays alive: only the batch's own collection frees it
    try:
        assert bpy.ops.sam3d.batch(directory=str(photos(sam3d.tmp)), filepath=str(sam3d.tmp / "lib")) == {"FINISHED"}
    finally:
        gc.enable()
    assert sam3d.emu.billed_tasks() == 4
    assert alive and max(alive) <= 2, f"live jobs after each feed: {alive}"


def test_a_batch_run_again_submits_only_what_is_missing(sam3d):
    folder = photos(sam3d.tmp)
    library = sam3d.tmp / "library"
    (folder / "socrates" / "2.png").rename(sam3d.tmp / "later.png")  # not there for the first run
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library)) == {"FINISHED"}
    first = sam3d.emu.billed_tasks()
    (sam3d.tmp / "later.png").rename(folder / "socrates" / "2.png")
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library)) == {"FINISHED"}
    assert sam3d.emu.billed_tasks() == first + 1
    data = report(library)
    assert (data["done"], data["skipped"]) == (1, 3)
    assert names(library) == ALL


def test_an_edited_photo_is_a_new_item(sam3d):
    folder = photos(sam3d.tmp) / "props"
    library = sam3d.tmp / "library"
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library)) == {"FINISHED"}
    shutil.copy(SAMPLES / "socrates" / "6.png", folder / "cup.png")  # same name, other content
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library)) == {"FINISHED"}
    assert sam3d.emu.billed_tasks() == 2 and report(library)["done"] == 1


def test_an_unrelated_object_with_an_assets_name_changes_nothing(sam3d):
    folder = photos(sam3d.tmp) / "props"
    library = sam3d.tmp / "library"
    bpy.ops.mesh.primitive_cube_add()
    mine = bpy.context.object
    mine.name = "cup"  # the artist's own object, named like the asset
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library)) == {"FINISHED"}
    assert mine.name == "cup" and mine.type == "MESH" and len(mine.data.vertices) == 8, "left as it was"
    assert names(library) == ["cup"], "the asset has its own name, not cup.001"
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_cube_add()
    bpy.context.object.name = "cup"
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library)) == {"FINISHED"}
    assert sam3d.emu.billed_tasks() == 1, "done by provenance, whatever the open file holds"


def test_a_failing_item_is_reported_and_the_rest_succeed_and_the_command_says_so(sam3d, capsys):
    folder = photos(sam3d.tmp)
    empty = np.zeros((898, 1600, 4), np.float32)  # an empty mask: refused before anything is paid
    empty[..., 3] = 1.0
    image = bpy.data.images.new("empty", 1600, 898)
    image.pixels.foreach_set(empty.ravel())
    image.filepath_raw = str(folder / "bench_mask.png")
    image.file_format = "PNG"
    image.save()
    library = sam3d.tmp / "cli"
    code = cli_module().cli(["batch", str(folder), "-o", str(library)])
    out = capsys.readouterr().out
    assert code == 1, "items failed: the exit status says so"
    assert "failed   bench: The mask" in out and "3 done, 1 failed" in out
    assert names(library) == ["cup", "socrates_1", "socrates_2"]
    assert cli_module().cli(["batch", str(folder / "props"), "-o", str(sam3d.tmp / "ok")]) == 0


def test_a_name_too_long_for_its_asset_file_is_refused_unpaid_and_a_failed_write_is_not_paid_again(sam3d):
    folder = photos(sam3d.tmp) / "props"
    shutil.copy(SAMPLES / "socrates" / "6.png", folder / ("l" * 246 + ".png"))
    library = sam3d.tmp / "library"
    (library / "cup.png.blend").mkdir(parents=True)  # what the asset is written over: a write that fails
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library)) == {"CANCELLED"}, "nothing made"
    items = {i["name"][:8]: i for i in report(library)["items"]}
    assert items["llllllll"]["status"] == "failed" and "250 bytes" in items["llllllll"]["reason"]
    assert items["cup"]["status"] == "failed", items["cup"]
    assert "could not be written to the library" in items["cup"]["reason"]
    assert "without paying again" in items["cup"]["reason"]
    assert sam3d.emu.billed_tasks() == 1, "only the cup was sent"
    (library / "cup.png.blend").rmdir()
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library)) == {"FINISHED"}
    assert names(library) == ["cup"] and sam3d.emu.billed_tasks() == 1, "its result was kept: not paid again"


def test_the_command_refuses_a_blend_file_as_the_library_and_a_bad_shard(sam3d, capsys):
    folder = photos(sam3d.tmp)
    assert cli_module().cli(["batch", str(folder), "-o", str(sam3d.tmp / "library.blend")]) == 2
    assert "give a folder" in capsys.readouterr().out
    assert cli_module().cli(["batch", str(folder), "-o", str(sam3d.tmp / "l"), "--shard", "4/3"]) == 2
    assert sam3d.emu.requests == []


def test_the_command_respects_online_access_and_names_the_override(sam3d, capsys):
    bpy.context.preferences.system.use_online_access = False
    try:
        assert cli_module().cli(["batch", str(photos(sam3d.tmp)), "-o", str(sam3d.tmp / "l")]) == 2
    finally:
        bpy.context.preferences.system.use_online_access = True
    assert "--online-mode" in capsys.readouterr().out and sam3d.emu.requests == []


def test_from_the_ui_the_batch_runs_in_the_background_and_the_panel_follows_it(sam3d):
    library = sam3d.tmp / "ui"
    batch = batch_module().prepare(photos(sam3d.tmp), library, batch_module().Options())
    batch_module().run(bpy.context, batch, print, blocking=False)
    assert [batch] == batch_module().ACTIVE and batch.running
    # tick(): Blender's app timer; it feeds the batch, and each job's asset is made and written as it ends
    wait_for(lambda: (tick(), not batch.running)[1], "the batch finished", 120)
    assert batch.counts() == {"done": 4, "failed": 0, "skipped": 0, "pending": 0}
    assert names(library) == ALL


def test_loading_another_file_mid_batch_loses_no_asset(sam3d):
    library = sam3d.tmp / "switch"
    sam3d.prefs.max_jobs = 1
    batch = batch_module().prepare(photos(sam3d.tmp), library, batch_module().Options())
    batch_module().run(bpy.context, batch, print, blocking=False)
    switched = False

    def finished() -> bool:
        nonlocal switched
        tick()
        if not switched and batch.counts()["done"] == 1:
            bpy.ops.wm.read_homefile(use_empty=True)  # the artist opens another file
            switched = True
        return not batch.running

    wait_for(finished, "the batch finished", 120)
    assert switched and batch.counts()["done"] == 4, [(i.name, i.status, i.reason) for i in batch.items]
    assert names(library) == ALL, names(library)
    assert report(library)["done"] == 4


def test_the_asset_library_cancel_stops_the_batch_only(sam3d):
    from conftest import use_inputs

    sam3d.emu.processing_time = 30
    use_inputs()
    mine = module("operators.one_object.reconstruct").start_job(bpy.context)
    batch = batch_module().prepare(photos(sam3d.tmp), sam3d.tmp / "c", batch_module().Options())
    batch_module().run(bpy.context, batch, print, blocking=False)
    assert bpy.ops.sam3d.batch_cancel() == {"FINISHED"}
    wait_for(lambda: (tick(), not batch.running)[1], "the cancelled batch stopped", 30)
    assert not mine.job.cancel_event.is_set() and not mine.job.done, "the artist's own job goes on"
    assert batch.counts()["done"] == 0


def test_make_batch_runs_the_same_headless_and_exits_with_the_status(tmp_path):
    root = Path(__file__).parents[2]
    folder = photos(tmp_path)
    before = sorted(p.name for p in root.iterdir())
    out = subprocess.run([sys.executable, str(root / "tools" / "batch.py"), str(folder / "props"), "-o",
                          str(tmp_path / "lib")], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "RUNWARE_API_KEY": ""})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "EMULATOR" in out.stdout and "1 done, 0 failed" in out.stdout
    assert (tmp_path / "lib" / "cup.png.blend").exists()
    assert sorted(p.name for p in root.iterdir()) == before, "nothing written into the checkout"


def test_a_batch_cost_limit_refuses_the_items_past_it(sam3d):
    sam3d.settings.batch_max_cost = 0.01  # 4 jobs at 0.0038: two fit
    library = sam3d.tmp / "lib"
    sam3d.prefs.max_jobs = 1
    bpy.ops.sam3d.batch(directory=str(photos(sam3d.tmp)), filepath=str(library))
    assert sam3d.emu.billed_tasks() == 2
    data = report(library)
    assert data["done"] == 2 and data["failed"] == 2
    assert all("the batch's Cost Limit" in i["reason"] for i in data["items"] if i["status"] == "failed")


def test_the_command_line_max_cost_is_enforced_and_the_status_says_so(sam3d, capsys):
    code = cli_module().cli(["batch", str(photos(sam3d.tmp)), "-o", str(sam3d.tmp / "l"), "--max-cost", "0.005"])
    assert code == 1 and sam3d.emu.billed_tasks() == 1
    assert "the batch's Cost Limit" in capsys.readouterr().out


def test_clean_for_reuse_decimates_to_the_triangle_budget(sam3d):
    folder = photos(sam3d.tmp) / "props"
    library = sam3d.tmp / "small"
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library), triangle_budget=300) == {"FINISHED"}
    [cup] = read_library(library)
    triangles = sum(len(p.vertices) - 2 for p in cup.data.polygons)
    assert 100 < triangles <= 330, triangles  # the emulator's result has 1216
    assert not cup.modifiers and tuple(cup.location) == (0.0, 0.0, 0.0)


def test_a_real_size_from_the_file_name_or_sizes_csv(sam3d):
    folder = sam3d.tmp / "sized"
    folder.mkdir()
    shutil.copy(SAMPLES / "socrates" / "5.png", folder / "cup@0.12m.png")
    shutil.copy(SAMPLES / "socrates" / "6.png", folder / "lamp.png")
    (folder / "sizes.csv").write_text("lamp.png,0.45\n")
    library = sam3d.tmp / "lib"
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library), target_size=3.0) == {"FINISHED"}
    heights = {o.name: o.dimensions.z for o in read_library(library)}
    assert heights == pytest.approx({"cup": 0.12, "lamp": 0.45}, rel=1e-3), "the real size wins over Target Size"


def test_a_batch_cut_off_midway_fetches_what_was_already_paid_instead_of_paying_again(sam3d):
    folder = photos(sam3d.tmp)
    library = sam3d.tmp / "cut"
    sam3d.emu.processing_time = 600.0  # still processing when Blender goes
    sam3d.prefs.max_jobs = 4
    batch = batch_module().prepare(folder, library, batch_module().Options())
    batch_module().run(bpy.context, batch, print, blocking=False)
    wait_for(lambda: (tick(), sam3d.emu.billed_tasks() >= 4)[1], "all four sent", 60)
    reset_session()  # Blender quits (or crashes) while all four process; a new one starts
    assert sam3d.emu.billed_tasks() == 4 and not list(library.rglob("*.blend"))
    bpy.ops.wm.read_homefile(use_empty=True)
    sam3d.emu.finish()  # Runware finished them meanwhile
    bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library))
    assert report(library)["done"] == 4, [(i["name"], i["reason"]) for i in report(library)["items"]]
    assert sam3d.emu.billed_tasks() == 4, "the second run fetched the four paid tasks by their UUIDs"
    assert names(library) == ALL


def run_session(sam3d, *args: str, wait: bool = True):  # noqa: ANN001, ANN201
    command = [sys.executable, str(SESSION), str(sam3d.zip), str(sam3d.results), sam3d.emu.api_url, KEY, *args]
    if wait:
        return subprocess.run(command, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture
def zipped(sam3d, zip_path):  # noqa: ANN001, ANN201
    sam3d.zip = zip_path
    return sam3d


def test_a_batch_killed_mid_run_with_two_photos_of_one_name_pays_nothing_again(zipped):
    """chair/image.png and table/image.png, one mask each, one job at a time: a real Blender process is killed
    while the second task processes; the re-run fetches it by its UUID and pays nothing twice."""
    sam3d = zipped
    folder = sam3d.tmp / "photos"
    for name, mask in (("chair", "1.png"), ("table", "2.png")):
        (folder / name).mkdir(parents=True)
        shutil.copy(SAMPLES / "socrates" / "image.png", folder / name / "image.png")
        shutil.copy(SAMPLES / "socrates" / mask, folder / name / "mask.png")
    library = sam3d.tmp / "library"
    sam3d.emu.processing_time = 4.0
    first = run_session(sam3d, "batch", str(folder), str(library), "--jobs", "1", wait=False)
    try:
        wait_for(lambda: sam3d.emu.billed_tasks() >= 2 or first.poll() is not None, "the first run's two sends", 300)
        assert sam3d.emu.billed_tasks() >= 2, "the first run never sent both"
        first.kill()  # chair imported, table in flight
    finally:
        first.wait(30)
    assert sam3d.emu.billed_tasks() == 2
    second = run_session(sam3d, "batch", str(folder), str(library), "--jobs", "1")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert sam3d.emu.billed_tasks() == 2, "nothing sent twice"
    assert names(library) == ["chair_mask", "table_mask"]


def test_three_shard_processes_build_one_library_each_item_paid_once(zipped):
    sam3d = zipped
    folder = photos(sam3d.tmp)
    library = sam3d.tmp / "library"
    runs = [run_session(sam3d, "batch", str(folder), str(library), "--shard", f"{k}/3", wait=False)
            for k in (1, 2, 3)]
    outputs = [p.communicate(timeout=600)[0] for p in runs]
    assert [p.returncode for p in runs] == [0, 0, 0], "\n".join(o[-1500:] for o in outputs)
    assert sam3d.emu.billed_tasks() == 4
    assert names(library) == ALL
    reports = sorted(p.name for p in library.glob("sam3d-report.*-of-3.json"))
    assert reports == ["sam3d-report.1-of-3.json", "sam3d-report.2-of-3.json", "sam3d-report.3-of-3.json"]
    cats = (library / "blender_assets.cats.txt").read_text().splitlines()
    assert len([c for c in cats if ":" in c]) == len({c.split(":")[0] for c in cats if ":" in c}), "no duplicates"


def test_the_command_line_bakes_assets_with_their_textures_beside_them(sam3d, capsys):
    folder = photos(sam3d.tmp) / "props"
    library = sam3d.tmp / "baked"
    code = cli_module().cli(["batch", str(folder), "-o", str(library), "--bake", "256", "--triangles", "600"])
    assert code == 0, capsys.readouterr().out
    [cup] = read_library(library)
    triangles = sum(len(p.vertices) - 2 for p in cup.data.polygons)
    assert triangles <= 600 and cup.data.uv_layers, "reduced and unwrapped"
    images = [n.image for n in cup.active_material.node_tree.nodes if getattr(n, "image", None) is not None]
    assert len(images) == 1 and tuple(images[0].size) == (256, 256)
    bpy.ops.wm.open_mainfile(filepath=str(library / "cup.png.blend"))  # the asset's own file, as it is on disk
    [image] = [i for i in bpy.data.images if i.source == "FILE"]
    assert image.filepath.startswith("//"), f"relative to the asset, so the library can move: {image.filepath}"
    assert Path(bpy.path.abspath(image.filepath)).is_file() and image.packed_file is None, "saved beside it"
    bpy.ops.wm.read_homefile(use_empty=True)
