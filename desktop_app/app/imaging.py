"""numpy <-> QImage and PNG files. QImages built from numpy are always copied (a QImage over a
numpy buffer that gets freed would crash)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtGui import QImage

PNG_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp)"


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def gray_to_qimage(gray: np.ndarray) -> QImage:
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    h, w = gray.shape
    return QImage(gray.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


def qimage_to_rgb(image: QImage) -> np.ndarray:
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, : 3 * w].reshape(h, w, 3).copy()


def qimage_to_rgba(image: QImage) -> np.ndarray:
    """H x W x 4 uint8 with straight alpha (Qt's RGB888 conversion drops the alpha and keeps
    whatever colour is stored under transparent pixels, usually black)."""
    img = image.convertToFormat(QImage.Format.Format_RGBA8888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, : 4 * w].reshape(h, w, 4).copy()


def qimage_to_gray(image: QImage) -> np.ndarray:
    img = image.convertToFormat(QImage.Format.Format_Grayscale8)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, :w].copy()


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as H x W x 3 uint8; ValueError naming the file when it can't."""
    image = QImage(str(path))
    if image.isNull():
        raise ValueError(f"{path}: not a readable image")
    return qimage_to_rgb(image)


def load_mask(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """A grayscale (or RGB, or alpha-less) PNG as a float mask; white = 1."""
    image = QImage(str(path))
    if image.isNull():
        raise ValueError(f"{path}: not a readable image")
    if (image.width(), image.height()) != size:
        raise ValueError(f"{path}: mask is {image.width()}x{image.height()}, "
                         f"the canvas is {size[0]}x{size[1]}")
    return qimage_to_gray(image).astype(np.float32) / 255.0


def save_png(path: str | Path, image: QImage, text: dict[str, str] | None = None) -> None:
    for key, value in (text or {}).items():
        image.setText(key, value)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(path), "PNG"):
        raise OSError(f"{path}: could not write the PNG")


def save_mask(path: str | Path, mask: np.ndarray) -> None:
    save_png(path, gray_to_qimage(np.clip(mask * 255.0 + 0.5, 0, 255).astype(np.uint8)))
