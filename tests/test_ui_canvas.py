"""The canvas and the mask brush, driven with real mouse events."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QUndoStack

from desktop_app.app.stroke import StrokeRecorder
from desktop_app.app.tools import ToolController
from desktop_app.document.canvas_doc import CanvasDocument
from desktop_app.ui.canvas_view import CanvasView
from desktop_app.ui.layers import CanvasLayers

L, R, M = Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton, Qt.MouseButton.MiddleButton


def capsule(shape, p0, p1, radius):
    """Pixels whose centres are within radius of the segment p0..p1, by brute force."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    a, b = np.array(p0, float), np.array(p1, float)
    d = b - a
    t = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / max(d @ d, 1e-12), 0, 1)
    dist = np.hypot(xs - (a[0] + t * d[0]), ys - (a[1] + t * d[1]))
    return dist <= radius


@pytest.fixture
def canvas(qtbot):
    doc = CanvasDocument(160, 120)
    undo = QUndoStack()
    tool = ToolController(doc, StrokeRecorder(doc, undo), size=10.0, hardness=1.0)
    view = CanvasView(CanvasLayers(doc), tool)
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    qtbot.waitExposed(view)
    view.zoom, view.offset, view._fitted = view.devicePixelRatioF(), QPointF(0, 0), False
    return doc, undo, tool, view


def drag(qtbot, view, points, button=L):
    qtbot.mousePress(view, button, pos=QPoint(*points[0]))
    for p in points[1:]:
        qtbot.mouseMove(view, QPoint(*p))
    qtbot.mouseRelease(view, button, pos=QPoint(*points[-1]))


def test_hard_brush_stroke_changes_exactly_the_swept_pixels(qtbot, canvas):
    doc, undo, tool, view = canvas
    drag(qtbot, view, [(20, 30), (60, 30), (60, 80)])
    expected = capsule(doc.mask.shape, (20, 30), (60, 30), 5) | capsule(
        doc.mask.shape, (60, 30), (60, 80), 5)
    assert np.array_equal(doc.mask > 0, expected)
    assert set(np.unique(doc.mask)) == {0.0, 1.0}
    assert undo.count() == 1  # one command for the whole press..release


def test_undo_and_redo_a_stroke(qtbot, canvas):
    doc, undo, tool, view = canvas
    drag(qtbot, view, [(10, 10), (50, 40)])
    first = doc.mask.copy()
    drag(qtbot, view, [(100, 90), (140, 60)])
    both = doc.mask.copy()
    assert undo.count() == 2
    undo.undo()
    assert np.array_equal(doc.mask, first)
    undo.undo()
    assert not doc.mask.any()
    undo.redo()
    undo.redo()
    assert np.array_equal(doc.mask, both)


