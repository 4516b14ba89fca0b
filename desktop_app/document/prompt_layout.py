"""A paint-with-words layout read from the prompt's own position words.

"a red circle at the top left and a blue square on the right" names where each thing goes; this
turns every such phrase into a region: the words of its clause ("red circle at the top left")
bound to the named cell of a 3 x 3 grid. The idea is LLM-grounded diffusion's (Lian et al.,
2023: prompt -> layout -> layout-guided generation) with a fixed grammar in place of the
language model, so it runs offline and is predictable. The regions are ordinary ones: the user
sees and edits them before generating.

Grammar (case-insensitive): clauses are split at commas, semicolons, sentence ends, colons,
"and", "plus" and "as well as", and a clause naming several places also at a joining word between
them ("with", "next to", "while" ...); a clause with exactly one position phrase and at least one
other content word becomes a region. A place relative to another object ("to the left of the
tree") is not a position. A position phrase standing alone ("top left, a red circle") joins the next clause.
Background phrases ("on a gray background", "against a white backdrop", "a gray background
with ...") never become regions. Positions: corners (top left / upper right / bottom left
corner ...), edges (at the top, along the bottom, on the left side, in the middle right ...),
and the centre (in the center / middle / centre). Numpy only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from desktop_app.document.job import Region

_V = {"top": 0, "upper": 0, "bottom": 2, "lower": 2}
_H = {"left": 0, "right": 2}
_MID = r"(?:center|centre|middle)"
_TAIL = r"(?:\s+(?:corner|side|edge|part|half))?"
_PREP = r"(?:at|in|on|along|to|towards?)\s+the\s+"
_POSITIONS = [
    # corners: "at the top left corner", "in the upper right", a bare "bottom left"
    (re.compile(rf"(?<!\w)(?:{_PREP})?(?P<v>top|upper|bottom|lower)[\s-]+(?P<h>left|right)"
                rf"{_TAIL}(?!\w)", re.I), None),
    # top / bottom edge, optionally "top center", "top middle"
    (re.compile(rf"(?<!\w){_PREP}(?P<v>top|upper|bottom|lower)(?:\s+{_MID})?{_TAIL}(?!\w)",
                re.I), None),
    # left / right edge, optionally "middle left"
    (re.compile(rf"(?<!\w){_PREP}(?:{_MID}\s+)?(?P<h>left|right){_TAIL}(?!\w)", re.I), None),
    (re.compile(rf"(?<!\w){_PREP}{_MID}(?!\w)", re.I), (1, 1)),
]
_SPLIT = re.compile(r"\s*(?:[,;\n]|[.!?:]+(?=\s|$))\s*(?:and\s+)?"
                    r"|\s+(?:and|plus|as\s+well\s+as)\s+", re.I)
# Words that join two objects inside one clause; a clause naming two places is split at the one
# between them ("a red circle at the top left with a blue square at the bottom right").
_JOIN = re.compile(r"\s+(?:with|next\s+to|beside|alongside|along\s+with|together\s+with|near|"
                   r"while|whereas|and\s+then|then)\s+", re.I)
# "to the left of the tree" is relative to another object, not a place on the canvas; "at the
# top of the image" is a place.
_RELATIVE = re.compile(r"\s+of\s+(?!(?:the|this|an?|our|my)\s+(?:image|picture|canvas|frame|"
                       r"scene|photo|photograph|painting|composition|page|view)\b)", re.I)
_BACKGROUND = re.compile(
    r"(?:(?<!\w)(?:on|against|with|over|in\s+front\s+of)\s+(?:(?:a|an|the)\s+)?)?"
    r"(?<!\w)(?:[\w-]+\s+){0,3}?(?:background|backdrop)(?!\w)(?:\s*(?:with|showing|:))?", re.I)
_LEAD = re.compile(r"^(?:(?:there\s+(?:is|are)|(?:a|an)\s+(?:drawing|image|picture|photo)\s+of)"
                   r"(?:\s+|$))?(?:(?:a|an|the)(?:\s+|$))?", re.I)
_FILLER = re.compile(r"\s+(?:placed|that\s+sits|which\s+sits|sitting|located|positioned)$", re.I)
_WORD = re.compile(r"\w+")
MAX_REGIONS = 9  # one per cell of the grid; a prompt naming more places keeps its first nine
READ_CHARS = 4000  # far past any text encoder's window (77 tokens); keeps typing responsive


@dataclass(frozen=True)
class PromptRegion:
    words: str  # a phrase of the prompt, exactly as written there
    cell: tuple[int, int]  # (row, column) in the 3 x 3 grid

    def mask(self, width: int, height: int) -> np.ndarray:
        """The cell as a float mask (1 inside) at width x height."""
        row, col = self.cell
        m = np.zeros((height, width), np.float32)
        m[round(row * height / 3):round((row + 1) * height / 3),
          round(col * width / 3):round((col + 1) * width / 3)] = 1.0
        return m


def _positions(text: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The position phrases in `text`, left to right, as (span, (row, column)); where matches
    overlap the longest at the earliest start wins ("top left corner" over "top")."""
    found = []
    for pattern, fixed in _POSITIONS:
        for m in pattern.finditer(text):
            v, h = m.groupdict().get("v"), m.groupdict().get("h")
            cell = fixed or (_V[v.lower()] if v else 1, _H[h.lower()] if h else 1)
            found.append((m.span(), cell))
    found = [f for f in found if not _RELATIVE.match(text, f[0][1])]
    found.sort(key=lambda f: (f[0][0], -(f[0][1] - f[0][0])))
    out, end = [], -1
    for span, cell in found:
        if span[0] >= end:
            out.append((span, cell))
            end = span[1]
    return out


