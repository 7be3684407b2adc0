"""One request on a worker thread, outside the reconstruction jobs: Auto Mask, Box to Mask, Test Connection.

A `BackgroundCall` runs `work(call)` on a thread (network and files only, never bpy), then hands its result
to `done` (or its error to `failed`) on the main thread: at once when a script waits for it, else from an
app timer. It can be cancelled like a job (`sam3d.cancel` with its id) and stops within a fraction of a
second wherever it is; its money is reserved before it starts and settled or given back when it ends; an
exception in a callback becomes a message for the user instead of a timer that dies silently.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import bpy

from ...client import Sam3dError
from ...client.errors import Code
from ...client.http import Guard
from ...client.money import Reservation, refused_before_billing
from ...translations import rpt_
from .runner import RUNNER, redraw_panels

log = logging.getLogger(__name__)
CALLS: dict[str, BackgroundCall] = {}  # the calls running now, by id


class BackgroundCall:
    def __init__(self, label: str, work: Callable[[BackgroundCall], Any], done: Callable[[Any], None],
                 failed: Callable[[Sam3dError], None], *, seconds: float = 300.0,
                 reservation: Reservation | None = None) -> None:
        self.id = str(uuid.uuid4())
        self.label = label
        self.guard = Guard(seconds=seconds, timeout_code=Code.TIMEOUT)
        self.reservation = reservation
        self.sent = False  # set by `work` just before a paid request goes out
        self.refused = False  # the API refused it before any task existed (nothing billed)
        self._work, self._done, self._failed = work, done, failed
        self._result: Any = None
        self._error: Sam3dError | None = None
        self._thread = threading.Thread(target=self._run, name=f"sam3d-{label.lower().replace(' ', '-')}",
                                        daemon=True)

    def start(self, blocking: bool) -> None:
        CALLS[self.id] = self
        self._thread.start()
        if blocking:  # a script asked for the result: it waits
            self._thread.join()
            self._finish()
        else:
            bpy.app.timers.register(self._poll, first_interval=0.1)
            redraw_panels()

    def cancel(self) -> None:
        self.guard.cancel.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:  # the worker: no bpy
        try:
            self._result = self._work(self)
        except Sam3dError as exc:
            self._error = exc
            self.refused = refused_before_billing(exc)
        except Exception as exc:  # a bug of ours: a sentence, the traceback in the console
            log.exception("SAM 3D: %s failed", self.label)
            self._error = Sam3dError(Code.INTERNAL, f"unexpected {type(exc).__name__}")

    def _poll(self) -> float | None:
        if self._thread.is_alive():
            return 0.1
        self._finish()
        redraw_panels()
        return None

    def _finish(self) -> None:
        CALLS.pop(self.id, None)
        self._settle()
        try:
            if self._error is not None:
                self._failed(self._error)
            else:
                self._done(self._result)
        except Exception as exc:  # never a dead timer with a message stuck on screen
            log.exception("SAM 3D: %s failed", self.label)
            error = Sam3dError(Code.INTERNAL, type(exc).__name__)
            RUNNER.post("ERROR", rpt_("{} failed: {}").format(self.label, error))

    def _settle(self) -> None:
        if self.reservation is None:
            return
        if self._error is not None and (not self.sent or self.refused):
            self.reservation.release()
        else:
            cost = getattr(self._result, "cost", None)
            self.reservation.settle(cost, 1 if cost is not None else 0)


def cancel(call_id: str = "") -> int:
    hit = [c for i, c in CALLS.items() if not call_id or i == call_id]
    for call in hit:
        call.cancel()
    return len(hit)


def shutdown(join: float = 2.0) -> None:
    for call in list(CALLS.values()):
        call.cancel()
        call.join(join)
    CALLS.clear()
