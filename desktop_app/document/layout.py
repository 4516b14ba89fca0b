"""Paint-with-words layouts on disk: a JSON file naming regions, each with the prompt words it
binds, a strength, and either a mask PNG (white = inside, path relative to the JSON) or a
rectangle in image pixels.

    {"version": 1, "width": 512, "height": 512,
     "regions": [{"words": "red circle", "strength": 1.0, "mask": "left.png"},
                 {"words": "blue square", "strength": 1.0, "rect": [256, 0, 256, 512],
                  "name": "sky"}]}

Loading adapts the layout to the request's size (rects and masks are scaled). Every problem is
a LayoutError (a RequestError) whose one-line message names the file and the field.
Numpy and Pillow only.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from desktop_app.document.image_io import atomic_write, load_mask, resize_mask
from desktop_app.document.job import MAX_REGION_STRENGTH, Region, RequestError

VERSION = 1


class LayoutError(RequestError):
    """A layout file that cannot be used; the message names the file and the field."""


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(value)[:60]
    except (TypeError, ValueError):
        return repr(value)[:60]


def _number(value: Any, where: str) -> float:
    if not isinstance(value, bool) and isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # a whole number of hundreds of digits
            number = math.inf
        if math.isfinite(number):
            return number
    raise LayoutError(f"{where}: expected a number, got {_shown(value)}")


def _size(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 65536:
        raise LayoutError(f"{where}: expected a positive whole number of pixels, "
                          f"got {_shown(value)}")
    return value


def _read(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8-sig")  # Windows editors may start it with a BOM
    except FileNotFoundError:
        raise LayoutError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LayoutError(f"{path}: cannot read the layout ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LayoutError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                          f"{exc.msg})") from None
    except RecursionError:
        raise LayoutError(f"{path}: not a layout (lists or objects nested too deeply)") from None
    except ValueError:  # past Python's limit on the digits of a whole number
        raise LayoutError(f"{path}: not a layout (a number with thousands of digits)") from None
    if not isinstance(data, dict):
        raise LayoutError(f"{path}: expected a JSON object with \"regions\", "
                          f"got {type(data).__name__}")
    return data


def load_layout(path: str | os.PathLike[str], width: int, height: int,
                default_strength: float = 1.0) -> tuple[Region, ...]:
    """The layout's regions with masks at width x height (the request's size); a region that gives
    no strength gets `default_strength` (the model's recommendation)."""
    p = Path(path)
    data = _read(p)
    try:
        version = data.get("version", VERSION)
        if isinstance(version, bool) or version != VERSION:
            raise LayoutError(f"version: expected {VERSION}, got {_shown(version)}")
        lw = _size(data.get("width", width), "width")
        lh = _size(data.get("height", height), "height")
        regions = data.get("regions")
        if not isinstance(regions, list):
            raise LayoutError(f"regions: expected a list of regions, got {_shown(regions)}")
        return tuple(_region(item, f"regions[{i}]", p.parent, (lw, lh), (width, height),
                             default_strength) for i, item in enumerate(regions))
    except LayoutError as exc:
        raise LayoutError(f"{p}: {exc}") from None


def _region(item: Any, where: str, folder: Path, layout_size: tuple[int, int],
            size: tuple[int, int], default_strength: float) -> Region:
    if not isinstance(item, dict):
        raise LayoutError(f"{where}: expected an object, got {_shown(item)}")
    words = item.get("words")
    if not isinstance(words, str) or not words.strip():
        raise LayoutError(f"{where}.words: expected the prompt words it paints, "
                          f"got {_shown(words)}")
    strength = _number(item.get("strength", default_strength), f"{where}.strength")
    if not 0 <= strength <= MAX_REGION_STRENGTH:
        raise LayoutError(f"{where}.strength: expected a number from 0 to "
                          f"{MAX_REGION_STRENGTH:g}, got {_shown(item['strength'])}")
    name = item.get("name", "")
    if not isinstance(name, str):
        raise LayoutError(f"{where}.name: expected text, got {_shown(name)}")
    if ("mask" in item) == ("rect" in item):
        raise LayoutError(f"{where}: needs exactly one of \"mask\" (a PNG) or \"rect\" "
                          "([x, y, w, h])")
    if "rect" in item:
        mask = _rect_mask(item["rect"], f"{where}.rect", layout_size, size)
    else:
        mask = _file_mask(item["mask"], f"{where}.mask", folder, size)
    return Region(words=words.strip(), mask=mask, strength=strength, name=name)


def _rect_mask(rect: Any, where: str, layout_size: tuple[int, int],
               size: tuple[int, int]) -> np.ndarray:
    if not isinstance(rect, list) or len(rect) != 4:
        raise LayoutError(f"{where}: expected [x, y, w, h], got {_shown(rect)}")
    x, y, w, h = (_number(v, f"{where}[{i}]") for i, v in enumerate(rect))
    if w <= 0 or h <= 0:
        raise LayoutError(f"{where}: width and height must be positive, got {_shown(rect)}")
    sx, sy = size[0] / layout_size[0], size[1] / layout_size[1]
    # Clamped before rounding: x + w or a scaled side can overflow to infinity.
    x0, x1 = (round(min(max(v * sx, 0), size[0])) for v in (x, x + w))
    y0, y1 = (round(min(max(v * sy, 0), size[1])) for v in (y, y + h))
    if x1 <= x0 or y1 <= y0:
        if x < layout_size[0] and y < layout_size[1] and x + w > 0 and y + h > 0:
            raise LayoutError(f"{where}: {_shown(rect)} covers less than a pixel of the "
                              f"{size[0]}x{size[1]} image")
        raise LayoutError(f"{where}: {_shown(rect)} lies outside the "
                          f"{layout_size[0]}x{layout_size[1]} image")
    mask = np.zeros((size[1], size[0]), np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return mask


def _file_mask(value: Any, where: str, folder: Path, size: tuple[int, int]) -> np.ndarray:
    if not isinstance(value, str) or not value.strip():
        raise LayoutError(f"{where}: expected a PNG file name, got {_shown(value)}")
    try:
        mask = load_mask(folder / value)
    except RequestError as exc:
        raise LayoutError(f"{where}: {exc}") from None
    if mask.shape != (size[1], size[0]):
        mask = resize_mask(mask, size[0], size[1])
    return mask


def as_rect(mask: np.ndarray) -> list[int] | None:
    """[x, y, w, h] when the mask is exactly one filled axis-aligned rectangle of 1s."""
    m = np.asarray(mask)
    inside = m == 1.0
    if not inside.any() or not np.all(inside | (m == 0.0)):
        return None
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if not inside[y0:y1, x0:x1].all():
        return None
    return [int(x0), int(y0), int(x1 - x0), int(y1 - y0)]


def save_layout(path: str | os.PathLike[str], regions: tuple[Region, ...] | list[Region],
                width: int, height: int) -> None:
    """Write the layout JSON; rectangles stay rects, other masks go to PNGs beside it named
    `<stem>.region<N>.png`. Each file is written to a temp name and renamed into place. A region
    without words is a LayoutError (the file could not be loaded back)."""
    p = Path(path)
    for i, region in enumerate(regions):  # before any file is written: the loader needs words
        if not region.words.strip():
            label = repr(region.name) if region.name else f"regions[{i}]"
            raise LayoutError(f"{label} has no words: type the prompt words it paints, "
                              "then save (a layout without them cannot be loaded)")
    entries = []
    for i, region in enumerate(regions):
        mask = np.asarray(region.mask, np.float32)
        if mask.shape != (height, width):
            mask = resize_mask(mask, width, height)
        entry: dict[str, Any] = {"words": region.words, "strength": float(region.strength)}
        if region.name:
            entry["name"] = region.name
        rect = as_rect(mask)
        if rect is not None:
            entry["rect"] = rect
        else:
            png = f"{p.stem}.region{i + 1}.png"
            img = Image.fromarray(np.round(np.clip(mask, 0, 1) * 255).astype(np.uint8), "L")
            _atomic_write(p.parent / png, lambda fh, img=img: img.save(fh, format="PNG"))
            entry["mask"] = png
        entries.append(entry)
    doc = {"version": VERSION, "width": int(width), "height": int(height), "regions": entries}
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    _atomic_write(p, lambda fh: fh.write(text.encode("utf-8")))


def _atomic_write(target: Path, write: Any) -> None:
    atomic_write(target, write, error=LayoutError)
