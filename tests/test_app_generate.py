"""Generating from the window with a scripted FakeEngine: start, previews, cancel, errors, results,
history and restore. Waits are on window-side signals, never on sleeps."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from fake_engine import FakeEngine, fake_image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from desktop_app.app.qt_compat import emit
from desktop_app.document.job import JobKind, Preview

CTRL = Qt.KeyboardModifier.ControlModifier


class PreviewLog:
    """Records what reaches the canvas layer: (job, step, preview image) per preview."""

    def __init__(self, window) -> None:
        self.window = window
        self.seen: list[tuple[int, int]] = []
        self.images: list[np.ndarray] = []
        window.client.preview.connect(self.on_preview)

    def on_preview(self, preview: Preview) -> None:
        layers = self.window.layers
        assert layers.preview is not None  # the controller already put it on the canvas
        self.seen.append((preview.job_id, preview.step))
        self.images.append(preview.image)


class SaveLog:
    def __init__(self, window) -> None:
        self.seen: list[tuple[str, str]] = []
        window.generation.output_saved.connect(self.on_saved)

    def on_saved(self, path: str, error: str) -> None:
        self.seen.append((path, error))


def start_with_keyboard(qtbot, window, steps=4):
    window.panel.prompt.setPlainText("a red ball")
    window.panel.steps.setValue(steps)
    window.panel.prompt.setFocus()
    with qtbot.waitSignal(window.client.job_started, timeout=3000) as started:
        qtbot.keyClick(window.panel.prompt, Qt.Key.Key_Return, CTRL)
    return started.args[0], started.args[1]


def test_ctrl_enter_runs_a_job_and_previews_arrive_in_order(qtbot, make_window):
    window = make_window()
    log = PreviewLog(window)
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        job_id, request = start_with_keyboard(qtbot, window, steps=5)
    assert request.kind is JobKind.TEXT_TO_IMAGE and request.prompt == "a red ball"
    assert log.seen == [(job_id, s) for s in range(1, 6)]
    assert window.layers.preview is None  # the preview layer is gone, the result is the image
    assert np.array_equal(window.doc.image, fake_image(request))
    assert "Step 5/5" in window.panel.progress.format() or not window.client.busy


def test_two_results_with_one_seed_in_one_second_are_both_saved(qtbot, make_window, monkeypatch):
    import types

    from desktop_app.app import generation
    from desktop_app.document import metadata

    monkeypatch.setattr(generation, "time", types.SimpleNamespace(
        strftime=lambda _fmt: "20261203-101010"))  # both results finish "in the same second"
    gate = threading.Event()  # the saver thread writes only when the test lets it
    real_save = metadata.save_png_with_metadata

    def slow_save(*args, **kwargs):
        gate.wait(5)
        return real_save(*args, **kwargs)

    monkeypatch.setattr(metadata, "save_png_with_metadata", slow_save)
    window = make_window()
    window.panel.seed_mode.setCurrentIndex(window.panel.seed_mode.findData("fixed"))
    window.panel.seed.setValue(7)
    saves = SaveLog(window)
    items = []
    for _ in range(2):
        with qtbot.waitSignal(window.generation.history_added, timeout=5000) as added:
            start_with_keyboard(qtbot, window)
        items.append(added.args[0])
    gate.set()
    qtbot.waitUntil(lambda: len(saves.seen) == 2, timeout=5000)
    assert all(error == "" for _, error in saves.seen)
    first, second = (Path(item.saved_path) for item in items)
    assert first != second and first.exists() and second.exists()
    assert metadata.read_metadata(first).seed == metadata.read_metadata(second).seed == 7


def test_result_lands_as_one_undo_step_in_history_and_output_folder(qtbot, make_window):
    window = make_window()
    undo_before = window.undo.count()
    saves = SaveLog(window)
    with qtbot.waitSignal(window.generation.history_added, timeout=5000) as added:
        start_with_keyboard(qtbot, window)
    item = added.args[0]
    qtbot.waitUntil(lambda: bool(saves.seen), timeout=5000)  # written on the saver thread
    assert saves.seen == [(item.saved_path, "")]
    assert window.undo.count() == undo_before + 1
    assert window.history_strip.list.count() == 1
    saved = Path(item.saved_path)
    assert saved.parent == Path(window.app_settings.output_dir) and saved.exists()
    from desktop_app.document.metadata import read_metadata

    assert read_metadata(saved).seed == item.result.request.seed
    window.undo.undo()
    assert window.doc.image is None  # back to the empty canvas
    window.history_strip.list.setCurrentRow(0)
    window.history_strip._on_clicked(window.history_strip.list.item(0))
    assert np.array_equal(window.doc.image, item.image)


def test_the_history_strip_keeps_as_many_results_as_the_history(qtbot, make_window):
    # Each result holds full-size images: the strip drops its oldest as History does, and its
    # thumbnails still show their own results.
    window = make_window()
    window.history.limit = window.history_strip.limit = 2
    items = []
    for _ in range(3):
        with qtbot.waitSignal(window.generation.history_added, timeout=5000) as added:
            start_with_keyboard(qtbot, window)
        items.append(added.args[0])
        qtbot.waitUntil(lambda: not window.client.busy, timeout=5000)
    assert window.history_strip.list.count() == len(window.history.items) == 2
    for row, item in enumerate(items[1:]):
        assert window.history_strip.item_at(row) is item
        assert window.history_strip.list.item(row).text() == f"seed {item.result.request.seed}"


def test_stale_previews_of_an_old_job_are_dropped(qtbot, make_window):
    gate = threading.Semaphore(0)
    window = make_window(FakeEngine(gate=gate))
    log = PreviewLog(window)
    job_id, _ = start_with_keyboard(qtbot, window, steps=3)
    old = Preview(job_id - 1 if job_id > 1 else 999, 1, 3, np.zeros((8, 8, 3), np.uint8))
    emit(window.client._worker.preview, old)  # a late message of a previous job
    assert log.seen == []
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        for _ in range(3):
            gate.release()
    assert [j for j, _ in log.seen] == [job_id] * 3


def test_escape_cancels_and_leaves_the_canvas_as_it_was(qtbot, make_window):
    gate = threading.Semaphore(0)
    window = make_window(FakeEngine(gate=gate))
    window.doc.mask[10:20, 10:20] = 1.0
    before_mask = window.doc.mask.copy()
    before_undo = window.undo.count()
    with qtbot.waitSignal(window.client.preview, timeout=3000):
        start_with_keyboard(qtbot, window, steps=50)
        gate.release()
    assert window.layers.preview is not None
    with qtbot.waitSignal(window.client.cancelled, timeout=3000):
        qtbot.keyClick(window.view, Qt.Key.Key_Escape)
    assert window.doc.image is None and np.array_equal(window.doc.mask, before_mask)
    assert window.undo.count() == before_undo and window.history.items == []
    assert window.layers.preview is None
    assert not list(Path(window.app_settings.output_dir).glob("*.png"))
    assert len(window.engine.requests) == 1 and window.panel.generate_button.isEnabled()


def test_engine_error_is_shown_and_the_document_is_intact(qtbot, make_window):
    engine = FakeEngine(fail_at_step=2, fail_message="out of memory on the fake device")
    window = make_window(engine)
    image = np.full((64, 64, 3), 77, np.uint8)
    window.doc.set_image(image)
    with qtbot.waitSignal(window.client.failed, timeout=5000):
        start_with_keyboard(qtbot, window)
    assert "out of memory on the fake device" in window.last_error
    boxes = [b for b in window.findChildren(QMessageBox) if b.isVisible()]
    assert boxes and "out of memory" in boxes[0].text()
    assert window.doc.image is image and window.history.items == []
    engine.fail_at_step = None  # the app is still usable
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        window.generation.generate()


def test_a_crash_inside_the_engine_becomes_a_message(qtbot, make_window):
    window = make_window(FakeEngine(fail_at_step=1, crash=True, fail_message="boom"))
    with qtbot.waitSignal(window.client.failed, timeout=5000):
        start_with_keyboard(qtbot, window)
    assert window.last_error.endswith("RuntimeError: boom")
    assert "Traceback" not in window.last_error


def test_a_failed_model_load_says_why_and_keeps_the_app_usable(qtbot, make_window):
    window = make_window(FakeEngine(fail_load="model.safetensors: not a checkpoint"), load=False)
    with qtbot.waitSignal(window.client.model_failed, timeout=5000):
        window.start()
    assert "not a checkpoint" in window.last_error
    assert window.model_label.text() == "No model loaded"
    window.tool.press(3, 3)
    window.tool.release(9, 9)
    assert window.doc.mask.any()  # still editable
    window.generation.generate()
    assert "No model is loaded" in window.last_error


def test_model_loads_on_the_engine_thread_with_a_status(qtbot, make_window):
    window = make_window(load=False)
    with qtbot.waitSignal(window.client.model_loaded, timeout=5000):
        window.start()
        assert "Loading model" in window.model_label.text()
    assert "built-in (fake)" in window.model_label.text()
    assert window.factory.threads and "MainThread" not in window.factory.threads
    assert "MainThread" not in window.engine.threads
    assert window.engine.loads == [None]  # first run: the built-in model


def paint_inpaint_job(window, grey: int, mask_box, region_box):
    """An image, a rectangle of mask and a region "ball" painted as a person would; the prompt."""
    window.doc.set_image(np.full((64, 64, 3), grey, np.uint8))
    window.tool.set_shape("rect")
    window.tool.press(*mask_box[:2])
    window.tool.release(*mask_box[2:])
    region = window.regions.add("ball")
    window.tool.press(*region_box[:2])
    window.tool.release(*region_box[2:])
    window.panel.prompt.setPlainText("a red ball on grass")
    return region


def assert_job_restored(qtbot, window, item):
    """The canvas and panel hold `item`'s input and parameters; Generate remakes its image."""
    request, doc = item.result.request, window.doc
    s = window.panel.settings()
    assert s.prompt == request.prompt and s.steps == request.steps
    assert s.seed_mode == "fixed" and s.seed == request.seed
    assert doc.size == (request.width, request.height)
    assert np.array_equal(doc.image, request.init_image)
    assert np.array_equal(doc.mask, request.mask)
    assert [r.words for r in doc.regions] == ["ball"]
    assert np.array_equal(doc.regions[0].mask, request.regions[0].mask)
    with qtbot.waitSignal(window.client.finished, timeout=5000) as again:
        window.generation.generate()
    assert again.args[0].request.kind is request.kind
    assert np.array_equal(again.args[0].image, item.image)  # same seed and inputs


