"""One Blender session in its own process, for tests that kill Blender mid-job and start it again.

    python session.py ZIP RESULT_DIR API_URL KEY reconstruct PHOTO MASK
    python session.py ZIP RESULT_DIR API_URL KEY resume
    python session.py ZIP RESULT_DIR API_URL KEY batch PHOTOS LIBRARY [--jobs N] [batch options…]
    python session.py ZIP RESULT_DIR API_URL KEY hold TASK_UUID
    python session.py ZIP RESULT_DIR API_URL KEY download URL DEST

Installs the extension into a fresh user folder, points it at the emulator, runs the action, and prints one
JSON line: the objects the action added, with their task UUIDs. `hold` takes the task's lock in the result
folder as a Blender fetching it does, prints `{"holding": …, "pid": …}` and keeps it until killed (or its
stdin closes); `download` fetches a result with the add-on's own download code, printing its pid first.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="sam3d-session-")
os.environ.pop("RUNWARE_API_KEY", None)

import bpy  # noqa: E402


def main(zip_path: str, result_dir: str, api_url: str, key: str, action: str, *files: str) -> None:
    bpy.context.preferences.system.use_online_access = True
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    prefs = bpy.context.preferences.addons["bl_ext.user_default.sam3d"].preferences
    prefs.api_key, prefs.api_url, prefs.result_dir = key, api_url, result_dir
    bpy.ops.wm.read_homefile(use_empty=True)
    before = set(bpy.data.objects)
    if action == "batch":  # `blender --command sam3d batch …` (the same handler), with Jobs at Once
        args = list(files)
        if "--jobs" in args:
            at = args.index("--jobs")
            prefs.max_jobs = int(args[at + 1])
            del args[at:at + 2]
        code = sys.modules["bl_ext.user_default.sam3d.operators.library.cli"].cli(["batch", args[0], "-o", *args[1:]])
        sys.modules["bl_ext.user_default.sam3d.operators.machinery.runner"].RUNNER.shutdown(join=5.0)
        sys.exit(code)
    if action == "hold":
        locks = sys.modules["bl_ext.user_default.sam3d.client.locks"].TaskLocks(result_dir)
        print(json.dumps({"holding": files[0], "taken": locks.acquire(files[0]), "pid": os.getpid()}), flush=True)
        sys.stdin.read()  # held until this process is killed
        return
    if action == "download":
        from pathlib import Path

        download = sys.modules["bl_ext.user_default.sam3d.client.download"].download
        print(json.dumps({"pid": os.getpid()}), flush=True)
        path = download(files[0], Path(files[1]), max_bytes=64 * 1024 * 1024, timeout=300.0, api_url=api_url)
        print(json.dumps({"downloaded": str(path)}), flush=True)
        return
    if action == "reconstruct":
        settings = bpy.context.scene.sam3d
        settings.image, settings.mask = (bpy.data.images.load(f) for f in files)
        print("STARTING", flush=True)
        bpy.ops.sam3d.reconstruct()
    else:
        runner = sys.modules["bl_ext.user_default.sam3d.operators.machinery.runner"]
        sys.modules["bl_ext.user_default.sam3d.operators.machinery.outcomes"].tick()  # the app timer's first tick
        print(json.dumps({"offered": [t.task_uuid for t in runner.RUNNER.unfinished()]}), flush=True)
        outcome = bpy.ops.sam3d.resume()
        again = bpy.ops.sam3d.resume()  # a second press finds nothing left to do
        print(json.dumps({"outcome": sorted(outcome), "again": sorted(again)}), flush=True)
    made = [o for o in bpy.data.objects if o not in before]
    print(json.dumps({"objects": [[o.name, o.get("sam3d_task_uuid")] for o in made]}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
