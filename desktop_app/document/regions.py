"""Paint-with-words regions as the user edits them: a name, a display colour, the prompt words it
steers, a strength and a float mask at canvas size. Plain numpy; the frozen engine-side form is
document.job.Region."""

from __future__ import annotations

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


def _normalise(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def words_in_prompt(words: str, prompt: str) -> bool:
    """True when the region's words occur as a contiguous run of whole words in the prompt, which is
    what paint-with-words needs to find their tokens."""
    want = _normalise(words)
    have = _normalise(prompt)
    if not want:
        return False
    n = len(want)
    return any(have[i:i + n] == want for i in range(len(have) - n + 1))


def next_colour(existing: list[RegionLayer]) -> tuple[int, int, int]:
    used = {r.colour for r in existing}
    for c in PALETTE:
        if c not in used:
            return c
    return PALETTE[len(existing) % len(PALETTE)]
