"""Per-word attention heatmaps under the prompt, from the previews' attention maps. Hovering a word
asks for its map to be highlighted on the canvas."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from desktop_app.app.imaging import rgb_to_qimage
from desktop_app.app.qt_compat import emit
from desktop_app.ui.layers import heat_colours

TILE = 44


class AttentionStrip(QScrollArea):
    hovered = Signal(object)  # np.ndarray map of the hovered word, or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._maps: dict[str, np.ndarray] = {}
        self._tiles: dict[QObject, str] = {}
        self._hovered: str | None = None  # the word under the mouse: its map is on the canvas
        self._inner = QWidget()
        self._row = QHBoxLayout(self._inner)
        self._row.setContentsMargins(0, 0, 0, 0)
        self._row.addStretch(1)
        self.setWidget(self._inner)
        self.setWidgetResizable(True)
        self.setFixedHeight(TILE + 34)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setToolTip("Where each word attends; hover to see it on the canvas")
        self.hide()

    def words(self) -> list[str]:
        return list(self._maps)

    def set_maps(self, maps: dict[str, np.ndarray] | None) -> None:
        if not maps:
            self.clear()
            return
        if list(maps) == list(self._maps):  # same words: update the pictures only
            self._maps = dict(maps)
            for tile, word in self._tiles.items():
                tile.findChild(QLabel, "heat").setPixmap(self._pixmap(maps[word]))
            if self._hovered is not None:  # the canvas follows the hovered word's new map
                emit(self.hovered, self._maps[self._hovered])
            return
        self.clear()
        self._maps = dict(maps)
        for word, heat in maps.items():
            self._row.insertWidget(self._row.count() - 1, self._tile(word, heat))
        self.show()

    def clear(self) -> None:
        for tile in list(self._tiles):
            tile.deleteLater()
        self._tiles.clear()
        self._maps = {}
        if self._hovered is not None:  # its tile goes without a Leave: take its map off the canvas
            self._hovered = None
            emit(self.hovered, None)
        self.hide()

    def _pixmap(self, heat: np.ndarray) -> QPixmap:
        dpr = self.devicePixelRatioF()
        img = rgb_to_qimage(heat_colours(heat)).scaled(
            int(TILE * dpr), int(TILE * dpr), Qt.AspectRatioMode.IgnoreAspectRatio,
            Qt.TransformationMode.SmoothTransformation)
        pm = QPixmap.fromImage(img)
        pm.setDevicePixelRatio(dpr)
        return pm

    def _tile(self, word: str, heat: np.ndarray) -> QWidget:
        tile = QWidget()
        col = QVBoxLayout(tile)
        col.setContentsMargins(2, 0, 2, 0)
        col.setSpacing(1)
        pic = QLabel(objectName="heat")
        pic.setPixmap(self._pixmap(heat))
        # A long word is shortened with an ellipsis to its tile's width; the tile's tooltip says
        # it whole.
        label = QLabel()
        label.setText(label.fontMetrics().elidedText(word, Qt.TextElideMode.ElideRight, TILE + 8))
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setMaximumWidth(TILE + 8)
        tile.setToolTip(word)
        col.addWidget(pic)
        col.addWidget(label)
        tile.installEventFilter(self)
        self._tiles[tile] = word
        return tile

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj in self._tiles:
            if event.type() == QEvent.Type.Enter:
                self._hovered = self._tiles[obj]
                emit(self.hovered, self._maps.get(self._hovered))
            elif event.type() == QEvent.Type.Leave:
                self._hovered = None
                emit(self.hovered, None)
        return super().eventFilter(obj, event)
