"""Rasterising brush strokes and whole-mask operations on float masks, numpy only.

A stroke segment touches only the bounding box of its capsule, so painting on a 4096² canvas costs
the same as on a small one. Rectangles are (x0, y0, x1, y1), end-exclusive, in image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class BrushSpec:
    size: float = 32.0  # diameter in image pixels
    hardness: float = 0.8  # 1 = crisp edge; lower = wider soft (feathered) edge
    erase: bool = False
    value: float = 1.0  # the level painted at the brush centre


def union(a: Rect | None, b: Rect | None) -> Rect | None:
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def clip_rect(rect: Rect, width: int, height: int) -> Rect | None:
    x0, y0 = max(0, rect[0]), max(0, rect[1])
    x1, y1 = min(width, rect[2]), min(height, rect[3])
    if x0 >= x1 or y0 >= y1:
        return None
    return (x0, y0, x1, y1)


def capsule_alpha(p0: tuple[float, float], p1: tuple[float, float], spec: BrushSpec,
                  width: int, height: int) -> tuple[Rect, np.ndarray] | None:
    """Coverage of the segment p0..p1 swept by the brush, over its clipped bounding box.

    A pixel's centre (x + 0.5, y + 0.5) at distance d from the segment gets 1 inside
    radius·hardness, falling smoothly to 0 at the radius; a hardness-1 brush covers exactly the
    pixels whose centres lie within the radius."""
    r = max(0.5, spec.size / 2.0)
    rect = clip_rect((int(np.floor(min(p0[0], p1[0]) - r)), int(np.floor(min(p0[1], p1[1]) - r)),
                      int(np.ceil(max(p0[0], p1[0]) + r)) + 1,
                      int(np.ceil(max(p0[1], p1[1]) + r)) + 1), width, height)
    if rect is None:
        return None
    x0, y0, x1, y1 = rect
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    ax, ay = float(p0[0]), float(p0[1])
    dx, dy = float(p1[0]) - ax, float(p1[1]) - ay
    length2 = dx * dx + dy * dy
    if length2 > 1e-12:
        t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / length2, 0.0, 1.0)
        ex, ey = xs - (ax + t * dx), ys - (ay + t * dy)
    else:
        ex, ey = xs - ax, ys - ay
    dist = np.sqrt(ex * ex + ey * ey)
    edge = r * (1.0 - float(np.clip(spec.hardness, 0.0, 1.0)))
    if edge < 1e-6:
        alpha = (dist <= r).astype(np.float32)
    else:
        u = np.clip((r - dist) / edge, 0.0, 1.0)
        alpha = (u * u * (3.0 - 2.0 * u)).astype(np.float32)  # smoothstep: no visible ring
    return rect, alpha


def paint_segment(target: np.ndarray, p0: tuple[float, float], p1: tuple[float, float],
                  spec: BrushSpec) -> Rect | None:
    """Paint (or erase) one segment into target in place; returns the rectangle it may change."""
    h, w = target.shape
    found = capsule_alpha(p0, p1, spec, w, h)
    if found is None:
        return None
    (x0, y0, x1, y1), alpha = found
    view = target[y0:y1, x0:x1]
    if spec.erase:
        np.minimum(view, 1.0 - alpha, out=view)
    else:
        np.maximum(view, alpha * spec.value, out=view)
    return (x0, y0, x1, y1)


def fill_rect(target: np.ndarray, rect: Rect, erase: bool = False) -> Rect | None:
    h, w = target.shape
    r = clip_rect(rect, w, h)
    if r is not None:
        target[r[1]:r[3], r[0]:r[2]] = 0.0 if erase else 1.0
    return r


def _window_max(a: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Max over a centred window of 2k+1 along one axis in O(log k) passes; outside counts as 0."""
    if k <= 0:
        return a
    n = a.shape[axis]
    pad = [(0, 0)] * a.ndim
    pad[axis] = (k, k)
    out = np.pad(a, pad)  # out[i] = max(padded[i .. i+span-1]); padded[i] is a[i-k]
    span = 1
    while span < 2 * k + 1:
        step = min(span, 2 * k + 1 - span)
        head = [slice(None)] * a.ndim
        tail = [slice(None)] * a.ndim
        head[axis], tail[axis] = slice(None, -step), slice(step, None)
        np.maximum(out[tuple(head)], out[tuple(tail)], out=out[tuple(head)])
        span += step
    keep = [slice(None)] * a.ndim
    keep[axis] = slice(0, n)
    return np.ascontiguousarray(out[tuple(keep)])


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Dilate (pixels > 0) or erode (pixels < 0) with a square of half-width |pixels|."""
    if pixels == 0:
        return mask.copy()
    k = abs(int(pixels))
    src = mask if pixels > 0 else 1.0 - mask
    out = _window_max(_window_max(src.astype(np.float32), k, 0), k, 1)
    return (out if pixels > 0 else 1.0 - out).astype(np.float32)