def test_inpaint_with_regions_then_restore_brings_everything_back(qtbot, make_window):
    window = make_window()
    doc = window.doc
    region = paint_inpaint_job(window, 50, (8, 8, 40, 40), (20, 20, 50, 60))
    with qtbot.waitSignal(window.generation.history_added, timeout=5000) as added:
        window.generation.generate()
    item = added.args[0]
    request = item.result.request
    assert request.kind is JobKind.INPAINT and len(request.regions) == 1
    assert region.adherence is not None  # shown in the regions panel
    # change everything, then restore
    window.panel.prompt.setPlainText("something else")
    window.panel.steps.setValue(9)
    window.actions_.clear_mask()
    window.regions.remove(doc.regions[0])
    window.generation.restore_history(item)
    assert_job_restored(qtbot, window, item)


def test_restoring_a_job_from_its_png_brings_back_canvas_and_parameters(qtbot, make_window):
    window = make_window()
    doc = window.doc
    paint_inpaint_job(window, 80, (4, 4, 30, 50), (30, 10, 60, 40))
    window.panel.negative.setPlainText("blurry")
    window.panel.steps.setValue(13)
    window.panel.only_masked.setChecked(True)
    window.panel.inpaint_padding.setValue(20)
    saves = SaveLog(window)
    with qtbot.waitSignal(window.generation.history_added, timeout=5000) as added:
        window.generation.generate()
    item = added.args[0]
    qtbot.waitUntil(lambda: bool(saves.seen), timeout=5000)
    # Another canvas and other settings, as in a later session.
    window.actions_.new_canvas(48, 48)
    window.panel.prompt.setPlainText("something else")
    window.panel.negative.setPlainText("")
    window.panel.steps.setValue(30)
    window.panel.only_masked.setChecked(False)
    window.panel.inpaint_padding.setValue(32)
    window.panel.seed_mode.setCurrentIndex(window.panel.seed_mode.findData("random"))
    assert window.generation.restore_file(item.saved_path)
    s = window.panel.settings()
    assert (s.prompt, s.negative_prompt, s.steps) == ("a red ball on grass", "blurry", 13)
    assert (s.inpaint_only_masked, s.inpaint_padding) == (True, 20)
    assert_job_restored(qtbot, window, item)
    qtbot.waitUntil(lambda: len(saves.seen) == 2, timeout=5000)  # its output written too
    # One undo step back to the canvas the user had before restoring.
    window.undo.undo()  # the new result
    window.undo.undo()  # the restore
    assert doc.size == (48, 48) and doc.image is None and doc.regions == []


