"""The Flamenco job type (flamenco/sam3d-batch.js): its Node tests (tests/flamenco/*.mjs) under `make test`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_flamenco_job_type() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the Flamenco job type's tests (tests/flamenco) need Node.js 20 or newer")
    # The files by name, not the folder: Node 20 searches a folder only for names like *.test.mjs, and Node 21+
    # does not search a folder at all.
    files = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests" / "flamenco").glob("*.mjs"))
    assert files, "no tests in tests/flamenco"
    done = subprocess.run([node, "--test", "--test-reporter=tap", *files], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    counts = dict(re.findall(r"^# (tests|pass|fail) (\d+)$", done.stdout, re.MULTILINE))
    assert int(counts.get("tests", 0)) > 0 and counts.get("fail") == "0", output
