"""Captions → names, descriptions and tags (utils/captions.py, no Blender)."""

from __future__ import annotations

import pytest

from utils import captions


@pytest.mark.parametrize("stem", ["IMG_4471", "img-0001", "DSC0042", "DSCF1234", "PXL_20240501_103211123", "0", "12",
                                  "mask_0", "mask3", "image", "Image_2", "photo", "scan 004",
                                  "2024-05-01 10.32.11", "Screenshot 2024-05-01", "untitled", "object_7_mask",
                                  "3f2b1c9e-0d4a-4e8b-9c1d-2a3b4c5d6e7f", "WhatsApp Image 2024-05-01 at 10.32.11", ""])
def test_file_names_a_camera_or_a_tool_makes_up_say_nothing(stem: str) -> None:
    assert captions.is_anonymous(stem)


@pytest.mark.parametrize("stem", ["oak_chair", "lamp2", "bench", "red-vase", "Sofa", "imagery",
                                  "masked_bandit", "table_top"])
def test_a_meaningful_file_name_is_kept(stem: str) -> None:
    assert not captions.is_anonymous(stem)


@pytest.mark.parametrize(("caption", "name"), [
    ("A wooden chair with a red cushion.", "Wooden Chair"),
    ("The image shows a brass desk lamp on a white background", "Brass Desk Lamp"),
    ("a small ceramic vase sitting on a table", "Small Ceramic Vase"),
    ("This is a photo of an old leather armchair and a rug", "Old Leather Armchair"),
    ("Close-up of a green velvet three-seat sofa, isolated", "Green Velvet Three-seat Sofa"),
    ("Vintage red bicycle", "Vintage Red Bicycle"),
    ("a large ornate carved gilded baroque mirror frame", "Gilded Baroque Mirror Frame"),  # its last four words
])
def test_a_name_is_the_captions_first_noun_phrase_in_title_case(caption: str, name: str) -> None:
    assert captions.short_name(caption) == name


def test_a_caption_of_no_words_gives_no_name_and_no_tags() -> None:
    assert captions.short_name("") == captions.short_name("1234 ... !!") == ""
    assert captions.tags("") == []


def test_tags_are_the_content_words_each_once_then_the_catalog() -> None:
    got = captions.tags("A wooden chair with a wooden back and a red cushion, shown on a white background.", "Chairs")
    assert got == ["wooden", "chair", "back", "red", "cushion", "Chairs"]
    assert len(captions.tags(" ".join(f"word{c}x" for c in "abcdefghijklmnop"))) == captions.MAX_TAGS


def test_a_hostile_caption_is_one_bounded_line_of_text() -> None:
    assert captions.clean(None) == captions.clean(42) == captions.clean({"text": "x"}) == ""
    text = captions.clean("a chair\n\x00\x1b[31mred\u202e\tlamp " + "very " * 500)
    assert "\n" not in text and "\x00" not in text and "\x1b" not in text and "\u202e" not in text and "\t" not in text
    assert text.startswith("a chair [31mred lamp very") and len(text) <= captions.MAX_CAPTION + 1
    assert text.endswith("…")
    assert captions.short_name("\x00" * 10_000_000) == ""  # bounded before it is read
