"""Region edits the regions panel asks for: add and remove are undo steps; name, words, strength
and colour edit the region in place. Selecting a region makes the brush paint it."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from desktop_app.app.commands import AddRegionCommand, RemoveRegionCommand
from desktop_app.app.qt_compat import emit
from desktop_app.app.tools import ToolController
from desktop_app.document.canvas_doc import CanvasDocument
from desktop_app.document.model_info import GENERIC_REGION_STRENGTH, region_strength_for
from desktop_app.document.regions import RegionLayer, next_colour


class RegionEditor(QObject):
    selected_changed = Signal(object)  # RegionLayer or None

    def __init__(self, doc: CanvasDocument, undo: QUndoStack, tool: ToolController) -> None:
        super().__init__()
        self.doc = doc
        self._undo = undo
        self._tool = tool
        self.selected: RegionLayer | None = None
        # What a new region starts at: the loaded model's recommendation (the built-in model
        # places painted words better at 8 than at eDiff-I's generic 1).
        self.default_strength = GENERIC_REGION_STRENGTH
        doc.add_listener(self._on_doc)

    def adopt_model_defaults(self, info: object) -> None:
        """New regions start at the loaded model's recommended strength; regions already on the
        canvas keep theirs (the person may have set them)."""
        self.default_strength = region_strength_for(info)

    def add(self, words: str = "") -> RegionLayer:
        n = len(self.doc.regions) + 1
        names = {r.name for r in self.doc.regions}
        while f"Region {n}" in names:
            n += 1
        region = RegionLayer.empty(f"Region {n}", next_colour(self.doc.regions), self.doc.size,
                                   words=words, strength=self.default_strength)
        self._undo.push(AddRegionCommand(self.doc, region, len(self.doc.regions)))
        self.select(region)
        return region

    def remove(self, region: RegionLayer) -> None:
        if region in self.doc.regions:
            self._undo.push(RemoveRegionCommand(self.doc, region))

    def select(self, region: RegionLayer | None) -> None:
        self.selected = region
        if region is None:
            self._tool.set_target("mask")
        else:
            self._tool.set_target("region", region)
        emit(self.selected_changed, region)

    def paint_mask(self) -> None:
        self.select(None)

    def set_name(self, region: RegionLayer, name: str) -> None:
        self.doc.update_region(region, name=name.strip() or region.name)
        self._tool_shows(region)

    def set_words(self, region: RegionLayer, words: str) -> None:
        self.doc.update_region(region, words=words, adherence=None)

    def set_strength(self, region: RegionLayer, strength: float) -> None:
        self.doc.update_region(region, strength=float(strength), adherence=None)

    def set_colour(self, region: RegionLayer, colour: tuple[int, int, int]) -> None:
        self.doc.update_region(region, colour=tuple(colour))
        self._tool_shows(region)

    def _tool_shows(self, region: RegionLayer) -> None:
        if region is self.selected:  # the toolbar and the cursor show the region's name/colour
            emit(self._tool.changed)

    def _on_doc(self, event: str, payload: object) -> None:
        if event in ("reset", "regions") and self.selected not in self.doc.regions:
            # An undo that put back copies of the regions keeps the selected one's copy selected.
            self.select(None if self.selected is None else self.doc.find_region(self.selected))