def test_restoring_from_a_png_without_parameters_changes_nothing(qtbot, make_window, tmp_path):
    from desktop_app.document.image_io import save_png

    window = make_window()
    window.doc.set_image(np.full((64, 64, 3), 10, np.uint8))
    window.panel.prompt.setPlainText("keep me")
    plain = tmp_path / "plain.png"
    save_png(plain, np.zeros((32, 32, 3), np.uint8))
    jpeg = tmp_path / "photo.jpg"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0 not really")
    undo_before = window.undo.count()
    for path, why in ((plain, "has no generation parameters"), (jpeg, "not an image"),
                      (tmp_path / "gone.png", "not found")):
        with qtbot.waitSignal(window.generation.error, timeout=1000) as error:
            assert not window.generation.restore_file(str(path))
        assert why in error.args[0] and str(path) in error.args[0]
    assert window.undo.count() == undo_before
    assert window.panel.settings().prompt == "keep me"
    assert np.array_equal(window.doc.image, np.full((64, 64, 3), 10, np.uint8))


def test_restoring_from_an_a1111_jpeg_brings_back_its_settings(qtbot, make_window, tmp_path):
    from PIL import Image

    window = make_window()
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + (
        "a lighthouse at dusk\nNegative prompt: fog\n"
        "Steps: 17, Sampler: DDIM, CFG scale: 5, Seed: 77, Size: 64x64").encode("utf-16-be")
    path = tmp_path / "from_a1111.jpg"
    Image.new("RGB", (16, 16)).save(path, "JPEG", exif=exif.tobytes())
    with qtbot.waitSignal(window.generation.status, timeout=1000):
        assert window.generation.restore_file(str(path))
    got = window.panel.settings()
    assert (got.prompt, got.negative_prompt) == ("a lighthouse at dusk", "fog")
    assert (got.steps, got.sampler, got.seed_mode, got.seed) == (17, "ddim", "fixed", 77)


