"""The regions panel and region painting: add/remove/rename, words from the prompt's selection,
the inline warning, painting with brush and rectangle, undo/redo, snapshot, layout round trip."""

from __future__ import annotations

import numpy as np
import pytest
from fake_engine import FakeEngine
from PySide6.QtGui import QTextCursor

from desktop_app.document.job import JobKind
from desktop_app.document.regions import words_in_prompt


def select_in_prompt(panel, text: str, word: str) -> None:
    panel.prompt.setPlainText(text)
    cursor = panel.prompt.textCursor()
    start = text.index(word)
    cursor.setPosition(start)
    cursor.setPosition(start + len(word), QTextCursor.MoveMode.KeepAnchor)
    panel.prompt.setTextCursor(cursor)


def test_add_region_from_the_prompt_selection_and_paint_it(qtbot, make_window):
    window = make_window(load=False)
    select_in_prompt(window.panel, "a blue cat on a sofa", "blue cat")
    window.regions_panel.add_button.click()
    region = window.doc.regions[0]
    assert region.words == "blue cat" and window.tool.target == "region"
    assert not window.regions_panel.warning.isVisibleTo(window.regions_panel)
    window.tool.set_shape("rect")
    window.tool.press(4, 6)
    window.tool.release(19, 29)
    assert region.mask[6:30, 4:20].all() and region.mask.sum() == 16 * 24
    assert not window.doc.mask.any()  # the inpaint mask is untouched
    window.undo.undo()
    assert not region.mask.any()
    window.undo.redo()
    assert region.mask.sum() == 16 * 24
    overlay = window.layers.regions.buf
    assert overlay[10, 10, 3] > 0 and overlay[40, 40, 3] == 0


def test_use_selection_sets_the_selected_regions_words(qtbot, make_window):
    window = make_window(load=False)
    window.regions.add("")
    select_in_prompt(window.panel, "a red ball on green grass", "green grass")
    window.regions_panel.use_selection.click()
    assert window.doc.regions[0].words == "green grass"
    assert window.regions_panel.words.text() == "green grass"


def test_words_not_in_the_prompt_warn_inline(qtbot, make_window):
    window = make_window(load=False)
    window.panel.prompt.setPlainText("a cat on a sofa")
    region = window.regions.add("dog")
    panel = window.regions_panel
    assert panel.warning.isVisibleTo(panel) and "dog" in panel.warning.text()
    window.regions.set_words(region, "sofa")
    panel.check_words()
    assert not panel.warning.isVisibleTo(panel)
    window.panel.prompt.setPlainText("a cat on a bed")  # editing the prompt re-checks
    assert panel.warning.isVisibleTo(panel)


@pytest.mark.parametrize("words,prompt,found", [
    ("blue cat", "A Blue cat, sitting", True),
    ("cat", "a catalogue", False),
    ("sofa", "cat on a sofa.", True),
    ("", "anything", False),
    # as paint-with-words finds them: punctuation between the words must be the prompt's
    ("red ball", "a red, ball", False),
    ("red, ball", "a red ball", False),
    ("circle, blue", "a red circle,\nblue square", True),
])
def test_words_in_prompt(words, prompt, found):
    assert words_in_prompt(words, prompt) is found


def test_regions_panel_edits_and_removal_are_undoable(qtbot, make_window):
    window = make_window(load=False)
    panel = window.regions_panel
    panel.add_button.click()
    panel.add_button.click()
    assert [r.name for r in window.doc.regions] == ["Region 1", "Region 2"]
    assert window.doc.regions[0].colour != window.doc.regions[1].colour
    item = panel.list.item(1)
    item.setText("sky")
    assert window.doc.regions[1].name == "sky"
    panel.strength.setValue(2.5)
    assert window.doc.regions[1].strength == 2.5
    panel.remove_button.click()
    assert [r.name for r in window.doc.regions] == ["Region 1"]
    window.undo.undo()
    assert [r.name for r in window.doc.regions] == ["Region 1", "sky"]


def test_regions_go_into_the_request_on_top_of_the_job_kind(qtbot, make_window):
    window = make_window(load=False)
    window.panel.prompt.setPlainText("a red ball")
    region = window.regions.add("red ball")
    window.tool.press(30, 30)
    window.tool.release(30, 30)
    empty = window.regions.add("unused")  # never painted: not sent
    request = window.doc.snapshot(window.panel.settings())
    assert request.kind is JobKind.TEXT_TO_IMAGE
    assert [r.words for r in request.regions] == ["red ball"]
    assert np.array_equal(request.regions[0].mask, region.mask)
    assert empty.mask.sum() == 0
    region.mask[0, 0] = 1.0  # the request is a frozen copy
    assert request.regions[0].mask[0, 0] == 0.0
    request.validate()


