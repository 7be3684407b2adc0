"""The real binary's command line, `blender --command sam3d batch`, with its documented exit statuses."""

from __future__ import annotations

import shutil

from tests.window.conftest import EXAMPLES, KEY


def _user(window, online: bool = True) -> dict:  # noqa: ANN001
    """The stage's user folder with the preferences a user of the command line saved: the emulator, a key, and
    Allow Online Access as given."""
    expr = ("import bpy; p = bpy.context.preferences.addons['bl_ext.user_default.sam3d'].preferences; "
            f"p.api_url = {window.emu.api_url!r}; p.api_key = {KEY!r}; p.result_dir = {str(window.results)!r}; "
            f"bpy.context.preferences.system.use_online_access = {online}; bpy.ops.wm.save_userpref()")
    env = {"BLENDER_USER_RESOURCES": str(window.user)}
    saved = window.stage.run(["blender", "-b", "--python-exit-code", "1", "--python-expr", expr],
                             env=env, display=False)
    assert saved.returncode == 0, saved.stderr
    return env


def test_the_batch_command_line_exits_0_when_done_1_when_an_item_failed_2_when_nothing_could_start(window):
    env = _user(window)
    photos = window.tmp / "photos"
    photos.mkdir()
    shutil.copy(EXAMPLES / "human_object/image.png", photos / "chair.png")
    shutil.copy(EXAMPLES / "human_object/mask_0.png", photos / "chair_mask.png")
    batch = ["--command", "sam3d", "batch", str(photos), "-o", str(window.tmp / "library")]
    command = ["blender", "-b", *batch]

    done = window.stage.run(command, env=env, display=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sam3d: 1 done, 0 failed, 0 skipped" in done.stdout

    shutil.copy(EXAMPLES / "human_object/image.png", photos / "lamp.png")  # no mask: the photo's alpha is opaque
    failed = window.stage.run(command, env=env, display=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "sam3d: 0 done, 1 failed, 1 skipped" in failed.stdout

    forced = window.stage.run(["blender", "-b", "--offline-mode", *batch], env=env, display=False)
    assert forced.returncode == 2, forced.stdout + forced.stderr
    assert "restart it without that option" in forced.stdout
    env = _user(window, online=False)  # the user's own choice: Allow Online Access off
    offline = window.stage.run(command, env=env, display=False)
    assert offline.returncode == 2, offline.stdout + offline.stderr
    assert "run Blender with --online-mode" in offline.stdout
    assert window.emu.billed() == 1
