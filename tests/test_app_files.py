"""Opening, dropping, pasting, saving and copying images and masks from the window."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from desktop_app.app.imaging import rgb_to_qimage
from desktop_app.app.qt_compat import emit
from desktop_app.document.job import JobKind


def picture(w: int, h: int) -> np.ndarray:
    rng = np.random.default_rng(w * h)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_open_by_drop_keeps_every_pixel_and_is_undoable(qtbot, make_window, tmp_path):
    window = make_window(load=False)
    pixels = picture(101, 70)  # no multiple of 8: jobs pad and crop back, the canvas keeps it
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    emit(window.view.files_dropped, [str(tmp_path / "photo.png")])
    assert window.doc.size == (101, 70)
    assert np.array_equal(window.doc.image, pixels)
    assert window.doc.job_kind() is JobKind.IMAGE_TO_IMAGE
    assert "photo.png: 101x70" in window.statusBar().currentMessage()
    window.undo.undo()
    assert window.doc.image is None and window.doc.size == (64, 64)


def test_a_bad_file_names_itself_and_keeps_the_document(qtbot, make_window, tmp_path):
    window = make_window(load=False)
    window.doc.mask[3:9, 3:9] = 1.0
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    assert not window.actions_.open_path(str(bad))
    assert "broken.png" in window.last_error and "\n" not in window.last_error
    assert window.doc.image is None and window.doc.mask.sum() == 36


def test_paste_and_copy_through_the_clipboard(qtbot, make_window):
    window = make_window(load=False)
    pixels = picture(48, 40)
    QGuiApplication.clipboard().setImage(rgb_to_qimage(pixels))
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(window.doc.image, pixels)
    window.doc.set_image(pixels[::-1].copy())
    window.actions_.copy_image()
    from desktop_app.app.imaging import qimage_to_rgb

    assert np.array_equal(qimage_to_rgb(QGuiApplication.clipboard().image()), pixels[::-1])


def test_a_pasted_or_dropped_transparent_picture_is_white_underneath_not_black(
        qtbot, make_window):
    from PySide6.QtGui import QColor, QImage

    window = make_window(load=False)
    image = QImage(16, 8, QImage.Format.Format_ARGB32)
    image.fill(QColor(0, 0, 0, 0))  # transparent, stored as black (as browsers and editors do)
    image.setPixelColor(3, 2, QColor(200, 0, 0, 128))
    emit(window.view.image_dropped, image)
    assert tuple(window.doc.image[0, 0]) == (255, 255, 255)
    assert tuple(window.doc.image[2, 3]) == (227, 127, 127)  # as opening the same file gives
    assert "transparent areas were flattened onto white" in window.statusBar().currentMessage()


def test_save_png_keeps_generation_metadata(qtbot, make_window, tmp_path):
    from desktop_app.document.metadata import read_metadata

    window = make_window()
    assert not window.actions_.save_png(str(tmp_path / "empty.png"))
    assert "empty" in window.last_error
    window.panel.prompt.setPlainText("a lighthouse")
    with qtbot.waitSignal(window.client.finished, timeout=5000) as done:
        window.generation.generate()
    path = tmp_path / "result.png"
    assert window.actions_.save_png(str(path))
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), window.doc.image)
    request = read_metadata(path)
    assert request.prompt == "a lighthouse" and request.seed == done.args[0].request.seed


def test_mask_save_and_load_round_trip(qtbot, make_window, tmp_path):
    window = make_window(load=False)
    window.tool.set_hardness(0.3)
    window.tool.press(30, 30)
    window.tool.release(40, 35)
    painted = window.doc.mask.copy()
    assert window.actions_.save_mask(str(tmp_path / "mask.png"))
    window.actions_.clear_mask()
    assert window.actions_.load_mask(str(tmp_path / "mask.png"))
    assert np.abs(window.doc.mask - painted).max() <= 0.5 / 255 + 1e-6
    window.undo.undo()
    assert not window.doc.mask.any()


def test_new_canvas_of_a_chosen_size(qtbot, make_window):
    window = make_window(load=False)
    window.doc.set_image(picture(64, 64))
    window.actions_.new_canvas(200, 120)
    assert window.doc.size == (200, 120) and window.doc.image is None
    qtbot.waitUntil(lambda: window.panel.width_box.value() == 200, timeout=2000)
    assert window.panel.width_box.isEnabled()
    window.panel.width_box.setValue(256)  # an empty canvas follows the size boxes
    assert window.doc.size == (256, 120)
    window.undo.undo()
    window.undo.undo()
    assert window.doc.image is not None and window.doc.size == (64, 64)


def test_a_drop_of_several_files_opens_the_first_good_one_and_names_the_rest(
        qtbot, make_window, tmp_path):
    window = make_window(load=False)
    window.doc.mask[3:9, 3:9] = 1.0
    bad = tmp_path / "notes.png"
    bad.write_text("a text file renamed")
    pixels = picture(48, 40)
    Image.fromarray(pixels).save(tmp_path / "good.png")
    Image.fromarray(picture(16, 16)).save(tmp_path / "other.png")
    emit(window.view.files_dropped,
         [str(bad), str(tmp_path / "good.png"), str(tmp_path / "other.png")])
    assert np.array_equal(window.doc.image, pixels)
    status = window.statusBar().currentMessage()
    assert "Open good.png: 48x40" in status and "notes.png: not an image" in status
    assert "1 more file not opened" in status and window.last_error == ""
    # None of them opens: one line naming each, and the document stays as it was.
    before = window.undo.count()
    tiny = tmp_path / "tiny.png"
    Image.fromarray(picture(1, 1)).save(tiny)
    emit(window.view.files_dropped, [str(bad), str(tiny), str(tmp_path)])
    assert "notes.png: not an image" in window.last_error
    assert "tiny.png: the image is too small (1x1; at least 8 pixels a side)" in window.last_error
    assert "is a folder" in window.last_error and "\n" not in window.last_error
    assert np.array_equal(window.doc.image, pixels) and window.undo.count() == before
    assert not window.actions_.open_path(str(tiny))


def test_an_image_over_the_size_limit_is_scaled_down_to_one_a_job_takes(
        qtbot, make_window, tmp_path):
    from desktop_app.document.job import MAX_SIDE

    window = make_window()
    wide = np.zeros((100, 5000, 3), np.uint8)
    wide[:, 2500:] = 200  # right half light: the scaled picture keeps its layout
    Image.fromarray(wide).save(tmp_path / "panorama.png")
    assert window.actions_.open_path(str(tmp_path / "panorama.png"))
    assert window.doc.size == (MAX_SIDE, 82)
    assert window.doc.image[:, :2000].max() == 0 and window.doc.image[:, 2100:].min() == 200
    assert f"scaled down from 5000x100 to {MAX_SIDE}x82" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.client.finished, timeout=5000) as done:
        window.generation.generate()  # a job takes the canvas as it is
    assert done.args[0].request.width == MAX_SIDE and window.last_error == ""
    QGuiApplication.clipboard().setImage(rgb_to_qimage(np.zeros((16, 4100, 3), np.uint8)))
    assert window.actions_.paste_image()
    assert window.doc.size[0] == MAX_SIDE


def test_a_dropped_web_link_says_it_is_not_a_file(qtbot, make_window):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    window = make_window(load=False)
    mime = QMimeData()
    mime.setUrls([QUrl("https://example.com/cat.png")])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    window.view.dropEvent(event)
    assert "https://example.com/cat.png: not a file on this computer" in window.last_error
    assert window.doc.image is None


def test_a_save_that_cannot_write_names_the_file_and_keeps_the_canvas(
        qtbot, make_window, tmp_path, monkeypatch):
    import builtins

    window = make_window(load=False)
    pixels = picture(32, 32)
    window.doc.set_image(pixels)
    (tmp_path / "taken.png").mkdir()
    real_open = builtins.open

    def read_only(file, mode="r", *args, **kwargs):  # tests run as root: chmod would not stop it
        if str(file).startswith(str(tmp_path / "locked")) and "x" in mode:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, mode, *args, **kwargs)

    (tmp_path / "locked").mkdir()
    monkeypatch.setattr(builtins, "open", read_only)
    for target, why in ((tmp_path / "nowhere" / "a.png", "does not exist"),
                        (tmp_path / "locked" / "a.png", "no permission to write"),
                        (tmp_path / "taken.png", "is a folder")):
        window.last_error = ""
        assert not window.actions_.save_png(str(target))
        assert str(target) in window.last_error and why in window.last_error
        assert ".tmp" not in window.last_error and "\n" not in window.last_error
    assert np.array_equal(window.doc.image, pixels)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["locked", "taken.png"]
