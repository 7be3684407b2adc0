"""Name from Caption (issue 22): a paid caption of each object's cut-out names anonymous photos' assets, describes and
tags every asset, names a reconstructed object and its collection; reserved, journalled, never asked twice."""

from __future__ import annotations

import base64
import json
import shutil
import struct
import uuid
from pathlib import Path

import bpy
import pytest
from conftest import SAMPLES, module, use_inputs
from test_batch import read_library, report

from tests.utils.test_contact_sheet import Parsed

CAPTION = "A wooden chair with a red cushion, shown on a white background."


def anonymous_photos(tmp: Path) -> Path:
    """A phone's IMG_4471 with its mask, a meaningful cut-out, and a folder of numbered masks (Meta's layout)."""
    folder = tmp / "photos"
    (folder / "table").mkdir(parents=True)
    shutil.copy(SAMPLES / "human_object" / "image.png", folder / "IMG_4471.png")
    shutil.copy(SAMPLES / "human_object" / "mask_0.png", folder / "IMG_4471_mask.png")
    shutil.copy(SAMPLES / "socrates" / "5.png", folder / "oak_chair.png")
    for name in ("image.png", "1.png"):
        shutil.copy(SAMPLES / "socrates" / name, folder / "table" / name)
    return folder


def cutout_size(task: dict) -> tuple[int, int]:
    png = base64.b64decode(task["inputs"]["image"].split(",", 1)[1])
    return struct.unpack(">II", png[16:24])


def test_anonymous_assets_are_named_described_and_tagged_from_their_caption(sam3d):
    sam3d.emu.caption_text = CAPTION
    folder, library = anonymous_photos(sam3d.tmp), sam3d.tmp / "library"
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library), caption=True) == {"FINISHED"}
    assert sam3d.emu.billed("caption") == 3 and sam3d.emu.billed("3dInference") == 3
    captions = [r.body[0] for r in sam3d.emu.requests if r.body and r.body[0].get("taskType") == "caption"]
    assert all(max(cutout_size(t)) <= 1024 for t in captions), "the cut-out, not the photo"
    assets = {o.asset_data["sam3d_source"]: o for o in read_library(library)}
    # Read into one file, the second "Wooden Chair" is "Wooden Chair.001" here; each file holds its own name.
    assert {assets["IMG_4471.png"].name, assets["table/1.png"].name} == {"Wooden Chair", "Wooden Chair.001"}
    assert {i["key"]: i["name"] for i in report(library)["items"]}["table/1.png"] == "Wooden Chair"
    assert assets["oak_chair.png"].name == "oak_chair", "a file name that says something is kept"
    for obj in assets.values():
        meta = obj.asset_data
        tags = [t.name for t in meta.tags]
        assert {"wooden", "chair", "red", "cushion", "SAM 3D"} <= set(tags) and "white" not in tags
        assert meta.description.startswith("A wooden chair with a red cushion") and "Task" in meta.description
        assert obj["sam3d_caption"].startswith("A wooden chair")
    assert "table" in [t.name for t in assets["table/1.png"].asset_data.tags], "its catalog too"
    data = report(library)
    assert data["cost"] == pytest.approx(3 * (0.0038 + 0.0019)), "each caption's cost is the item's too"
    assert {i["caption"] for i in data["items"]} == {CAPTION}
    sheet = Parsed((library / "index.html").read_text()).text
    assert sheet.count(CAPTION) == 3 and sheet.count("Wooden Chair") == 2

    bpy.ops.wm.read_homefile(use_empty=True)  # again: everything is in the library, nothing is asked
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library), caption=True) == {"FINISHED"}
    assert sam3d.emu.billed("caption") == 3 and sam3d.emu.billed("3dInference") == 3
    again = Parsed((library / "index.html").read_text()).text
    assert again.count(CAPTION) == 3 and again.count("Wooden Chair") == 2, "the sheet shows them as they were made"


