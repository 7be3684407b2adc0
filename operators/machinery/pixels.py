"""Blender images → the clean PNGs SAM 3D needs, reading no more pixels than needed.

Every image is sized before a pixel is read (from its file's header, its packed bytes, or its generated
size), refused over the preferences' limit, and read at the size that will be sent: a file image is scaled
by Blender on a copy (its decoded 8-bit pixels, then the small float copy we read), never read whole in float
(`pixels_at`). An image edited in Blender (painted, generated) lives only in memory and is read as it is.
`read_many` runs on the main thread and refuses bad input before anything is paid; `Inputs.encode` runs on
the worker (PNG encoding, no bpy). Everything is numpy on whole arrays: no Python loop over pixels.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import bpy
import numpy as np

from ...client.cache import OnceCache
from ...client.imagesize import dimensions, file_dimensions, file_orientation, orientation
from ...translations import rpt_
from ...utils import schema
from ...utils.raster import (
    MAX_SIDE,
    cutout,
    encode_png,
    fit_size,
    linear_to_srgb,
    mask_from_rgba,
    resize,
    swaps,
    to_uint8,
    upright,
)

DEFAULT_MAX_MEGAPIXELS = 100  # what a photo or mask may have before it is refused outright (a preference)


class MaskError(ValueError):
    """Input a person must fix; the text says how."""


@dataclass
class Inputs:
    photo: np.ndarray  # (h, w, 3) uint8 at the size sent, top row first
    mask: np.ndarray  # (h, w) bool at the same size
    warnings: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return self.photo.shape[1], self.photo.shape[0]

    def encode(self) -> tuple[bytes, bytes]:
        """(photo PNG, mask PNG), the mask binary, 255 = object. Safe on a worker thread."""
        photo = _cached(self.photo, lambda: encode_png(self.photo))
        mask = _cached(self.mask, lambda: encode_png(np.where(self.mask, 255, 0).astype(np.uint8)))
        return photo, mask

    def cutout_png(self) -> bytes:
        """The object alone (the photo under the mask, cropped to it), as a PNG. Safe on a worker thread."""
        return encode_png(cutout(self.photo, self.mask))

    def digest(self) -> str:
        """The pixels sent, as a short hash: two requests with the same digest send the same images."""
        return _digest(self.photo) + _digest(self.mask)


VIEW_SIDE = 1024  # a view's longer side as sent: the cut-out's own bound (raster.cutout)


@dataclass(frozen=True)
class View:
    """Another view of the object, for an engine that takes several: read on the main thread, its PNG made on a
    worker."""

    name: str
    digest: str
    png: Callable[[], bytes] = field(repr=False)


def read_view(image, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> View:  # type: ignore[no-untyped-def]
    """A view upright, at most VIEW_SIDE a side: a cut-out (partly transparent) cropped to its object as the main
    image is, a plain photo whole (encoded once for all the masks of a press, as the photo is)."""
    w, h = image_size(image)
    check_size(image, w, h, max_megapixels)
    photo, opaque = _read_photo(image, fit_size(w, h, VIEW_SIDE))
    if not opaque.any():
        raise MaskError(rpt_("The view '{}' is transparent everywhere: nothing of the object is in it.").format(
            image.name))
    whole = bool(opaque.all())
    return View(image.name, _digest(photo) + _digest(opaque),
                lambda: _cached(photo, lambda: encode_png(photo)) if whole else encode_png(cutout(photo, opaque)))


def packed(given: Inputs, cutout: bool = False) -> Callable[[], tuple[bytes, bytes]]:
    """`given.encode`, holding its mask as compressed bits until a worker encodes it: a press of hundreds of
    masks holds the photo once and a few kilobytes per mask (a mask is mostly runs of one value), not megabytes.
    With `cutout`, the image is the object's cut-out (for an engine that takes no mask)."""
    unpacked = _packed(given)
    if cutout:
        return lambda: (lambda inputs: (inputs.cutout_png(), inputs.encode()[1]))(unpacked())
    return lambda: unpacked().encode()


