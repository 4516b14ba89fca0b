"""Reading pictures and masks from disk into the arrays a JobRequest holds, and writing PNGs.

numpy and Pillow only. Every failure is a RequestError whose one-line message names the file, so
the CLI and the GUI can show it as it is. A fix-up made silently would surprise a user, so each one
(flattened transparency, a resized mask, a 16-bit image reduced to 8 bits, ...) is reported
through the optional ``warn`` callback.
"""

from __future__ import annotations

import errno
import os
import secrets
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from desktop_app.document.job import RequestError

Warn = Callable[[str], None] | None

# Modes whose samples are 16 (or more) bits per pixel and a single channel.
_WIDE_GRAY = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _say(warn: Warn, message: str) -> None:
    if warn is not None:
        warn(message)


def _open(path: str | os.PathLike[str]) -> Image.Image:
    """Open and fully decode an image, turning every way that can fail into one clear line."""
    p = Path(path)
    if not p.exists():
        raise RequestError(f"{p}: file not found")
    if p.is_dir():
        raise RequestError(f"{p}: is a folder, not an image file")
    if p.is_file() and p.stat().st_size == 0:
        raise RequestError(f"{p}: the file is empty (0 bytes)")
    try:
        # A big photo is no attack (past twice the limit, it errs), and Pillow's notes on a broken
        # EXIF block ("Corrupt EXIF data") came out on stderr even with --quiet: no warnings.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(p)
            try:
                img.load()  # decode now: a truncated file fails here, not later inside the engine
            except BaseException:
                img.close()  # or a multi-frame file's handle stays open with the exception
                raise
    except UnidentifiedImageError:
        raise RequestError(f"{p}: not an image, or a format Pillow cannot read") from None
    except Image.DecompressionBombError:
        raise RequestError(f"{p}: image is too large to open safely") from None
    except PermissionError:
        raise RequestError(f"{p}: permission denied") from None
    except MemoryError:
        raise RequestError(f"{p}: not enough memory to open the image") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise RequestError(f"{p}: cannot read the image ({exc})") from None
    return img


@contextmanager
def _picture(path: str | os.PathLike[str], warn: Warn) -> Iterator[Image.Image]:
    """The file's first frame, decoded and upright, for the body of a `with`; the file is closed
    after it. A conversion Pillow cannot make in the body, or memory running out, becomes one
    RequestError naming the file like any other read failure."""
    p = Path(path)
    try:
        with _open(p) as img:
            yield _orient(_first_frame(img, p, warn), p)
    except RequestError:
        raise
    except MemoryError:
        raise RequestError(f"{p}: not enough memory to open the image") from None
    except (OSError, ValueError) as exc:
        raise RequestError(f"{p}: cannot convert the image ({exc})") from None


def _first_frame(img: Image.Image, p: Path, warn: Warn) -> Image.Image:
    # A phone's JPEG is often an MPO: the photo, then a gain map, depth map or preview, which
    # are parts of the one photo rather than pages to choose from.
    if getattr(img, "n_frames", 1) > 1:
        if img.format != "MPO":
            _say(warn, f"{p}: has {img.n_frames} frames; using the first")
        img.seek(0)
    return img


def _orient(img: Image.Image, p: Path) -> Image.Image:
    """Apply the EXIF orientation so the picture is the way the user sees it in any viewer."""
    try:
        with warnings.catch_warnings():  # broken EXIF: see _open
            warnings.simplefilter("ignore")
            return ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        return img  # broken EXIF: the pixels are still fine as stored


def _wide_gray_to_unit(img: Image.Image) -> np.ndarray:
    """16-bit (and 32-bit integer) grey to float in [0, 1]. Pillow's own convert('L') clips
    every value above 255 to white, which turns a normal 16-bit picture into a white sheet."""
    a = np.asarray(img).astype(np.float64)
    return np.clip(a / 65535.0, 0.0, 1.0)


def _float_to_unit(img: Image.Image) -> np.ndarray:
    a = np.nan_to_num(np.asarray(img, dtype=np.float64))
    # Float images come either normalised or on the 8-bit scale; take the one that fits the data.
    return np.clip(a if a.max(initial=0.0) <= 1.0 else a / 255.0, 0.0, 1.0)


def _to_u8(unit: np.ndarray) -> np.ndarray:
    return np.round(unit * 255.0).astype(np.uint8)


def _has_alpha(img: Image.Image) -> bool:
    keyed = img.mode in ("P", "L", "RGB") and "transparency" in img.info
    return img.mode in _ALPHA_MODES or keyed


def flatten_onto_white(rgba: np.ndarray) -> np.ndarray:
    """H x W x 4 uint8 with straight (not premultiplied) alpha composited over white, as an
    H x W x 3 uint8 picture: what a viewer shows. Integer maths, exactly rounded, in a few bytes
    a pixel (float maths needed some 50, which a large photo turned into gigabytes)."""
    rgba = np.asarray(rgba, dtype=np.uint8)
    alpha = rgba[:, :, 3:4]
    out = rgba[:, :, :3] * alpha.astype(np.uint16)  # at most 255 * 255: fits in 16 bits
    out += 255 * (255 - alpha.astype(np.uint16))  # colour * a + white * (1 - a), times 255
    out += 127  # rounds to nearest: a multiple of 255 plus one half cannot occur
    out //= 255
    return out.astype(np.uint8)


def load_image(path: str | os.PathLike[str], warn: Warn = None) -> np.ndarray:
    """Read any picture Pillow can decode as H x W x 3 uint8 RGB, upright per its EXIF.

    Transparent pixels are flattened onto white (what a viewer shows and what a user expects to
    be repainted around), with a warning, because diffusion models have no alpha channel.
    """
    with _picture(path, warn) as img:
        return _rgb(img, Path(path), warn)


