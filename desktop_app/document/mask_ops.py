"""Mask arithmetic for inpainting, in numpy: grow/shrink, feather, crop box.

Masks are H x W float32 in [0, 1], 1 = repaint.
"""

from __future__ import annotations

import numpy as np


def _box_max(a: np.ndarray, radius: int) -> np.ndarray:
    """Max over a (2r+1) square window, as two separable 1-D passes (cheap on big canvases)."""
    out = a
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if ax == axis else (0, 0) for ax in (0, 1)],
                        mode="constant", constant_values=0.0)
        n = out.shape[axis]
        acc = np.take(padded, np.arange(0, n), axis=axis)
        for k in range(1, 2 * radius + 1):
            acc = np.maximum(acc, np.take(padded, np.arange(k, k + n), axis=axis))
        out = acc
    return out


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Dilate by `pixels` (square structuring element); negative erodes."""
    m = np.asarray(mask, dtype=np.float32)
    if pixels == 0:
        return m.copy()
    if pixels > 0:
        return _box_max(m, pixels)
    # Erosion is dilation of the complement. Outside the image counts as masked: a mask that
    # touches the border (outpainting a strip) must not open a gap along the edge.
    return 1.0 - _box_max(1.0 - m, -pixels)


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-(x * x) / (2 * sigma * sigma))
    return k / k.sum()


def feather(mask: np.ndarray, pixels: float) -> np.ndarray:
    """Soften the edge over roughly `pixels` with a separable Gaussian blur."""
    m = np.asarray(mask, dtype=np.float32)
    if pixels <= 0:
        return m.copy()
    k = _gaussian_kernel(pixels / 2.0)
    r = len(k) // 2
    out = m
    for axis in (0, 1):
        pad = [(r, r) if ax == axis else (0, 0) for ax in (0, 1)]
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for i, w in enumerate(k):
            acc += w * np.take(padded, np.arange(i, i + n), axis=axis)
        out = acc
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def prepare(mask: np.ndarray, grow_px: int = 0, feather_px: float = 0.0) -> np.ndarray:
    """The soft mask a request asks for: grow/shrink first, then feather."""
    return feather(grow(mask, grow_px), feather_px)


def crop_box(mask: np.ndarray, padding: int, multiple: int = 8) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) around the non-zero mask plus `padding`, clamped to the image,
    widened where possible so both sides are multiples of `multiple`. Whole image if empty."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask > 0)
    if len(xs) == 0:
        return 0, 0, w, h
    left, right = _pad_span(int(xs.min()), int(xs.max()) + 1, padding, w, multiple)
    top, bottom = _pad_span(int(ys.min()), int(ys.max()) + 1, padding, h, multiple)
    return left, top, right, bottom


def _pad_span(lo: int, hi: int, padding: int, size: int, multiple: int) -> tuple[int, int]:
    lo, hi = max(0, lo - padding), min(size, hi + padding)
    extra = (-(hi - lo)) % multiple
    grow_hi = min(extra, size - hi)
    hi += grow_hi
    lo = max(0, lo - (extra - grow_hi))
    return lo, hi


def composite(original: np.ndarray, generated: np.ndarray, soft_mask: np.ndarray) -> np.ndarray:
    """Blend generated into original with the soft mask. Where the mask is 0 the original bytes
    are kept exactly, so repeated inpainting never drifts the untouched area."""
    m = np.asarray(soft_mask, dtype=np.float32)[..., None]
    blended = original.astype(np.float32) * (1.0 - m) + generated.astype(np.float32) * m
    out = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    keep = m[..., 0] <= 0
    out[keep] = original[keep]
    return out
