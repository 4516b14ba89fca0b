"""Prompt words a model never saw: found in the prompt, reported once each, and only when the
model folder lists its vocabulary; the engine and the prompt box both say so."""

from __future__ import annotations

import shutil

import pytest
from fake_engine import FakeEngine

from desktop_app.document.job import EngineError, JobKind, JobRequest
from desktop_app.document.vocabulary import unknown_words, unknown_words_warning

KNOWN = frozenset("a an and red blue circle square on gray background at the top left".split())


def test_unknown_words_are_listed_once_in_prompt_order():
    prompt = "A red CAT, a blue dog and a red cat on a gray background!"
    assert unknown_words(prompt, KNOWN) == ["cat", "dog"]
    assert unknown_words("a red circle at the top left", KNOWN) == []


def test_words_of_any_script_digits_and_emoji_count_and_punctuation_does_not():
    # Only a-z runs used to count: "红色" and "🐱" went unreported and "café" read as "caf".
    prompt = "a red café, 红色 🐱 circle—3 squares! «on» the top-left。"
    assert unknown_words(prompt, KNOWN) == ["café", "红色", "🐱", "3", "squares"]


def test_the_warning_names_the_words_and_is_silent_without_a_vocabulary():
    assert unknown_words_warning("a red cat", None) is None
    assert unknown_words_warning("a red circle", KNOWN) is None
    note = unknown_words_warning("a red cat", KNOWN)
    assert "'cat'" in note and "'red'" not in note
    many = unknown_words_warning("one two three four five six seven eight", KNOWN)
    assert "'six'" in many and "'seven'" not in many and "and 2 more" in many


@pytest.fixture
def builtin_copy(tiny_builtin, tmp_path):
    return shutil.copytree(tiny_builtin, tmp_path / "model")


def _request(prompt: str) -> JobRequest:
    return JobRequest(kind=JobKind.TEXT_TO_IMAGE, prompt=prompt, seed=1, steps=1, cfg_scale=2.0,
                      width=64, height=64)


def test_the_engine_warns_about_words_the_model_never_saw(builtin_copy):
    from desktop_app.engine import Engine

    (builtin_copy / "vocabulary.txt").write_text("\n".join(sorted(KNOWN)) + "\n")
    engine = Engine(device="cpu")
    info = engine.load(builtin_copy)
    assert info.vocabulary == KNOWN
    warned = engine.run(_request("a red cat on a gray background")).warnings
    assert any("'cat'" in w for w in warned)
    assert not any("vocabulary" in w for w in engine.run(_request("a red circle")).warnings)


def test_a_model_without_a_word_list_gets_no_vocabulary_warning(tiny_builtin):
    from desktop_app.engine import Engine

    engine = Engine(device="cpu")
    assert engine.load(tiny_builtin).vocabulary is None
    assert not any("vocabulary" in w for w in engine.run(_request("a red cat")).warnings)


def test_an_empty_word_list_is_named(builtin_copy):
    from desktop_app.engine import Engine

    (builtin_copy / "vocabulary.txt").write_text("\n\n")
    with pytest.raises(EngineError, match="vocabulary.txt: lists no words"):
        Engine(device="cpu").load(builtin_copy)


def test_a_word_list_from_an_editor_is_split_as_prompts_are(tmp_path):
    from desktop_app.engine.loading import model_vocabulary

    # Notepad's byte-order mark was part of the first word, and "Red," never matched "red": both
    # words were reported as never seen.
    (tmp_path / "vocabulary.txt").write_bytes("\ufeffcat\r\nRed,\r\ncafé\r\n".encode())
    words = model_vocabulary(tmp_path)
    assert words == frozenset({"cat", "red", "café"})
    assert unknown_words("a red cat in a café", words) == ["a", "in"]


def test_the_prompt_box_shows_words_the_model_never_saw(qtbot, make_window):
    engine = FakeEngine(vocabulary=KNOWN)
    window = make_window(engine)
    hint = window.panel.vocabulary_hint
    window.panel.prompt.setPlainText("a red circle on a gray background")
    assert hint.isHidden()
    window.panel.prompt.setPlainText("a red cat and a blue dog")
    assert not hint.isHidden() and "cat, dog" in hint.text()
    engine.vocabulary = None  # a model that does not list its words: no hint
    with qtbot.waitSignal(window.client.model_loaded, timeout=5000):
        window.models.open("/models/sd15")
    assert hint.isHidden()