def packed_cutout(given: Inputs) -> Callable[[], bytes]:
    """`given.cutout_png`, held the same way (a caption's input)."""
    unpacked = _packed(given)
    return lambda: unpacked().cutout_png()


def _packed(given: Inputs) -> Callable[[], Inputs]:
    photo, shape, warnings = given.photo, given.mask.shape, given.warnings
    bits = zlib.compress(np.packbits(given.mask).tobytes(), 1)

    def unpack() -> Inputs:
        packed_bits = np.frombuffer(zlib.decompress(bits), np.uint8)
        mask = np.unpackbits(packed_bits, count=shape[0] * shape[1]).reshape(shape).astype(bool)
        return Inputs(photo, mask, warnings)

    return unpack


# The same photo is sent again and again (several masks, variants, retries): encode it once. Keyed by a
# hash of the pixels themselves, so an edited image is never served stale.
_PNGS: OnceCache[bytes] = OnceCache(8)


def _digest(pixels: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(pixels).data, digest_size=16).hexdigest()


def _cached(pixels: np.ndarray, make: Callable[[], bytes]) -> bytes:
    return _PNGS.get((_digest(pixels), pixels.shape), make)


# --- sizing and reading Blender images (main thread) ----------------------------------------------------


def orientation_of(image) -> int:  # type: ignore[no-untyped-def]
    """The EXIF orientation (1–8) its file declares: how a viewer shows it upright. Blender shows and holds the
    pixels as stored; everything the add-on reads, sends and sizes is upright (`upright`)."""
    if image.source != "FILE":
        return 1
    if image.packed_file is not None:
        try:
            return orientation(bytes(image.packed_file.data[:1 << 20]))
        except struct.error:
            return 1
    if not image.filepath:
        return 1
    return file_orientation(bpy.path.abspath(image.filepath, library=image.library))


def image_size(image) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(width, height) of a bpy Image upright (its EXIF orientation applied), without decoding it."""
    w, h = stored_size(image)
    return (h, w) if swaps(orientation_of(image)) else (w, h)


def stored_size(image) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(width, height) of a bpy Image as stored, without decoding it: the generated size, the packed file's
    header, the file's header; the decoded size only when Blender holds the pixels already."""
    if image.source == "GENERATED" or image.has_data or image.is_dirty:
        w, h = image.size
    elif image.packed_file is not None or image.source == "FILE" and image.filepath:
        if image.packed_file is not None:
            found = dimensions(bytes(image.packed_file.data[:1 << 20]), "tga" if image.filepath.lower().endswith(
                ".tga") else None)
        else:
            path = bpy.path.abspath(image.filepath, library=image.library)
            if not os.path.isfile(path):
                raise MaskError(rpt_("The image '{}' has no pixels (is its file missing?).").format(image.name))
            found = file_dimensions(path)
        if not found:  # a format whose header we do not read, or a broken one: Blender would decode it to size it
            raise MaskError(rpt_(
                "The image '{}' is in a format whose size the add-on cannot read before Blender decodes it (which "
                "could take any amount of memory): save it as PNG, JPEG, WebP, TIFF, BMP, TGA or OpenEXR.").format(
                image.name))
        w, h = found
    else:
        raise MaskError(rpt_("The image '{}' is a {}, not a still image.").format(image.name, image.source.lower()))
    if not (w and h):
        raise MaskError(rpt_("The image '{}' has no pixels (is its file missing?).").format(image.name))
    return int(w), int(h)


def check_size(image, w: int, h: int, max_megapixels: float) -> None:  # type: ignore[no-untyped-def]
    if max_megapixels > 0 and w * h > max_megapixels * 1e6:
        raise MaskError(rpt_("The image '{}' is {}×{} ({:.0f} megapixels), more than the {:g} megapixels allowed in "
                             "the add-on preferences (Largest Photo).").format(image.name, w, h, w * h / 1e6,
                                                                               max_megapixels))


