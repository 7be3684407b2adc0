"""A Blender user of a studio's extension repository, in a process of its own (a fresh user folder).

    python remote_repo.py FILE_URL REPO_DIR NEXT_DIR HTTP_URL

Adds FILE_URL (a `file://` URL of REPO_DIR's index.json) as a remote repository, syncs it, installs `sam3d` from
it and enables it; then publishes the next release as a studio does (REPO_DIR's files replaced by NEXT_DIR's),
points the repository at HTTP_URL (the same folder served by a web server), changes a preference, syncs again and
upgrades. Prints one JSON line: what the user had after the install and after the update.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="sam3d-remote-")
os.environ.pop("RUNWARE_API_KEY", None)

import bpy  # noqa: E402

MODULE = "bl_ext.studio.sam3d"


def state(repo: bpy.types.UserExtensionRepo) -> dict:
    """The installed copy's manifest version, whether it is enabled, and what the running add-on says it is."""
    installed = Path(repo.directory) / "sam3d" / "blender_manifest.toml"
    enabled = MODULE in bpy.context.preferences.addons
    job_requests = sys.modules.get(f"{MODULE}.operators.machinery.job_requests")
    addon = bpy.context.preferences.addons.get(MODULE)
    return {
        "model": addon.preferences.model if addon and addon.preferences else "",
        "installed": installed.read_text(encoding="utf-8") if installed.exists() else "",
        "enabled": enabled and hasattr(bpy.ops.sam3d, "reconstruct"),
        "module_dir": str(Path(sys.modules[MODULE].__file__).parent) if MODULE in sys.modules else "",
        "user_agent": job_requests.user_agent() if job_requests else "",
    }


def main(file_url: str, repo_dir: str, next_dir: str, http_url: str) -> None:
    # Blender's installer refuses without Allow Online Access, even from a file:// repository (the add-on needs it).
    bpy.context.preferences.system.use_online_access = True
    repos = bpy.context.preferences.extensions.repos
    repo = repos.new(name="Studio", module="studio", remote_url=file_url)  # Add Remote Repository
    index = list(repos).index(repo)
    assert bpy.ops.extensions.repo_sync(repo_index=index) == {"FINISHED"}
    assert bpy.ops.extensions.package_install(repo_index=index, pkg_id="sam3d", enable_on_install=True) == {"FINISHED"}
    first = state(repo)
    bpy.context.preferences.addons[MODULE].preferences.model = "meta:sam@3d-kept"  # a setting the user changed

    shutil.rmtree(repo_dir)  # the studio uploads the next dist/repo/ in place of the last
    shutil.copytree(next_dir, repo_dir)
    repo.remote_url = http_url
    assert bpy.ops.extensions.repo_sync(repo_index=index) == {"FINISHED"}
    assert bpy.ops.extensions.package_upgrade_all() == {"FINISHED"}
    print(json.dumps({"install": first, "update": state(repo), "repo_dir": repo.directory}))


if __name__ == "__main__":
    main(*sys.argv[1:])
