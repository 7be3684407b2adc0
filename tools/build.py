"""Validate the manifest and build the extension zip with Blender's own tools (run with a bpy venv's python).

    python tools/build.py [OUTPUT_DIR]      prints the zip's path
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def manifest(source: Path = ROOT) -> dict[str, Any]:
    """The extension's blender_manifest.toml: its `id` and `version` are written there and nowhere else."""
    with open(source / "blender_manifest.toml", "rb") as f:
        return tomllib.load(f)


def blender_ext() -> tuple[Path, Path]:
    """(Blender's extension CLI, its list of valid tags), from the bpy module's own scripts."""
    import bpy  # noqa: PLC0415  (only here: importing bpy starts Blender)

    scripts = Path(bpy.utils.system_resource("SCRIPTS"))
    return scripts / "addons_core/bl_pkg/cli/blender_ext.py", scripts / "modules/_bpy_internal/extensions/tags.py"


def build(out_dir: Path, source: Path = ROOT) -> Path:
    """Validate `source` (the checkout, or any folder with the add-on and its manifest) and build its zip into
    `out_dir`; returns the zip, `<id>-<version>.zip`."""
    cli, tags = blender_ext()
    out_dir.mkdir(parents=True, exist_ok=True)
    run = [sys.executable, str(cli)]
    subprocess.run([*run, "validate", str(source), f"--valid-tags={tags}"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*run, "build", "--source-dir", str(source), "--output-dir", str(out_dir)], check=True,
                   stdout=subprocess.DEVNULL)
    info = manifest(source)
    return out_dir / f"{info['id']}-{info['version']}.zip"


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist"))