def _split_between_places(prompt: str, a: int, b: int) -> list[tuple[int, int]]:
    """The clause prompt[a:b] as it is, or, when it names several places with a joining word
    (_JOIN) between each two of them, cut at the last such word before each next place."""
    text = prompt[a:b]
    positions = _positions(text)
    cuts = []
    for ((_, end), _), ((start, _), _) in zip(positions, positions[1:], strict=False):
        joins = list(_JOIN.finditer(text, end, start))
        if not joins:
            return [(a, b)]
        cuts.append(joins[-1].span())
    out, pos = [], a
    for ja, jb in cuts:
        out.append((pos, a + ja))
        pos = a + jb
    out.append((pos, b))
    return out


def regions_from_prompt(prompt: str) -> list[PromptRegion]:
    """Every clause of the prompt that says where its subject goes, as a region (see module);
    at most MAX_REGIONS, the first ones (a text encoder reads only the start of a long prompt
    anyway, and each region is a full-size mask), found in the first READ_CHARS characters."""
    cut = len(prompt) > READ_CHARS
    prompt = prompt[:READ_CHARS]
    # Background phrases are cut out first: they are not objects, and "with" inside them joins
    # a background to the objects rather than to another clause.
    pieces, last = [], 0
    for m in _BACKGROUND.finditer(prompt):
        if m.group(0).strip():
            pieces.append((last, m.start()))
            last = m.end()
    pieces.append((last, len(prompt)))
    clauses: list[tuple[int, int]] = []
    for a, b in pieces:
        pos = a
        for m in _SPLIT.finditer(prompt, a, b):
            clauses.append((pos, m.start()))
            pos = m.end()
        clauses.append((pos, b))
    if cut:
        clauses.pop()  # the clause the cut went through is not whole
    clauses = [part for a, b in clauses for part in _split_between_places(prompt, a, b)]
    out: list[PromptRegion] = []
    pending: tuple[int, tuple[int, int]] | None = None  # a position phrase standing alone
    for a, b in clauses:
        text = prompt[a:b]
        positions = _positions(text)
        if len(positions) > 1:
            pending = None
            continue
        found = positions[0] if positions else None
        rest = text
        if found:
            (pa, pb), cell = found
            rest = text[:pa] + " " + text[pb:]
        content = _WORD.findall(_FILLER.sub("", _LEAD.sub("", rest.strip())))
        if found and not content:
            pending = (a, cell)
            continue
        if pending and not found and content:
            start, cell = pending
        elif found and content:
            start, cell = a, found[1]
        else:
            pending = None
            continue
        pending = None
        phrase = prompt[start:b]
        offset = len(phrase) - len(phrase.lstrip())
        offset += _LEAD.match(phrase[offset:]).end()
        words = phrase[offset:].strip(" ,;")
        if words:
            out.append(PromptRegion(words, cell))
            if len(out) == MAX_REGIONS:
                break
    return out


def prompt_regions(prompt: str, width: int, height: int, strength: float) -> tuple[Region, ...]:
    """The regions Regions > From prompt and `generate --regions-from-prompt` make: one per
    place the prompt names, its cell at width x height, at `strength`."""
    return tuple(Region(r.words, r.mask(width, height), strength)
                 for r in regions_from_prompt(prompt))
