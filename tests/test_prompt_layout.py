"""Regions read from the prompt's own position words (document.prompt_layout)."""

import numpy as np
import pytest

from desktop_app.document.prompt_layout import MAX_REGIONS, regions_from_prompt
from desktop_app.document.regions import words_in_prompt
from desktop_app.training import scenes


def cells(prompt: str) -> list[tuple[str, tuple[int, int]]]:
    return [(r.words, r.cell) for r in regions_from_prompt(prompt)]


@pytest.mark.parametrize("prompt, expected", [
    ("a big red circle at the top left and a small blue square at the bottom right on a gray "
     "background", [("big red circle at the top left", (0, 0)),
                    ("small blue square at the bottom right", (2, 2))]),
    ("a cat on the left and a dog on the right, photo, 4k",
     [("cat on the left", (1, 0)), ("dog on the right", (1, 2))]),
    ("a man with a hat in the upper right corner; a lake at the bottom",
     [("man with a hat in the upper right corner", (0, 2)), ("lake at the bottom", (2, 1))]),
    # a position before its object, and an object in the middle
    ("top left, a red circle, and a green triangle in the center",
     [("top left, a red circle", (0, 0)), ("green triangle in the center", (1, 1))]),
    # the background is never a region, however it is phrased
    ("a gray background with a red circle on the right", [("red circle on the right", (1, 2))]),
    ("there is a yellow square in the middle left against a light blue backdrop",
     [("yellow square in the middle left", (1, 0))]),
    # nothing to place
    ("a red circle and a blue square on a gray background", []),
    ("a portrait of a woman, oil painting", []),
    # place words only count as whole words ("stop left" is not "top left")
    ("a dog by the bus stop left of a tree and a cat on the right",
     [("cat on the right", (1, 2))]),
    # a clause naming two places is ambiguous and is left alone
    ("a road from the top left to the bottom right", []),
    # ... unless a joining word stands between them
    ("a man with a hat at the top left with a dog at the bottom right",
     [("man with a hat at the top left", (0, 0)), ("dog at the bottom right", (2, 2))]),
    ("a red circle at the top left next to a blue square in the center",
     [("red circle at the top left", (0, 0)), ("blue square in the center", (1, 1))]),
    # sentences and colons end clauses too (a decimal point does not)
    ("top left: a red circle. Bottom right: a blue square.",
     [("top left: a red circle", (0, 0)), ("Bottom right: a blue square", (2, 2))]),
    ("a 1.5 m tall man on the left and a dog on the right",
     [("1.5 m tall man on the left", (1, 0)), ("dog on the right", (1, 2))]),
    # a place relative to another object is not a place on the canvas; one of the image is
    ("a red circle to the left of a blue square", []),
    ("a tree at the top of the image and a cat to the right of the tree",
     [("tree at the top of the image", (0, 1))]),
])
def test_position_phrases_become_regions_of_their_clause(prompt, expected):
    assert cells(prompt) == expected
    for words, _ in expected:
        assert words_in_prompt(words, prompt)  # paint-with-words can find every region's words


def test_a_region_covers_its_third_of_the_image():
    (region,) = regions_from_prompt("a red circle at the top right")
    m = region.mask(300, 150)
    assert m.shape == (150, 300) and m.dtype == np.float32
    assert m[:50, 200:].min() == 1.0 and m.sum() == 50 * 100  # exactly the top-right cell


def test_every_object_of_a_training_caption_lands_in_its_own_cell():
    """The built-in model's captions word positions a dozen ways; every region the reader finds
    must name the colour and shape of the object that sits in its cell, and a caption that says
    where things are yields one region per object."""
    rng = np.random.default_rng(11)
    found = 0
    for _ in range(300):
        scene = scenes.random_scene(rng, held_out=None, n_objects=int(rng.integers(1, 4)))
        caption = scenes.caption(scene, rng)
        regions = regions_from_prompt(caption)
        if not regions:
            continue
        found += 1
        assert sorted(r.cell for r in regions) == sorted(divmod(s.cell, 3) for s in scene.shapes)
        for r in regions:
            (shape,) = [s for s in scene.shapes if divmod(s.cell, 3) == r.cell]
            assert shape.color in r.words and shape.shape in r.words, (caption, r)
    assert found > 240  # ~12% of captions leave positions out


def test_a_huge_prompt_gives_at_most_one_region_per_cell_quickly():
    prompt = "a red circle at the top left and a blue square on the right, " * 3000
    regions = regions_from_prompt(prompt)
    assert len(regions) == MAX_REGIONS
    assert regions[0].words == "red circle at the top left"
    assert regions_from_prompt("x" * 200_000) == [] and regions_from_prompt("") == []
