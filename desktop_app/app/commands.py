"""Undo commands. A stroke is one command that stores only the changed rectangle's old and new
values, so undo stays cheap on a 4096² canvas; whole-document changes store document states."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QUndoCommand

from desktop_app.document.brush import Rect
from desktop_app.document.canvas_doc import CanvasDocument, DocState
from desktop_app.document.regions import RegionLayer


class PatchCommand(QUndoCommand):
    """Replace target[rect] (the inpaint mask or a region's mask). Pushed after the change was made
    live, so the first redo does nothing."""

    def __init__(self, doc: CanvasDocument, target_of: RegionLayer | None, rect: Rect,
                 old: np.ndarray, new: np.ndarray, text: str) -> None:
        super().__init__(text)
        self._doc = doc
        self._region = target_of  # None = the inpaint mask; regions may be replaced, masks not
        self._rect = rect
        self._old = old
        self._new = new
        self._applied = True

    def _target(self) -> np.ndarray | None:
        if self._region is None:
            return self._doc.mask
        region = self._doc.find_region(self._region)  # its copy, after a whole-document undo
        return None if region is None else region.mask

    def _put(self, values: np.ndarray) -> None:
        x0, y0, x1, y1 = self._rect
        target = self._target()
        # Never raise here: an exception out of an undo command takes the whole app down.
        if target is None or target[y0:y1, x0:x1].shape != values.shape:
            return
        target[y0:y1, x0:x1] = values
        self._doc.target_changed(target, self._rect)

    def redo(self) -> None:
        if self._applied:
            self._applied = False
            return
        self._put(self._new)

    def undo(self) -> None:
        self._put(self._old)


class ImageCommand(QUndoCommand):
    """Put an image (a result, an opened file, a history item) on the canvas."""

    def __init__(self, doc: CanvasDocument, image: np.ndarray | None,
                 meta: object, text: str) -> None:
        super().__init__(text)
        self._doc = doc
        self._image, self._meta = image, meta
        same_size = image is None or image.shape[:2] == (doc.height, doc.width)
        # A different size resets mask and regions, so only then keep the whole state.
        self._before_state = None if same_size else doc.state()
        self._before = (doc.image, doc.image_meta)

    def redo(self) -> None:
        if self._before_state is not None:  # with region edits made in place since the undo
            self._before_state = self._doc.state()
        self._doc.set_image(self._image, self._meta)

    def undo(self) -> None:
        if self._before_state is not None:
            self._doc.set_state(self._before_state)
        else:
            self._doc.set_image(*self._before)


class StateCommand(QUndoCommand):
    """Swap the whole document (new canvas, history restore). Each side is taken again as it is
    left: a region's words, strength, name and colour are edited in place, not as undo steps,
    and an undo then redo must not drop those edits."""

    def __init__(self, doc: CanvasDocument, after: DocState, text: str) -> None:
        super().__init__(text)
        self._doc = doc
        self._before = doc.state()
        self._after = after

    def redo(self) -> None:
        self._before = self._doc.state()
        self._doc.set_state(self._after)

    def undo(self) -> None:
        self._after = self._doc.state()
        self._doc.set_state(self._before)


class AddRegionCommand(QUndoCommand):
    def __init__(self, doc: CanvasDocument, region: RegionLayer, index: int) -> None:
        super().__init__(f"Add region {region.name}")
        self._doc, self._region, self._index = doc, region, index

    def redo(self) -> None:
        self._doc.insert_region(self._index, self._region)

    def undo(self) -> None:
        if (removed := self._doc.remove_region(self._region)) is not None:
            self._region = removed[1]  # with any edits made to it since


class RemoveRegionCommand(QUndoCommand):
    def __init__(self, doc: CanvasDocument, region: RegionLayer) -> None:
        super().__init__(f"Remove region {region.name}")
        self._doc, self._region = doc, region
        self._index = doc.regions.index(region)

    def redo(self) -> None:
        if (removed := self._doc.remove_region(self._region)) is not None:
            self._index, self._region = removed

    def undo(self) -> None:
        self._doc.insert_region(self._index, self._region)
