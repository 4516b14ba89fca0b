"""The strip of finished generations: click shows one on the canvas, Restore (or double-click)
brings back its input canvas and all its parameters."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.app.imaging import rgb_to_qimage
from desktop_app.app.qt_compat import emit
from desktop_app.document.history import HistoryItem

THUMB = 80


class _List(QListWidget):
    """A list that says what it is for while it is empty."""

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.count() == 0:
            p = QPainter(self.viewport())
            p.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            p.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter,
                       "Finished images appear here: click one to show it, "
                       "double-click (or Restore) to bring back its settings")
            p.end()


class HistoryStrip(QWidget):
    show_requested = Signal(object)  # HistoryItem
    restore_requested = Signal(object)

    def __init__(self, limit: int = 40, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._items: list[HistoryItem] = []
        self.limit = limit  # as History's: each item holds full images, so the oldest goes
        self.list = _List()
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setFlow(QListView.Flow.LeftToRight)
        self.list.setWrapping(False)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setMovement(QListView.Movement.Static)
        self.list.setFixedHeight(THUMB + 44)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.list.itemClicked.connect(self._on_clicked)
        self.list.itemDoubleClicked.connect(self._on_double_clicked)
        self.list.currentRowChanged.connect(self._on_row)
        self.restore_button = QPushButton("Restore")
        self.restore_button.setToolTip("Bring back this job's input, mask, regions and parameters")
        self.restore_button.setEnabled(False)
        self.restore_button.clicked.connect(self._on_restore)
        side = QVBoxLayout()
        side.addWidget(self.restore_button)
        side.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(self.list, 1)
        layout.addLayout(side)
        self.setMaximumHeight(THUMB + 56)

    def _thumbnail(self, item: HistoryItem) -> QIcon:
        dpr = self.devicePixelRatioF()
        img = rgb_to_qimage(item.image).scaled(
            int(THUMB * dpr), int(THUMB * dpr), Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation)
        pm = QPixmap.fromImage(img)
        pm.setDevicePixelRatio(dpr)
        return QIcon(pm)

    def add(self, item: HistoryItem) -> None:
        self._items.append(item)
        req = item.result.request
        entry = QListWidgetItem(self._thumbnail(item), f"seed {req.seed}")
        entry.setToolTip(f"{item.label()}\n{req.prompt}\n{req.steps} steps, CFG {req.cfg_scale}"
                         + (f"\n{item.saved_path}" if item.saved_path else ""))
        self.list.addItem(entry)
        while len(self._items) > self.limit:
            del self._items[0]
            self.list.takeItem(0)
        self.list.scrollToItem(entry)

    def item_at(self, row: int) -> HistoryItem | None:
        return self._items[row] if 0 <= row < len(self._items) else None

    def _on_row(self, row: int) -> None:
        self.restore_button.setEnabled(row >= 0)

    def _on_clicked(self, entry: QListWidgetItem) -> None:
        item = self.item_at(self.list.row(entry))
        if item is not None:
            emit(self.show_requested, item)

    def _on_double_clicked(self, entry: QListWidgetItem) -> None:
        item = self.item_at(self.list.row(entry))
        if item is not None:
            emit(self.restore_requested, item)

    def _on_restore(self) -> None:
        item = self.item_at(self.list.currentRow())
        if item is not None:
            emit(self.restore_requested, item)
