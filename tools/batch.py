"""`make batch DIR=photos OUT=library`: the asset-library batch through Blender as a Python module.

The same as `blender --command sam3d batch DIR -o OUT` with Blender itself. Uses Runware with
RUNWARE_API_KEY; without it, the local emulator (it says so). Exit status 1 when items failed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="sam3d-batch-user-")
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402

from tools.build import build  # noqa: E402


def main(argv: list[str]) -> int:
    bpy.context.preferences.system.use_online_access = True
    dist = Path(tempfile.mkdtemp(prefix="sam3d-dist-"))  # nothing written into the checkout
    bpy.ops.extensions.package_install_files(filepath=str(build(dist)), repo="user_default", enable_on_install=True)
    module = "bl_ext.user_default.sam3d"
    prefs = bpy.context.preferences.addons[module].preferences
    emulator = None
    if not os.environ.get("RUNWARE_API_KEY"):
        from tests.emulator import Emulator

        emulator = Emulator(api_key="batch-key", processing_time=1.0).start()
        prefs.api_key, prefs.api_url = "batch-key", emulator.api_url
        print(f"sam3d: RUNWARE_API_KEY is not set: using the local Runware EMULATOR at {emulator.api_url}")
    try:
        return sys.modules[f"{module}.operators.library.cli"].cli(["batch", *argv])
    finally:
        sys.modules[f"{module}.operators.machinery.runner"].RUNNER.shutdown(join=5.0)
        if emulator:
            emulator.stop()
        shutil.rmtree(dist, ignore_errors=True)
        shutil.rmtree(os.environ["BLENDER_USER_RESOURCES"], ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
