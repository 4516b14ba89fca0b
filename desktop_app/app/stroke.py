"""Recording a stroke (press .. release) as one undo command. Before a tile of the target is first
touched its old values are saved; at release the changed bounding rectangle's old values are put
together from those tiles, so nothing proportional to the canvas is copied per stroke."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QUndoStack

from desktop_app.app.commands import PatchCommand
from desktop_app.document.brush import BrushSpec, BrushStroke, Rect, clip_rect, fill_rect, union
from desktop_app.document.canvas_doc import CanvasDocument
from desktop_app.document.regions import RegionLayer

TILE = 128


class StrokeRecorder:
    def __init__(self, doc: CanvasDocument, undo_stack: QUndoStack) -> None:
        self._doc = doc
        self._undo = undo_stack
        self._region: RegionLayer | None = None
        self._target: np.ndarray | None = None
        self._tiles: dict[tuple[int, int], np.ndarray] = {}
        self._rect: Rect | None = None
        self._text = ""
        self._brush: BrushStroke | None = None
        doc.add_listener(self._on_doc)

    @property
    def active(self) -> bool:
        return self._target is not None

    def begin(self, region: RegionLayer | None, text: str) -> None:
        self._region = region
        self._target = self._doc.mask if region is None else region.mask
        self._tiles = {}
        self._rect = None
        self._text = text
        self._brush = None

    def _on_doc(self, event: str, _payload: object) -> None:
        """A change that replaced the array being painted (Ctrl+Z in mid-stroke back past a new
        canvas, a removed region) ends the stroke: its pixels went to an array the canvas no longer
        holds, and a command for it would put them into another one, of another size. The stroke
        so far is taken back out of that array, which an undo step may bring back (Undo of the
        region's removal): it never became a step of its own, so it must not come back half."""
        target = self._target
        if target is None or event not in ("reset", "regions"):
            return
        if target is not self._doc.mask and all(r.mask is not target for r in self._doc.regions):
            for (ty, tx), old in self._tiles.items():
                target[ty * TILE:ty * TILE + old.shape[0], tx * TILE:tx * TILE + old.shape[1]] = old
            self._target, self._brush, self._tiles, self._rect = None, None, {}, None

    def _save_tiles(self, rect: Rect) -> None:
        x0, y0, x1, y1 = rect
        target = self._target
        for ty in range(y0 // TILE, (y1 - 1) // TILE + 1):
            for tx in range(x0 // TILE, (x1 - 1) // TILE + 1):
                if (ty, tx) not in self._tiles:
                    self._tiles[(ty, tx)] = target[ty * TILE:(ty + 1) * TILE,
                                                   tx * TILE:(tx + 1) * TILE].copy()

    def brush_to(self, p: tuple[float, float], spec: BrushSpec) -> Rect | None:
        """Extend the current brush stroke to p (the first call starts it)."""
        if self._target is None:
            return None
        if self._brush is None:
            self._brush = BrushStroke(self._target, spec, self._save_tiles)
        rect = self._brush.to(p)
        self._changed(rect)
        return rect

    def rectangle(self, rect: Rect, erase: bool) -> Rect | None:
        if self._target is None:
            return None
        h, w = self._target.shape
        r = clip_rect(rect, w, h)
        if r is None:
            return None
        self._save_tiles(r)
        fill_rect(self._target, r, erase)
        self._changed(r)
        return r

    def replace_all(self, values: np.ndarray) -> None:
        """A whole-mask operation (grow, invert, clear, load) recorded like a stroke."""
        h, w = self._target.shape
        self._save_tiles((0, 0, w, h))
        self._target[...] = values
        self._changed((0, 0, w, h))

    def _changed(self, rect: Rect | None) -> None:
        if rect is None:
            return
        self._rect = union(self._rect, rect)
        self._doc.target_changed(self._target, rect)

    def end(self) -> bool:
        """Push one command for the whole stroke; False when nothing changed."""
        if self._brush is not None:
            self._changed(self._brush.finish())
            self._brush = None
        target, rect = self._target, self._rect
        self._target = None
        if target is None or rect is None:
            return False
        x0, y0, x1, y1 = rect
        new = target[y0:y1, x0:x1].copy()
        old = new.copy()
        for (ty, tx), tile in self._tiles.items():
            tx0, ty0 = tx * TILE, ty * TILE
            ix0, iy0 = max(x0, tx0), max(y0, ty0)
            ix1, iy1 = min(x1, tx0 + tile.shape[1]), min(y1, ty0 + tile.shape[0])
            if ix0 < ix1 and iy0 < iy1:
                old[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = tile[iy0 - ty0:iy1 - ty0,
                                                                 ix0 - tx0:ix1 - tx0]
        self._tiles = {}
        if np.array_equal(old, new):
            return False
        self._undo.push(PatchCommand(self._doc, self._region, rect, old, new, self._text))
        return True
