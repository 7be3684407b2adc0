"""A faithful emulator of the Runware REST API as far as the add-on needs it (stdlib only).

Follows the team's notes on the Runware API (runware-api.md, beside the repository in CI; tests/README.md says
how the emulator is kept true to Runware): where the documentation admits two forms, `Style` picks one, and
`Faults` injects the failures a client must survive. Two servers run: the API on 127.0.0.1 and a separate
FILE host on "localhost" (the CDN stand-in), so a test can prove the API key never reaches the second host.

    with Emulator() as emu:            # or, from the repository root: python -m tests.emulator --port 8765
        emu.faults.status_sequence = [429]
        ... point a client at emu.api_url ...

Beyond the documented forms, `Faults` also plays a broken or malicious server (gzip bombs, trickling and
stalling bodies, redirects, lying Content-Length, absurd resultIndex values) and `Style` the ways Runware may
legitimately disagree with our client (Range ignored, the docs' literal result items, Retry-After as a date,
forgotten tasks). `Emulator(tls=(cert, key))` serves both hosts over HTTPS (tests/tls.py makes a throw-away
CA); tests/proxy.py is an HTTP CONNECT proxy to put in front of it.

All times (Recorded.time, TaskState.created) are time.monotonic() seconds.

The modules, one concern each (everything public is imported from here: `from tests.emulator import X`):

- api.py: `Emulator`, the API host (tasks, uploads, removeBackground, captions, webhooks), and its records
  (`Generation`, `TaskState`, `ApiError`)
- files.py: the FILE host, mixed into `Emulator` (`FileHost`, serving stored `File`s)
- hostile.py: `Faults`, `Style`, and the broken or malicious server: `bomb_bytes`, `HUGE_RESULT_INDEXES`,
  `STALL_AFTER`, and the stalled, trickled and bomb answers (`HostileSender`, mixed into `Emulator`)
- models.py: what Runware documents: the models (`ENGINE_MODELS`, `REMBG_MODELS`, `CAPTION_MODELS`), their
  parameters and prices (`COST_PER_GENERATION`, `MAX_SEED`), the documentation links and the error codes
- images.py: `sniff_image`, `image_size`, `encode_png`, `coverage_rows` (a `Shape`), `cutout_png`, `mask_png`
- plumbing.py: the HTTP servers and handlers, `Headers`, `Recorded`
- __main__.py: the command line (`python -m tests.emulator --help`)
"""

from __future__ import annotations

from .api import ApiError, Emulator, Generation, TaskState
from .hostile import HUGE_RESULT_INDEXES, STALL_AFTER, Faults, Style, bomb_bytes
from .images import Shape, coverage_rows, cutout_png, encode_png, encode_png_rgba, image_size, mask_png, sniff_image
from .models import (
    CAPTION_KEYS,
    CAPTION_MODELS,
    COST_PER_GENERATION,
    DOCS,
    ENGINE_KEYS,
    ENGINE_MODELS,
    ERRORS_DOC,
    MAX_SEED,
    REMBG_DOC,
    REMBG_MASK_MODELS,
    REMBG_MODELS,
    SAM3D,
    SAM3D_DOC,
)
from .plumbing import Headers, Recorded

__all__ = [
    "CAPTION_KEYS", "CAPTION_MODELS", "COST_PER_GENERATION", "DOCS", "ENGINE_KEYS", "ENGINE_MODELS", "ERRORS_DOC",
    "HUGE_RESULT_INDEXES", "MAX_SEED", "REMBG_DOC", "REMBG_MASK_MODELS", "REMBG_MODELS", "SAM3D", "SAM3D_DOC",
    "STALL_AFTER", "ApiError", "Emulator", "Faults", "Generation", "Headers", "Recorded", "Shape", "Style",
    "TaskState", "bomb_bytes", "coverage_rows", "cutout_png", "encode_png", "encode_png_rgba", "image_size",
    "mask_png", "sniff_image",
]
