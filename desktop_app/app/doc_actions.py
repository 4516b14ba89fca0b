"""File and mask actions on the document: new canvas, open (file, drop, paste), save/export PNG,
copy, mask load/save and whole-mask operations, region layouts. Every change is an undo step and
every failure becomes a one-line message; the document is never lost."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QGuiApplication, QImage, QUndoStack

from desktop_app.app.commands import ImageCommand, StateCommand
from desktop_app.app.imaging import qimage_to_rgb, qimage_to_rgba, rgb_to_qimage
from desktop_app.app.qt_compat import emit
from desktop_app.app.stroke import StrokeRecorder
from desktop_app.document import brush
from desktop_app.document.canvas_doc import CanvasDocument, DocState
from desktop_app.document.job import MAX_SIDE, MIN_SIDE, RequestError
from desktop_app.document.model_info import GENERIC_REGION_STRENGTH, region_strength_for
from desktop_app.document.prompt_layout import prompt_regions
from desktop_app.document.regions import RegionLayer, next_colour, words_in_prompt

log = logging.getLogger(__name__)
READ_ERRORS = (OSError, ValueError)  # RequestError is a ValueError


class DocumentActions(QObject):
    status = Signal(str)
    error = Signal(str)

    def __init__(self, doc: CanvasDocument, undo: QUndoStack, recorder: StrokeRecorder) -> None:
        super().__init__()
        self._doc = doc
        self._undo = undo
        self._rec = recorder
        self.region_strength = GENERIC_REGION_STRENGTH  # for layout regions that give none

    # -- canvas -------------------------------------------------------------------------------
    def new_canvas(self, width: int, height: int) -> None:
        width, height = int(width), int(height)
        if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
            emit(self.error, f"canvas size {width}x{height} is out of range "
                             f"({MIN_SIDE}..{MAX_SIDE})")
            return
        self._push_blank(width, height, f"New canvas {width}x{height}")

    def _push_blank(self, width: int, height: int, text: str) -> None:
        """An empty canvas of that size, as one undo step."""
        state = DocState((width, height), None, None, np.zeros((height, width), np.float32), [])
        self._undo.push(StateCommand(self._doc, state, text))

    def adopt_model_size(self, info: object) -> None:
        """A fresh, untouched canvas takes the loaded model's native size (256 for the built-in
        model): other sizes work but cost time or quality. Layout regions that give no strength
        get the model's recommended one."""
        self.region_strength = region_strength_for(info)
        side = getattr(info, "default_size", 0)
        doc = self._doc
        untouched = doc.image is None and not doc.regions and not doc.has_mask()
        fits = isinstance(side, int) and MIN_SIDE <= side <= MAX_SIDE
        if untouched and fits and doc.size != (side, side):
            if self._undo.count() == 0:  # a fresh window: nothing to undo back to
                doc.new(side, side)
                return
            # An undo step, or a stroke or region undone before would be redone on a canvas of
            # another size (a crash).
            self._push_blank(side, side, f"Canvas size {side}x{side}")

    def resize_empty(self, width: int, height: int) -> None:
        if self._doc.image is None and (width, height) != self._doc.size:
            after = self._doc.state()
            after.size = (width, height)
            from desktop_app.document.canvas_doc import resample_nearest

            after.mask = resample_nearest(after.mask, width, height)
            for r in after.regions:
                r.mask = resample_nearest(r.mask, width, height)
            self._undo.push(StateCommand(self._doc, after, f"Canvas size {width}x{height}"))

    def open_path(self, path: str) -> bool:
        return self.open_paths([path])

    def open_paths(self, paths: list[str]) -> bool:
        """Open the first of `paths` that reads as an image (a drop may hold several files; the
        canvas holds one). The files passed over are named in the status line; an error only
        when none opens."""
        from desktop_app.document.image_io import load_image

        failed: list[str] = []
        for i, path in enumerate(paths):
            warnings: list[str] = []
            if "://" in path:  # a web link dropped from a browser
                failed.append(f"{path}: not a file on this computer (save it, then open it)")
                continue
            try:
                image = self._fit(load_image(path, warn=warnings.append), warnings)
            except READ_ERRORS as exc:
                failed.append(str(exc) if str(path) in str(exc) else f"{path}: {exc}")
                continue
            from desktop_app.document.metadata import has_parameters

            if has_parameters(path):
                warnings.append("it carries a job's parameters: File ▸ Restore job from image "
                                "(Ctrl+Shift+O) brings them back")
            if rest := len(paths) - i - 1:
                warnings.append(f"{rest} more file{'s' if rest > 1 else ''} not opened "
                                "(one image at a time)")
            self._place(image, f"Open {Path(path).name}",
                        [*warnings, *(f"skipped {why}" for why in failed)])
            return True
        if failed:
            emit(self.error, "; ".join(failed))
        return False

    def paste_image(self, image: QImage | None = None) -> bool:
        if image is None:
            image = QGuiApplication.clipboard().image()
        if image is None or image.isNull():
            emit(self.error, "The clipboard holds no image")
            return False
        warnings: list[str] = []
        try:
            fitted = self._fit(self._flat_rgb(image, warnings), warnings)
        except READ_ERRORS as exc:
            emit(self.error, f"Cannot paste: {exc}")
            return False
        self._place(fitted, "Paste image", warnings)
        return True

    @staticmethod
    def _flat_rgb(image: QImage, warnings: list[str]) -> np.ndarray:
        """A pasted or dropped picture as RGB, transparent areas on white as when opening a
        file (not the black that is usually stored under them)."""
        if not image.hasAlphaChannel():
            return qimage_to_rgb(image)
        from desktop_app.document.image_io import flatten_onto_white

        rgba = qimage_to_rgba(image)
        if np.any(rgba[:, :, 3] < 255):
            warnings.append("transparent areas were flattened onto white")
        return flatten_onto_white(rgba)

    @staticmethod
    def _fit(image: np.ndarray, warnings: list[str]) -> np.ndarray:
        """The canvas for `image`: scaled down to at most MAX_SIDE a side (the largest size a job
        takes), reported in `warnings`. Any other size is kept as it is: jobs pad to the
        multiples of 8 a model needs and crop back."""
        from desktop_app.document.image_io import resize_image

        h, w = image.shape[:2]
        if max(w, h) > MAX_SIDE:
            scale = MAX_SIDE / max(w, h)
            image = resize_image(image, max(1, round(w * scale)), max(1, round(h * scale)))
        fitted = np.ascontiguousarray(image)
        fh, fw = fitted.shape[:2]
        if min(fh, fw) < MIN_SIDE:
            raise RequestError(f"the image is too small ({fw}x{fh}; at least {MIN_SIDE} pixels a "
                               "side)")
        if max(w, h) > MAX_SIDE:
            warnings.append(f"scaled down from {w}x{h} to {fw}x{fh} "
                            f"(at most {MAX_SIDE} px a side)")
        return fitted

    def _place(self, image: np.ndarray, text: str, warnings: list[str]) -> None:
        self._undo.push(ImageCommand(self._doc, image, None, text))
        emit(self.status, "; ".join([f"{text}: {image.shape[1]}x{image.shape[0]}", *warnings]))

    def save_png(self, path: str) -> bool:
        """Export the canvas image; with generation metadata when it came from a job."""
        if self._doc.image is None:
            emit(self.error, "Nothing to save: the canvas is empty")
            return False
        try:
            from desktop_app.document.image_io import save_png
            from desktop_app.document.metadata import save_png_with_metadata

            result = self._doc.image_meta
            if result is not None and hasattr(result, "request"):
                save_png_with_metadata(path, self._doc.image, result.request,
                                       result.model_name, result)
            else:
                save_png(path, self._doc.image)
        except READ_ERRORS as exc:
            emit(self.error, f"{path}: could not save ({exc})")
            return False
        emit(self.status, f"Saved {path}")
        return True

    def copy_image(self) -> None:
        if self._doc.image is None:
            emit(self.error, "Nothing to copy: the canvas is empty")
            return
        QGuiApplication.clipboard().setImage(rgb_to_qimage(self._doc.image))
        emit(self.status, "Image copied")

    # -- mask ---------------------------------------------------------------------------------
    def _mask_op(self, values: np.ndarray, text: str) -> None:
        if self._rec.active:  # a key pressed in mid-stroke: the stroke so far is its own step
            self._rec.end()
        self._rec.begin(None, text)
        self._rec.replace_all(values)
        self._rec.end()

    def invert_mask(self) -> None:
        self._mask_op(1.0 - self._doc.mask, "Invert mask")

    def clear_mask(self) -> None:
        self._mask_op(np.zeros_like(self._doc.mask), "Clear mask")

    def grow_mask(self, pixels: int) -> None:
        self._mask_op(brush.grow(self._doc.mask, pixels),
                      f"{'Grow' if pixels > 0 else 'Shrink'} mask {abs(pixels)} px")

    def load_mask(self, path: str) -> bool:
        from desktop_app.document.image_io import load_mask

        warnings: list[str] = []
        try:
            mask = load_mask(path, self._doc.size, warn=warnings.append)
        except READ_ERRORS as exc:
            emit(self.error, str(exc) if str(path) in str(exc) else f"{path}: {exc}")
            return False
        self._mask_op(np.clip(mask, 0, 1).astype(np.float32), f"Load mask {Path(path).name}")
        emit(self.status, "; ".join([f"Mask loaded from {path}", *warnings]))
        return True

    def save_mask(self, path: str) -> bool:
        from desktop_app.document.image_io import save_png

        grey = np.clip(self._doc.mask * 255.0 + 0.5, 0, 255).astype(np.uint8)
        try:
            save_png(path, np.repeat(grey[..., None], 3, axis=2))
        except READ_ERRORS as exc:
            emit(self.error, f"{path}: could not save the mask ({exc})")
            return False
        emit(self.status, f"Mask saved to {path}")
        return True

    # -- region layouts (the same JSON the CLI's --regions reads) --------------------------------
    def save_layout(self, path: str) -> bool:
        try:
            from desktop_app.document.layout import save_layout

            regions = tuple(r.to_region() for r in self._doc.regions)
            save_layout(path, regions, *self._doc.size)
        except ImportError:
            emit(self.error, "Region layouts are not available in this build")
            return False
        except READ_ERRORS as exc:
            emit(self.error, f"{path}: could not save the layout ({exc})")
            return False
        emit(self.status, f"Layout saved to {path}")
        return True

    def regions_from_prompt(self, prompt: str) -> bool:
        """Replace the regions by one per clause of the prompt that says where its subject goes
        (document.prompt_layout): an undo step, so the regions before come back with Undo."""
        found = prompt_regions(prompt, *self._doc.size, self.region_strength)
        if not found:
            emit(self.error, "The prompt says nowhere where a thing goes. Write where each "
                             "thing goes, e.g. \"a red circle at the top left and a blue square "
                             "on the right\".")
            return False
        after = self._doc.state()
        layers: list[RegionLayer] = []
        for region in found:
            layers.append(RegionLayer.from_region(region, next_colour(layers)))
        after.regions = layers
        self._undo.push(StateCommand(self._doc, after, "Regions from the prompt"))
        emit(self.status, f"{len(layers)} region{'s' if len(layers) != 1 else ''} from the "
                          "prompt: " + "; ".join(r.words for r in found))
        return True

    def load_layout(self, path: str, prompt: str | None = None) -> bool:
        """Replace the regions by the layout's (an undo step); with the prompt, the status names
        the regions whose words it does not hold (they would steer nothing)."""
        try:
            from desktop_app.document.layout import load_layout

            regions = load_layout(path, *self._doc.size, self.region_strength)
        except ImportError:
            emit(self.error, "Region layouts are not available in this build")
            return False
        except READ_ERRORS as exc:
            emit(self.error, str(exc) if str(path) in str(exc) else f"{path}: {exc}")
            return False
        after = self._doc.state()
        layers: list[RegionLayer] = []
        for region in regions:
            layers.append(RegionLayer.from_region(region, next_colour(layers)))
        after.regions = layers
        self._undo.push(StateCommand(self._doc, after, f"Load layout {Path(path).name}"))
        text = f"Loaded {len(layers)} region{'s' if len(layers) != 1 else ''} from {path}"
        if prompt is not None and (missing := [r.words for r in regions
                                               if not words_in_prompt(r.words, prompt)]):
            text += " — not in the prompt, so they steer nothing: " + ", ".join(
                f"“{w}”" for w in missing)
        emit(self.status, text)
        return True
