"""The session's state: what the add-on keeps in memory between two operator calls, and its one `reset()`.

Each piece lives beside the code that uses it (below, its owner); this module is the one place that knows them
all, so a new one is added here or it is not reset. Nothing else is kept between calls: the journal, the locks
and the ledger's reservations are files in the result folder, and the scene's settings are in the .blend.

  runner.RUNNER              the jobs of this session, their money (ledger, limit), the journal's history
  background.CALLS           one-shot requests running now (Auto Mask, Box to Mask, Test Connection)
  bake.run.PROGRESS, _RUN    the running Bake to Texture: its progress bar and its modal timer
  batch.ACTIVE               the asset library batch the panel shows
  photo_camera._following    a guard: one re-layout at a time while a photo camera moves
  pixels._PNGS, _PHOTOS      the last photos read and encoded (keyed by their pixels: never stale)
  client.jobs.UPLOADS        image UUIDs of photos Runware already holds (sent once per session)
  client.jobs.RECENT         how long recent tasks took (the first poll waits about that long)
  client.http.WATCHDOG       the thread that ends a stalled download (it stops with its last request)
  preferences.CONNECTION_REPORT   the last Test Connection's lines
"""

from __future__ import annotations

from ... import preferences
from ...client import jobs
from .. import bake
from ..library import batch
from ..scene import photo_camera
from . import background, pixels, runner


def reset(join: float = 5.0) -> None:
    """Every piece as in a Blender just started: no job (each running one is stopped and waited for up to
    `join` seconds), no money spent, no history read, no batch, no cached upload or PNG."""
    runner.RUNNER.shutdown(join=join)
    background.shutdown(join=join)
    runner.RUNNER.__init__()  # type: ignore[misc]  # a new session: its ledger, limits, history and feeders
    bake.PROGRESS.update(active=False, fraction=0.0, text="")
    bake.run._RUN.update(run=None, timer=None)  # a modal bake's handle (its timer dies with its window)
    batch.ACTIVE.clear()
    photo_camera._following = False
    pixels._PNGS.clear()
    pixels._PHOTOS.clear()
    jobs.UPLOADS.clear()
    jobs.RECENT.__init__()  # type: ignore[misc]
    preferences.CONNECTION_REPORT.clear()
