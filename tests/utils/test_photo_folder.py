"""A folder of photos and masks as asset-library items (client/photo_folder.py, no Blender): the three conventions,
real sizes, shards."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from client.photo_folder import MAX_NAME_BYTES, file_hash, find_items, shard

SAMPLES = Path(__file__).resolve().parents[2] / "examples"


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


def test_items_are_found_in_all_three_conventions_with_their_sizes(tmp_path):
    folder = photos(tmp_path)
    shutil.copy(SAMPLES / "socrates" / "6.png", folder / "props" / "lamp@0.45m.png")
    (folder / "props" / "sizes.csv").write_text("photo,height\ncup.png,0.12\n")
    items = find_items(folder)
    found = {(i.name, i.key, Path(i.photo).name, Path(i.mask).name if i.mask else "", i.catalog, i.height)
             for i in items}
    assert found == {("bench", "bench.png", "bench.png", "bench_mask.png", "SAM 3D", 0.0),
                     ("cup", "props/cup.png", "cup.png", "", "SAM 3D/props", 0.12),
                     ("lamp", "props/lamp@0.45m.png", "lamp@0.45m.png", "", "SAM 3D/props", 0.45),
                     ("socrates_1", "socrates/1.png", "image.png", "1.png", "SAM 3D/socrates", 0.0),
                     ("socrates_2", "socrates/2.png", "image.png", "2.png", "SAM 3D/socrates", 0.0)}


def test_shards_split_the_items_the_same_way_everywhere_without_overlap(tmp_path):
    items = find_items(photos(tmp_path))
    shards = [shard(items, k, 3) for k in (1, 2, 3)]
    assert sorted(i.key for s in shards for i in s) == sorted(i.key for i in items)
    again = [shard(list(reversed(items)), k, 3) for k in (1, 2, 3)]
    assert [{i.key for i in s} for s in shards] == [{i.key for i in s} for s in again], "order does not matter"


def test_a_photo_whose_name_cannot_name_its_asset_file_fails_before_anything_is_sent(tmp_path):
    """A 250-byte name fits the photo folder's file system, not `<name>.blend` and its state file: it was paid
    for, then its write raised OSError and the batch stopped with a traceback."""
    folder = photos(tmp_path)
    long_name = "a" * 246 + ".png"
    shutil.copy(SAMPLES / "socrates" / "5.png", folder / long_name)
    items = {i.key: i for i in find_items(folder)}
    assert items[long_name].status == "failed" and "250 bytes" in items[long_name].reason, items[long_name].reason
    assert items["bench.png"].status == "pending", "the others are kept"
    fits = "b" * (MAX_NAME_BYTES - 4) + ".png"
    shutil.copy(SAMPLES / "socrates" / "5.png", folder / fits)
    assert {i.key: i for i in find_items(folder)}[fits].status == "pending", "the bound is tight"


def test_a_folder_name_cannot_write_lines_of_its_own_into_the_catalog_file(tmp_path):
    folder = photos(tmp_path)
    hostile = folder / "chairs\n00000000-0000-4000-8000-000000000000:SAM 3D:owned"
    hostile.mkdir()
    shutil.copy(SAMPLES / "socrates" / "5.png", hostile / "stool.png")
    catalog = next(i.catalog for i in find_items(folder) if i.name == "stool")
    assert "\n" not in catalog and ":" not in catalog
    assert catalog == "SAM 3D/chairs-00000000-0000-4000-8000-000000000000-SAM 3D-owned"


def test_a_photo_swapped_for_a_device_after_the_walk_is_refused_not_read_forever(tmp_path):
    swapped = tmp_path / "photo.png"
    swapped.symlink_to("/dev/zero")
    with pytest.raises(OSError):
        file_hash(str(swapped))


def test_catalogs_nest_as_the_folders_do_in_every_convention(tmp_path):
    """Two levels down, each convention keeps the whole path as its catalog: a photo with its mask, a cut-out,
    and a folder of masks (whose own name is the last level, as at the top)."""
    kitchen = tmp_path / "photos" / "rooms" / "kitchen"
    (kitchen / "table").mkdir(parents=True)
    shutil.copy(SAMPLES / "human_object" / "image.png", kitchen / "bench.png")
    shutil.copy(SAMPLES / "human_object" / "mask_0.png", kitchen / "bench_mask.png")
    shutil.copy(SAMPLES / "socrates" / "5.png", kitchen / "cup.png")
    for name in ("image.png", "1.png", "2.png"):
        shutil.copy(SAMPLES / "socrates" / name, kitchen / "table" / name)
    found = {(i.key, i.catalog) for i in find_items(tmp_path / "photos")}
    assert found == {("rooms/kitchen/bench.png", "SAM 3D/rooms/kitchen"),
                     ("rooms/kitchen/cup.png", "SAM 3D/rooms/kitchen"),
                     ("rooms/kitchen/table/1.png", "SAM 3D/rooms/kitchen/table"),
                     ("rooms/kitchen/table/2.png", "SAM 3D/rooms/kitchen/table")}