def test_a_caption_asked_by_an_earlier_run_is_never_asked_again(sam3d):
    """An earlier run claimed the item and asked its caption, then its task was lost (Runware forgot it): the
    next run sends a new task, but the caption it already paid for is not asked again."""
    folder, library = anonymous_photos(sam3d.tmp), sam3d.tmp / "library"
    (folder / "oak_chair.png").unlink()
    shutil.rmtree(folder / "table")
    batch = module("operators.library.batch")
    hashes = {"photo": batch.file_hash(str(folder / "IMG_4471.png")),
              "mask": batch.file_hash(str(folder / "IMG_4471_mask.png"))}
    module("operators.library.assets").Library(library).set_state(
        "IMG_4471.png", state="lost", task_uuid=str(uuid.uuid4()), hashes=hashes, caption_uuid=str(uuid.uuid4()),
        caption="A brass desk lamp.\n\x1b[31m")
    assert bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library), caption=True) == {"FINISHED"}
    assert sam3d.emu.billed("3dInference") == 1 and sam3d.emu.billed("caption") == 0
    [asset] = read_library(library)
    assert asset.name == "Brass Desk Lamp" and asset.asset_data.description.startswith("A brass desk lamp. [31m")
    state = json.loads((library / ".sam3d" / "IMG_4471.png.json").read_text())
    assert state["state"] == "done" and state["caption"] == "A brass desk lamp. [31m", "kept, cleaned, for good"


def test_the_estimate_counts_the_captions_and_a_limit_refuses_them_before_anything_is_sent(sam3d):
    folder, library = anonymous_photos(sam3d.tmp), sam3d.tmp / "library"
    batch = module("operators.library.batch")
    plain = batch.estimate(batch.prepare(folder, library, batch.Options()))
    captioned = batch.estimate(batch.prepare(folder, library, batch.Options(caption=True)))
    assert plain[0] == captioned[0] == 3
    assert captioned[1] == pytest.approx(plain[1] + 3 * 0.0026), "the caption's documented worst case, per item"
    budget = sam3d.prefs.session_budget = 0.0038 * 3 + 0.001  # the reconstructions fit, not with their captions
    bpy.ops.sam3d.batch(directory=str(folder), filepath=str(library), caption=True)
    billed = sam3d.emu.billed("3dInference") * 0.0038 + sam3d.emu.billed("caption") * 0.0019
    assert 0 < billed <= budget, "nothing past the limit was sent"
    assert sam3d.emu.billed("caption") == sam3d.emu.billed("3dInference") < 3, "an item is sent with its caption"
    refused = [i for i in report(library)["items"] if i["status"] == "failed"]  # how many fit: when others settle
    assert refused and all("Spending Limit" in i["reason"] for i in refused), refused


def test_reconstruct_names_the_object_and_its_collection_from_the_caption(sam3d):
    sam3d.emu.caption_text = "The image shows a brass desk lamp on a white background."
    use_inputs()
    sam3d.settings.name_from_caption = True
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    [obj] = [o for o in bpy.data.objects if o not in before]
    assert obj.name == "Brass Desk Lamp" and [c.name for c in obj.users_collection] == ["Brass Desk Lamp"]
    assert obj["sam3d_caption"] == "The image shows a brass desk lamp on a white background."
    assert sam3d.emu.billed("caption") == 1
    sam3d.settings.name_from_caption = False
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    [plain] = [o for o in bpy.data.objects if o not in before]
    assert plain.name == "mask_0" and "sam3d_caption" not in plain and sam3d.emu.billed("caption") == 1


def test_a_failed_caption_costs_the_object_nothing_but_its_name(sam3d):
    sam3d.emu.caption_text = lambda task: None  # an answer with no text
    use_inputs()
    sam3d.settings.name_from_caption = True
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    [obj] = [o for o in bpy.data.objects if o not in before]
    assert obj.name == "mask_0" and "sam3d_caption" not in obj
