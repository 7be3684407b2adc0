"""Validate the manifest and build the extension zip with Blender's own tools (run with a bpy venv's python).

    python tools/build.py [OUTPUT_DIR]      prints the zip's path
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def blender_ext() -> tuple[Path, Path]:
    """(Blender's extension CLI, its list of valid tags), from the bpy module's own scripts."""
    import bpy  # noqa: PLC0415  (only here: importing bpy starts Blender)

    scripts = Path(bpy.utils.system_resource("SCRIPTS"))
    return scripts / "addons_core/bl_pkg/cli/blender_ext.py", scripts / "modules/_bpy_internal/extensions/tags.py"


def build(out_dir: Path) -> Path:
    cli, tags = blender_ext()
    out_dir.mkdir(parents=True, exist_ok=True)
    run = [sys.executable, str(cli)]
    subprocess.run([*run, "validate", str(ROOT), f"--valid-tags={tags}"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*run, "build", "--source-dir", str(ROOT), "--output-dir", str(out_dir)], check=True,
                   stdout=subprocess.DEVNULL)
    version = next(line.split('"')[1] for line in (ROOT / "blender_manifest.toml").read_text().splitlines()
                   if line.startswith("version"))
    return out_dir / f"sam3d-{version}.zip"


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist"))
