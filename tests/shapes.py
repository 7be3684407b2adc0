"""Results shaped like their masks, as SAM 3D would send them: for the layout tests and the demo's emulator
(`Emulator.result_factory`). Runs on the emulator's threads: numpy and zlib only, no bpy."""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np

from tests import glb


def mask_of(task: dict) -> np.ndarray:
    """The binary mask a task sent (our PNGs: 8-bit gray, filter 0 on every row), decoded without bpy:
    the emulator calls this on its own threads."""
    png = base64.b64decode(task["inputs"]["mask"].split(",", 1)[1])
    w, h = struct.unpack(">II", png[16:24])
    pos, idat = 8, b""
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IDAT":
            idat += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, w + 1)
    return rows[:, 1:] > 127


def box_of(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h


def shape_like(task: dict, posed: bool) -> bytes:
    """What SAM 3D would send for this mask: an object of the mask box's proportions, canonical (in the
    unit cube, Y up) or posed in the camera frame (OpenGL axes) so that it projects onto the mask's box
    through a 35 mm camera (36 mm sensor), at a depth of its own."""
    mask = mask_of(task)
    left, top, right, bottom = box_of(mask)
    h, w = mask.shape
    aspect = (right - left) * w / ((bottom - top) * h)
    if not posed:
        rx, ry = 0.5 * min(aspect, 1.0), 0.5 * min(1.0 / aspect, 1.0)
        positions, tris, colors = glb.ellipsoid((rx, ry, min(rx, ry)))
        return glb.make_glb(positions, tris, colors)
    tx = 18.0 / 35.0
    ty = tx * h / w
    depth = 3.0 + 4.0 * (1.0 - bottom)  # lower in the photo = nearer
    cx, cy = (left + right - 1.0) * tx * depth, (1.0 - top - bottom) * ty * depth
    rx, ry = (right - left) * tx * depth, (bottom - top) * ty * depth
    positions, tris, colors = glb.ellipsoid((rx, ry, 0.2 * min(rx, ry)))
    return glb.make_glb([(x + cx, y + cy, z - depth) for x, y, z in positions], tris, colors)
