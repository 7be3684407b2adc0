"""A folder of photos and masks as asset-library items (client/photo_folder.py, no Blender): the three conventions,
real sizes, shards."""

from __future__ import annotations

import shutil
from pathlib import Path

from client.photo_folder import find_items, shard

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
