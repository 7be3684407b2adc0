"""client/ and utils/ are pure Python: every module of each imports with bpy, mathutils and bmesh unimportable,
in a process of its own (so nothing this test run imported first can hide an import)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = """
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == 'bpy' or name.startswith(('bpy.', 'mathutils', 'bmesh')):
            raise ImportError('{package}/ must not import ' + name)
sys.meta_path.insert(0, Block())
sys.path.insert(0, {root!r})
package = importlib.import_module({package!r})
names = [m.name for m in pkgutil.iter_modules(package.__path__)]
for name in names:
    importlib.import_module({package!r} + '.' + name)
print(len(names))
"""


@pytest.mark.parametrize(("package", "at_least"), [("client", 10), ("utils", 1)])
def test_the_package_never_imports_bpy(package: str, at_least: int) -> None:
    code = BLOCK.format(package=package, root=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= at_least, f"every module of {package}/ was imported"