def test_opening_a_result_png_says_it_can_be_restored(qtbot, make_window):
    window = make_window()
    saves = SaveLog(window)
    with qtbot.waitSignal(window.generation.history_added, timeout=5000) as added:
        start_with_keyboard(qtbot, window)
    qtbot.waitUntil(lambda: bool(saves.seen), timeout=5000)
    with qtbot.waitSignal(window.actions_.status, timeout=1000) as status:
        assert window.actions_.open_path(added.args[0].saved_path)
    assert "Restore job from image" in status.args[0]


def test_closing_during_a_job_cancels_it_and_stops_the_thread(qtbot, make_window):
    gate = threading.Semaphore(0)
    window = make_window(FakeEngine(gate=gate))
    start_with_keyboard(qtbot, window, steps=100)
    window.close()
    assert not window.client.is_running()
    assert window.history.items == []


def test_settings_are_remembered(qtbot, make_window):
    window = make_window()
    window.tool.set_size(77)
    window.panel.prompt.setPlainText("remember me")
    window.close()
    again = make_window()
    assert again.tool.size == 77
    assert again.panel.settings().prompt == "remember me"


def test_attention_maps_show_per_word_and_hovering_highlights_the_canvas(qtbot, make_window):
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    window = make_window(FakeEngine(attention_words=("red", "ball")))
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        start_with_keyboard(qtbot, window)
    strip = window.attention
    assert strip.words() == ["red", "ball"] and strip.isVisibleTo(window)
    tile = next(t for t, w in strip._tiles.items() if w == "ball")
    QApplication.sendEvent(tile, QEvent(QEvent.Type.Enter))
    assert window.layers.highlight is not None
    QApplication.sendEvent(tile, QEvent(QEvent.Type.Leave))
    assert window.layers.highlight is None


def test_a_long_word_under_its_map_is_shortened_and_named_in_full_by_its_tooltip(qtbot,
                                                                                 make_window):
    from PySide6.QtWidgets import QLabel

    long_word = "supercalifragilisticexpialidocious"
    window = make_window(FakeEngine(attention_words=("red", long_word)))
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        start_with_keyboard(qtbot, window)
    texts = {}
    for tile, word in window.attention._tiles.items():
        label = next(lb for lb in tile.findChildren(QLabel) if lb.objectName() != "heat")
        texts[word] = label.text()
        assert tile.toolTip() == word
        assert label.fontMetrics().horizontalAdvance(label.text()) <= label.maximumWidth()
    assert texts["red"] == "red"
    assert texts[long_word] != long_word and texts[long_word].endswith("…")


