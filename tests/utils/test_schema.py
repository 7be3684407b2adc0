"""The keys the add-on writes into .blend files (utils/schema.py): each is declared once with its meaning, and
the Blender side names them only through the schema, so a misspelt key fails at import, not in a user's file."""

from __future__ import annotations

import re
from pathlib import Path

from utils import schema

ROOT = Path(__file__).resolve().parents[2]
LITERAL = re.compile(r"""["'](sam3d_[a-z_]+)["']""")


def test_every_key_is_declared_once_with_its_meaning() -> None:
    names = [k.name for k in schema.KEYS.values()]
    assert len(names) == len(set(names)) >= 30
    assert all(k.name.startswith("sam3d_") and k.on and k.kind and len(k.meaning) > 10 for k in schema.KEYS.values())


def test_the_blender_side_writes_no_key_but_through_the_schema() -> None:
    found = {f"{path.relative_to(ROOT)}: {match}" for folder in ("operators", "panels")
             for path in (ROOT / folder).rglob("*.py") for match in LITERAL.findall(path.read_text())}
    found |= {f"{path.name}: {match}" for path in ROOT.glob("*.py") for match in LITERAL.findall(path.read_text())}
    assert not found, "keys named outside utils/schema.py"


def test_the_keys_the_tests_read_are_the_schema_s() -> None:
    """Tests name keys as a file would hold them: each one they name is declared (a renamed key fails here)."""
    named = {m for path in (ROOT / "tests").rglob("test_*.py") for m in LITERAL.findall(path.read_text())}
    assert named and named <= set(schema.KEYS), sorted(named - set(schema.KEYS))
