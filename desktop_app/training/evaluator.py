"""Deterministic reader of the built-in world's images: what objects are where, in which colour.

Segment by nearest palette colour, find connected components, classify shape by fill ratio of the
bounding box (square ~1.0, circle ~0.79, triangle ~0.5), cell by centroid, size by extent, and the
background from the border. numpy only, so tests, benchmarks and the app can all use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from desktop_app.training import scenes

_NAMES: list[str] = []
_RGB: list[tuple[int, int, int]] = []
for _table in (scenes.COLORS, scenes.BACKGROUNDS):
    for _name, _rgb in _table.items():
        if _rgb not in _RGB:
            _NAMES.append(_name)
            _RGB.append(_rgb)
_PALETTE = np.asarray(_RGB, np.float32)
_BG_NAME = {rgb: name for name, rgb in scenes.BACKGROUNDS.items()}
_FG_NAME = {rgb: name for name, rgb in scenes.COLORS.items()}
# Extents: small 38 px, big 70 px at 256 px; split in the middle.
_BIG_EXTENT = 54 / 256
_MIN_AREA = 180 / 256**2  # smaller specks are edge blends or noise


@dataclass(frozen=True)
class Found:
    color: str
    shape: str
    size: str
    cell: int
    area: float  # fraction of the image
    fill: float
    centroid: tuple[float, float]  # (x, y) in [0, 1]

    @property
    def cell_name(self) -> str:
        return scenes.CELLS[self.cell]


@dataclass(frozen=True)
class Reading:
    background: str
    objects: tuple[Found, ...]


def segment(img: np.ndarray) -> np.ndarray:
    """Index into the palette of the nearest colour, per pixel."""
    x = img.reshape(-1, 1, 3).astype(np.float32)
    d = ((x - _PALETTE[None]) ** 2).sum(-1)
    return d.argmin(-1).reshape(img.shape[:2])


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of a boolean mask by min-label propagation with pointer jumping."""
    h, w = mask.shape
    big = np.iinfo(np.int64).max
    lab = np.where(mask, np.arange(h * w, dtype=np.int64).reshape(h, w), big)
    while True:
        prev = lab
        cur = lab.copy()
        cur[1:] = np.minimum(cur[1:], lab[:-1])
        cur[:-1] = np.minimum(cur[:-1], lab[1:])
        cur[:, 1:] = np.minimum(cur[:, 1:], lab[:, :-1])
        cur[:, :-1] = np.minimum(cur[:, :-1], lab[:, 1:])
        cur = np.where(mask, cur, big)
        flat = cur.reshape(-1)
        inside = flat != big
        # Pointer jumping: a pixel's label is a pixel index; adopt that pixel's label.
        for _ in range(4):
            flat[inside] = flat[flat[inside]]
        lab = flat.reshape(h, w)
        if np.array_equal(lab, prev):
            break
    uniq, inv = np.unique(lab[mask], return_inverse=True)
    out = np.zeros((h, w), np.int32)
    out[mask] = inv + 1
    return out, len(uniq)


def _shape_from_fill(fill: float) -> str:
    if fill >= 0.9:
        return "square"
    if fill >= 0.64:
        return "circle"
    return "triangle"


def read(img: np.ndarray) -> Reading:
    """Read an RGB uint8 image of the built-in world (any square size; 256 px native)."""
    img = np.asarray(img)[..., :3]
    h, w = img.shape[:2]
    seg = segment(img)
    border = np.concatenate([seg[0], seg[-1], seg[:, 0], seg[:, -1]])
    bg_idx = int(np.bincount(border, minlength=len(_RGB)).argmax())
    bg_rgb = _RGB[bg_idx]
    background = _BG_NAME.get(bg_rgb, _NAMES[bg_idx])
    found: list[Found] = []
    for idx, rgb in enumerate(_RGB):
        if idx == bg_idx or rgb not in _FG_NAME:
            continue
        m = seg == idx
        if m.sum() < _MIN_AREA * h * w:
            continue
        labels, n = label_components(m)
        counts = np.bincount(labels.reshape(-1), minlength=n + 1)
        for k in range(1, n + 1):
            area = counts[k] / (h * w)
            if area < _MIN_AREA:
                continue
            ys, xs = np.nonzero(labels == k)
            bw = (xs.max() - xs.min() + 1) / w
            bh = (ys.max() - ys.min() + 1) / h
            fill = area / (bw * bh)
            cx, cy = xs.mean() / w, ys.mean() / h
            cell = 3 * min(int(cy * 3), 2) + min(int(cx * 3), 2)
            size = "big" if max(bw, bh) >= _BIG_EXTENT else "small"
            found.append(Found(_FG_NAME[rgb], _shape_from_fill(fill), size, cell, float(area),
                               float(fill), (float(cx), float(cy))))
    found.sort(key=lambda f: -f.area)
    return Reading(background, tuple(found))


# ---------------------------------------------------------------- scoring
def best_match(target: scenes.Shape, reading: Reading) -> Found | None:
    """The found object that agrees with the target on the most attributes (colour first)."""
    def score(f: Found) -> tuple[int, float]:
        hits = (2 * (f.color == target.color) + (f.shape == target.shape)
                + (f.cell == target.cell) + (f.size == target.size))
        return hits, f.area

    return max(reading.objects, key=score, default=None)


def score_single(target: scenes.Shape, background: str, reading: Reading) -> dict[str, bool]:
    f = best_match(target, reading)
    ok = f is not None
    return {
        "color": ok and f.color == target.color,
        "shape": ok and f.shape == target.shape,
        "color_shape": ok and f.color == target.color and f.shape == target.shape,
        "position": ok and f.cell == target.cell,
        "size": ok and f.size == target.size,
        "background": reading.background == background,
        "count": len(reading.objects) == 1,
    }


def object_present(target: scenes.Shape, reading: Reading, *, check_size: bool = True) -> bool:
    return any(f.color == target.color and f.shape == target.shape and f.cell == target.cell
               and (f.size == target.size or not check_size) for f in reading.objects)


def scene_correct(scene: scenes.Scene, reading: Reading) -> bool:
    """Every attribute of every object right, the background right, and nothing extra."""
    return (reading.background == scene.background
            and len(reading.objects) == len(scene.shapes)
            and all(object_present(s, reading) for s in scene.shapes))
