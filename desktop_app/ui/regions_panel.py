"""The regions panel: the paint-with-words regions, their words (typed or taken from the prompt's
selected text), strength and colour, an inline warning when the words are not in the prompt, and
each region's adherence after a job. Selecting a region makes the brush paint it; "Mask" goes back
to the inpaint mask."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.app.region_editor import RegionEditor
from desktop_app.document.job import MAX_REGION_STRENGTH
from desktop_app.document.regions import RegionLayer, words_in_prompt


def item_text(region: RegionLayer) -> str:
    if region.adherence is None:
        return region.name
    return f"{region.name}  ·  adherence {region.adherence:.0%}"


def swatch(colour: tuple[int, int, int], size: int = 14) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(QColor(*colour))
    return QIcon(pm)


class RegionsPanel(QWidget):
    def __init__(self, editor: RegionEditor, prompt_text: Callable[[], str],
                 selected_text: Callable[[], str], parent: QWidget | None = None,
                 from_prompt: Callable[[], object] | None = None) -> None:
        super().__init__(parent)
        self._editor = editor
        self._prompt_text = prompt_text
        self._selected_text = selected_text
        self._syncing = False
        self.list = QListWidget()
        self.list.setEditTriggers(QListWidget.EditTrigger.DoubleClicked
                                  | QListWidget.EditTrigger.EditKeyPressed)
        self.list.currentRowChanged.connect(self._on_row)
        self.list.itemChanged.connect(self._on_item_edited)
        self.mask_button = QPushButton("Paint mask")
        self.mask_button.setCheckable(True)
        self.mask_button.setChecked(True)
        self.mask_button.setToolTip("Paint the inpaint mask instead of a region")
        self.mask_button.clicked.connect(self._on_paint_mask)
        self.add_button = QPushButton("Add")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(self._on_add)
        self.remove_button.clicked.connect(self._on_remove)
        self.from_prompt_button = QPushButton("From prompt")
        self.from_prompt_button.setToolTip(
            "Replace the regions by one per place the prompt names (\"a red circle at the top "
            "left and a blue square on the right\"), each a third of the image (Ctrl+Shift+R)")
        self.from_prompt_button.setVisible(from_prompt is not None)
        if from_prompt is not None:
            self.from_prompt_button.clicked.connect(lambda: from_prompt())
        buttons = QHBoxLayout()
        for b in (self.mask_button, self.add_button, self.remove_button,
                  self.from_prompt_button):
            buttons.addWidget(b)
        self.details = self._build_details()
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.details)
        editor.doc.add_listener(self._on_doc)
        editor.selected_changed.connect(self._on_selected)
        self._refresh()

    def _build_details(self) -> QWidget:
        box = QWidget()
        form = QFormLayout(box)
        form.setContentsMargins(0, 0, 0, 0)
        self.words = QLineEdit()
        self.words.setPlaceholderText("words of the prompt this region steers")
        self.words.textEdited.connect(self._on_words)
        self.use_selection = QPushButton("Use selection")
        self.use_selection.setToolTip("Take the words selected in the prompt")
        self.use_selection.clicked.connect(self._on_use_selection)
        words_row = QHBoxLayout()
        words_row.addWidget(self.words, 1)
        words_row.addWidget(self.use_selection)
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #d9534f")
        self.strength = QDoubleSpinBox(minimum=0.0, maximum=MAX_REGION_STRENGTH, singleStep=0.1,
                                       value=1.0)
        self.strength.valueChanged.connect(self._on_strength)
        self.colour = QPushButton("Colour…")
        self.colour.clicked.connect(self._on_colour)
        self.adherence = QLabel("–")
        self.adherence.setToolTip("Share of the words' attention that fell inside the region "
                                  "in the last job")
        form.addRow("Words", words_row)
        form.addRow(self.warning)
        form.addRow("Strength", self.strength)
        form.addRow("Colour", self.colour)
        form.addRow("Adherence", self.adherence)
        return box

    # -- refresh from the document -------------------------------------------------------------
    def _region(self) -> RegionLayer | None:
        return self._editor.selected

    def _refresh(self) -> None:
        self._syncing = True
        regions = self._editor.doc.regions
        self.list.clear()
        for r in regions:
            item = QListWidgetItem(swatch(r.colour), item_text(r))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            item.setToolTip(r.words or "no words yet")
            self.list.addItem(item)
        sel = self._region()
        self.list.setCurrentRow(regions.index(sel) if sel in regions else -1)
        self._syncing = False
        self._refresh_details()

    def _refresh_details(self) -> None:
        region = self._region()
        self._syncing = True
        self.details.setEnabled(region is not None)
        self.remove_button.setEnabled(region is not None)
        self.mask_button.setChecked(region is None)
        if region is not None:
            if self.words.text() != region.words:
                self.words.setText(region.words)
            self.strength.setValue(region.strength)
            self.adherence.setText("–" if region.adherence is None
                                   else f"{region.adherence:.0%}")
        else:
            self.words.clear()
            self.adherence.setText("–")
        self._syncing = False
        self.check_words()

    def check_words(self, *_args: object) -> None:
        """Warn inline when the region's words are not in the prompt: they would do nothing."""
        region = self._region()
        text = ""
        if region is not None:
            if not region.words.strip():
                text = "Type the words of the prompt this region should steer."
            elif not words_in_prompt(region.words, self._prompt_text()):
                text = f"“{region.words.strip()}” is not in the prompt."
        self.warning.setText(text)
        self.warning.setVisible(bool(text))

    def _on_doc(self, event: str, payload: object) -> None:
        if event in ("reset", "regions"):
            self._refresh()
        elif event == "region_props":
            row = self._editor.doc.regions.index(payload) if payload in self._editor.doc.regions \
                else -1
            if row >= 0:
                self._syncing = True
                item = self.list.item(row)
                item.setText(item_text(payload))
                item.setIcon(swatch(payload.colour))
                item.setToolTip(payload.words or "no words yet")
                self._syncing = False
            if payload is self._region():
                self._refresh_details()

    def _on_selected(self, region: object) -> None:
        regions = self._editor.doc.regions
        self._syncing = True
        self.list.setCurrentRow(regions.index(region) if region in regions else -1)
        self._syncing = False
        self._refresh_details()

    # -- user edits ---------------------------------------------------------------------------------
    def _on_row(self, row: int) -> None:
        if self._syncing:
            return
        regions = self._editor.doc.regions
        self._editor.select(regions[row] if 0 <= row < len(regions) else None)

    def _on_item_edited(self, item: QListWidgetItem) -> None:
        if self._syncing:
            return
        row = self.list.row(item)
        if 0 <= row < len(self._editor.doc.regions):
            self._editor.set_name(self._editor.doc.regions[row],
                                  item.text().split("  ·  ")[0])

    def _on_paint_mask(self) -> None:
        self._editor.paint_mask()

    def _on_add(self) -> None:
        self._editor.add(self._selected_text())

    def _on_remove(self) -> None:
        if self._region() is not None:
            self._editor.remove(self._region())

    def _on_words(self, text: str) -> None:
        if self._region() is not None and not self._syncing:
            self._editor.set_words(self._region(), text)

    def _on_use_selection(self) -> None:
        text = self._selected_text()
        if self._region() is not None and text:
            self._editor.set_words(self._region(), text)

    def _on_strength(self, value: float) -> None:
        if self._region() is not None and not self._syncing:
            self._editor.set_strength(self._region(), value)

    def _on_colour(self) -> None:
        region = self._region()
        if region is None:
            return
        colour = QColorDialog.getColor(QColor(*region.colour), self, "Region colour")
        if colour.isValid():
            self._editor.set_colour(region, (colour.red(), colour.green(), colour.blue()))
