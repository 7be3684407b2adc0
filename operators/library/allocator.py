"""The C allocator of a long command-line batch, tuned so its memory stays flat (glibc on Linux; elsewhere a no-op)."""

from __future__ import annotations

import ctypes
import functools
import sys
from typing import Any

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


@functools.cache
def glibc() -> Any:
    """glibc (Linux) for two allocator calls that keep a long batch's memory flat; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library Blender already runs on
        _ = libc.gnu_get_libc_version  # glibc's own (musl has no malloc_trim)
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def steady_allocator() -> None:
    """Blocks of 1 MB and more straight from the system and back to it when freed. glibc raises this threshold
    by itself after each large free (up to 32 MB), then serves the importer's large arrays from its heaps,
    which fragment: a batch of 1,000 assets peaked 467 MB above one of 20 that way, 73 MB with this and a trim
    after each asset (`make bench`, PyPI's bpy on glibc). Process-wide and for good: only for the command
    line's batch, whose process ends with it, never in an artist's session."""
    libc = glibc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)


def trim() -> None:
    """The pages freed since the last call back to the system, not kept in the allocator's arenas."""
    libc = glibc()
    if libc is not None:
        libc.malloc_trim(0)
