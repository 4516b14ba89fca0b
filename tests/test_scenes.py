from __future__ import annotations

import numpy as np

from desktop_app.training import scenes


def test_render_uses_palette_and_shapes_do_not_touch():
    rng = np.random.default_rng(1)
    for _ in range(20):
        scene = scenes.random_scene(rng)
        img = scenes.render(scene)
        assert img.shape == (256, 256, 3) and img.dtype == np.uint8
        assert tuple(img[0, 0]) == scenes.BACKGROUNDS[scene.background]
        assert len({s.cell for s in scene.shapes}) == len(scene.shapes)
        for s in scene.shapes:
            assert s.color != scene.background
            cx, cy = scenes.cell_center(s.cell)
            assert tuple(img[int(cy), int(cx)]) == scenes.COLORS[s.color]


def test_training_scenes_never_contain_held_out_objects():
    rng = np.random.default_rng(2)
    for _ in range(300):
        scene = scenes.random_scene(rng, held_out=False)
        assert not any(scenes.is_held_out(*s.key()) for s in scene.shapes)
    held = [scenes.random_scene(rng, held_out=True) for _ in range(50)]
    assert all(scenes.is_held_out(*s.shapes[0].key()) for s in held)


def test_captions_mention_every_attribute_when_nothing_is_dropped():
    rng = np.random.default_rng(3)
    scene = scenes.random_scene(rng, n_objects=2)
    text = scenes.caption(scene, rng, drop_rate=0.0)
    for s in scene.shapes:
        assert s.color in text and s.shape in text
    assert scene.background in text


def test_foreground_map_covers_exactly_the_shapes_at_latent_resolution():
    from desktop_app.training import data

    scene = scenes.Scene("gray", (scenes.Shape("red", "square", "big", 0),
                                  scenes.Shape("blue", "circle", "small", 8)))
    fg = data.foreground(scene)
    assert fg.shape == (32, 32)
    # Each shape's coverage sums to its area in 8x8 blocks, within anti-aliasing.
    assert abs(fg[:11, :11].sum() - 70 * 70 / 64) < 3
    assert abs(fg[21:, 21:].sum() - np.pi * 19 * 19 / 64) < 3
    assert fg.sum() == fg[:11, :11].sum() + fg[21:, 21:].sum()  # nothing anywhere else


def test_the_shipped_vocabulary_holds_every_caption_word_and_nothing_else():
    # The app warns about prompt words outside models/builtin/vocabulary.txt: a word the captions
    # use but the file lacks would be a false warning; a stale file would miss real ones.
    from pathlib import Path

    from desktop_app.document.vocabulary import prompt_words

    shipped = (Path(__file__).resolve().parents[1] / "models" / "builtin" / "vocabulary.txt")
    words = set(shipped.read_text().split())
    assert sorted(words) == scenes.vocabulary()
    rng = np.random.default_rng(17)
    used: set[str] = set()
    for _ in range(3000):
        scene = scenes.random_scene(rng, held_out=None)
        for text in (scenes.caption(scene, rng), scenes.canonical_caption(scene)):
            used |= set(prompt_words(text))
    assert used <= words
    assert {"cat", "dog", "house"}.isdisjoint(words)


def _size_and_place_words(text: str) -> tuple[set[str], set[str]]:
    words = set(text.replace(",", " ").replace(";", " ").replace(":", " ").split())
    sizes = {w for ws in scenes._SIZE_WORDS.values() for w in ws}
    places = {"left", "right", "top", "bottom", "center", "centre", "middle", "upper", "lower"}
    return words & sizes, words & places


def test_captions_leave_out_sizes_or_places_when_asked_and_keep_the_objects():
    # The bare captions (data.prepare_bare) teach prompts that name only colour and shape.
    rng = np.random.default_rng(5)
    for _ in range(200):
        scene = scenes.random_scene(rng, n_objects=int(rng.integers(1, 4)))
        for with_size, with_pos in ((False, True), (True, False), (False, False)):
            text = scenes.caption(scene, rng, with_size=with_size, with_pos=with_pos)
            sizes, places = _size_and_place_words(text)
            assert bool(sizes) == with_size and bool(places) == with_pos, text
            for s in scene.shapes:
                assert s.color in text and s.shape in text
    bare = scenes.bare_caption(scene)
    assert _size_and_place_words(bare) == (set(), set())
    assert scene.background in bare