def test_new_regions_start_at_the_models_recommended_strength(qtbot, make_window, tmp_path):
    engine = FakeEngine(default_region_strength=8.0)  # like the built-in model
    window = make_window(engine)
    first = window.regions.add("red ball")
    assert first.strength == 8.0
    assert window.regions_panel.strength.value() == 8.0  # the panel shows it
    window.regions.set_strength(first, 2.0)
    engine.default_region_strength = None  # a model that recommends nothing: eDiff-I's 1
    with qtbot.waitSignal(window.client.model_loaded, timeout=5000):
        window.models.open("/models/sd15")
    assert window.regions.add("green grass").strength == 1.0
    assert first.strength == 2.0  # a region on the canvas keeps what the person set
    path = tmp_path / "layout.json"  # a hand-written layout that gives no strength
    path.write_text('{"version": 1, "regions": [{"words": "sky", "rect": [0, 0, 8, 8]}]}')
    engine.default_region_strength = 8.0
    with qtbot.waitSignal(window.client.model_loaded, timeout=5000):
        window.models.open(None)
    assert window.actions_.load_layout(str(path)), window.last_error
    assert [r.strength for r in window.doc.regions] == [8.0]


def test_layout_save_and_load_round_trip(qtbot, make_window, tmp_path):
    pytest.importorskip("desktop_app.document.layout")
    window = make_window(load=False)
    a = window.regions.add("red ball")
    window.tool.set_shape("rect")
    window.tool.press(2, 2)
    window.tool.release(20, 30)
    window.regions.set_strength(a, 1.5)
    window.regions.add("green grass")
    window.tool.press(30, 40)
    window.tool.release(60, 60)
    saved = [(r.words, r.strength, r.mask.copy()) for r in window.doc.regions]
    path = tmp_path / "layout.json"
    assert window.actions_.save_layout(str(path)), window.last_error
    window.regions.remove(window.doc.regions[0])
    window.regions.remove(window.doc.regions[0])
    assert window.actions_.load_layout(str(path)), window.last_error
    loaded = [(r.words, r.strength, r.mask) for r in window.doc.regions]
    assert [(w, s) for w, s, _ in loaded] == [(w, s) for w, s, _ in saved]
    for (_, _, m1), (_, _, m2) in zip(loaded, saved, strict=True):
        assert np.abs(m1 - m2).max() < 1 / 255 + 1e-6
    window.undo.undo()
    assert window.doc.regions == []


