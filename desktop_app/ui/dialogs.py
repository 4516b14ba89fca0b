"""Small dialogs: a new canvas of a chosen size, and file pickers with the right filters."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QSpinBox,
    QWidget,
)

from desktop_app.document.job import MAX_SIDE

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff);;All files (*)"
PNG_FILTER = "PNG image (*.png)"
PARAMS_FILTER = "Images with parameters (*.png *.jpg *.jpeg *.webp);;All files (*)"
LAYOUT_FILTER = "Region layout (*.json)"
PRESETS = ((256, 256), (512, 512), (768, 768), (1024, 1024), (768, 512), (512, 768),
           (1024, 576), (2048, 2048), (4096, 4096))


class NewCanvasDialog(QDialog):
    def __init__(self, width: int, height: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New canvas")
        self.preset = QComboBox()
        self.preset.addItem("Custom", None)
        for w, h in PRESETS:
            self.preset.addItem(f"{w} × {h}", (w, h))
        self.preset.currentIndexChanged.connect(self._on_preset)
        self.width_box = QSpinBox(minimum=8, maximum=MAX_SIDE, singleStep=8, value=width)
        self.height_box = QSpinBox(minimum=8, maximum=MAX_SIDE, singleStep=8, value=height)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Preset", self.preset)
        form.addRow("Width", self.width_box)
        form.addRow("Height", self.height_box)
        form.addRow(buttons)

    def _on_preset(self) -> None:
        size = self.preset.currentData()
        if size:
            self.width_box.setValue(size[0])
            self.height_box.setValue(size[1])

    def chosen_size(self) -> tuple[int, int]:
        return self.width_box.value(), self.height_box.value()


def ask_open(parent: QWidget, title: str, filt: str = IMAGE_FILTER) -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, title, "", filt)
    return path or None


def ask_save(parent: QWidget, title: str, filt: str = PNG_FILTER,
             suffix: str = ".png") -> str | None:
    path, _ = QFileDialog.getSaveFileName(parent, title, "", filt)
    if not path:
        return None
    return path if path.lower().endswith(suffix) else path + suffix


def ask_folder(parent: QWidget, title: str, start: str = "") -> str | None:
    return QFileDialog.getExistingDirectory(parent, title, start) or None
