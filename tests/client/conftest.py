"""Client tests: no Blender, the emulator on loopback."""

from __future__ import annotations

import pytest

from tests.emulator import Emulator
from tests.glb import canonical_glb

KEY = "client-test-key-abcdefghijklmnop"


@pytest.fixture(scope="session")
def _emulator():
    with Emulator(api_key=KEY, processing_time=0.1) as emu:
        yield emu


@pytest.fixture
def emu(_emulator: Emulator) -> Emulator:
    _emulator.reset()
    from client.jobs import UPLOADS

    UPLOADS.clear()  # the emulator forgets its uploads at reset: so does the client's cache
    _emulator.processing_time = 0.1
    _emulator.result_bytes = canonical_glb()
    return _emulator
