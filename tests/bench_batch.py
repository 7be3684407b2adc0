"""One asset-library batch in a fresh Blender process, for `make bench` (tests/bench.py runs it).

    python tests/bench_batch.py ZIP API_URL KEY ASSETS WORK_DIR

Makes ASSETS photos (links to the example photo and mask, each under its own name), runs the batch command
against the emulator at API_URL, and prints one JSON line: seconds, peak memory growth (VmHWM over the
baseline taken after start-up), the library's size, and how many assets were done.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

USER = tempfile.mkdtemp(prefix="sam3d-bench-batch-")  # under the benchmark's own temporary folder
os.environ["BLENDER_USER_RESOURCES"] = USER

import bpy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "human_object"
MODULE = "bl_ext.user_default.sam3d"


def kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith(field)))


def photos(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        pairs = ((SAMPLE / "image.png", f"item{n:05d}.png"), (SAMPLE / "mask_0.png", f"item{n:05d}_mask.png"))
        for source, name in pairs:
            target = folder / name
            if not target.exists():
                shutil.copyfile(source, target)  # copies, not links: the scan knows a file by its inode
    return folder


def main(zip_path: str, api_url: str, key: str, assets: str, work: str) -> None:
    bpy.context.preferences.system.use_online_access = True
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    prefs = bpy.context.preferences.addons[MODULE].preferences
    work_dir = Path(work)
    prefs.api_key, prefs.api_url, prefs.result_dir, prefs.max_jobs = key, api_url, str(work_dir / "results"), 8
    folder = photos(work_dir / "photos", int(assets))
    library = work_dir / "library"
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak from here on
    base = kib("VmRSS:")
    started = time.perf_counter()
    code = sys.modules[f"{MODULE}.operators.library.cli"].cli(["batch", str(folder), "-o", str(library)])
    seconds = time.perf_counter() - started
    peak = kib("VmHWM:") - base
    sys.modules[f"{MODULE}.operators.machinery.runner"].RUNNER.shutdown(join=5.0)
    size = sum(p.stat().st_size for p in library.rglob("*.blend"))
    done = len(list(library.rglob("*.blend")))
    print(json.dumps({"code": code, "seconds": seconds, "peak_mb": peak / 1024, "library_mb": size / 2**20,
                      "done": done}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
