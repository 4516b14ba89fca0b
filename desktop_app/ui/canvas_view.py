"""The canvas: image, mask and region overlays, the live preview and the brush cursor, with zoom
(wheel, keys, fit, 100%) and pan (middle button, or space + drag). Zoom 100% maps one image pixel to
one device pixel, so it stays sharp on high-DPI screens. Only dirty rectangles are repainted."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QWidget

from desktop_app.app.qt_compat import emit
from desktop_app.app.tools import ToolController
from desktop_app.document.job import padded_size
from desktop_app.ui.layers import CanvasLayers

EMPTY_FILL = QColor(236, 236, 236)
BACKGROUND = QColor(48, 48, 52)
MIN_ZOOM, MAX_ZOOM = 1 / 64, 64.0


class CanvasView(QWidget):
    files_dropped = Signal(list)
    image_dropped = Signal(QImage)
    zoom_changed = Signal(float)

    def __init__(self, layers: CanvasLayers, tool: ToolController,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layers = layers
        self._tool = tool
        self.zoom = 1.0
        self.offset = QPointF(0, 0)  # widget position (logical px) of the image's top-left
        self.mask_opacity = 0.55
        self.region_opacity = 0.45
        self._fitted = True
        self._pan_from: QPointF | None = None
        self._space = False
        self._painting = False
        self._cursor: QPointF | None = None
        self.setMouseTracking(True)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(200, 200)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        layers.changed.connect(self._on_layer_changed)
        layers.reset.connect(self._on_layers_reset)
        tool.changed.connect(self._on_tool_changed)
        tool.rubber_changed.connect(self._on_tool_changed)

    # -- coordinates -------------------------------------------------------------------------
    def scale(self) -> float:
        """Logical widget pixels per image pixel."""
        return self.zoom / self.devicePixelRatioF()

    def to_image(self, pos: QPointF) -> tuple[float, float]:
        s = self.scale()
        return ((pos.x() - self.offset.x()) / s, (pos.y() - self.offset.y()) / s)

    def to_widget_rect(self, x0: float, y0: float, x1: float, y1: float) -> QRectF:
        s = self.scale()
        return QRectF(self.offset.x() + x0 * s, self.offset.y() + y0 * s,
                      (x1 - x0) * s, (y1 - y0) * s)

    def canvas_rect(self) -> QRectF:
        w, h = self._layers.size
        return self.to_widget_rect(0, 0, w, h)

    def _job_source(self, picture: QImage) -> QRectF:
        """The part of a job's preview or attention map that is the canvas: a job on an odd-sized
        canvas runs padded to multiples of 8, and both cover the padding's rows and columns too."""
        w, h = self._layers.size
        pw, ph = padded_size(w, h)
        return QRectF(0, 0, picture.width() * w / pw, picture.height() * h / ph)

    # -- zoom and pan ----------------------------------------------------------------------------
    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        ix, iy = self.to_image(anchor)
        self.zoom = zoom
        s = self.scale()
        self.offset = QPointF(anchor.x() - ix * s, anchor.y() - iy * s)
        self._fitted = False
        emit(self.zoom_changed, self.zoom)
        self.update()

    def zoom_in(self) -> None:
        self.set_zoom(self.zoom * 1.25)

    def zoom_out(self) -> None:
        self.set_zoom(self.zoom / 1.25)

    def actual_size(self) -> None:
        self.set_zoom(1.0)

    def fit(self) -> None:
        w, h = self._layers.size
        margin = 16
        avail_w, avail_h = max(1, self.width() - 2 * margin), max(1, self.height() - 2 * margin)
        s = min(avail_w / w, avail_h / h)
        self.zoom = min(MAX_ZOOM, max(MIN_ZOOM, s * self.devicePixelRatioF()))
        s = self.scale()
        self.offset = QPointF((self.width() - w * s) / 2, (self.height() - h * s) / 2)
        self._fitted = True
        emit(self.zoom_changed, self.zoom)
        self.update()

    def pan_by(self, dx: float, dy: float) -> None:
        self.offset += QPointF(dx, dy)
        self._fitted = False
        self.update()

    # -- layer notifications ---------------------------------------------------------------------
    def _on_layer_changed(self, x0: int, y0: int, x1: int, y1: int) -> None:
        self.update(self.to_widget_rect(x0, y0, x1, y1).toAlignedRect().adjusted(-2, -2, 2, 2))

    def _on_layers_reset(self) -> None:
        self.fit()

    def _on_tool_changed(self) -> None:
        self.update()

    def set_mask_opacity(self, value: float) -> None:
        self.mask_opacity = value
        self.update()

    def set_region_opacity(self, value: float) -> None:
        self.region_opacity = value
        self.update()

    # -- painting --------------------------------------------------------------------------------
    def resizeEvent(self, event) -> None:
        if self._fitted:
            self.fit()
        super().resizeEvent(event)

    def _source_rect(self, area: QRect) -> tuple[QRectF, QRectF] | None:
        """The image pixels under a widget area, and where they land: drawing only those keeps a
        small repaint small on a huge image."""
        w, h = self._layers.size
        x0, y0 = self.to_image(QPointF(area.left(), area.top()))
        x1, y1 = self.to_image(QPointF(area.right() + 1, area.bottom() + 1))
        x0, y0 = max(0, math.floor(x0) - 1), max(0, math.floor(y0) - 1)
        x1, y1 = min(w, math.ceil(x1) + 1), min(h, math.ceil(y1) + 1)
        if x0 >= x1 or y0 >= y1:
            return None
        return QRectF(x0, y0, x1 - x0, y1 - y0), self.to_widget_rect(x0, y0, x1, y1)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        area = event.rect()
        p.fillRect(area, BACKGROUND)
        rects = self._source_rect(area)
        if rects is not None:
            self._paint_layers(p, *rects)
        self._paint_decorations(p)
        p.end()

    def _paint_layers(self, p: QPainter, src: QRectF, dst: QRectF) -> None:
        layers = self._layers
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.zoom < 1.0)
        if layers.preview is not None:  # latent-sized: always smooth, never blocky
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawImage(self.canvas_rect(), layers.preview, self._job_source(layers.preview))
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.zoom < 1.0)
        elif layers.image is not None:
            p.drawImage(dst, layers.image, src)
        else:
            p.fillRect(dst, EMPTY_FILL)
            self._paint_hint(p)
        if self.region_opacity > 0:
            p.setOpacity(self.region_opacity)
            p.drawImage(dst, layers.regions.image, src)
        if self.mask_opacity > 0:
            p.setOpacity(self.mask_opacity)
            p.drawImage(dst, layers.mask.image, src)
        if layers.highlight is not None:
            p.setOpacity(0.7)
            p.drawImage(self.canvas_rect(), layers.highlight, self._job_source(layers.highlight))
        p.setOpacity(1.0)

    def _paint_hint(self, p: QPainter) -> None:
        w, h = self._layers.size
        p.setPen(QColor(120, 120, 120))
        p.drawText(self.canvas_rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                   f"Empty canvas {w} × {h}\n\nType a prompt and press Ctrl+Enter,\n"
                   "or open, drop or paste an image to work on")

    def _paint_decorations(self, p: QPainter) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setPen(QPen(QColor(0, 0, 0, 120), 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(self.canvas_rect().adjusted(-0.5, -0.5, 0.5, 0.5))
        rubber = self._tool.rubber
        if rubber is not None:
            p.setPen(QPen(QColor(255, 255, 255), 1, Qt.PenStyle.DashLine))
            p.drawRect(self.to_widget_rect(*rubber))
        if self._cursor is not None and self._tool.shape == "brush" and not self._space:
            self._paint_cursor(p)

    def _cursor_rect(self) -> QRectF:
        r = max(2.0, self._tool.size * self.scale() / 2)
        c = self._cursor
        return QRectF(c.x() - r, c.y() - r, 2 * r, 2 * r)

    def _paint_cursor(self, p: QPainter) -> None:
        """Black and white rings read on any image; a region's colour says what is painted."""
        rect = self._cursor_rect()
        p.setPen(QPen(QColor(0, 0, 0, 200), 3))
        p.drawEllipse(rect)
        region = self._tool.region if self._tool.target == "region" else None
        colour = QColor(*region.colour) if region is not None else QColor(255, 255, 255, 230)
        p.setPen(QPen(colour, 1.5))
        p.drawEllipse(rect)

    def _move_cursor(self, pos: QPointF | None) -> None:
        if self._cursor is not None:
            self.update(self._cursor_rect().toAlignedRect().adjusted(-3, -3, 3, 3))
        self._cursor = pos
        if pos is not None:
            self.update(self._cursor_rect().toAlignedRect().adjusted(-3, -3, 3, 3))

    # -- input -------------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        button = event.button()
        pos = event.position()
        if button == Qt.MouseButton.MiddleButton or (
                button == Qt.MouseButton.LeftButton and self._space):
            self._pan_from = pos
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif button in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            self._painting = True
            self._tool.press(*self.to_image(pos), erase=button == Qt.MouseButton.RightButton)
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        pos = event.position()
        if self._pan_from is not None:
            delta = pos - self._pan_from
            self._pan_from = pos
            self.pan_by(delta.x(), delta.y())
        elif self._painting:
            self._tool.move(*self.to_image(pos))
        self._move_cursor(pos)

    def mouseReleaseEvent(self, event) -> None:
        if self._pan_from is not None and event.button() in (
                Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._pan_from = None
            self.setCursor(Qt.CursorShape.OpenHandCursor if self._space
                           else Qt.CursorShape.CrossCursor)
        elif self._painting:
            self._painting = False
            self._tool.release(*self.to_image(event.position()))

    def leaveEvent(self, event) -> None:
        self._move_cursor(None)
        super().leaveEvent(event)

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.set_zoom(self.zoom * (1.25 ** steps), event.position())
        event.accept()

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.setCursor(Qt.CursorShape.OpenHandCursor)
            self.update()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.setCursor(Qt.CursorShape.CrossCursor)
            self.update()
            return
        super().keyReleaseEvent(event)

    def dragEnterEvent(self, event) -> None:
        mime = event.mimeData()
        if mime.hasUrls() or mime.hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        mime = event.mimeData()
        paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
        if paths:
            emit(self.files_dropped, paths)
        elif mime.hasImage():
            emit(self.image_dropped, QImage(mime.imageData()))
        elif mime.hasUrls():  # web links only: opening them says why it cannot
            emit(self.files_dropped, [u.toString() for u in mime.urls()])
        event.acceptProposedAction()
