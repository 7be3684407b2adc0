"""Pixels as numpy arrays: orientation, masks from images, resampling, PNG encoding, label maps, small masks kept
as text. Top row first everywhere (Blender's pixels are bottom row first: the Blender side flips them)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

import numpy as np

MAX_SIDE = 2048  # Runware keeps images at most this long on the longer side



def swaps(turn: int) -> bool:
    """Whether the orientation swaps width and height (a quarter turn, with or without a mirror)."""
    return turn in (5, 6, 7, 8)



def upright(rgba: np.ndarray, turn: int) -> np.ndarray:
    """(h, w, …) pixels, top row first, as stored → as shown upright for EXIF orientation `turn`."""
    if turn == 2:
        return rgba[:, ::-1]
    if turn == 3:
        return rgba[::-1, ::-1]
    if turn == 4:
        return rgba[::-1]
    t = rgba.swapaxes(0, 1)
    if turn == 5:
        return t
    if turn == 6:  # a quarter turn clockwise
        return t[:, ::-1]
    if turn == 7:
        return t[::-1, ::-1]
    if turn == 8:  # a quarter turn counter-clockwise
        return t[::-1]
    return rgba



def has_alpha(rgba: np.ndarray) -> bool:
    return bool(rgba[..., 3].min() < 0.5)



def mask_from_rgba(rgba: np.ndarray) -> np.ndarray:
    """Bright = object, or the alpha when the image is a cut-out (some pixels transparent)."""
    if has_alpha(rgba):
        return rgba[..., 3] >= 0.5
    return luminance(rgba[..., :3]) >= 0.5



def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)



def linear_to_srgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.clip(rgb, 0.0, 1.0)
    return np.where(rgb <= 0.0031308, rgb * 12.92, 1.055 * np.power(rgb, 1 / 2.4) - 0.055)



def to_uint8(values: np.ndarray) -> np.ndarray:
    """0…1 floats to bytes. Byte images are in range already, float ones were clipped by linear_to_srgb."""
    return (values * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)



def fit_size(w: int, h: int, limit: int = MAX_SIDE) -> tuple[int, int]:
    scale = limit / max(w, h)
    if scale >= 1:
        return w, h
    return max(1, round(w * scale)), max(1, round(h * scale))



def resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Area-then-bilinear resampling of (h, w[, c]) arrays: a box shrink by the whole factor, then bilinear."""
    src = img.astype(np.float32)
    k = max(1, min(src.shape[0] // h, src.shape[1] // w))
    if k > 1:  # box filter by k: averages away the aliasing bilinear alone would keep
        hh, ww = src.shape[0] // k * k, src.shape[1] // k * k
        src = src[:hh, :ww].reshape(hh // k, k, ww // k, k, *src.shape[2:]).mean(axis=(1, 3))
    src = _lerp_axis(_lerp_axis(src, h, 0), w, 1)
    if img.dtype == np.uint8:
        return np.clip(src + 0.5, 0, 255).astype(np.uint8)
    return src



def _lerp_axis(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    m = a.shape[axis]
    if m == n:
        return a
    pos = np.clip((np.arange(n) + 0.5) * m / n - 0.5, 0, m - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, m - 1)
    t = (pos - lo).astype(np.float32)
    shape = [1] * a.ndim
    shape[axis] = n
    t = t.reshape(shape)
    return np.take(a, lo, axis=axis) * (1 - t) + np.take(a, hi, axis=axis) * t



def encode_png(img: np.ndarray) -> bytes:
    """A PNG of an 8-bit gray (h, w) or RGB/RGBA (h, w, c) array: filter 0 on every row, zlib, no bpy."""
    h, w = img.shape[:2]
    channels = 1 if img.ndim == 2 else img.shape[2]
    color_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = np.ascontiguousarray(img, dtype=np.uint8).reshape(h, w * channels)
    raw = np.hstack([np.zeros((h, 1), np.uint8), rows]).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def label_masks(rgb: np.ndarray, limit: int = 64) -> list[np.ndarray]:
    """One bool mask per flat colour of a label map, the background (black, else the commonest colour)
    left out, in order of first appearance from the top left."""
    return list(iter_label_masks(colour_codes(rgb), limit))



def colour_codes(rgb: np.ndarray) -> np.ndarray:
    """(h, w) int32 colour codes of (h, w, ≥3) uint8 pixels."""
    return (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]



def iter_label_masks(codes: np.ndarray, limit: int = 64) -> Iterator[np.ndarray]:
    """`label_masks` from colour codes, one mask at a time (each made when asked for): a sort of the codes and one
    bool mask at a time, never an index per pixel or every mask at once."""
    values, counts = np.unique(codes, return_counts=True)
    if len(values) > limit + 1:
        raise ValueError(f"it has {len(values)} colours: a label map has one flat colour per object")
    background = 0 if 0 in values else values[np.argmax(counts)]
    flat = codes.reshape(-1)
    first = {int(v): int(np.argmax(flat == v)) for v in values if v != background}
    for value in sorted(first, key=first.__getitem__):
        yield codes == value


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the mask's pixels, as fractions of the width and height (top = 0)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h



def cutout(photo: np.ndarray, mask: np.ndarray, margin: float = 0.1, max_side: int = 1024) -> np.ndarray:
    """The photo under the mask, transparent elsewhere, cropped to the mask's box plus `margin` of its size on
    each side, at most `max_side` long: what a model that takes no mask is shown of the object. (h, w, 4) uint8."""
    if not mask.any():
        raise ValueError("the mask is empty")
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    pad_y, pad_x = (max(1, round((a[-1] + 1 - a[0]) * margin)) for a in (rows, cols))
    top, bottom = max(0, rows[0] - pad_y), min(mask.shape[0], rows[-1] + 1 + pad_y)
    left, right = max(0, cols[0] - pad_x), min(mask.shape[1], cols[-1] + 1 + pad_x)
    rgba = np.zeros((bottom - top, right - left, 4), np.uint8)
    rgba[..., :3] = photo[top:bottom, left:right, :3]
    rgba[..., 3] = np.where(mask[top:bottom, left:right], 255, 0)
    rgba[..., :3] *= (rgba[..., 3:] > 0)  # nothing of the background under the transparent pixels either
    w, h = fit_size(rgba.shape[1], rgba.shape[0], max_side)
    return rgba if (w, h) == (rgba.shape[1], rgba.shape[0]) else resize(rgba, h, w)


def encode_mask(mask: np.ndarray) -> str:
    """A small bool mask as text ("WxH:hex" of its packed bits), to keep on the object for calibration."""
    h, w = mask.shape
    return f"{w}x{h}:" + np.packbits(mask.astype(bool).ravel()).tobytes().hex()



def decode_mask(text: str) -> np.ndarray | None:
    try:
        size, data = text.split(":", 1)
        w, h = (int(v) for v in size.split("x"))
        bits = np.unpackbits(np.frombuffer(bytes.fromhex(data), np.uint8))[: w * h]
        return bits.reshape(h, w).astype(bool) if bits.size == w * h else None
    except ValueError:
        return None


def pull_push(premultiplied: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Straight colour everywhere from premultiplied colour and coverage weight: each texel is its own colour
    over (premultiplied "over") the average of its 2×2 block one level coarser, recursively. What fills the
    texels a bake left empty (operators/bake/baking.py), from the nearest baked ones."""
    h, w = weight.shape
    if h == 1 and w == 1:
        return premultiplied / max(float(weight[0, 0]), 1e-12)
    ph, pw = h + h % 2, w + w % 2
    c = np.zeros((ph, pw, 3), dtype=np.float32)
    wt = np.zeros((ph, pw), dtype=np.float32)
    c[:h, :w], wt[:h, :w] = premultiplied, weight
    coarse_c = c.reshape(ph // 2, 2, pw // 2, 2, 3).sum(axis=(1, 3))
    coarse_w = wt.reshape(ph // 2, 2, pw // 2, 2).sum(axis=(1, 3))
    coarse = pull_push(coarse_c, coarse_w)
    up = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)[:h, :w]
    trust = np.minimum(weight, 1.0)[..., None]
    own = premultiplied / np.maximum(weight, 1e-12)[..., None]
    return (own * trust + up * (1.0 - trust)).astype(np.float32)
