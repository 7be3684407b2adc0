"""The add-on's error (client/errors.py): its codes are members of `Code`, so a misspelt one fails at import;
the code base names no code as a bare string where it raises or compares one; the old name still works."""

from __future__ import annotations

import ast
from pathlib import Path

from client import Code, RunwareError, Sam3dError
from client.errors import sentence_for

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*ROOT.glob("client/*.py"), *ROOT.glob("operators/**/*.py"), *ROOT.glob("panels/*.py"),
           *ROOT.glob("utils/*.py"), ROOT / "preferences.py"]


def bare_codes(path: Path) -> list[str]:
    """String literals raised as a code (`Sam3dError("…")`) or compared with one (`error.code == "…"`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "Sam3dError", "RunwareError") and node.args:  # the code given, or either side of an `if` choosing it
            found += [f"{path.name}:{node.lineno} {c.value!r}" for c in ast.walk(node.args[0])
                      if isinstance(c, ast.Constant) and isinstance(c.value, str)]
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr == "code" or isinstance(s, ast.Name) and s.id == "code"
                   for s in sides):
                found += [f"{path.name}:{node.lineno} {c.value!r}" for s in sides for c in ast.walk(s)
                          if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    return found


def test_no_code_is_named_as_a_bare_string() -> None:
    found = [spot for path in SOURCES for spot in bare_codes(path)]
    assert not found, "use a member of client.errors.Code"


def test_the_tables_of_codes_hold_members_of_code() -> None:
    """The sets that decide what a code means (Resume offered, money kept held): a typo there fails here."""
    from client.jobs import CLIENT_SIDE
    from client.money import SENT_ANYWAY

    assert CLIENT_SIDE and SENT_ANYWAY and all(isinstance(c, Code) for c in CLIENT_SIDE | SENT_ANYWAY)


def test_codes_are_their_strings_and_the_old_name_is_the_same_error() -> None:
    error = RunwareError(Code.DISK_ERROR, "no space")
    assert isinstance(error, Sam3dError) and RunwareError is Sam3dError
    assert error.code == "diskError" and f"{error.code}" == "diskError", "journals and scripts see the string"
    assert error.sentence.startswith(sentence_for("diskError")) and sentence_for("diskError") != "no space"
    unknown = Sam3dError("someServerCode", "Its own words")
    assert unknown.code == "someServerCode" and "Its own words" in unknown.sentence, "other codes kept as sent"


def test_every_sentence_is_for_a_known_code() -> None:
    from client.errors import SENTENCES

    assert set(SENTENCES) <= {c.value for c in Code}, sorted(set(SENTENCES) - {c.value for c in Code})
