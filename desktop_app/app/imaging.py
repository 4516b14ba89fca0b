"""numpy <-> QImage. QImages built from numpy are always copied (a QImage over a
numpy buffer that gets freed would crash)."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def _pixels(image: QImage, fmt: QImage.Format, channels: int) -> np.ndarray:
    img = image.convertToFormat(fmt)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, : channels * w].reshape(h, w, channels).copy()


def qimage_to_rgb(image: QImage) -> np.ndarray:
    return _pixels(image, QImage.Format.Format_RGB888, 3)


def qimage_to_rgba(image: QImage) -> np.ndarray:
    """H x W x 4 uint8 with straight alpha (Qt's RGB888 conversion drops the alpha and keeps
    whatever colour is stored under transparent pixels, usually black)."""
    return _pixels(image, QImage.Format.Format_RGBA8888, 4)
