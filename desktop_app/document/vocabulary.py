"""A model's known words: a model folder may list, in vocabulary.txt, every word its captions used
in training (the built-in model does); prompt words outside it are words the model never saw, so
the person is told rather than left to wonder why a "cat" came out as a circle."""

from __future__ import annotations

import re
import unicodedata

# A word: a run of letters or digits in any script ("café", "红色", "3"), or one symbol such as an
# emoji; punctuation (any script's) separates words.
WORD = re.compile(r"[^\W_]+|[^\w\s]")
SHOW_AT_MOST = 6


def prompt_words(text: str) -> list[str]:
    return [w for w in WORD.findall(text.lower())
            if len(w) > 1 or not unicodedata.category(w).startswith("P")]


def unknown_words(prompt: str, vocabulary: frozenset[str]) -> list[str]:
    """The prompt's words outside `vocabulary`, each once, in prompt order."""
    seen: dict[str, None] = {}
    for w in prompt_words(prompt):
        if w not in vocabulary:
            seen.setdefault(w)
    return list(seen)


def unknown_words_warning(prompt: str, vocabulary: frozenset[str] | None) -> str | None:
    if not vocabulary:
        return None
    words = unknown_words(prompt, vocabulary)
    if not words:
        return None
    shown = ", ".join(repr(w) for w in words[:SHOW_AT_MOST])
    more = f" and {len(words) - SHOW_AT_MOST} more" if len(words) > SHOW_AT_MOST else ""
    return (f"this model never saw {shown}{more} in training (its words are listed in the model "
            "folder's vocabulary.txt); it will likely ignore them")
