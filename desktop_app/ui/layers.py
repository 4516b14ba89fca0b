"""The canvas's QImages, kept in step with the document incrementally: a brush segment refreshes
only its rectangle of the tinted overlays, never the whole 4096² buffer."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from desktop_app.app.qt_compat import emit
from desktop_app.document.brush import Rect
from desktop_app.document.canvas_doc import CanvasDocument

MASK_COLOUR = (255, 48, 96)
REGION_ALPHA = 0.85  # regions overlap: keep each a little see-through even at full opacity


def _rgb_qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def heat_colours(values: np.ndarray) -> np.ndarray:
    """A dark-to-hot colour map (black, red, yellow, white) for attention maps, RGB uint8."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    rgb = np.concatenate([np.clip(v * 3, 0, 1), np.clip(v * 3 - 1, 0, 1),
                          np.clip(v * 3 - 2, 0, 1)], axis=-1)
    return (rgb * 255).astype(np.uint8)


def tint_table(colour: tuple[int, int, int]) -> np.ndarray:
    """Premultiplied ARGB32 pixel for each 8-bit coverage level of one colour: tinting a mask
    is then a single table lookup per pixel."""
    a = np.arange(256, dtype=np.uint32)
    r, g, b = ((a * c + 127) // 255 for c in colour)
    return (a << 24) | (r << 16) | (g << 8) | b


_MASK_TABLE = tint_table(MASK_COLOUR)


class Overlay:
    """A premultiplied ARGB QImage sharing memory with a numpy buffer we update in place."""

    def __init__(self, width: int, height: int) -> None:
        self.buf = np.zeros((height, width, 4), np.uint8)  # B, G, R, A on little-endian
        self.pixels = self.buf.view(np.uint32).reshape(height, width)  # native ARGB32 words
        self.image = QImage(self.buf.data, width, height, 4 * width,
                            QImage.Format.Format_ARGB32_Premultiplied)

    def write(self, rect: Rect, premultiplied_rgba: np.ndarray) -> None:
        x0, y0, x1, y1 = rect
        out = self.buf[y0:y1, x0:x1]
        out[..., 0] = premultiplied_rgba[..., 2]
        out[..., 1] = premultiplied_rgba[..., 1]
        out[..., 2] = premultiplied_rgba[..., 0]
        out[..., 3] = premultiplied_rgba[..., 3]


class CanvasLayers(QObject):
    changed = Signal(int, int, int, int)  # image-pixel rectangle to repaint
    reset = Signal()  # size or everything changed
    preview_changed = Signal()

    def __init__(self, doc: CanvasDocument) -> None:
        super().__init__()
        self._doc = doc
        self.image: QImage | None = None
        self.preview: QImage | None = None
        self.highlight: QImage | None = None
        self._colours: list[tuple[int, int, int]] = []
        self.mask = Overlay(doc.width, doc.height)
        self.regions = Overlay(doc.width, doc.height)
        self._rebuild()
        doc.add_listener(self._on_doc)

    @property
    def size(self) -> tuple[int, int]:
        return self._doc.size

    def _full(self) -> Rect:
        return (0, 0, self._doc.width, self._doc.height)

    def _rebuild(self) -> None:
        doc = self._doc
        self.image = None if doc.image is None else _rgb_qimage(doc.image)
        if self.mask.buf.shape[:2] != (doc.height, doc.width):
            # New overlays start transparent: only fill what has content (opening a 4096² image
            # would otherwise spend a second tinting an empty mask).
            self.mask = Overlay(doc.width, doc.height)
            self.regions = Overlay(doc.width, doc.height)
            if doc.has_mask():
                self._update_mask(self._full())
            if doc.regions:
                self._update_regions(self._full())
            return
        self._update_mask(self._full())
        self._update_regions(self._full())

    def _on_doc(self, event: str, payload: object) -> None:
        if event == "reset":
            self._rebuild()
            emit(self.reset)
        elif event == "image":
            self.image = None if self._doc.image is None else _rgb_qimage(self._doc.image)
            emit(self.changed, *self._full())
        elif event == "mask":
            rect = payload or self._full()
            self._update_mask(rect)
            emit(self.changed, *rect)
        elif event == "region":
            rect = payload[1] or self._full()
            self._update_regions(rect)
            emit(self.changed, *rect)
        elif event == "region_props" and self._colours == [r.colour for r in self._doc.regions]:
            return  # words, strength, name, adherence: not drawn (a 4096² redraw per keystroke)
        elif event in ("regions", "region_props"):
            self._update_regions(self._full())
            emit(self.changed, *self._full())

    def _update_mask(self, rect: Rect) -> None:
        x0, y0, x1, y1 = rect
        level = self._doc.mask[y0:y1, x0:x1] * np.float32(255.0)
        level += np.float32(0.5)
        self.mask.pixels[y0:y1, x0:x1] = _MASK_TABLE[level.astype(np.uint8)]

    def _update_regions(self, rect: Rect) -> None:
        x0, y0, x1, y1 = rect
        self._colours = [r.colour for r in self._doc.regions]  # what the overlay is drawn in
        if not self._doc.regions:  # the common case, and a 4096² canvas opens without a stall
            self.regions.pixels[y0:y1, x0:x1] = 0
            return
        out = np.zeros((y1 - y0, x1 - x0, 4), np.float32)
        for region in self._doc.regions:
            a = region.mask[y0:y1, x0:x1] * REGION_ALPHA
            keep = 1.0 - a
            for i, c in enumerate(region.colour):
                out[..., i] = out[..., i] * keep + a * c
            out[..., 3] = out[..., 3] * keep + a * 255.0
        self.regions.write(rect, (out + 0.5).astype(np.uint8))

    # -- transient layers ------------------------------------------------------------------------
    def set_preview(self, rgb: np.ndarray | None) -> None:
        """Numpy preview -> QImage here, on the GUI thread."""
        self.preview = None if rgb is None else _rgb_qimage(rgb)
        emit(self.preview_changed)
        emit(self.changed, *self._full())

    def set_highlight(self, heat: np.ndarray | None) -> None:
        if heat is None:
            self.highlight = None
        else:
            rgb = heat_colours(heat)
            alpha = (np.clip(heat, 0, 1) * 255).astype(np.uint8)
            rgba = np.concatenate([rgb.astype(np.uint16) * alpha[..., None] // 255,
                                   alpha[..., None]], axis=-1).astype(np.uint8)
            h, w = heat.shape
            ov = Overlay(w, h)
            ov.write((0, 0, w, h), rgba)
            self.highlight = ov.image.copy()
        emit(self.changed, *self._full())