def test_a_hovered_words_map_follows_the_strip_and_stale_maps_go(qtbot, make_window):
    """The hovered word's map stayed on the canvas when its tile went (a job with other words:
    no Leave came) and did not follow the new previews; the maps of the last job stayed after a
    job that made none, and on a canvas of another size, where hovering stretched them."""
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    engine = FakeEngine(attention_words=("red", "ball"))
    window = make_window(engine)
    strip = window.attention
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        start_with_keyboard(qtbot, window)
    tile = next(t for t, w in strip._tiles.items() if w == "ball")
    QApplication.sendEvent(tile, QEvent(QEvent.Type.Enter))
    shown = window.layers.highlight
    assert shown is not None
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        window.generation.generate()  # same words: the hovered map is the new job's
    assert window.layers.highlight is not None and window.layers.highlight is not shown
    engine.attention_words = ("blue", "cube")
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        window.generation.generate()
    assert strip.words() == ["blue", "cube"] and window.layers.highlight is None
    engine.attention_words = ()
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        window.generation.generate()
    assert strip.words() == [] and not strip.isVisibleTo(window)
    engine.attention_words = ("red",)
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        window.generation.generate()
    assert strip.words() == ["red"], window.doc.size
    window.actions_.new_canvas(*window.doc.size)  # same size: a map still lines up
    assert strip.words() == ["red"]
    width, height = window.doc.size
    window.actions_.new_canvas(width + 8, height)
    assert strip.words() == []


def test_adherence_is_not_shown_for_a_region_edited_while_its_job_ran(qtbot, make_window):
    """The score of the words and area sent was shown for the words typed since."""
    gate = threading.Semaphore(0)
    window = make_window(FakeEngine(gate=gate))
    edited = paint_inpaint_job(window, 50, (8, 8, 40, 40), (20, 20, 50, 60))
    kept = window.regions.add("grass")
    window.tool.press(2, 2)
    window.tool.release(9, 9)
    window.panel.steps.setValue(2)
    assert window.generation.generate() is not None
    window.regions.set_words(edited, "red ball")
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        gate.release(2)
    assert edited.adherence is None and kept.adherence is not None


def test_every_panel_value_reaches_the_frozen_request(qtbot, make_window):
    window = make_window()
    p = window.panel
    window.doc.set_image(np.full((64, 64, 3), 40, np.uint8))
    window.tool.press(20, 20)
    window.tool.release(30, 30)
    p.prompt.setPlainText("a boat")
    p.negative.setPlainText("blurry")
    p.steps.setValue(3)
    p.cfg.setValue(5.5)
    p.sampler.setCurrentIndex(p.sampler.findData("ddim"))
    p.seed_mode.setCurrentIndex(p.seed_mode.findData("fixed"))
    p.seed.setValue(1234)
    p.strength.setValue(0.6)
    p.mask_grow.setValue(4)
    p.mask_feather.setValue(2.5)
    p.pww_outside.setValue(0.5)
    p.pww_local.setValue(1.5)
    assert not p.inpaint_padding.isEnabled()  # only with "Only masked"
    p.only_masked.setChecked(True)
    p.inpaint_padding.setValue(12)
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        window.generation.generate()
    r = window.engine.requests[-1]
    assert (r.kind, r.prompt, r.negative_prompt, r.steps, r.cfg_scale, r.sampler, r.seed) == (
        JobKind.INPAINT, "a boat", "blurry", 3, 5.5, "ddim", 1234)
    assert (r.strength, r.mask_grow, r.mask_feather, r.pww_outside, r.pww_local_sigma) == (
        0.6, 4, 2.5, 0.5, 1.5)
    assert (r.inpaint_only_masked, r.inpaint_padding) == (True, 12)
    assert p.reuse_seed.isEnabled()
    p.seed_mode.setCurrentIndex(p.seed_mode.findData("random"))
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        window.generation.generate()
    p.reuse_seed.click()  # reuse last: fixed mode with the last job's seed
    assert p.settings().seed_mode == "fixed"
    assert p.settings().seed == window.engine.requests[-1].seed


def test_switching_device_reloads_and_is_remembered_only_when_it_works(qtbot, make_window):
    window = make_window()
    with qtbot.waitSignal(window.client.model_loaded, timeout=5000):
        window.panel.device.setCurrentIndex(window.panel.device.findData("cpu"))
    assert window.factory.devices[-1] == "cpu" and window.app_settings.device == "cpu"
    window.engine.fail_load = "CUDA is not available on this machine"
    with qtbot.waitSignal(window.client.model_failed, timeout=5000):
        window.panel.device.setCurrentIndex(window.panel.device.findData("cuda"))
    assert "CUDA is not available" in window.last_error
    assert window.app_settings.device == "cpu"
    assert window.panel.device.currentData() == "cpu"  # the box shows the device still in use


