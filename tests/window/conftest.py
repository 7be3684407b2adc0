"""Real-window tests: Debian's Blender 5.2 LTS binary with its whole UI on a virtual display, the add-on built by
that Blender's builder and installed by its installer, driven by real input events (tests/window/driver.py).
The Runware service is the only stand-in (tests/emulator/, on this machine's loopback).

Where the stage cannot run (not Linux, not root) every test here is skipped with the reason; with
SAM3D_REQUIRE_WINDOW=1 (`.ci/run`) they fail instead.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.emulator import Emulator  # noqa: E402
from tests.glb import canonical_glb  # noqa: E402
from tests.window.stage import Run, Stage, StageUnavailableError, set_up  # noqa: E402

KEY = "window-test-key-0123456789abcdef"
EXAMPLES = ROOT / "examples"
TMP = Path(tempfile.mkdtemp(prefix="sam3d-window-"))
os.environ["TMPDIR"] = tempfile.tempdir = str(TMP)
atexit.register(shutil.rmtree, TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def stage() -> Stage:
    try:
        root = set_up()
    except StageUnavailableError as exc:
        if os.environ.get("SAM3D_REQUIRE_WINDOW") == "1":
            pytest.fail(f"the real-window stage is required here: {exc}")
        pytest.skip(str(exc))
    made = Stage(root, TMP)
    made.zip = made.install()
    return made


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator(api_key=KEY, processing_time=1.0) as emu:
        yield emu


@pytest.fixture
def window(stage: Stage, emulator: Emulator, request: pytest.FixtureRequest, tmp_path: Path):  # noqa: ANN201
    """Play scenarios in a real Blender: `window.play("module:function", **params)` → Run. Each test gets a fresh
    user folder (the add-on installed and enabled), a fresh result folder and the emulator reset."""
    emulator.reset()
    emulator.processing_time = 1.0
    emulator.result_bytes = canonical_glb()
    user = stage.user_folder(request.node.name[:40])
    results = tmp_path / "results"

    def play(target: str, timeout: float = 240.0, **params: object) -> Run:
        params = {"api_url": emulator.api_url, "api_key": KEY, "results": str(results),
                  "examples": str(EXAMPLES), "name": request.node.name, **params}
        return stage.play(target, user=user, timeout=timeout, **params)

    return SimpleNamespace(play=play, emu=emulator, user=user, results=results, stage=stage, tmp=tmp_path)


def played(run: Run, quits: bool = False) -> dict:
    """The play's facts, once it ran to its end (or, for a play that quits Blender itself, once Blender quit
    cleanly) with no Python error anywhere in Blender's output."""
    assert not run.errors, "\n".join(run.errors)[-6000:]
    if quits:
        assert run.code == 0 and "Blender quit" in run.out, f"Blender did not quit cleanly:\n{run.err[-3000:]}"
    else:
        assert "driver:" in run.out, f"Blender ended before the play did (status {run.code}):\n{run.err[-3000:]}"
    return run.facts