def _rgb(img: Image.Image, p: Path, warn: Warn) -> np.ndarray:
    if img.mode in _WIDE_GRAY:
        _say(warn, f"{p}: 16-bit image reduced to 8 bits")
        g = _to_u8(_wide_gray_to_unit(img))
        return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))
    if img.mode == "F":
        g = _to_u8(_float_to_unit(img))
        return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))
    if _has_alpha(img):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
        if np.any(rgba[:, :, 3] < 255):
            _say(warn, f"{p}: transparent areas were flattened onto white")
        return flatten_onto_white(rgba)
    # CMYK, YCbCr, LAB, HSV, 1, L, P: Pillow's conversions are the expected ones.
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def _alpha_only(rgba: np.ndarray) -> bool:
    """True when the colour carries no information and the alpha does: a single flat colour
    that is not opaque everywhere. (Opaque all over, e.g. an all-black "nothing to repaint" mask
    saved with an alpha channel, it is the colour that counts.)"""
    rgb = rgba[:, :, :3]
    return bool(np.all(rgb == rgb[0, 0]) and np.any(rgba[:, :, 3] < 1.0))


def _mask_values(img: Image.Image) -> np.ndarray:
    """The mask of a decoded image as float in [0, 1] at its own size (1 = repaint)."""
    if img.mode in _WIDE_GRAY:
        return _wide_gray_to_unit(img)
    if img.mode == "F":
        return _float_to_unit(img)
    if _has_alpha(img):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float64) / 255.0
        if _alpha_only(rgba):
            return rgba[:, :, 3]  # e.g. strokes painted on a transparent layer in one colour
        # Colour and alpha both vary: transparent counts as "keep", so lum is taken over black.
        lum = rgba[:, :, :3] @ np.array([0.299, 0.587, 0.114])
        return lum * rgba[:, :, 3]
    if img.mode not in ("1", "L", "P", "RGB"):
        img = img.convert("RGB")  # Pillow has no direct route to L from some modes (LAB)
    return np.asarray(img.convert("L"), dtype=np.float64) / 255.0


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear (antialiased when shrinking): keeps soft edges soft and values inside [0, 1]."""
    src = Image.fromarray(np.asarray(mask, dtype=np.float32))
    out = np.asarray(src.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def load_mask(path: str | os.PathLike[str], size: tuple[int, int] | None = None,
              warn: Warn = None) -> np.ndarray:
    """Read a mask as H x W float32 in [0, 1], where white (or opaque) means "repaint".

    The value is the luminance; an image whose colour is one flat colour uses its alpha instead,
    and an image with both uses luminance times alpha. ``size`` is (width, height): a mask of
    another size is resized bilinearly to it, with a warning.
    """
    p = Path(path)
    with _picture(p, warn) as img:
        mask = np.asarray(_mask_values(img), dtype=np.float32)
    if size is not None and (mask.shape[1], mask.shape[0]) != tuple(size):
        _say(warn, f"{p}: mask is {mask.shape[1]}x{mask.shape[0]}, "
                   f"resized to {size[0]}x{size[1]}")
        mask = resize_mask(mask, size[0], size[1])
    return np.ascontiguousarray(mask)


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Lanczos resize of an H x W x 3 uint8 picture (sharp, and the usual choice for photos)."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    src = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    return np.asarray(src.resize((width, height), Image.Resampling.LANCZOS), dtype=np.uint8)


def atomic_write(target: Path, write: Any, *, durable: bool = True,
                 error: type[Exception] = RequestError, replace: bool = True) -> None:
    """Write a file through `write(fh)` into a temp file in the same folder, then rename it over
    the target, so a crash or a full disk never leaves a half-written file. `durable` flushes it
    to the disk first. A missing folder raises `error` naming it. With `replace` False an
    existing target, even one created while `write` ran, raises FileExistsError and is kept."""
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise error(f"{target}: folder {folder} does not exist")
    if target.is_dir():  # or the rename fails naming our temp file
        raise error(f"{target}: is a folder, not a file name")
    # A fresh name opened with "x" (not mkstemp, whose 0600 mode would stick to the final file).
    tmp = folder / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fh = open(tmp, "xb")
    except PermissionError:  # name the file the person asked for, not our temp file
        raise error(f"{target}: no permission to write in {folder}") from None
    try:
        with fh:
            write(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, target)
        else:
            _rename_new(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _rename_new(tmp: Path, target: Path) -> None:
    """Rename `tmp` to `target` unless `target` exists. A hard link is atomic about it; where the
    file system has none (FAT, some network shares), check and rename."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target)) from None
        os.replace(tmp, target)
        return
    tmp.unlink()


def save_png(path: str | os.PathLike[str], image: np.ndarray,
             pnginfo: PngImagePlugin.PngInfo | None = None, durable: bool = True,
             replace: bool = True) -> Path:
    """Write an RGB uint8 PNG with optional metadata chunks, atomically: a temp file in the same
    folder is renamed over the target, so a crash or a full disk never leaves a half-written
    picture. ``durable`` also flushes it to the disk first (skip it for throwaway previews);
    ``replace`` False keeps an existing file (FileExistsError)."""
    p = Path(path)
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 image, got {arr.dtype} {arr.shape}")
    png = Image.fromarray(np.ascontiguousarray(arr))
    atomic_write(p, lambda fh: png.save(fh, format="PNG", pnginfo=pnginfo), durable=durable,
                 replace=replace)
    return p