def test_regions_from_the_prompt_place_each_clause_and_undo_restores_the_old_ones(
        qtbot, make_window):
    window = make_window(FakeEngine(default_region_strength=8.0))
    window.regions.add("sofa")  # a region the person made before
    window.panel.prompt.setPlainText("a red circle at the top left and a blue square on the right "
                                     "on a gray background")
    window.regions_panel.from_prompt_button.click()
    regions = window.doc.regions
    assert [(r.words, r.strength) for r in regions] == [
        ("red circle at the top left", 8.0), ("blue square on the right", 8.0)]
    h, w = regions[0].mask.shape
    assert regions[0].mask[: h // 3, : w // 3].all() and regions[0].mask.sum() == (h // 3) * (w // 3)
    assert regions[1].mask[h // 3: 2 * h // 3, -(w // 3):].all()
    assert window.tabs.currentWidget() is window.regions_panel
    assert "2 regions" in window.statusBar().currentMessage()
    window.undo.undo()
    assert [r.words for r in window.doc.regions] == ["sofa"]
    # A prompt that names no place says so and changes nothing.
    window.panel.prompt.setPlainText("a cat on a sofa")
    window.regions_panel.from_prompt_button.click()
    assert [r.words for r in window.doc.regions] == ["sofa"] and "where" in window.last_error


def test_a_prompt_that_says_where_offers_to_place_it_until_there_are_regions(qtbot, make_window):
    window = make_window(load=False)
    hint = window.panel.placement_hint
    window.panel.prompt.setPlainText("a cat on a sofa")
    assert not hint.isVisibleTo(window.panel)
    # One place: the model puts a lone subject where the prompt says; a region would only bias it.
    window.panel.prompt.setPlainText("a cat on the left")
    assert not hint.isVisibleTo(window.panel)
    window.panel.prompt.setPlainText("a cat on the left and a dog in the top right corner")
    assert hint.isVisibleTo(window.panel) and "2 things" in hint.text()
    hint.linkActivated.emit("place")  # what clicking its link does
    assert [r.words for r in window.doc.regions] == ["cat on the left",
                                                     "dog in the top right corner"]
    assert not hint.isVisibleTo(window.panel)  # the canvas has regions now
    window.undo.undo()
    assert hint.isVisibleTo(window.panel)


def test_undo_back_past_a_new_canvas_still_reaches_the_regions_steps(qtbot, make_window):
    """Undoing File ▸ New puts back copies of the regions; the older undo steps must act on
    those (undoing the region's stroke did nothing, and undoing its Add crashed the app)."""
    window = make_window(load=False)
    window.regions.add("red ball")
    window.tool.set_shape("rect")
    window.tool.press(4, 4)
    window.tool.release(19, 19)
    window.actions_.new_canvas(32, 32)
    window.undo.undo()
    assert window.doc.regions[0].mask.sum() == 16 * 16
    window.undo.undo()  # the stroke
    assert not window.doc.regions[0].mask.any()
    assert not window.layers.regions.buf[..., 3].any()
    window.undo.undo()  # the region
    assert window.doc.regions == []
    window.undo.redo()
    window.undo.redo()
    assert window.doc.regions[0].mask.sum() == 16 * 16


def test_a_painted_region_without_words_is_named_in_the_message(qtbot, make_window):
    window = make_window()
    window.panel.prompt.setPlainText("a red ball")
    window.regions.add("red ball")  # Region 1, never painted: not sent
    window.regions.add("")
    window.tool.press(30, 30)
    window.tool.release(30, 30)
    assert window.generation.generate() is None
    assert "'Region 2' has no words" in window.last_error  # was "region 1", the other one


def test_typing_a_regions_words_does_not_redraw_the_canvas(qtbot, make_window):
    """The overlay shows masks and colours only: redrawing it per keystroke of the words (or tick
    of the strength) took 0.65 s on a 4096² canvas, with one region."""
    window = make_window(load=False)
    region = window.regions.add("")
    window.tool.press(30, 30)
    window.tool.release(30, 30)
    redraws = []
    window.layers.changed.connect(lambda *rect: redraws.append(rect))
    qtbot.keyClicks(window.regions_panel.words, "red ball")
    window.regions_panel.strength.setValue(3.0)
    assert (region.words, region.strength, redraws) == ("red ball", 3.0, [])
    window.regions.set_colour(region, (10, 20, 30))
    assert redraws and tuple(window.layers.regions.buf[30, 30, 2::-1]) == (9, 17, 26)


def test_region_edits_survive_an_undo_and_redo_of_the_step_before(qtbot, make_window):
    """Words and strength are edited in place, not as undo steps: undoing then redoing the
    regions from the prompt put back the regions as first made, the edits lost."""
    window = make_window(load=False)
    window.panel.prompt.setPlainText("a red circle at the top left and a blue square on the right")
    window.regions_panel.from_prompt_button.click()
    window.regions.set_words(window.doc.regions[0], "red circle")
    window.regions.set_strength(window.doc.regions[0], 2.5)
    window.undo.undo()
    assert window.doc.regions == []
    window.undo.redo()
    assert (window.doc.regions[0].words, window.doc.regions[0].strength) == ("red circle", 2.5)


def test_use_selection_across_lines_takes_the_words_as_one_line(qtbot, make_window):
    """Qt gives a selection's line breaks as U+2029: the words field showed them as a box."""
    window = make_window(load=False)
    region = window.regions.add("")
    select_in_prompt(window.panel, "a red\nball on  grass", "red\nball on  grass")
    window.regions_panel.use_selection.click()
    assert region.words == "red ball on grass" == window.regions_panel.words.text()
    assert not window.regions_panel.warning.isVisibleTo(window.regions_panel)


def test_saving_a_layout_with_a_region_without_words_names_it_and_writes_nothing(
        qtbot, make_window, tmp_path):
    """It was saved, and loading it back then failed: "regions[1].words: expected the prompt
    words it paints"."""
    window = make_window(load=False)
    window.regions.add("red ball")
    window.regions.add("")
    window.tool.press(30, 30)
    window.tool.release(30, 30)
    path = tmp_path / "Größe ☃" / "scène.json"
    path.parent.mkdir()
    assert not window.actions_.save_layout(str(path))
    assert "'Region 2' has no words" in window.last_error and not list(path.parent.iterdir())
    window.regions.set_words(window.doc.regions[1], "green grass")
    assert window.actions_.save_layout(str(path)), window.last_error
    assert window.actions_.save_layout(str(path)), window.last_error  # overwriting it
    window.actions_.new_canvas(128, 96)  # another size: scaled
    assert window.actions_.load_layout(str(path)), window.last_error
    assert [(r.name, r.words) for r in window.doc.regions] == [
        ("Region 1", "red ball"), ("Region 2", "green grass")]
    assert window.doc.regions[1].mask.shape == (96, 128) and window.doc.regions[1].mask.any()


def test_loading_a_layout_names_the_words_the_prompt_does_not_hold(qtbot, make_window, tmp_path):
    window = make_window(load=False)
    window.panel.prompt.setPlainText("a red ball on green grass")
    path = tmp_path / "layout.json"
    path.write_text('{"version": 1, "regions": [{"words": "red ball", "rect": [0, 0, 8, 8]}, '
                    '{"words": "zebra", "rect": [8, 8, 8, 8]}]}')
    window.actions_.load_layout(str(path), window.panel.prompt_text())
    message = window.statusBar().currentMessage()
    assert "Loaded 2 regions" in message and "not in the prompt" in message
    assert "zebra" in message and "red ball" not in message.split("not in the prompt")[1]


def test_regions_past_the_palette_still_get_colours_of_their_own(qtbot, make_window):
    """The 11th region was drawn in the 1st one's colour, the 12th in the 2nd's..."""
    window = make_window(load=False)
    for i in range(30):
        window.regions.add(f"thing {i}")
    colours = [r.colour for r in window.doc.regions]
    assert len(set(colours)) == 30
    assert all(not (r > 180 and g < 90 and b < 110) for r, g, b in colours)  # no reds
    window.regions.remove(window.doc.regions[3])  # a freed colour is the next one's
    assert window.regions.add("again").colour == colours[3]