def pixels(image) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(h, w, 4) float32 RGBA of a bpy Image as it is, top row first; a clear error when it has no pixels."""
    w, h = image.size
    if not (w and h) or not image.has_data:
        raise MaskError(rpt_("The image '{}' has no pixels (is its file missing?).").format(image.name))
    buf = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(buf)
    rgba = buf.reshape(h, w, 4)[::-1]
    if image.is_float:  # linear float pixels: bring them to display sRGB like an 8-bit photo
        rgba = rgba.copy()
        rgba[..., :3] = linear_to_srgb(rgba[..., :3])
    return rgba


def upright_view(image):  # type: ignore[no-untyped-def]
    """The image to show behind the photo's camera and under its composite: the photo itself, or, when its file
    declares an orientation, an upright copy packed into the .blend (made once, found again by name), so what the
    camera frames is what was sent and what the masks were drawn on."""
    turn = orientation_of(image)
    if turn == 1:
        return image
    name = f"{image.name} (upright)"
    found = bpy.data.images.get(name)
    if found is not None and found.get(schema.UPRIGHT_OF) == image.name and found.has_data:
        return found
    w, h = stored_size(image)
    if w * h > DEFAULT_MAX_MEGAPIXELS * 1e6:  # read whole in float: a photo larger than any sent stays as stored
        return image
    rgba = upright(pixels(image), turn)
    h, w = rgba.shape[:2]
    view = found if found is not None and tuple(found.size) == (w, h) else bpy.data.images.new(name, w, h, alpha=True)
    view.colorspace_settings.name = image.colorspace_settings.name
    view.pixels.foreach_set(np.ascontiguousarray(rgba[::-1]).ravel())
    view[schema.UPRIGHT_OF] = image.name
    view.pack()
    return view


def pixels_at(image, size: tuple[int, int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(h, w, 4) float32 RGBA upright at `size` (w, h). A file or packed image is scaled by Blender on a copy, so
    only its decoded bytes and the small copy exist; one edited in memory is read whole and resampled here."""
    turn = orientation_of(image)
    w, h = (size[1], size[0]) if swaps(turn) else size  # the size as stored
    if image.is_dirty or image.source != "FILE" or image.has_data and tuple(image.size) == (w, h):
        rgba = pixels(image)
        return upright(rgba if rgba.shape[:2] == (h, w) else resize(rgba, h, w), turn)
    copy = image.copy()  # not yet decoded: the copy decodes the file, the original stays untouched
    try:
        if tuple(copy.size) != (w, h):
            copy.scale(w, h)
        return upright(pixels(copy), turn)
    finally:
        bpy.data.images.remove(copy)


