"""What a caption of an object gives an asset: a short name (when its file name says nothing), a description and
search tags. Pure text rules, no Blender and no language model: a caption is a server's answer, so it is cleaned
and bounded first, and every rule here works on whatever text comes.
"""

from __future__ import annotations

import re
import unicodedata

MAX_CAPTION = 400  # characters kept of a caption: a description, not an essay
MAX_NAME_WORDS = 4
MAX_TAGS = 10


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# File names a camera, a phone, a scanner or a mask tool makes up: they say nothing of what is in the picture.
_ANONYMOUS = re.compile(
    r"""^(?:
        (?:img|dsc|dscn|dscf|dcim|pxl|mvimg|gopr|dji|sam|p|photo|image|picture|pic|scan|screenshot|mask|object|
           untitled|capture|frame|shot|export|render|file|item|asset|download)
        [\s_.-]*(?:\d[\d\s_.-]*)?(?:mask)?
      | [\d\s_.-]+                                       # a number, a date, a time
      | [0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}  # a UUID
      | (?:wp|whatsapp\s*image|signal)[\s_.-].*           # a messenger's export
    )$""", re.IGNORECASE | re.VERBOSE)
# Words a caption uses that are no noun or adjective of the object: what is left is what a person searches for.
_FUNCTION_WORDS = _word_set("""
a an the this that these those it its it's there here is are was were be been being has have had having do does
did of in on at by for from with without into onto over under above below near beside behind between against
and or but nor so yet as than then while which who whom whose what where when why how not no very quite rather
some any each every all both either neither one two three several many few more most other another such own
same just only also too up down out off about around through across along toward towards upon within
image picture photo photograph shot view close closeup close-up background foreground white black-and-white
shown showing shows depicted depicting features featuring appears appear looks look seen sits sitting stands
standing placed lying rests resting set isolated single object item thing made displayed display against
can could may might will would should must its their his her our your my we they he she you i me them him us
""")
_WORD = re.compile(r"[^\W\d_](?:[^\W_]|['’-](?=[^\W\d_]))*", re.UNICODE)


def clean(text: object) -> str:
    """A caption as it may be shown and stored: text only, no control characters, one line, bounded."""
    if not isinstance(text, str):
        return ""
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in text[: MAX_CAPTION * 4])
    text = " ".join(text.split())
    if len(text) > MAX_CAPTION:
        text = text[:MAX_CAPTION].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return text


def is_anonymous(stem: str) -> bool:
    """Whether a file name (without its extension) says nothing of what is in the picture: `IMG_4471`, `DSC0042`,
    `0`, `mask_3`, `image`, `2024-05-01 10.32.11`, a UUID. `oak_chair` and `lamp2` say something."""
    return not stem.strip() or bool(_ANONYMOUS.match(stem.strip()))


def _words(caption: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(clean(caption))]


# Where a caption's first noun phrase ends: a preposition, a verb of pose, a clause or a list.
_PHRASE_END = _word_set("""with without on in at by for from into onto over under above below near beside behind
between against and or but that which who is are was were sits sitting stands standing placed lying rests
resting shown showing set isolated against featuring has having""")
_LEADING = _word_set("a an the this that it is there here of image picture photo photograph shot view close "
                     "closeup close-up shows showing depicts depicting")


def short_name(caption: str) -> str:
    """A name from a caption: its first noun phrase, at most MAX_NAME_WORDS words, in title case ("A wooden chair
    with a red cushion." → "Wooden Chair"). Empty when the caption holds no word."""
    words = _words(re.split(r"[.!?;:,(\[]", clean(caption), maxsplit=1)[0])
    while words and words[0] in _LEADING:
        words.pop(0)
    phrase: list[str] = []
    for word in words:
        if word in _PHRASE_END:
            break
        phrase.append(word)
    phrase = [w for w in phrase if w not in _FUNCTION_WORDS][-MAX_NAME_WORDS:] or [
        w for w in words if w not in _FUNCTION_WORDS][:1]
    return " ".join(w[:1].upper() + w[1:] for w in phrase)


def tags(caption: str, *extra: str) -> list[str]:
    """Search tags: the caption's content words (its nouns and adjectives, in order, each once), then `extra`
    (the catalog…), at most MAX_TAGS."""
    seen: list[str] = []
    for word in [*_words(caption), *(e.strip() for e in extra)]:
        if len(word) > 1 and word.lower() not in _FUNCTION_WORDS and word not in seen:
            seen.append(word)
    return seen[:MAX_TAGS]
