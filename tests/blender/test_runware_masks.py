"""Masks Runware makes: Box to Mask (a box given in photo pixels, or dragged in the Image Editor) and Auto Mask.

Each is one paid removeBackground request (RemBG runware:109@1) asking for the mask-only output, reserved before
it is sent. The emulator's `rembg_shape` puts the object at a known place of whatever it is sent, so where the
mask lands in the photo tells whether the add-on cut, scaled and pasted the box right.
"""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import bpy
import numpy as np
import pytest
from conftest import load, module

PHOTO = "human_object/image.png"  # 1600 × 898
W, H = 1600, 898
PRICE = 3800  # micro-dollars: 0.0038 USD, the documented price of one removeBackground (the emulator reports none)
PREVIEW = "SAM3D Mask Preview"


# --- helpers ---------------------------------------------------------------------------------------------


def rembg_tasks(emu) -> list[dict]:  # noqa: ANN001
    return [t for r in emu.requests if isinstance(r.body, list) for t in r.body
            if isinstance(t, dict) and t.get("taskType") == "removeBackground"]


def sent_png(task: dict) -> bytes:
    value = task["inputs"]["image"]
    assert value.startswith("data:image/png;base64,"), value[:40]
    png = base64.b64decode(value.split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return png


def png_size(png: bytes) -> tuple[int, int]:
    return struct.unpack(">II", png[16:24])


def pixels_of(image: bpy.types.Image) -> np.ndarray:
    """(h, w, 4) floats, top row first."""
    w, h = image.size
    buf = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(buf)
    return buf.reshape(h, w, 4)[::-1]


def decoded(png: bytes, tmp: Path, name: str) -> np.ndarray:
    path = tmp / f"{name}.png"
    path.write_bytes(png)
    image = bpy.data.images.load(str(path))
    try:
        return pixels_of(image)
    finally:
        bpy.data.images.remove(image)


def white(image: bpy.types.Image) -> np.ndarray:
    return pixels_of(image)[..., 0] > 0.5


def extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(xmin, ymin, xmax, ymax) of the True pixels, right and bottom excluded."""
    assert mask.any(), "the mask is empty"
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 2) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def crop_of(box: tuple[int, int, int, int], w: int, h: int) -> tuple[int, int, int, int]:
    """The box grown by 10 % of its size on each side, clamped to the photo."""
    x0, y0, x1, y1 = box
    dx, dy = -(-(x1 - x0) // 10), -(-(y1 - y0) // 10)
    return max(0, x0 - dx), max(0, y0 - dy), min(w, x1 + dx), min(h, y1 + dy)


def box_masks(settings) -> list:  # noqa: ANN001
    return [m for m in settings.masks if m.image is not None and "_box_" in m.image.name]


def ledger():  # noqa: ANN201
    return module("operators.machinery.runner").RUNNER.ledger


def nothing_paid(emu) -> None:  # noqa: ANN001
    assert emu.requests == [], "nothing may be sent"
    assert ledger().reserved == 0 and ledger().spent == 0


@pytest.fixture
def cutout_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's other path: ask for a cut-out (mask_only=False), whose alpha is the mask."""
    client = module("client.runware").RunwareClient
    original = client.remove_background
    monkeypatch.setattr(client, "remove_background",
                        lambda self, png, mask_only=True: original(self, png, mask_only=False))


# --- Box to Mask from a script ----------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["mask", "cutout"])
def test_a_box_sends_only_its_crop_and_the_object_lands_at_its_photo_pixels(sam3d, request, answer):
    if answer == "cutout":
        request.getfixturevalue("cutout_answers")
    sam3d.settings.image = load(PHOTO)
    sam3d.emu.rembg_shape = (0.25, 0.25, 0.75, 0.75)  # the object: the middle half of what is sent
    box = (400, 200, 800, 600)
    assert bpy.ops.sam3d.box_mask(xmin=400, ymin=200, xmax=800, ymax=600) == {"FINISHED"}

    [task] = rembg_tasks(sam3d.emu)
    assert task["model"] == "runware:109@1"
    assert (task.get("settings") or {}).get("returnOnlyMask", False) is (answer == "mask")
    crop = crop_of(box, W, H)
    assert crop == (360, 160, 840, 640)
    png = sent_png(task)
    assert png_size(png) == (480, 480), "the box plus a 10 % margin, nothing else of the photo"
    sent = decoded(png, sam3d.tmp, "sent")[..., :3]
    photo = pixels_of(sam3d.settings.image)[..., :3]
    assert np.abs(sent - photo[160:640, 360:840]).mean() < 2 / 255, "the crop is the photo's pixels there"

    [item] = box_masks(sam3d.settings)
    assert item.enabled and item.image.name == "image_box_1"
    assert tuple(item.image.size) == (W, H)
    assert sam3d.settings.masks[sam3d.settings.active_mask_index] == item
    mask = white(item.image)
    # In the crop the object spans 120…360 both ways: the photo's 480…720 across and 280…520 down.
    assert close(extent(mask), (480, 280, 720, 520)), extent(mask)
    assert abs(int(mask.sum()) - 240 * 240) <= 4 * 240

    preview = bpy.data.images.get(PREVIEW)
    assert preview is not None and tuple(preview.size) == (W, H), "a preview over the photo is made"
    shown = pixels_of(preview)[..., 1]
    assert shown[~mask].mean() < 0.5 * shown[mask].mean() + 0.05, "outside the new mask is darkened"


def test_nothing_outside_the_box_is_white_even_where_the_answer_goes_on(sam3d):
    sam3d.settings.image = load(PHOTO)
    sam3d.emu.rembg_shape = (0.0, 0.0, 1.0, 1.0)  # the object fills the whole crop, margin included
    assert bpy.ops.sam3d.box_mask(xmin=400, ymin=200, xmax=800, ymax=600) == {"FINISHED"}
    [item] = box_masks(sam3d.settings)
    mask = white(item.image)
    assert mask[200:600, 400:800].all(), "inside the box: the object"
    assert int(mask.sum()) == 400 * 400, "the margin sent around the box is never pasted"


def test_a_large_box_is_clamped_to_the_photo_sent_at_2048_px_and_pasted_back_to_scale(sam3d):
    sam3d.settings.image = load("socrates/image.png")  # 2560 × 1681
    sam3d.emu.rembg_shape = (0.25, 0.25, 0.75, 0.75)
    assert bpy.ops.sam3d.box_mask(xmin=100, ymin=100, xmax=2500, ymax=1600) == {"FINISHED"}
    [task] = rembg_tasks(sam3d.emu)
    assert crop_of((100, 100, 2500, 1600), 2560, 1681) == (0, 0, 2560, 1681)  # the margin is clamped
    assert png_size(sent_png(task)) == (2048, 1345), "the whole photo, at 2048 px on its longer side"
    [item] = box_masks(sam3d.settings)
    assert tuple(item.image.size) == (2560, 1681)
    mask = white(item.image)
    assert close(extent(mask), (640, 420, 1920, 1261)), extent(mask)  # the middle half, at the photo's scale


def test_a_photo_over_4096_px_is_cut_from_a_smaller_copy_and_the_mask_still_lands_right(sam3d):
    photo = bpy.data.images.new("wide.png", 5000, 1000)  # read at 4096 × 819 to cut the box from
    photo.pixels.foreach_set(np.random.default_rng(7).random(5000 * 1000 * 4, dtype=np.float32))
    sam3d.settings.image = photo
    sam3d.emu.rembg_shape = (0.25, 0.25, 0.75, 0.75)
    assert bpy.ops.sam3d.box_mask(xmin=1000, ymin=200, xmax=2000, ymax=800) == {"FINISHED"}
    [task] = rembg_tasks(sam3d.emu)
    w, h = png_size(sent_png(task))
    assert abs(w - 1200 * 4096 / 5000) <= 2 and abs(h - 720 * 4096 / 5000) <= 2, (w, h)  # the crop, read smaller
    [item] = box_masks(sam3d.settings)
    assert item.image.name == "wide_box_1" and tuple(item.image.size) == (5000, 1000)
    # The crop is 900…2100 across and 140…860 down: its middle half is 1200…1800 and 320…680.
    assert close(extent(white(item.image)), (1200, 320, 1800, 680)), extent(white(item.image))


def test_corners_given_in_any_order_make_the_same_box(sam3d):
    sam3d.settings.image = load(PHOTO)
    sam3d.emu.rembg_shape = (0.0, 0.0, 1.0, 1.0)
    assert bpy.ops.sam3d.box_mask(xmin=800, ymin=600, xmax=400, ymax=200) == {"FINISHED"}
    [item] = box_masks(sam3d.settings)
    assert extent(white(item.image)) == (400, 200, 800, 600)
    assert png_size(sent_png(rembg_tasks(sam3d.emu)[0])) == (480, 480)


def test_several_boxes_make_several_masks(sam3d):
    sam3d.settings.image = load(PHOTO)
    sam3d.emu.rembg_shape = (0.0, 0.0, 1.0, 1.0)
    boxes = [(100, 100, 300, 400), (900, 300, 1500, 800), (1200, 50, 1400, 200)]
    for x0, y0, x1, y1 in boxes:
        assert bpy.ops.sam3d.box_mask(xmin=x0, ymin=y0, xmax=x1, ymax=y1) == {"FINISHED"}
    made = box_masks(sam3d.settings)
    assert [m.image.name for m in made] == ["image_box_1", "image_box_2", "image_box_3"]
    assert all(m.enabled for m in made) and sam3d.settings.active_mask_index == len(sam3d.settings.masks) - 1
    assert [extent(white(m.image)) for m in made] == boxes
    assert len(rembg_tasks(sam3d.emu)) == 3 and sam3d.emu.billed("removeBackground") == 3
    assert ledger().spent == 3 * PRICE and ledger().reserved == 0


@pytest.mark.parametrize("box", [
    pytest.param((1700, 100, 1900, 300), id="right-of-the-photo"),
    pytest.param((100, 900, 300, 1000), id="below-the-photo"),
    pytest.param((400, 200, 400, 600), id="zero-width"),
    pytest.param((400, 200, 800, 200), id="zero-height"),
    pytest.param((0, 0, 0, 0), id="not-given"),
])
def test_a_box_off_the_photo_or_of_zero_size_is_refused_and_sends_nothing(sam3d, box):
    sam3d.settings.image = load(PHOTO)
    x0, y0, x1, y1 = box
    with pytest.raises(RuntimeError, match=r"The box must lie on the photo \(1600×898 pixels\)"):
        bpy.ops.sam3d.box_mask(xmin=x0, ymin=y0, xmax=x1, ymax=y1)
    assert not box_masks(sam3d.settings)
    nothing_paid(sam3d.emu)


def test_an_answer_with_no_object_adds_no_mask_and_says_so(sam3d, capfd):
    sam3d.settings.image = load(PHOTO)
    sam3d.emu.rembg_shape = (0.0, 0.0, 0.0, 0.0)  # Runware finds nothing
    assert bpy.ops.sam3d.box_mask(xmin=400, ymin=200, xmax=800, ymax=600) == {"FINISHED"}
    assert len(rembg_tasks(sam3d.emu)) == 1
    assert not box_masks(sam3d.settings) and "image_box_1" not in bpy.data.images
    out, err = capfd.readouterr()
    assert "Runware found no object in the box: no mask was added." in out + err
    assert ledger().spent == PRICE, "the request was answered: it is paid all the same"


def test_a_box_mask_can_be_reconstructed(sam3d):
    sam3d.settings.image = load(PHOTO)
    assert bpy.ops.sam3d.box_mask(xmin=400, ymin=200, xmax=800, ymax=600) == {"FINISHED"}
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    made = [o for o in bpy.data.objects if o not in before]
    assert len(made) == 1 and made[0]["sam3d_mask"] == "image_box_1"


# --- money: Box to Mask and Auto Mask are paid requests ------------------------------------------------------


def run_box() -> set[str]:
    return bpy.ops.sam3d.box_mask(xmin=400, ymin=200, xmax=800, ymax=600)


def run_auto() -> set[str]:
    return bpy.ops.sam3d.auto_mask()


@pytest.mark.parametrize("run", [run_box, run_auto], ids=["box", "auto"])
def test_the_request_is_reserved_before_it_is_sent_then_settled(sam3d, run):
    sam3d.settings.image = load(PHOTO)
    held: list[int] = []

    def shape(w: int, h: int):  # noqa: ANN202 - runs on the emulator's thread while the request is served
        held.append(ledger().reserved)
        return (bytes(255 if w // 4 <= x < 3 * w // 4 else 0 for x in range(w)) for _ in range(h))

    sam3d.emu.rembg_shape = shape
    assert run() == {"FINISHED"}
    assert held == [PRICE], "the worst-case price is held while the request is out"
    assert ledger().reserved == 0 and ledger().spent == PRICE, "then it is counted as spent"
    assert sam3d.emu.billed("removeBackground") == 1


@pytest.mark.parametrize("run", [run_box, run_auto], ids=["box", "auto"])
def test_a_spending_limit_below_its_price_refuses_it_before_anything_is_sent(sam3d, run):
    sam3d.settings.image = load(PHOTO)
    sam3d.prefs.session_budget = 0.003  # under one removeBackground (0.0038)
    with pytest.raises(RuntimeError, match=r"needs up to \$0\.0038.*Spending Limit"):
        run()
    nothing_paid(sam3d.emu)
    assert not box_masks(sam3d.settings) and sam3d.settings.mask is None


def test_a_refused_key_gives_the_reservation_back(sam3d):
    sam3d.settings.image = load(PHOTO)
    sam3d.prefs.api_key = "wrong-key-that-must-not-be-echoed"
    with pytest.raises(RuntimeError, match="rejected the API key") as info:
        run_box()
    assert "wrong-key-that-must-not-be-echoed" not in str(info.value)
    assert ledger().reserved == 0 and ledger().spent == 0, "refused before any task existed: nothing billed"
    assert not box_masks(sam3d.settings)


# --- Auto Mask ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["mask", "cutout"])
def test_auto_mask_asks_for_the_mask_and_still_reads_a_cutout(sam3d, request, answer):
    if answer == "cutout":
        request.getfixturevalue("cutout_answers")
    sam3d.settings.image = load(PHOTO)
    sam3d.emu.rembg_shape = (0.25, 0.25, 0.75, 0.75)
    assert bpy.ops.sam3d.auto_mask() == {"FINISHED"}
    [task] = rembg_tasks(sam3d.emu)
    assert task["model"] == "runware:109@1"
    assert (task.get("settings") or {}).get("returnOnlyMask", False) is (answer == "mask")
    assert png_size(sent_png(task)) == (W, H), "the whole photo"
    mask = sam3d.settings.mask
    assert mask is not None and mask.name == "image_auto_mask" and tuple(mask.size) == (W, H)
    assert close(extent(white(mask)), (400, 224, 1200, 673)), extent(white(mask))
    assert bpy.data.images.get(PREVIEW) is not None


# --- the drag: BoxGesture, fed with events as Blender's modal handler would --------------------------------------

# The photo shown at half size with its bottom-left corner at region pixel (100, 50): region pixels to the
# image's 0…1 frame (v up, like Blender's view2d).
OX, OY, ZOOM = 100, 50, 0.5


def to_view(x: int, y: int) -> tuple[float, float]:
    return (x - OX) / (W * ZOOM), (y - OY) / (H * ZOOM)


def region_of(px: float, py: float) -> tuple[int, int]:
    """The region pixel showing photo pixel (px, py) (from the top-left)."""
    return round(OX + px * ZOOM), round(OY + (H - py) * ZOOM)


def gesture():  # noqa: ANN201
    return module("operators.one_object.auto_masks").BoxGesture((W, H), to_view)


def drag(g, start: tuple[int, int], end: tuple[int, int]):  # noqa: ANN001, ANN201
    """Press at `start`, move halfway then to `end`, release there: what each event returned."""
    mid = ((start[0] + end[0]) // 2, (start[1] + end[1]) // 2)
    return [g.on_event("LEFTMOUSE", "PRESS", *start), g.on_event("MOUSEMOVE", "NOTHING", *mid),
            g.on_event("MOUSEMOVE", "NOTHING", *end), g.on_event("LEFTMOUSE", "RELEASE", *end)]


def as_tuple(box) -> tuple[int, int, int, int]:  # noqa: ANN001
    return box.xmin, box.ymin, box.xmax, box.ymax


@pytest.mark.parametrize("direction", ["down-right", "up-left"])
def test_a_drag_gives_the_box_in_photo_pixels(addon, direction):
    g = gesture()
    a, b = region_of(400, 200), region_of(800, 600)
    events = drag(g, a, b) if direction == "down-right" else drag(g, b, a)
    assert events[:3] == [None, None, None] and g.dragging is False and not g.finished
    assert as_tuple(events[3]) == (400, 200, 800, 600)


def test_the_box_follows_the_mouse_while_dragging(addon):
    g = gesture()
    g.on_event("LEFTMOUSE", "PRESS", *region_of(400, 200))
    assert g.dragging
    g.on_event("MOUSEMOVE", "NOTHING", *region_of(600, 300))
    assert as_tuple(g.box()) == (400, 200, 600, 300)
    g.on_event("MOUSEMOVE", "NOTHING", *region_of(700, 500))
    assert as_tuple(g.on_event("LEFTMOUSE", "RELEASE", *region_of(700, 500))) == (400, 200, 700, 500)


def test_a_drag_past_the_image_is_clamped_to_the_photo(addon):
    g = gesture()
    box = drag(g, (OX - 60, OY - 40), region_of(300, 100))[-1]  # from below-left of the image
    assert as_tuple(box) == (0, 100, 300, H)


@pytest.mark.parametrize("end", [(0, 0), (1, 0), (0, 1)], ids=["click", "one-pixel-across", "one-pixel-down"])
def test_a_click_without_a_drag_gives_nothing(addon, end):
    g = gesture()
    x, y = region_of(400, 200)
    assert g.on_event("LEFTMOUSE", "PRESS", x, y) is None
    assert g.on_event("LEFTMOUSE", "RELEASE", x + end[0], y + end[1]) is None
    assert not g.dragging and not g.finished, "the gesture goes on: the next drag makes a box"


def test_moves_and_releases_without_a_press_give_nothing(addon):
    g = gesture()
    assert g.on_event("MOUSEMOVE", "NOTHING", *region_of(400, 200)) is None
    assert g.on_event("LEFTMOUSE", "RELEASE", *region_of(800, 600)) is None
    assert not g.dragging and not g.finished


@pytest.mark.parametrize("key", ["ESC", "RIGHTMOUSE"])
def test_esc_or_right_click_ends_it_and_a_drag_in_progress_gives_nothing(addon, key):
    g = gesture()
    g.on_event("LEFTMOUSE", "PRESS", *region_of(400, 200))
    g.on_event("MOUSEMOVE", "NOTHING", *region_of(800, 600))
    assert g.on_event(key, "PRESS", *region_of(800, 600)) is None
    assert g.finished and not g.dragging
    assert g.on_event("LEFTMOUSE", "RELEASE", *region_of(800, 600)) is None


@pytest.mark.parametrize("key", ["ESC", "RIGHTMOUSE"])
def test_esc_or_right_click_ends_it_between_drags(addon, key):
    g = gesture()
    assert g.on_event(key, "PRESS", 0, 0) is None and g.finished


def test_two_drags_give_two_boxes(addon):
    g = gesture()
    first = drag(g, region_of(100, 100), region_of(300, 400))[-1]
    second = drag(g, region_of(1500, 800), region_of(900, 300))[-1]
    assert [as_tuple(first), as_tuple(second)] == [(100, 100, 300, 400), (900, 300, 1500, 800)]
    assert not g.finished


def test_the_dragged_box_makes_the_mask_of_what_is_in_it(sam3d):
    sam3d.settings.image = load(PHOTO)
    sam3d.emu.rembg_shape = (0.0, 0.0, 1.0, 1.0)
    box = drag(gesture(), region_of(400, 200), region_of(800, 600))[-1]
    assert bpy.ops.sam3d.box_mask(xmin=box.xmin, ymin=box.ymin, xmax=box.xmax, ymax=box.ymax) == {"FINISHED"}
    [item] = box_masks(sam3d.settings)
    assert extent(white(item.image)) == (400, 200, 800, 600)


def test_auto_mask_of_a_photo_over_2048_px_is_at_the_photos_size(sam3d, capfd):
    sam3d.settings.image = load("socrates/image.png")  # 2560 × 1681, sent at 2048 × 1345
    assert bpy.ops.sam3d.auto_mask() == {"FINISHED"}
    assert png_size(sent_png(rembg_tasks(sam3d.emu)[0])) == (2048, 1345)
    capfd.readouterr()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    out, err = capfd.readouterr()
    assert "stretched to fit" not in out + err
    assert tuple(sam3d.settings.mask.size) == (2560, 1681)
