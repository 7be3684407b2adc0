"""Build the extension into a static extension repository, indexed by Blender's own `server-generate` (run with a
bpy venv's python). Host the folder on any static web server: Blender users add its index.json's URL as a
remote repository and get each new release as an update (docs/releases.md).

    python tools/repo.py [REPO_DIR]      (default dist/repo) prints the index's path
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.build import blender_ext, build, manifest  # noqa: E402


def generate(repo_dir: Path, source: Path = ROOT) -> Path:
    """Build `source`'s zip into `repo_dir`, remove the other versions of this extension's zip there (the index
    lists every zip in the folder: two versions of one id would be a duplicate), write `index.json` and
    `index.html` with Blender's `server-generate`, check the index lists this version, return the index's path."""
    info = manifest(source)
    ext_id, version = info["id"], info["version"]
    archive = build(repo_dir, source)
    for old in repo_dir.glob(f"{ext_id}-*.zip"):  # only once this version's zip is there
        if old != archive:
            old.unlink()
    cli, _ = blender_ext()
    # --html (in every Blender from 4.2): an index.html beside the JSON, listing the zips with links that can be
    # dragged into Blender.
    done = subprocess.run([sys.executable, str(cli), "server-generate", "--repo-dir", str(repo_dir), "--html"],
                          capture_output=True, text=True)
    index = repo_dir / "index.json"
    # server-generate skips a zip it cannot read with a message and exits 0: check that this one is listed.
    listed = json.loads(index.read_text(encoding="utf-8"))["data"] if done.returncode == 0 and index.exists() else []
    if not any(entry.get("id") == ext_id and entry.get("version") == version
               and entry.get("archive_url") == f"./{archive.name}" for entry in listed):
        raise SystemExit(f"server-generate did not list {archive.name} in {index}:\n{done.stdout}{done.stderr}")
    return index


if __name__ == "__main__":
    print(generate(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "dist" / "repo"))
