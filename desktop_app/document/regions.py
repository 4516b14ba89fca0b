"""Paint-with-words regions as the user edits them: a name, a display colour, the prompt words it
steers, a strength and a float mask at canvas size. Plain numpy; the frozen engine-side form is
document.job.Region."""

from __future__ import annotations

import colorsys
import itertools
import re
from dataclasses import dataclass, field

import numpy as np

from desktop_app.document.job import Region

_UIDS = itertools.count(1)

# Distinct, readable on photos and on the grey empty canvas.
# No reds or pinks: the inpaint mask is shown in red.
PALETTE = (
    (0, 130, 200), (255, 200, 0), (145, 30, 180), (60, 180, 75), (245, 130, 48),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40),
)


@dataclass(eq=False)
class RegionLayer:
    name: str
    colour: tuple[int, int, int]
    words: str
    strength: float
    mask: np.ndarray  # H x W float32 in [0, 1]
    adherence: float | None = field(default=None)  # set after a job, cleared on edit
    # The same region across undo states: a whole-document undo puts back copies of the regions,
    # and the undo commands that kept a region find its copy by this (copy() keeps it).
    uid: int = field(default_factory=lambda: next(_UIDS))

    @classmethod
    def empty(cls, name: str, colour: tuple[int, int, int], size: tuple[int, int],
              words: str = "", strength: float = 1.0) -> RegionLayer:
        w, h = size
        return cls(name, tuple(colour), words, float(strength), np.zeros((h, w), np.float32))

    def copy(self) -> RegionLayer:
        return RegionLayer(self.name, self.colour, self.words, self.strength, self.mask.copy(),
                           self.adherence, self.uid)

    def to_region(self) -> Region:
        return Region(words=self.words.strip(), mask=self.mask, strength=self.strength,
                      name=self.name)

    @classmethod
    def from_region(cls, region: Region, colour: tuple[int, int, int]) -> RegionLayer:
        return cls(region.name or region.words, tuple(colour), region.words,
                   float(region.strength), np.array(region.mask, np.float32, copy=True))


def phrase_spans(prompt: str, words: str) -> list[tuple[int, int]]:
    """Every occurrence of `words` in the prompt, case-insensitive, whole words only, any
    whitespace between them: how paint-with-words finds a region's tokens (engine.pww)."""
    parts = words.split()
    if not parts:
        return []
    pattern = r"(?<!\w)" + r"\s+".join(re.escape(p) for p in parts) + r"(?!\w)"
    return [m.span() for m in re.finditer(pattern, prompt, flags=re.IGNORECASE)]


def words_in_prompt(words: str, prompt: str) -> bool:
    """True when paint-with-words will find the region's words in the prompt: the same words, in
    order, with the same punctuation (the check ignored punctuation, so "red ball" passed for
    "a red, ball" and the job then warned that the words are not in the prompt)."""
    return bool(phrase_spans(prompt, words))


def _extra_colour(k: int) -> tuple[int, int, int]:
    """The k-th colour past the palette: golden-ratio steps over the hues from orange to purple
    (still no reds or pinks), at three brightnesses and saturations in turn."""
    hue = (25.0 + (k * 0.6180339887 % 1.0) * 265.0) / 360.0
    r, g, b = colorsys.hsv_to_rgb(hue, (0.85, 0.6, 1.0)[(k // 3) % 3], (0.95, 0.65, 0.45)[k % 3])
    return round(r * 255), round(g * 255), round(b * 255)


def next_colour(existing: list[RegionLayer]) -> tuple[int, int, int]:
    """The first palette colour no region has; past the palette, a colour of no region either
    (the 11th region was drawn in the 1st one's colour)."""
    used = {tuple(r.colour) for r in existing}
    for c in PALETTE:
        if c not in used:
            return c
    return next(c for k in itertools.count() if (c := _extra_colour(k)) not in used)