def test_undo_keyboard_shortcuts_in_the_window(qtbot, make_window):
    window = make_window(load=False)
    view = window.view
    start = view.to_widget_rect(10, 10, 10, 10).topLeft().toPoint()
    end = view.to_widget_rect(50, 50, 50, 50).topLeft().toPoint()
    drag(qtbot, view, [(start.x(), start.y()), (end.x(), end.y())])
    painted = window.doc.mask.copy()
    assert painted.any()
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not window.doc.mask.any()
    qtbot.keyClick(view, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(window.doc.mask, painted)


def test_right_button_erases_and_soft_brush_feathers(qtbot, canvas):
    doc, undo, tool, view = canvas
    tool.set_size(30)
    drag(qtbot, view, [(40, 40), (120, 40)])
    assert doc.mask[40, 80] == 1.0
    tool.set_size(10)
    drag(qtbot, view, [(80, 20), (80, 60)], button=R)
    assert doc.mask[40, 80] == 0.0 and doc.mask[40, 60] == 1.0
    tool.set_hardness(0.0)
    tool.set_size(40)
    doc.mask[:] = 0
    drag(qtbot, view, [(80, 60), (80, 60)])
    ring = doc.mask[60, 80 + 12:80 + 19]
    assert np.all((ring > 0) & (ring < 1))  # feathered edge
    assert np.all(np.diff(ring) < 0)  # falling off outwards


def test_stroke_undo_stores_only_the_changed_rectangle(qtbot):
    doc = CanvasDocument(4096, 4096)
    undo = QUndoStack()
    rec = StrokeRecorder(doc, undo)
    tool = ToolController(doc, rec, size=20.0, hardness=1.0)
    tool.press(2000.0, 2000.0)
    tool.move(2040.0, 2010.0)
    tool.release(2040.0, 2010.0)
    command = undo.command(0)
    assert command._old.shape[0] * command._old.shape[1] < 100 * 100
    undo.undo()
    assert not doc.mask.any()


def test_rectangle_and_mask_operations_are_undoable(qtbot, make_window):
    window = make_window(load=False)
    doc, tool = window.doc, window.tool
    tool.set_shape("rect")
    tool.press(10, 12)
    tool.move(20, 30)
    tool.release(29, 39)
    assert doc.mask[12:40, 10:30].all() and doc.mask.sum() == 20 * 28
    window.actions_.grow_mask(2)
    assert doc.mask[10:42, 8:32].all() and doc.mask.sum() == 24 * 32
    window.actions_.invert_mask()
    assert doc.mask[0, 0] == 1 and doc.mask[20, 20] == 0
    window.actions_.clear_mask()
    assert not doc.mask.any()
    for _ in range(3):
        window.undo.undo()
    assert doc.mask.sum() == 20 * 28


def test_overlay_follows_the_mask_incrementally(qtbot, canvas):
    doc, undo, tool, view = canvas
    layers = view._layers
    drag(qtbot, view, [(30, 30), (31, 30)])
    alpha = layers.mask.buf[..., 3]
    assert np.array_equal(alpha > 0, doc.mask > 0)
    undo.undo()
    assert not layers.mask.buf[..., 3].any()


def test_wheel_zoom_keeps_the_point_under_the_cursor(qtbot, canvas):
    doc, undo, tool, view = canvas
    anchor = QPointF(100, 80)
    before = view.to_image(anchor)
    view.set_zoom(view.zoom * 2, anchor)
    assert view.to_image(anchor) == pytest.approx(before)
    view.fit()
    rect = view.canvas_rect()
    assert rect.width() <= view.width() and rect.height() <= view.height()
    view.actual_size()
    assert view.zoom == 1.0


def test_space_drag_pans_instead_of_painting(qtbot, canvas):
    doc, undo, tool, view = canvas
    qtbot.keyPress(view, Qt.Key.Key_Space)
    drag(qtbot, view, [(50, 50), (80, 70)])
    qtbot.keyRelease(view, Qt.Key.Key_Space)
    assert not doc.mask.any()
    assert (view.offset.x(), view.offset.y()) == (30, 20)
    drag(qtbot, view, [(50, 50), (60, 50)], button=M)
    assert not doc.mask.any() and view.offset.x() == 40


def test_zoom_keys(qtbot, make_window):
    window = make_window(load=False)
    zoom = window.view.zoom
    qtbot.keyClick(window.view, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert window.view.zoom > zoom
    qtbot.keyClick(window.view, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window.view, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert window.view.zoom < zoom
    qtbot.keyClick(window.view, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.view.zoom == 1.0


def test_brush_size_keys(qtbot, make_window):
    window = make_window(load=False)
    size = window.tool.size
    qtbot.keyClick(window.view, Qt.Key.Key_BracketRight)
    assert window.tool.size > size
    qtbot.keyClick(window.view, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(window.view, Qt.Key.Key_BracketLeft)
    assert window.tool.size < size


def test_big_brush_dabs_follow_the_swept_shape_and_undo(qtbot):
    """Big brushes stamp spaced dabs (cheap on huge canvases): the painted area must still be
    the swept capsule up to its edge pixels, ending where the button was released."""
    doc = CanvasDocument(600, 400)
    undo = QUndoStack()
    tool = ToolController(doc, StrokeRecorder(doc, undo), size=120.0, hardness=1.0)
    path = [(100.0, 200.0), (103.0, 201.0), (180.0, 230.0), (400.0, 180.0), (401.0, 180.5)]
    tool.press(*path[0])
    for p in path[1:]:
        tool.move(*p)
    tool.release(*path[-1])
    expected = np.zeros(doc.mask.shape, bool)
    for a, b in zip(path, path[1:], strict=False):
        expected |= capsule(doc.mask.shape, a, b, 60)
    inner = np.zeros_like(expected)
    outer = np.zeros_like(expected)
    for a, b in zip(path, path[1:], strict=False):
        inner |= capsule(doc.mask.shape, a, b, 58.5)
        outer |= capsule(doc.mask.shape, a, b, 61.5)
    painted = doc.mask > 0
    assert painted[inner].all() and not painted[~outer].any()
    assert (painted != expected).sum() < 0.01 * expected.sum()
    assert undo.count() == 1
    undo.undo()
    assert not doc.mask.any()


def _padded_job_view(qtbot) -> tuple[CanvasLayers, CanvasView]:
    """A 156x116 canvas (a 160x120 job, so its 20x15 latent pictures cover 4 columns and rows of
    padding) at zoom 2 from the widget's corner, overlays off."""
    doc = CanvasDocument(156, 116)
    layers = CanvasLayers(doc)
    view = CanvasView(layers, ToolController(doc, StrokeRecorder(doc, QUndoStack())))
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    qtbot.waitExposed(view)
    view.zoom, view.offset, view._fitted = 2.0, QPointF(0, 0), False
    view.mask_opacity = view.region_opacity = 0.0
    return layers, view


def _brightest_x(view: CanvasView, channel) -> float:
    """Screen x of the middle of the brightest stretch of row 100."""
    shot = view.grab().toImage()
    row = np.array([channel(shot.pixelColor(x, 100)) for x in range(0, 312)], float)
    return float(np.flatnonzero(row >= 0.9 * row.max()).mean())


def test_a_preview_of_a_padded_job_lines_up_with_the_canvas(qtbot):
    # Latent column k is canvas x 8k..8k+8, wherever the canvas ends.
    layers, view = _padded_job_view(qtbot)
    preview = np.zeros((15, 20, 3), np.uint8)
    preview[:, 17] = (0, 255, 0)  # canvas x 136..144, centre 140: screen x 280 at zoom 2
    layers.set_preview(preview)
    brightest = _brightest_x(view, QColor.green)
    assert abs(brightest - 280) <= 2, brightest  # stretched over 156 px it would sit at 274


def test_a_words_attention_map_of_a_padded_job_lines_up_with_the_canvas(qtbot):
    # Hovering a word shows its map on the canvas; the map covers the padded job like a preview.
    layers, view = _padded_job_view(qtbot)
    heat = np.zeros((15, 20), np.float32)
    heat[:, 17] = 0.5  # orange over the grey canvas; canvas x 136..144: screen x 280 at zoom 2
    layers.set_highlight(heat)
    brightest = _brightest_x(view, lambda c: c.red() - c.blue())
    assert abs(brightest - 280) <= 2, brightest  # stretched over 156 px it would sit at 274


def test_an_undo_in_mid_stroke_ends_the_stroke(qtbot, make_window):
    """Ctrl+Z with the button down, back past a bigger new canvas: the stroke painted a mask that
    is gone, so it gets no undo step (whose undo wrote off the canvas: a crash) and the redo of
    the new canvas stays."""
    window = make_window(load=False)
    window.actions_.new_canvas(128, 128)
    window.tool.set_shape("rect")
    window.tool.press(100, 100)
    window.undo.undo()
    window.tool.release(120, 120)
    assert window.doc.size == (64, 64) and not window.doc.mask.any()
    assert window.tool.rubber is None and window.undo.canRedo()
    window.undo.redo()
    assert window.doc.size == (128, 128) and not window.doc.mask.any()


def test_a_mask_key_in_mid_stroke_keeps_the_stroke_undoable(qtbot, make_window):
    """Ctrl+I with the button down painting a region: the stroke so far became no undo step."""
    window = make_window(load=False)
    region = window.regions.add("ball")
    window.tool.set_shape("brush")
    window.tool.press(10, 10)
    window.tool.move(20, 20)
    window.actions_.invert_mask()
    window.tool.move(40, 40)
    window.tool.release(40, 40)
    assert region.mask.any() and window.doc.mask.all()
    window.undo.undo()  # the invert
    assert not window.doc.mask.any() and region.mask.any()
    window.undo.undo()  # the stroke
    assert not region.mask.any()


def test_removing_a_region_in_mid_stroke_leaves_no_half_stroke_for_undo(qtbot, make_window):
    """Delete the region being painted with the button down, then Undo the removal: the region
    comes back as it was before the stroke (the half stroke was never an undo step of its own)."""
    window = make_window(load=False)
    region = window.regions.add("ball")
    window.tool.set_shape("rect")
    window.tool.press(2, 2)
    window.tool.release(12, 12)  # one finished stroke: an undo step
    before = region.mask.copy()
    window.tool.set_shape("brush")
    window.tool.press(30, 30)
    window.tool.move(50, 50)
    assert region.mask[40, 40] > 0  # the half stroke is on the region
    window.regions.remove(region)
    window.tool.move(60, 60)
    window.tool.release(60, 60)
    window.undo.undo()  # the removal
    assert region in window.doc.regions and np.array_equal(region.mask, before)
    window.undo.undo()  # the finished stroke
    assert not region.mask.any()
