"""Client tests: no Blender, the emulator on loopback."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

from tests.emulator import Emulator
from tests.glb import canonical_glb

KEY = "client-test-key-abcdefghijklmnop"
# Every temporary file of the run, this process's and its children's, under one folder removed at exit.
TMP = tempfile.mkdtemp(prefix="sam3d-client-tests-")
os.environ["TMPDIR"] = tempfile.tempdir = TMP
atexit.register(shutil.rmtree, TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def _emulator():
    with Emulator(api_key=KEY, processing_time=0.1) as emu:
        yield emu


@pytest.fixture
def emu(_emulator: Emulator) -> Emulator:
    _emulator.reset()
    from client.jobs import RECENT, UPLOADS

    UPLOADS.clear()  # the emulator forgets its uploads at reset: so does the client's cache
    RECENT.__init__()  # no task timed yet
    _emulator.processing_time = 0.1
    _emulator.result_bytes = canonical_glb()
    return _emulator
