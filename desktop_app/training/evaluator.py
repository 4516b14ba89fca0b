"""Deterministic reader of the built-in world's images: what objects are where, in which colour.

Segment by nearest palette colour, find connected components, classify shape by how the area sits in its
bounding box (triangles are bottom-heavy; squares fill it, circles ~0.79), cell by centroid, size by extent, and the
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


def _shift_and(m: np.ndarray) -> np.ndarray:
    """3x3 binary erosion (outside the image counts as set, so border shapes survive)."""
    p = np.pad(m, 1, constant_values=True)
    out = m.copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out &= p[dy:dy + m.shape[0], dx:dx + m.shape[1]]
    return out


def _shift_or(m: np.ndarray) -> np.ndarray:
    p = np.pad(m, 1, constant_values=False)
    out = m.copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out |= p[dy:dy + m.shape[0], dx:dx + m.shape[1]]
    return out


def opening(m: np.ndarray, radius: int) -> np.ndarray:
    """Binary opening: removes bands thinner than ~2*radius+1 px (anti-aliased fringes, decoder
    rings) while keeping shapes tens of pixels wide."""
    for _ in range(radius):
        m = _shift_and(m)
    for _ in range(radius):
        m = _shift_or(m)
    return m


def _grow(m: np.ndarray, radius: int) -> np.ndarray:
    for _ in range(radius):
        m = _shift_or(m)
    return m


def _classify(fill: float, top_share: float) -> str:
    """Triangles (apex up) put ~25% of their area in the top half of their box, circles and
    squares 50%; squares fill their box (1.0), circles ~0.79. Blurry corners lower a square's
    fill and raise a triangle's, so the top/bottom balance decides triangles first."""
    if top_share < 0.375:
        return "triangle"
    return "square" if fill >= 0.86 else "circle"


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
        raw = seg == idx
        r = max(1, round(2 * h / 256))
        m = opening(raw, r)
        if m.sum() < _MIN_AREA * h * w:
            continue
        labels, n = label_components(m)
        for k in range(1, n + 1):
            ys, xs = np.nonzero(labels == k)
            if len(ys) < _MIN_AREA * h * w:
                continue
            # Measure on the un-opened pixels around the component, so opening (which blunts
            # triangle tips) only decides what is a component, not its shape or size.
            y0, y1 = max(0, ys.min() - r - 1), min(h, ys.max() + r + 2)
            x0, x1 = max(0, xs.min() - r - 1), min(w, xs.max() + r + 2)
            sub = raw[y0:y1, x0:x1] & _grow(labels[y0:y1, x0:x1] == k, r + 1)
            sy, sx = np.nonzero(sub)
            area = len(sy) / (h * w)
            bw = (sx.max() - sx.min() + 1) / w
            bh = (sy.max() - sy.min() + 1) / h
            fill = area / (bw * bh)
            top_share = float(np.mean(sy < (sy.min() + sy.max()) / 2))
            cx, cy = (sx.mean() + x0) / w, (sy.mean() + y0) / h
            cell = 3 * min(int(cy * 3), 2) + min(int(cx * 3), 2)
            size = "big" if max(bw, bh) >= _BIG_EXTENT else "small"
            found.append(Found(_FG_NAME[rgb], _classify(fill, top_share), size, cell, float(area),
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