def test_an_untouched_canvas_takes_the_models_size_and_a_painted_one_does_not(
        qtbot, make_window):
    fresh = make_window()
    assert fresh.doc.size == (256, 256)  # the FakeEngine's default_size
    painted = make_window(load=False)
    painted.tool.press(5, 5)
    painted.tool.release(9, 9)
    with qtbot.waitSignal(painted.client.model_loaded, timeout=5000):
        painted.start()
    assert painted.doc.size == (64, 64) and painted.doc.mask.any()


def test_the_cfg_box_follows_the_models_recommendation_until_the_person_sets_it(
        qtbot, make_window):
    engine = FakeEngine(default_cfg=4.0)
    window = make_window(engine)  # the built-in model recommends 4
    cfg = window.panel.cfg
    assert cfg.value() == 4.0

    def load(path, recommends):
        engine.default_cfg = recommends
        with qtbot.waitSignal(window.client.model_loaded, timeout=5000):
            window.models.open(path)

    load("/models/sd15", None)  # says nothing: back to the generic 7.5
    assert cfg.value() == 7.5
    cfg.setValue(6.0)  # the person's own choice survives model changes
    load(None, 4.0)
    assert cfg.value() == 6.0
    window.panel.prompt.setPlainText("a cat")
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        window.generation.generate()
    assert engine.requests[-1].cfg_scale == 6.0


def test_a_refused_model_keeps_the_one_loaded_and_says_so(qtbot, make_window, tmp_path):
    window = make_window()
    loaded = window.model_label.text()
    window.engine.fail_load = "model.ckpt: pickle checkpoints are refused"  # checked first
    with qtbot.waitSignal(window.client.model_failed, timeout=5000):
        window.models.open(str(tmp_path / "model.ckpt"))
    assert "pickle checkpoints are refused" in window.last_error
    assert "still using built-in (fake)" in window.last_error
    assert window.model_label.text() == loaded != "No model loaded"
    assert window.app_settings.last_model == ""  # the built-in model, still
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        window.generation.generate()


def test_a_load_that_lost_the_old_model_says_no_model(qtbot, make_window, tmp_path):
    window = make_window()
    window.engine.fail_load = "weights.safetensors: truncated"
    window.engine._info = None  # failed after the old model was dropped
    with qtbot.waitSignal(window.client.model_failed, timeout=5000):
        window.models.open(str(tmp_path / "weights.safetensors"))
    assert window.model_label.text() == "No model loaded"
    window.generation.generate()  # refused at once, not sent to an engine with no model
    assert "No model is loaded" in window.last_error and window.client.current_job is None


def test_a_canvas_resized_during_a_job_keeps_its_edits(qtbot, make_window):
    gate = threading.Semaphore(0)
    window = make_window(FakeEngine(gate=gate))  # canvas 256x256, the model's size
    start_with_keyboard(qtbot, window, steps=3)
    window.actions_.new_canvas(128, 96)  # meanwhile: another canvas, a mask, a region
    window.tool.press(5, 5)
    window.tool.release(30, 30)
    window.regions.add("ball")
    window.tool.press(40, 40)
    window.tool.release(60, 60)
    mask, region = window.doc.mask.copy(), window.doc.regions[0].mask.copy()
    undo_steps = window.undo.count()
    with qtbot.waitSignal(window.generation.history_added, timeout=5000) as added:
        for _ in range(3):
            gate.release()
    assert window.doc.size == (128, 96) and window.doc.image is None
    assert np.array_equal(window.doc.mask, mask)
    assert np.array_equal(window.doc.regions[0].mask, region)
    assert window.undo.count() == undo_steps
    assert "was not put on it" in window.statusBar().currentMessage()
    window.generation.show_history(added.args[0])  # the result is not lost
    assert window.doc.size == (256, 256)


def test_generate_right_after_cancel_says_the_job_is_stopping(qtbot, make_window):
    gate = threading.Semaphore(0)
    window = make_window(FakeEngine(gate=gate))
    start_with_keyboard(qtbot, window, steps=50)
    window.generation.cancel()
    assert window.generation.generate() is None
    assert "still stopping" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        qtbot.waitUntil(lambda: not window.client.busy, timeout=3000)
        window.generation.generate()
        gate.release(50)


def test_a_device_that_is_not_there_keeps_the_model_loaded(qtbot, make_window):
    window = make_window()
    window.factory.missing.add("cuda")  # the real Engine refuses it before loading anything
    with qtbot.waitSignal(window.client.model_failed, timeout=5000):
        window.panel.device.setCurrentIndex(window.panel.device.findData("cuda"))
    assert "not available" in window.last_error and "still using built-in" in window.last_error
    assert window.panel.device.currentData() == "auto"
    with qtbot.waitSignal(window.client.finished, timeout=5000):  # on the model it had
        window.generation.generate()


