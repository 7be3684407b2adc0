"""What a hostile-world test watches in its own process: the files Python opens and the host names it looks up
(one audit hook for the process, recorders come and go), the peak memory a block adds, and a condition
awaited without sleeping a fixed time. Used by tests/client/test_hostile.py and tests/blender/test_hostile.py."""

from __future__ import annotations

import gc
import os
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

_RECORDERS: list[Recorder] = []


class Recorder:
    """Files opened under `roots` (and the exact `paths`) by Python code of this process, any thread, and the
    host names looked up, while active."""

    def __init__(self, *roots: Path, paths: tuple[str, ...] = ()) -> None:
        self.roots = [os.path.abspath(r) + os.sep for r in roots]
        self.exact = set(paths)
        self.opened: list[str] = []
        self.relative: list[str] = []  # names opened relative to a folder descriptor or the working folder
        self.resolved: list[str] = []

    def __enter__(self) -> Recorder:
        _RECORDERS.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _RECORDERS.remove(self)

    def see_open(self, path: str) -> None:
        if not os.path.isabs(path):  # opened from a folder's descriptor (client/files.py): only its name is known
            self.relative.append(path)
        full = os.path.abspath(path)
        if full in self.exact or any(full.startswith(root) for root in self.roots):
            self.opened.append(full)


def _audit(event: str, args: tuple) -> None:
    if not _RECORDERS or event not in ("open", "socket.getaddrinfo"):
        return
    try:  # an exception here would fail the audited call itself
        if event == "open":
            if isinstance(args[0], int):
                return
            path = os.fsdecode(args[0])
            for recorder in list(_RECORDERS):
                recorder.see_open(path)
        else:
            host = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
            for recorder in list(_RECORDERS):
                recorder.resolved.append(host)
    except Exception:  # noqa: BLE001, S110
        pass


sys.addaudithook(_audit)


# --- peak memory of this process ----------------------------------------------------------------------


def _kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


class PeakGrowth:
    """Peak resident memory growth over a block, in MB: VmHWM after resetting it (writing 5 to clear_refs),
    as tests/bench.py measures it."""

    def __enter__(self) -> PeakGrowth:
        if not os.access("/proc/self/clear_refs", os.W_OK):
            pytest.skip("peak memory needs Linux's /proc/self/clear_refs")
        gc.collect()  # garbage of earlier tests freed now, not during the measurement
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        self.base = _kb("VmRSS:")
        self.mb = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.mb = (_kb("VmHWM:") - self.base) / 1024
        print(f"peak memory growth: {self.mb:.1f} MB")


class TracedPeak:
    """Peak of what Python and numpy allocate over a block, in MB (tracemalloc): exact and the same on every run,
    where PeakGrowth also sees the allocator's noise and Blender's own memory."""

    def __enter__(self) -> TracedPeak:
        tracemalloc.start()
        self.mb = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.mb = tracemalloc.get_traced_memory()[1] / 1024 / 1024
        tracemalloc.stop()
        print(f"traced peak: {self.mb:.1f} MB")


def until(condition, seconds: float = 30.0) -> bool:  # noqa: ANN001
    """Whether `condition()` came to hold within `seconds`, checked every 20 ms."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def wait_for(condition, what: str = "the condition", timeout: float = 180.0) -> None:  # noqa: ANN001
    """Wait for `condition()` to hold; the deadline only catches a hang (it is never a speed goal). The one wait
    of the tests: `until` where a test asserts the outcome itself."""
    assert until(condition, timeout), f"never happened: {what}"