def read_photo(image, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(h, w, 3) uint8 of a photo at the size sent (at most MAX_SIDE on its longer side), sized first."""
    w, h = image_size(image)
    check_size(image, w, h, max_megapixels)
    return _read_photo(image, fit_size(w, h))[0]


def _read_photo(image, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """(h, w, 3) uint8 and where it is opaque, both read-only. A photo file read moments ago (another mask of
    it, another press, a batch item) is not decoded again."""

    def read() -> tuple[np.ndarray, np.ndarray]:
        rgba = pixels_at(image, size)
        photo = np.ascontiguousarray(to_uint8(rgba)[..., :3])  # whole rows at once: 4× faster than a 3-of-4 view
        opaque = rgba[..., 3] >= 0.5
        photo.setflags(write=False)
        opaque.setflags(write=False)
        return photo, opaque

    key = _file_key(image, size)
    return read() if key is None else _PHOTOS.get(key, read)


# Photos as read from their files, keyed by the file's path, time and length: an edited image is never cached.
_PHOTOS: OnceCache[tuple[np.ndarray, np.ndarray]] = OnceCache(4)


def _file_key(image, size: tuple[int, int]) -> tuple | None:  # type: ignore[no-untyped-def]
    """What makes two reads of an image give the same pixels, when they come from its file: not for an image
    Blender holds decoded (what it shows may differ from the file until Reload), edited or packed."""
    if image.source != "FILE" or image.is_dirty or image.packed_file is not None or image.has_data:
        return None
    try:
        path = bpy.path.abspath(image.filepath, library=image.library)
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    return (path, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, size,
            image.colorspace_settings.name, image.alpha_mode)


def read_inputs(photo_image, mask_image=None, *, use_photo_alpha: bool = False,  # type: ignore[no-untyped-def]
                max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> Inputs:
    """Validated inputs from Blender images. `mask_image` may be grayscale, RGB, or a cut-out whose alpha
    is the mask; with `use_photo_alpha` the photo's own alpha is the mask."""
    return read_many(photo_image, [mask_image], use_photo_alpha=use_photo_alpha, max_megapixels=max_megapixels)[0]


def read_many(photo_image, mask_images: list, *, use_photo_alpha: bool = False,  # type: ignore[no-untyped-def]
              max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> list[Inputs]:
    """`read_inputs` for several masks of one photo, reading the photo once. All are checked before any
    is returned: one bad mask refuses the lot, before anything is paid."""
    return list(iter_inputs(photo_image, mask_images, use_photo_alpha=use_photo_alpha, max_megapixels=max_megapixels))


def iter_inputs(photo_image, mask_images: list, *, use_photo_alpha: bool = False,  # type: ignore[no-untyped-def]
                max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> Iterator[Inputs]:
    """`read_many` one mask at a time (the photo is read first, once): a caller that keeps each mask small
    (`packed`) holds one full-size mask at a time, however many there are."""
    w, h = image_size(photo_image)
    check_size(photo_image, w, h, max_megapixels)
    size = fit_size(w, h)
    photo, opaque = _read_photo(photo_image, size)
    warnings = []
    if size != (w, h):
        warnings.append(rpt_("The photo is {}×{}; it is sent at {}×{} (Runware's limit is {} px), with the mask "
                             "scaled to match.").format(w, h, size[0], size[1], MAX_SIDE))
    for mask in mask_images:
        yield _inputs(photo_image, opaque, photo, mask, use_photo_alpha, (w, h), max_megapixels, list(warnings))


def _inputs(photo_image, opaque: np.ndarray, photo: np.ndarray, mask_image, use_photo_alpha: bool,  # type: ignore[no-untyped-def]
            photo_size: tuple[int, int], max_megapixels: float, warnings: list[str]) -> Inputs:
    if use_photo_alpha:
        if opaque.all():
            raise MaskError(rpt_("The photo '{}' has no transparency to use as a mask. Pick a mask image "
                                 "instead.").format(photo_image.name))
        mask = opaque
    else:
        if mask_image is None:
            raise MaskError(rpt_("Pick a mask image (white = object), or use the photo's alpha."))
        mw, mh = image_size(mask_image)
        check_size(mask_image, mw, mh, max_megapixels)
        if (mw, mh) != photo_size and (mh, mw) == photo_size and swaps(orientation_of(photo_image)):
            raise MaskError(rpt_(
                "The mask '{}' fits the photo '{}' as it is stored, on its side; the photo's file says it is shown "
                "turned a quarter (as every viewer shows it, and as it is sent). Draw the mask on the upright "
                "photo.").format(mask_image.name, photo_image.name))
        mask = mask_from_rgba(pixels_at(mask_image, (photo.shape[1], photo.shape[0])))
        if (mw, mh) != photo_size:
            warnings.append(rpt_("The mask '{}' is {}×{} but the photo is {}×{}: it was stretched to fit. Check that "
                                 "it is the mask of this photo.").format(mask_image.name, mw, mh, photo_size[0],
                                                                         photo_size[1]))
    check_mask(mask, getattr(mask_image, "name", photo_image.name))
    return Inputs(photo, mask, warnings)


# --- pure helpers (tested plainly) -----------------------------------------------------------------------


def check_mask(mask: np.ndarray, name: str) -> None:
    covered = int(mask.sum())
    if covered == 0:
        raise MaskError(rpt_("The mask '{}' is empty: paint the object white (or pick the right mask).").format(name))
    if covered == mask.size:
        raise MaskError(rpt_("The mask '{}' covers the whole photo: it must mark only the object, with the "
                             "background black.").format(name))