def test_generate_or_another_model_while_one_loads_says_it_is_loading(qtbot, make_window):
    gate = threading.Event()
    window = make_window(FakeEngine(load_gate=gate), load=False)
    window.start()
    assert window.generation.generate() is None
    assert "model is loading" in window.statusBar().currentMessage()
    window.panel.device.setCurrentIndex(window.panel.device.findData("cpu"))
    assert "model is loading" in window.statusBar().currentMessage()
    assert window.panel.device.currentData() == "auto"  # the box shows the device it loads on
    with qtbot.waitSignal(window.client.model_loaded, timeout=5000):
        gate.set()


def test_a_model_that_resizes_the_canvas_leaves_nothing_to_redo_off_it(qtbot, make_window):
    window = make_window(load=False, size=(512, 512))
    window.tool.set_shape("rect")
    window.tool.press(400, 400)
    window.tool.release(450, 450)
    window.undo.undo()  # the canvas is untouched again, with the stroke to redo
    with qtbot.waitSignal(window.client.model_loaded, timeout=5000):
        window.start()
    assert window.doc.size == (256, 256)
    assert not window.undo.canRedo()  # redoing the stroke off a 256² canvas crashed the app
    window.undo.undo()  # the model's size is an undo step
    assert window.doc.size == (512, 512)
    window.undo.undo()
    window.undo.redo()
    assert window.doc.mask[400:451, 400:451].all()


def test_a_result_sent_as_the_window_closes_lands_nowhere(qtbot, make_window):
    window = make_window()
    sent = threading.Event()
    window.client._worker.finished.connect(lambda _r: sent.set(),
                                           Qt.ConnectionType.DirectConnection)
    window.panel.prompt.setPlainText("a red ball")
    window.panel.steps.setValue(1)
    window.generation.generate()
    assert sent.wait(5)  # the result is queued for the GUI thread, which is closing
    window.close()
    qtbot.wait(50)  # it was delivered after the saver stopped: a traceback, no output
    assert window.history.items == [] and window.doc.image is None


def test_restoring_a_png_whose_size_cannot_be_a_canvas_says_so(qtbot, make_window, tmp_path):
    from PIL import Image, PngImagePlugin

    window = make_window()
    undo_before = window.undo.count()
    for size in ("0x0", "99999x99999"):
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", f"a cat\nSteps: 20, Sampler: Euler, Size: {size}, Seed: 3")
        path = tmp_path / f"{size}.png"
        Image.new("RGB", (16, 16)).save(path, pnginfo=info)
        with qtbot.waitSignal(window.generation.error, timeout=1000) as error:
            assert not window.generation.restore_file(str(path))
        assert f"size {size} is out of range" in error.args[0]
    assert window.undo.count() == undo_before and window.doc.size == (256, 256)


def test_restoring_seeds_and_steps_beyond_the_old_boxes_keeps_them(qtbot, make_window,
                                                                    tmp_path):
    from PIL import Image, PngImagePlugin

    window = make_window()

    def restore(settings_line: str):
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", f"a cat\n{settings_line}, Sampler: Euler, Size: 64x64")
        path = tmp_path / "r.png"
        Image.new("RGB", (16, 16)).save(path, pnginfo=info)
        with qtbot.waitSignal(window.generation.status, timeout=1000) as status:
            assert window.generation.restore_file(str(path))
        return window.panel.settings(), status.args[0]

    # A1111's and the command line's random seeds go up to 2**32 - 1: the seed box stopped at
    # 2**31 - 1 and Generate made another picture; the command line's 500 steps came back as 200.
    got, _ = restore("Steps: 500, CFG scale: 40, Seed: 3847291053")
    assert (got.seed_mode, got.seed, got.steps, got.cfg_scale) == ("fixed", 3847291053, 500, 40.0)
    with qtbot.waitSignal(window.client.finished, timeout=5000):
        window.generation.generate()
    assert window.engine.requests[-1].seed == 3847291053
    # "Seed: -1" (random, in some tools) was a fixed seed 0; absurd steps were an OverflowError.
    got, status = restore("Steps: 1000000000000, CFG scale: 7, Seed: -1")
    assert got.seed_mode == "random" and "seed -1 is outside" in status
    assert got.steps == 1000


