"""What the canvas will do on Generate (text-to-image, image-to-image, inpaint, plus
paint-with-words), recomputed when a stroke or another undo step ends rather than per brush
segment, because checking a 4096² mask costs milliseconds."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoStack

from desktop_app.app.qt_compat import emit
from desktop_app.document.canvas_doc import CanvasDocument
from desktop_app.document.job import JobKind

KIND_TEXT = {
    JobKind.TEXT_TO_IMAGE: "Text to image",
    JobKind.IMAGE_TO_IMAGE: "Image to image",
    JobKind.INPAINT: "Inpaint (masked area)",
}


class DocumentStatus(QObject):
    changed = Signal(int, int, str, bool)  # width, height, job description, size editable

    def __init__(self, doc: CanvasDocument, undo: QUndoStack) -> None:
        super().__init__()
        self._doc = doc
        self._timer = QTimer(self, singleShot=True, interval=0)
        self._timer.timeout.connect(self.refresh)
        doc.add_listener(self._on_doc)
        undo.indexChanged.connect(self._schedule)

    def describe(self) -> str:
        text = KIND_TEXT[self._doc.job_kind()]
        n = len(self._doc.painted_regions())
        if n:
            text += f" + paint-with-words ({n} region{'s' if n > 1 else ''})"
        return text

    def refresh(self) -> None:
        doc = self._doc
        emit(self.changed, doc.width, doc.height, self.describe(), doc.image is None)

    def _schedule(self, *_args: object) -> None:
        self._timer.start()

    def _on_doc(self, event: str, payload: object) -> None:
        if event in ("reset", "image", "regions"):
            self._schedule()
