"""The one walk of a folder of photos (a batch's, a folder of masks): each real file once, whatever links the
folder holds (a linked folder, a link loop, a file linked under two names), in an order that is the same on
every machine. Pure Python (stdlib); never imports bpy.

A folder reached through a link is followed (a studio assembles folders that way), but every folder and every
file is known by what it is on disk (device and inode), not by its path: the second way to a folder or a file
is not taken, so nothing is reconstructed (or billed) twice. Paths reached without a link win over paths
through one. Hidden entries (a name starting with ".") are skipped; only regular files are listed (a FIFO or a
device named `photo.png` never is).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

MAX_FOLDERS = 100_000  # a folder of photos holds far fewer; a link to / stops here instead of walking the disk


@dataclass
class Folder:
    path: Path  # as reached from the walked folder
    relative: Path  # below the walked folder
    files: list[Path] = field(default_factory=list)  # its images, in natural order


def natural_key(name: str) -> list[object]:
    """2.png before 10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def walk(folder: Path, suffixes: Collection[str], *, recursive: bool = True,
         max_folders: int = MAX_FOLDERS) -> list[Folder]:
    """The folders under `folder` (itself first) with their image files (a suffix in `suffixes`, lower case),
    each real folder and each real file once. Raises OSError when `folder` itself cannot be read."""
    root = Path(folder)
    seen_folders = {_identity(os.stat(root))}
    found: list[Folder] = [Folder(root, Path("."))]
    linked: list[tuple[Path, Path]] = []  # folders reached through a link: walked after every real one
    entries: dict[Path, list[os.DirEntry[str]]] = {}
    queue = [found[0]]
    while queue or linked:
        if not queue:  # every folder reached without a link is known: now those behind links
            path, relative = linked.pop(0)
            try:
                identity = _identity(os.stat(path))
            except OSError:
                continue
            if identity in seen_folders:
                continue
            seen_folders.add(identity)
            found.append(Folder(path, relative))
            queue.append(found[-1])
        current = queue.pop(0)
        try:
            with os.scandir(current.path) as it:
                listed = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: natural_key(e.name))
        except OSError:
            continue
        entries[current.path] = listed
        if not recursive:
            break
        for entry in listed:
            try:
                if entry.is_dir(follow_symlinks=False):
                    identity = _identity(entry.stat(follow_symlinks=False))
                    if identity not in seen_folders and len(seen_folders) < max_folders:
                        seen_folders.add(identity)
                        found.append(Folder(Path(entry.path), current.relative / entry.name))
                        queue.append(found[-1])
                elif entry.is_symlink() and entry.is_dir(follow_symlinks=True):
                    linked.append((Path(entry.path), current.relative / entry.name))
            except OSError:
                continue
            if len(seen_folders) >= max_folders:
                linked.clear()
    found.sort(key=lambda f: [natural_key(p) for p in f.relative.parts])
    # Files: those reached without a link claim their identity first, then those behind links.
    seen_files: set[tuple[int, int]] = set()
    kept: dict[tuple[Path, str], bool] = {}
    for through_link in (False, True):
        for each in found:
            for entry in entries.get(each.path, []):
                if Path(entry.name).suffix.lower() not in suffixes:
                    continue
                try:
                    if entry.is_symlink() != through_link:
                        continue
                    info = entry.stat(follow_symlinks=True)
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode) or _identity(info) in seen_files:
                    continue
                seen_files.add(_identity(info))
                kept[(each.path, entry.name)] = True
    for each in found:
        each.files = [Path(e.path) for e in entries.get(each.path, []) if (each.path, e.name) in kept]
    return found