def test_bad_values_in_the_settings_file_do_not_stop_start_up(qtbot, make_window):
    from app_helpers import settings_env
    from PySide6.QtCore import QSettings

    q = QSettings(settings_env(), QSettings.Format.IniFormat)
    q.setValue("brush/size", "inf")  # an OverflowError building the tool bar
    q.setValue("brush/hardness", "-3")
    q.setValue("generation/settings", '{"steps": 1e10, "mask_grow": Infinity, '
                                      '"cfg_scale": NaN, "prompt": null, "negative_prompt": "x"}')
    q.sync()
    window = make_window()
    assert window.tool.size == 48.0 and window.tool.hardness == 0.0
    got = window.panel.settings()
    assert (got.steps, got.mask_grow, got.cfg_scale, got.prompt, got.negative_prompt) == (
        1000, 0, 7.5, "", "x")


def test_an_output_folder_that_is_now_a_file_is_named(qtbot, make_window, tmp_path):
    window = make_window()
    (tmp_path / "out").write_text("not a folder")
    window.app_settings.output_dir = str(tmp_path / "out")
    with qtbot.waitSignal(window.generation.output_saved, timeout=5000) as saved:
        start_with_keyboard(qtbot, window)
    # It said "<name>.png appeared meanwhile and was kept".
    assert "out is a file, not a folder" in saved.args[1]
    assert "appeared meanwhile" not in saved.args[1]


class _MissingModelEngine(FakeEngine):
    """Refuses one model folder, as the real engine refuses one that is gone."""

    def load(self, path=None):
        if path is not None and "gone" in str(path):
            self.loads.append(path)
            from desktop_app.document.job import EngineError

            raise EngineError(f"{path}: no such model folder")
        return super().load(path)


def test_a_last_used_model_that_no_longer_loads_starts_the_built_in_one(qtbot, make_window,
                                                                         tmp_path):
    window = make_window(_MissingModelEngine(), load=False)
    window.app_settings.last_model = str(tmp_path / "gone")
    with qtbot.waitSignal(window.client.model_loaded, timeout=5000):
        window.start()
    assert window.engine.loads == [str(tmp_path / "gone"), None]
    assert window.model_label.text().startswith("built-in")
    assert "gone: no such model folder" in window.last_error
    assert "Using the built-in model instead" in window.last_error
    assert window.app_settings.last_model == ""
    # Only at start-up: a model chosen later that fails keeps the one loaded.
    with qtbot.waitSignal(window.client.model_failed, timeout=5000):
        window.models.open(str(tmp_path / "gone"))
    assert window.engine.loads[-1] == str(tmp_path / "gone")
    assert "still using built-in" in window.last_error


def test_a_huge_paste_into_the_prompt_is_cut_and_said(qtbot, make_window):
    # A 10 MB paste froze the window for 8 s and every key stroke after it for seconds, for text
    # the model never reads (it takes the first 75 tokens).
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication

    from desktop_app.document.settings import MAX_PROMPT_CHARS

    window = make_window()
    box = window.panel.prompt
    box.setPlainText("a red cat, ")
    box.moveCursor(box.textCursor().MoveOperation.End)
    box.setFocus()
    QGuiApplication.clipboard().setText("blue " * 200_000)
    with qtbot.waitSignal(window.panel.notice, timeout=1000) as notice:
        qtbot.keyClick(box, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    text = box.toPlainText()
    assert len(text) == MAX_PROMPT_CHARS and text.startswith("a red cat, blue blue")
    assert f"{1_000_000 - (MAX_PROMPT_CHARS - 11):,} left out" in notice.args[0]
    assert window.statusBar().currentMessage() == notice.args[0]
    # a paste over a selection has the selection's room; an ordinary paste is untouched
    box.selectAll()
    QGuiApplication.clipboard().setText("a small green square")
    qtbot.keyClick(box, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert box.toPlainText() == "a small green square"


def test_restoring_a_huge_prompt_fills_the_box_up_to_its_limit_and_says_so(qtbot, make_window,
                                                                        tmp_path):
    from PIL import Image, PngImagePlugin

    from desktop_app.document.settings import MAX_PROMPT_CHARS

    window = make_window()
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat " * 5000 + "\nSteps: 20, Sampler: Euler, Size: 64x64, Seed: 3")
    path = tmp_path / "long.png"
    Image.new("RGB", (16, 16)).save(path, pnginfo=info)
    with qtbot.waitSignal(window.generation.status, timeout=1000) as status:
        assert window.generation.restore_file(str(path))
    assert len(window.panel.prompt.toPlainText()) == MAX_PROMPT_CHARS
    assert f"its prompt of 30,000 characters is cut to the box's {MAX_PROMPT_CHARS:,}" \
        in status.args[0]
