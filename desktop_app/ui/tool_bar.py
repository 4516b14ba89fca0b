"""The painting toolbar: brush or rectangle, paint or erase, brush size and hardness (feather), and
the overlays' opacity. It edits the ToolController and the canvas view, nothing else."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QLabel, QSlider, QToolBar, QWidget

from desktop_app.app.tools import MAX_SIZE, MIN_SIZE, ToolController
from desktop_app.ui.canvas_view import CanvasView

SIZE_STEPS = 1000  # the size slider is logarithmic: 1 px and 1024 px both stay reachable


def size_to_slider(size: float) -> int:
    span = math.log(MAX_SIZE / MIN_SIZE)
    return round(SIZE_STEPS * math.log(max(MIN_SIZE, size) / MIN_SIZE) / span)


def slider_to_size(value: int) -> float:
    return MIN_SIZE * math.exp(value / SIZE_STEPS * math.log(MAX_SIZE / MIN_SIZE))


def _slider(lo: int, hi: int, value: int, tip: str, width: int = 110) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(lo, hi)
    s.setValue(value)
    s.setToolTip(tip)
    s.setFixedWidth(width)
    return s


class ToolBar(QToolBar):
    def __init__(self, tool: ToolController, view: CanvasView,
                 parent: QWidget | None = None) -> None:
        super().__init__("Tools", parent)
        self.setObjectName("tools")
        self._tool = tool
        self._view = view
        group = QActionGroup(self)
        self.brush_action = QAction("Brush", self, checkable=True, checked=True)
        self.brush_action.setShortcut("B")
        self.rect_action = QAction("Rectangle", self, checkable=True)
        self.rect_action.setShortcut("R")
        for a in (self.brush_action, self.rect_action):
            group.addAction(a)
            self.addAction(a)
        self.brush_action.triggered.connect(self._on_brush)
        self.rect_action.triggered.connect(self._on_rect)
        self.erase_action = QAction("Erase", self, checkable=True)
        self.erase_action.setShortcut("E")
        self.erase_action.setToolTip("Erase (E); the right mouse button always erases")
        self.erase_action.toggled.connect(tool.set_erase)
        self.addAction(self.erase_action)
        self.addSeparator()
        self.size = _slider(0, SIZE_STEPS, size_to_slider(tool.size), "Brush size ([ and ])")
        self.size_label = QLabel()
        self.hardness = _slider(0, 100, int(tool.hardness * 100),
                                "Hardness: lower feathers the brush edge", 80)
        self.mask_opacity = _slider(0, 100, int(view.mask_opacity * 100), "Mask overlay opacity",
                                    80)
        self.region_opacity = _slider(0, 100, int(view.region_opacity * 100),
                                      "Region overlay opacity", 80)
        for text, w in (("Size", self.size), (None, self.size_label), ("Hardness", self.hardness),
                        ("Mask", self.mask_opacity), ("Regions", self.region_opacity)):
            if text:
                self.addWidget(QLabel(f" {text} "))
            self.addWidget(w)
        self.addSeparator()
        self.target_label = QLabel()
        self.target_label.setToolTip("What the brush paints: the inpaint mask or the selected "
                                     "region (Regions tab, M for the mask)")
        self.addWidget(self.target_label)
        self.size.valueChanged.connect(self._on_size)
        self.hardness.valueChanged.connect(self._on_hardness)
        self.mask_opacity.valueChanged.connect(self._on_mask_opacity)
        self.region_opacity.valueChanged.connect(self._on_region_opacity)
        tool.changed.connect(self._sync)
        self._sync()

    def _sync(self) -> None:
        self.size.blockSignals(True)
        self.size.setValue(size_to_slider(self._tool.size))
        self.size.blockSignals(False)
        self.size_label.setText(f"{int(round(self._tool.size))} px")
        region = self._tool.region if self._tool.target == "region" else None
        if region is None:
            self.target_label.setText("  Painting: inpaint mask ")
        else:
            r, g, b = region.colour
            self.target_label.setText(f"  Painting: <span style='color: rgb({r},{g},{b})'>■"
                                      f"</span> {region.name} ")
        self.erase_action.blockSignals(True)
        self.erase_action.setChecked(self._tool.erase)
        self.erase_action.blockSignals(False)

    def _on_brush(self) -> None:
        self._tool.set_shape("brush")

    def _on_rect(self) -> None:
        self._tool.set_shape("rect")

    def _on_size(self, value: int) -> None:
        self._tool.set_size(round(slider_to_size(value)))

    def _on_hardness(self, value: int) -> None:
        self._tool.set_hardness(value / 100.0)

    def _on_mask_opacity(self, value: int) -> None:
        self._view.set_mask_opacity(value / 100.0)

    def _on_region_opacity(self, value: int) -> None:
        self._view.set_region_opacity(value / 100.0)
