"""A small thread-safe cache that makes each value once, even when several workers ask at the same time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class OnceCache(Generic[V]):
    """Least-recently-used, `size` entries. A worker asking for a key another worker is making waits for
    that result instead of making it again (eight jobs of one photo encode and upload it once)."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._pending: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        while True:
            with self._lock:
                if key in self._values:
                    self._values.move_to_end(key)
                    return self._values[key]
                pending = self._pending.get(key)
                if pending is None:
                    self._pending[key] = threading.Event()
                    break
            pending.wait(60)  # if its maker failed, the loop makes it here instead
        try:
            value = make()
            with self._lock:
                self._values[key] = value
                while len(self._values) > self.size:
                    self._values.popitem(last=False)
            return value
        finally:
            with self._lock:
                self._pending.pop(key).set()

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._values.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._values
