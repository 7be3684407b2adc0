"""A folder of photos and masks as the items of an asset library: the three conventions (a cut-out, a photo with
its `_mask`, `name/image.png` with masks beside it), real sizes from file names and sizes.csv, and shards that
split the work the same way on every machine."""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from . import files
from .folders import walk

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".exr", ".tga"}
ROOT_CATALOG = "SAM 3D"  # the asset catalog every item's catalog is under
MIN_HEIGHT, MAX_HEIGHT = 0.001, 1000.0  # metres: a real size between a millimetre and a kilometre
SIZE_IN_NAME = re.compile(r"^(?P<name>.+)@(?P<size>\d+(?:\.\d+)?)m$")
# An asset file is named after its source (`name.blend`, its state `name.json`, a temporary name while written):
# a longer source name would be paid for, then fail to be written.
MAX_NAME_BYTES = 200
_NOT_IN_CATALOG = re.compile(r"[\x00-\x1f\x7f:\\]")  # blender_assets.cats.txt is `id:path:name` per line



@dataclass
class Item:
    name: str  # the asset's name
    key: str  # what the item is: its source's path relative to the folder ("props/cup.png", "table/lamp.png")
    photo: str
    mask: str = ""  # empty: the photo is a cut-out whose alpha is the mask
    catalog: str = ROOT_CATALOG
    height: float = 0.0  # real height in metres (0: unknown)
    status: str = "pending"  # pending, done, failed, skipped
    reason: str = ""
    task_uuid: str = ""
    cost: float = 0.0
    caption: str = ""  # what a caption said it is (the batch's Name from Caption)



def find_items(folder: Path) -> list[Item]:
    """Every photo and mask pair under `folder`, in a stable order: one walk (client/folders.py) that sees each
    real file once, whatever links the folder holds, so no photo is reconstructed (or billed) twice."""
    items: list[Item] = []
    for directory in walk(folder, IMAGE_SUFFIXES):
        images, relative = directory.files, directory.relative
        sizes = _sizes(directory.path)
        photo = next((p for p in images if p.stem == "image"), None)
        catalog = "/".join([ROOT_CATALOG, *map(_catalog_part, relative.parts)])  # nested as the folders are
        if photo is not None and directory.relative != Path("."):  # name/image.png + masks: one asset per mask
            for mask in (m for m in images if m != photo):
                name, height, why = _named(mask.stem, sizes)
                items.append(_item(Item(f"{relative.name}_{name}", (relative / mask.name).as_posix(), str(photo),
                                        str(mask), catalog, height), why))
            continue
        stems = {p.stem: p for p in images}
        for image in images:
            if image.stem.endswith("_mask"):
                continue
            partner = stems.get(f"{image.stem}_mask")
            name, height, why = _named(image.stem, sizes)
            items.append(_item(Item(name, (relative / image.name).as_posix(), str(image),
                                    str(partner) if partner else "", catalog, height), why))
    return items



def _item(item: Item, why: str) -> Item:
    """An item, refused at once (with its sentence) when its real size cannot be right or its name cannot name
    a file: before anything is sent, so nothing is paid for that cannot be written."""
    length = len(Path(item.key).name.encode("utf-8", "surrogateescape"))
    if length > MAX_NAME_BYTES:
        why = (f"its file name is {length} bytes long: the asset's file is named after it, and at most "
               f"{MAX_NAME_BYTES} bytes fit; rename it")
    if why:
        item.status, item.reason = "failed", why
    return item


def _catalog_part(folder_name: str) -> str:
    """A folder's name as a catalog path component: a line break or `:` would write lines of its own into the
    catalog file (another catalog, or a broken one), so they become `-`."""
    return _NOT_IN_CATALOG.sub("-", folder_name).strip() or "-"



def _height(value: str) -> float | None:
    """A height in metres from a file name or sizes.csv, when it can be a real object's (finite, in range)."""
    try:
        height = float(value)
    except (ValueError, OverflowError):
        return None
    return height if math.isfinite(height) and MIN_HEIGHT <= height <= MAX_HEIGHT else None



def _named(stem: str, sizes: dict[str, str]) -> tuple[str, float, str]:
    """(asset name, real height, why the height is refused): `chair@0.9m` → ("chair", 0.9, ""); else the height
    sizes.csv gives, or 0 (unknown)."""
    match = SIZE_IN_NAME.match(stem)
    name, given, where = (match["name"], match["size"], "its file name") if match else \
        (stem, sizes.get(stem), "sizes.csv")
    if given is None:
        return name, 0.0, ""
    height = _height(given)
    if height is None:
        return name, 0.0, (f"{where} gives {name} a height of {given[:40]} m: a real height is between "
                           f"{MIN_HEIGHT:g} and {MAX_HEIGHT:g} m")
    return name, height, ""



def _sizes(directory: Path) -> dict[str, str]:
    """`sizes.csv` beside the photos: `name,height` in metres (a header line and other columns are ignored). Read
    as a regular file of at most a megabyte (a FIFO or a device never hangs the batch)."""
    try:
        data = files.read_bytes(directory / "sizes.csv", max_bytes=1 << 20, follow_links=True)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("SAM 3D: sizes.csv in %s is not read: %s", directory, exc)
        return {}
    sizes = {}
    for row in csv.reader(data.decode("utf-8", errors="replace").splitlines()):
        if len(row) >= 2 and row[1].strip():
            try:
                float(row[1])
            except ValueError:
                continue  # a header, or a typo: that photo keeps SAM 3D's size
            sizes[Path(row[0].strip()).stem] = row[1].strip()
    return sizes



def shard(items: list[Item], k: int, n: int) -> list[Item]:
    """The items of shard k of n (1-based): by a hash of each item's key, the same on every machine."""
    return [i for i in items if int(hashlib.blake2b(i.key.encode(), digest_size=8).hexdigest(), 16) % n == k - 1]



def file_hash(path: str) -> str:
    """A photo's or mask's content hash; a regular file only (one swapped for a FIFO or /dev/zero since the
    folder was walked is refused, never read without end)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(files.open_regular(path, follow_links=True), "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
