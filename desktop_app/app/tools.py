"""The painting tools: what a left-drag on the canvas does (brush or rectangle, paint or erase) and
what it paints into (the inpaint mask or the selected region). The canvas view calls press / move /
release with image coordinates; every drag becomes one undo command."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from desktop_app.app.qt_compat import emit
from desktop_app.app.stroke import StrokeRecorder
from desktop_app.document.brush import BrushSpec, Rect
from desktop_app.document.canvas_doc import CanvasDocument
from desktop_app.document.regions import RegionLayer

MIN_SIZE, MAX_SIZE = 1.0, 1024.0


class ToolController(QObject):
    changed = Signal()  # size, hardness, shape, target or mode changed: views redraw the cursor
    rubber_changed = Signal()
    message = Signal(str)

    def __init__(self, doc: CanvasDocument, recorder: StrokeRecorder,
                 size: float = 48.0, hardness: float = 0.8) -> None:
        super().__init__()
        self._doc = doc
        self._rec = recorder
        # Clamped like set_size and set_hardness: they come from the settings file.
        self.size = float(min(MAX_SIZE, max(MIN_SIZE, size)))
        self.hardness = float(min(1.0, max(0.0, hardness)))
        self.shape = "brush"  # or "rect"
        self.erase = False
        self.target = "mask"  # or "region"
        self.region: RegionLayer | None = None
        self.rubber: Rect | None = None
        self._start: tuple[float, float] | None = None
        self._erasing = False

    # -- options ------------------------------------------------------------------------------
    def set_size(self, size: float) -> None:
        self.size = float(min(MAX_SIZE, max(MIN_SIZE, size)))
        emit(self.changed)

    def bigger(self) -> None:
        self.set_size(self.size * 1.25 + 1)

    def smaller(self) -> None:
        self.set_size((self.size - 1) / 1.25)

    def set_hardness(self, hardness: float) -> None:
        self.hardness = float(min(1.0, max(0.0, hardness)))
        emit(self.changed)

    def set_shape(self, shape: str) -> None:
        self.shape = shape
        emit(self.changed)

    def set_erase(self, erase: bool) -> None:
        self.erase = bool(erase)
        emit(self.changed)

    def set_target(self, target: str, region: RegionLayer | None = None) -> None:
        self.target = target
        self.region = region
        emit(self.changed)

    def spec(self, erase: bool) -> BrushSpec:
        return BrushSpec(size=self.size, hardness=self.hardness, erase=erase)

    # -- drag -----------------------------------------------------------------------------------
    def _target_region(self) -> tuple[bool, RegionLayer | None]:
        if self.target == "mask":
            return True, None
        if self.region is None or self.region not in self._doc.regions:
            emit(self.message, "Select or add a region to paint it")
            return False, None
        return True, self.region

    def press(self, x: float, y: float, erase: bool = False) -> None:
        ok, region = self._target_region()
        if not ok:
            return
        self._erasing = erase or self.erase
        what = region.name if region else "mask"
        verb = "Erase" if self._erasing else "Paint"
        self._rec.begin(region, f"{verb} {what}")
        if self.shape == "rect":
            self._start = (x, y)
            self.rubber = self._rect_from(x, y)
            emit(self.rubber_changed)
        else:
            self._rec.brush_to((x, y), self.spec(self._erasing))

    def move(self, x: float, y: float) -> None:
        if not self._rec.active:
            return
        if self.shape == "rect":
            self.rubber = self._rect_from(x, y)
            emit(self.rubber_changed)
            return
        self._rec.brush_to((x, y), self.spec(self._erasing))

    def release(self, x: float, y: float) -> None:
        if not self._rec.active:
            if self.rubber is not None:  # the stroke was ended under it (an undo in mid-drag)
                self.rubber, self._start = None, None
                emit(self.rubber_changed)
            return
        if self.shape == "rect" and self._start is not None:
            self._rec.rectangle(self._rect_from(x, y), self._erasing)
            self.rubber = None
            self._start = None
            emit(self.rubber_changed)
        else:
            self.move(x, y)
        self._rec.end()

    def _rect_from(self, x: float, y: float) -> Rect:
        sx, sy = self._start
        return (int(min(sx, x)), int(min(sy, y)), int(max(sx, x)) + 1, int(max(sy, y)) + 1)
