"""Pixels as numpy arrays (utils/raster.py, no Blender): orientation, resampling, PNG encoding, label maps, the
small masks kept on objects."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from utils import raster

# A 2×3 image whose pixels are their own numbers, and how each EXIF orientation shows it (top row first).
STORED = np.arange(6).reshape(2, 3)
SHOWN = {1: [[0, 1, 2], [3, 4, 5]], 2: [[2, 1, 0], [5, 4, 3]], 3: [[5, 4, 3], [2, 1, 0]], 4: [[3, 4, 5], [0, 1, 2]],
         5: [[0, 3], [1, 4], [2, 5]], 6: [[3, 0], [4, 1], [5, 2]], 7: [[5, 2], [4, 1], [3, 0]],
         8: [[2, 5], [1, 4], [0, 3]]}


@pytest.mark.parametrize("turn", range(1, 9))
def test_each_exif_orientation_shows_the_image_as_a_viewer_does(turn: int) -> None:
    shown = raster.upright(STORED, turn)
    assert shown.tolist() == SHOWN[turn]
    assert raster.swaps(turn) == (shown.shape != STORED.shape)


def test_a_shrink_averages_and_keeps_the_dtype() -> None:
    checker = np.indices((64, 64)).sum(axis=0) % 2 * 255
    small = raster.resize(checker.astype(np.uint8), 8, 8)
    assert small.dtype == np.uint8 and small.shape == (8, 8)
    assert np.abs(small.astype(int) - 128).max() <= 1, "a fine checker becomes grey, not aliased"
    assert raster.fit_size(4000, 3000) == (2048, 1536) and raster.fit_size(100, 50) == (100, 50)


def _decode(png: bytes) -> tuple[tuple[int, int, int], np.ndarray]:
    w, h, _, kind = struct.unpack(">IIBB", png[16:26])
    channels = {0: 1, 2: 3, 6: 4}[kind]
    idat = b"".join(png[i + 8:i + 8 + struct.unpack(">I", png[i:i + 4])[0]]
                    for i in range(8, len(png), 1) if png[i + 4:i + 8] == b"IDAT")
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, w * channels + 1)
    assert not rows[:, 0].any(), "filter 0 on every row"
    return (w, h, channels), rows[:, 1:].reshape(h, w, channels)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_a_png_holds_the_pixels_it_was_given(channels: int) -> None:
    img = np.random.default_rng(channels).integers(0, 256, (5, 7, channels), dtype=np.uint8)
    size, back = _decode(raster.encode_png(img[..., 0] if channels == 1 else img))
    assert size == (7, 5, channels) and np.array_equal(back, img)


def test_a_label_map_splits_in_order_of_first_appearance_without_its_background() -> None:
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[2:, :2] = (0, 255, 0)  # appears second
    rgb[0, 4:] = (255, 0, 0)  # appears first, from the top left
    masks = raster.label_masks(rgb)
    assert [int(m.sum()) for m in masks] == [2, 4] and masks[0][0, 4] and masks[1][3, 0]
    with pytest.raises(ValueError, match="colours"):
        raster.label_masks(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8), limit=8)


def test_a_small_mask_kept_as_text_comes_back_and_broken_text_is_none() -> None:
    mask = np.random.default_rng(1).random((9, 13)) > 0.5
    assert np.array_equal(raster.decode_mask(raster.encode_mask(mask)), mask)
    assert raster.decode_mask("13x9:zz") is None and raster.decode_mask("nonsense") is None
    assert raster.decode_mask("4x4:00") is None, "too few bits for its size"
    box = raster.mask_box(np.pad(np.ones((2, 3), bool), ((1, 1), (2, 5))))
    assert box == (0.2, 0.25, 0.5, 0.75)


def test_pull_push_fills_the_empty_texels_from_the_nearest_filled_ones_and_keeps_the_filled_ones():
    """What a bake leaves empty (coverage 0) gets the colour of its baked neighbourhood, never black; baked
    texels keep their own colour; a half-covered texel (a bake's margin, premultiplied) is un-premultiplied."""
    weight = np.zeros((16, 16), np.float32)
    colour = np.zeros((16, 16, 3), np.float32)
    weight[:, :8], colour[:, :8] = 1.0, (1.0, 0.0, 0.0)  # red baked on the left
    weight[:, 12:], colour[:, 12:] = 1.0, (0.0, 0.0, 1.0)  # blue on the right, empty between
    weight[0, 8], colour[0, 8] = 0.5, (0.0, 0.25, 0.0)  # half covered: straight green 0.5
    out = raster.pull_push(colour, weight)
    assert np.allclose(out[:, :8], (1.0, 0.0, 0.0)) and np.allclose(out[:, 12:], (0.0, 0.0, 1.0))
    assert out[0, 8, 1] > 0.25, "un-premultiplied, not darkened"
    gap = out[4:, 8:12]  # away from the green texel: a mix of red and blue, whole
    assert (gap.sum(axis=-1) > 0.9).all(), "no black where nothing was baked"
    assert gap[..., 2].mean() > 0.9, "the colour of the baked block around it (blue)"


def test_a_cutout_is_the_object_cropped_to_its_box_with_a_margin_transparent_elsewhere() -> None:
    photo = np.full((100, 200, 3), 200, np.uint8)
    mask = np.zeros((100, 200), bool)
    mask[20:40, 50:150] = True  # a box 100 wide, 20 high
    cut = raster.cutout(photo, mask, margin=0.1)
    assert cut.shape == (20 + 2 * 2, 100 + 2 * 10, 4)
    assert (cut[2:-2, 10:-10, 3] == 255).all() and (cut[2:-2, 10:-10, :3] == 200).all()
    assert cut[0, 0, 3] == 0 and not cut[0, 0, :3].any()  # the background leaves nothing behind
    edge = np.zeros((100, 200), bool)
    edge[0:10, 0:10] = True  # at the photo's corner: the margin stops at the photo's edge
    assert raster.cutout(photo, edge).shape == (11, 11, 4)


def test_a_cutout_is_bounded_and_an_empty_mask_is_refused() -> None:
    photo = np.zeros((3000, 4000, 3), np.uint8)
    mask = np.ones((3000, 4000), bool)
    assert max(raster.cutout(photo, mask, max_side=512).shape[:2]) == 512
    with pytest.raises(ValueError):
        raster.cutout(photo, np.zeros((3000, 4000), bool))
