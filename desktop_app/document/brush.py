"""Rasterising brush strokes and whole-mask operations on float masks, numpy only.

A stroke segment touches only the bounding box of its capsule, so painting on a 4096² canvas costs
the same as on a small one. Rectangles are (x0, y0, x1, y1), end-exclusive, in image pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

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


_FALLOFF_SIZE = 4096


def _falloff_lut(inner2: float, r2: float) -> np.ndarray:
    """Alpha as a function of squared distance, sampled on [0, r²]: 1 inside the hard core, a
    smoothstep in distance to 0 at the radius. A table lookup replaces sqrt, clip and the
    smoothstep polynomial on every pixel."""
    d = np.sqrt(np.linspace(0.0, r2, _FALLOFF_SIZE, dtype=np.float64))
    r, inner = np.sqrt(r2), np.sqrt(inner2)
    u = np.clip((r - d) / max(r - inner, 1e-6), 0.0, 1.0)
    lut = (u * u * (3.0 - 2.0 * u)).astype(np.float32)
    return np.append(lut, np.float32(0.0))  # index _FALLOFF_SIZE: outside the radius


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
    ax, ay = float(p0[0]), float(p0[1])
    xs = np.arange(x0, x1, dtype=np.float32) + np.float32(0.5 - ax)  # relative to p0
    ys = (np.arange(y0, y1, dtype=np.float32) + np.float32(0.5 - ay))[:, None]
    dx, dy = float(p1[0]) - ax, float(p1[1]) - ay
    length2 = dx * dx + dy * dy
    if length2 > 1e-12:
        t = ys * np.float32(dy / length2) + xs * np.float32(dx / length2)
        np.clip(t, 0.0, 1.0, out=t)
        ex = xs - t * np.float32(dx)
        ey = ys - t * np.float32(dy)
        d2 = ex * ex
        d2 += ey * ey
    else:
        d2 = xs * xs + ys * ys
    r2 = r * r
    edge = r * (1.0 - float(np.clip(spec.hardness, 0.0, 1.0)))
    if edge < 1e-6:
        return rect, (d2 <= r2).astype(np.float32)
    lut = _falloff_lut((r - edge) ** 2, r2)
    idx = np.minimum(d2 * np.float32((_FALLOFF_SIZE - 1) / r2), np.float32(_FALLOFF_SIZE))
    return rect, lut[idx.astype(np.int32)]


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
        np.maximum(view, alpha if spec.value == 1.0 else alpha * spec.value, out=view)
    return (x0, y0, x1, y1)


EXACT_MAX_RADIUS = 24.0  # up to here every segment is an exact capsule (its box is small)


def dab_spacing(radius: float) -> float:
    """Distance between dabs of a big brush: the scalloped edge of discs spaced s apart deviates
    from the true swept edge by about s²/(8r); sqrt(2r) keeps that under a quarter pixel."""
    return max(1.0, math.sqrt(2.0 * radius))


@lru_cache(maxsize=8)
def _dab(size: float, hardness: float) -> np.ndarray:
    r = max(0.5, size / 2.0)
    R = int(math.ceil(r))
    found = capsule_alpha((R + 0.5, R + 0.5), (R + 0.5, R + 0.5),
                          BrushSpec(size=size, hardness=hardness), 2 * R + 1, 2 * R + 1)
    dab = found[1]
    dab.setflags(write=False)
    return dab


class BrushStroke:
    """One press..release of the brush into a target mask.

    Small brushes paint exact capsules per segment. A big brush's segment box is large while
    the mouse moves a few pixels, so it stamps cached dabs spaced along the path instead (the
    distance left over carries to the next segment): a segment then costs at most a dab or two.
    before_change(rect) is called before any pixel inside rect changes (undo bookkeeping)."""

    def __init__(self, target: np.ndarray, spec: BrushSpec,
                 before_change: Callable[[Rect], None] | None = None) -> None:
        self.target = target
        self.spec = spec
        self._before = before_change
        self._radius = max(0.5, spec.size / 2.0)
        self._exact = self._radius <= EXACT_MAX_RADIUS
        self._spacing = dab_spacing(self._radius)
        self._last: tuple[float, float] | None = None
        self._since_dab = 0.0

    def to(self, p: tuple[float, float]) -> Rect | None:
        """Extend the stroke to p; returns the rectangle that may have changed."""
        last, self._last = self._last, (float(p[0]), float(p[1]))
        if last is None:
            return self._segment(self._last, self._last) if self._exact else self._stamp(p)
        if self._exact:
            return self._segment(last, self._last)
        dx, dy = p[0] - last[0], p[1] - last[1]
        length = math.hypot(dx, dy)
        rect = None
        d = self._spacing - self._since_dab
        while d <= length:
            rect = union(rect, self._stamp((last[0] + dx * d / length,
                                            last[1] + dy * d / length)))
            d += self._spacing
        self._since_dab = length - (d - self._spacing)
        return rect

    def finish(self) -> Rect | None:
        """Stamp the end point so the stroke reaches exactly where the button was released."""
        if self._exact or self._last is None or self._since_dab == 0.0:
            return None
        self._since_dab = 0.0
        return self._stamp(self._last)

    def _segment(self, p0: tuple[float, float], p1: tuple[float, float]) -> Rect | None:
        h, w = self.target.shape
        found = capsule_alpha(p0, p1, self.spec, w, h)
        if found is None:
            return None
        rect, alpha = found
        if self._before is not None:
            self._before(rect)
        self._apply(rect, alpha)
        return rect

    def _stamp(self, p: tuple[float, float]) -> Rect | None:
        dab = _dab(self.spec.size, float(self.spec.hardness))
        R = dab.shape[0] // 2
        cx, cy = int(math.floor(p[0])), int(math.floor(p[1]))
        h, w = self.target.shape
        rect = clip_rect((cx - R, cy - R, cx + R + 1, cy + R + 1), w, h)
        if rect is None:
            return None
        x0, y0, x1, y1 = rect
        alpha = dab[y0 - (cy - R):y1 - (cy - R), x0 - (cx - R):x1 - (cx - R)]
        if self._before is not None:
            self._before(rect)
        self._apply(rect, alpha)
        return rect

    def _apply(self, rect: Rect, alpha: np.ndarray) -> None:
        x0, y0, x1, y1 = rect
        view = self.target[y0:y1, x0:x1]
        if self.spec.erase:
            np.minimum(view, 1.0 - alpha, out=view)
        else:
            np.maximum(view, alpha if self.spec.value == 1.0 else alpha * self.spec.value,
                       out=view)


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
