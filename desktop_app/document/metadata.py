"""Generation metadata inside the PNGs we write, and reading it back.

Three PNG chunks carry it:

* ``parameters`` (tEXt/iTXt): the AUTOMATIC1111 text that other tools (sd-parsers, image
  browsers, civitai-style readers) understand: the prompt, a ``Negative prompt:`` line, then
  ``Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1, Size: 512x512, Model: name`` and
  ``Denoising strength`` for image-to-image and inpaint (written and parsed in document.a1111).
* ``diffusion-canvas`` (tEXt/zTXt): JSON with every field of the JobRequest, so the app can restore
  the job exactly. Arrays are not inlined: they are referenced by name ({"blob": "mask", ...}).
* ``dcAr`` (a private ancillary chunk, one per array): ``name NUL payload``. Arrays live there and
  not in text chunks because Pillow refuses to open a PNG whose text chunk decompresses to more
  than 1 MB, and an embedded 768 px init image alone is bigger than that; every reader that does
  not know ``dcAr`` skips it, as the PNG spec requires.

JPEG and WebP files other tools write (A1111, Forge, SD.Next) carry the same ``parameters`` text
in the EXIF UserComment; Restore reads it from there too.

The init image and every mask are always embedded (that is the documented choice: a result can be
regenerated from the file alone). 8-bit-exact masks are stored as greyscale PNG (a hard mask is a
few hundred bytes); any other float mask as zlib-compressed float32, so reading gives back exactly
the array that was written.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from desktop_app.document.a1111 import Warn, a1111_parameters, parse_a1111, request_from_a1111
from desktop_app.document.image_io import save_png
from desktop_app.document.job import (
    MAX_SIDE,
    JobKind,
    JobRequest,
    JobResult,
    Region,
    RequestError,
)

PARAMETERS_KEY = "parameters"
JSON_KEY = "diffusion-canvas"
BLOB_CHUNK = b"dcAr"
FORMAT_VERSION = 1
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Refuse zip bombs in text chunks: ours and A1111's are a few kB (arrays live in dcAr chunks, and
# Pillow itself refuses a text chunk over 1 MB), so 16 MB a chunk and 64 MB in all (Pillow's
# total) are generous.
_MAX_INFLATE = 16 * 1024 * 1024
_MAX_TEXT = 64 * 1024 * 1024
_ARRAY_FIELDS = ("init_image", "mask", "regions")


# ----------------------------------------------------------------------------- arrays


def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _encode_mask(mask: np.ndarray) -> tuple[dict[str, Any], bytes]:
    as_u8 = np.round(mask * 255.0).clip(0, 255).astype(np.uint8)
    if np.array_equal(as_u8.astype(np.float32) / np.float32(255.0), mask):
        return {"encoding": "png"}, _png_bytes(as_u8)
    data = np.ascontiguousarray(mask, dtype="<f4").tobytes()
    return {"encoding": "f32-zlib", "shape": list(mask.shape)}, zlib.compress(data, 6)


def _decode_png(payload: bytes, name: str, mode: str) -> np.ndarray:
    """A PNG array in the mode we write it in ("RGB" init image, "L" mask), its size checked
    before its pixels are decoded: a crafted one cannot balloon memory."""
    try:
        with Image.open(io.BytesIO(payload)) as img:
            if img.mode != mode:
                raise ValueError(f"mode {img.mode}, expected {mode}")
            if not all(0 < n <= MAX_SIDE for n in img.size):
                raise ValueError(f"{img.width}x{img.height} is over {MAX_SIDE} a side")
            img.load()
            return np.asarray(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise RequestError(f"metadata: array {name!r} is damaged ({exc})") from None


def _decode_mask(ref: dict[str, Any], payload: bytes, name: str) -> np.ndarray:
    mask = _decode_mask_values(ref, payload, name)
    if not np.all((mask >= 0.0) & (mask <= 1.0)):  # NaN fails too
        raise RequestError(f"metadata: mask {name!r} is damaged (values outside 0..1)")
    return mask


def _decode_mask_values(ref: dict[str, Any], payload: bytes, name: str) -> np.ndarray:
    if ref.get("encoding") == "png":
        return _decode_png(payload, name, "L").astype(np.float32) / np.float32(255.0)
    if ref.get("encoding") == "f32-zlib":
        try:
            shape = tuple(int(n) for n in ref["shape"])
            if len(shape) != 2 or not all(0 < n <= MAX_SIDE for n in shape):
                raise ValueError(f"shape {shape}")
            # Inflate no more than the shape needs: a crafted file cannot balloon memory.
            d = zlib.decompressobj()
            raw = d.decompress(payload, shape[0] * shape[1] * 4)
            if not d.eof or d.unconsumed_tail:
                raise ValueError(f"more data than a {shape[1]}x{shape[0]} mask")
            return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
        except (KeyError, TypeError, ValueError, zlib.error) as exc:
            raise RequestError(f"metadata: mask {name!r} is damaged ({exc})") from None
    raise RequestError(f"metadata: mask {name!r} has unknown encoding {ref.get('encoding')!r}")


# ----------------------------------------------------------------------------- JSON


def _scalar_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(JobRequest) if f.name not in _ARRAY_FIELDS]


def request_payload(request: JobRequest, result: JobResult | None = None
                    ) -> tuple[str, dict[str, bytes]]:
    """The JSON text and the named binary arrays that together describe ``request`` exactly."""
    doc: dict[str, Any] = {"format": JSON_KEY, "version": FORMAT_VERSION}
    for f in _scalar_fields():
        value = getattr(request, f.name)
        doc[f.name] = value.value if isinstance(value, JobKind) else value
    blobs: dict[str, bytes] = {}
    doc["init_image"] = None
    if request.init_image is not None:
        blobs["init_image"] = _png_bytes(request.init_image)
        doc["init_image"] = {"blob": "init_image", "encoding": "png"}
    doc["mask"] = None
    if request.mask is not None:
        ref, blobs["mask"] = _encode_mask(request.mask)
        doc["mask"] = {"blob": "mask", **ref}
    doc["regions"] = []
    for i, region in enumerate(request.regions):
        name = f"region_{i}"
        ref, blobs[name] = _encode_mask(region.mask)
        doc["regions"].append({"words": region.words, "strength": region.strength,
                               "name": region.name, "mask": {"blob": name, **ref}})
    if result is not None:
        doc["result"] = {"model_name": result.model_name, "elapsed": result.elapsed,
                         "warnings": list(result.warnings),
                         "region_adherence": list(result.region_adherence)}
    # default=str: an extras value JSON cannot hold is kept as its text rather than failing a save
    return json.dumps(doc, ensure_ascii=False, default=str), blobs


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Check a stored field against the type of its default, so a hand-edited file fails here
    with the field's name instead of deep inside the engine."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):  # json reads NaN and Infinity
        ok = (isinstance(value, int | float) and not isinstance(value, bool)
              and math.isfinite(value))
        value = float(value) if ok else value
    elif isinstance(default, str | JobKind):
        ok = isinstance(value, str)
    elif isinstance(default, dict):
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        raise RequestError(f"metadata: field {name!r} has a bad value {value!r}")
    return value


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return ""


def _blob(blobs: dict[str, bytes], ref: dict[str, Any]) -> tuple[str, bytes]:
    name = str(ref.get("blob", ""))
    if name not in blobs:
        raise RequestError(f"metadata: array {name!r} is missing from the file")
    return name, blobs[name]


def request_from_payload(text: str, blobs: dict[str, bytes]) -> JobRequest:
    """Rebuild the exact JobRequest written by request_payload."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(f"metadata: the {JSON_KEY} JSON is damaged ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != JSON_KEY:
        raise RequestError(f"metadata: the {JSON_KEY} chunk is not ours")
    version = doc.get("version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise RequestError(f"metadata: unsupported format version {version!r}")
    # Files written before pww_outside or pww_local_sigma existed were made without them.
    values: dict[str, Any] = {"pww_outside": 0.0, "pww_local_sigma": 0.0}
    for f in _scalar_fields():
        if f.name in doc:
            values[f.name] = _coerce(f.name, doc[f.name], _field_default(f))
    try:
        values["kind"] = JobKind(values.get("kind", JobKind.TEXT_TO_IMAGE))
    except ValueError:
        raise RequestError(f"metadata: unknown job kind {values['kind']!r}") from None
    if doc.get("init_image"):
        name, payload = _blob(blobs, doc["init_image"])
        values["init_image"] = _decode_png(payload, name, "RGB")
    if doc.get("mask"):
        values["mask"] = _decode_mask(doc["mask"], _blob(blobs, doc["mask"])[1], "mask")
    regions = []
    for i, r in enumerate(doc.get("regions") or []):
        name, payload = _blob(blobs, r.get("mask", {}))
        mask = _decode_mask(r["mask"], payload, name)
        regions.append(Region(words=str(r.get("words", "")), mask=mask,
                              strength=float(r.get("strength", 1.0)),
                              name=str(r.get("name", f"region {i + 1}"))))
    values["regions"] = tuple(regions)
    return JobRequest(**values)


# ----------------------------------------------------------------------------- PNG chunks


def png_chunks(request: JobRequest, model_name: str = "",
               result: JobResult | None = None) -> PngImagePlugin.PngInfo:
    """A PngInfo for Pillow's ``save(..., pnginfo=...)`` holding all our metadata."""
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, a1111_parameters(request, model_name))
    text, blobs = request_payload(request, result)
    info.add_text(JSON_KEY, text, zip=len(text) > 1024)
    for name, payload in blobs.items():
        info.add(BLOB_CHUNK, name.encode("ascii") + b"\0" + payload, after_idat=True)
    return info


def _inflate(data: bytes, limit: int) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(data, limit)
    if d.unconsumed_tail:
        raise RequestError("metadata: a text chunk is implausibly large")
    return out


def _decode_text(raw: bytes) -> str:
    """tEXt and zTXt are Latin-1 by the spec, iTXt UTF-8; but many tools write UTF-8 into all
    three. Text that is valid UTF-8 is read as UTF-8 (Latin-1 prose almost never is)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _text_body(ctype: bytes, rest: bytes, limit: int) -> str:
    """The text of a tEXt, zTXt or iTXt chunk, ``rest`` being what follows its keyword's NUL."""
    if ctype == b"tEXt":
        return _decode_text(rest)
    if ctype == b"zTXt":
        return _decode_text(_inflate(rest[1:], limit))
    # iTXt: compression flag, method, language NUL, translated keyword NUL, text
    flag = rest[:1]
    _, _, rest = rest[2:].partition(b"\0")
    _, _, text = rest.partition(b"\0")
    return _decode_text(_inflate(text, limit) if flag == b"\1" else text)


def read_png_metadata(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, bytes]]:
    """Text chunks and our named arrays of a PNG. We walk the chunks ourselves because Pillow
    caps text chunks at 1 MB and does not expose unknown chunks."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise RequestError(f"{p}: file not found") from None
    except OSError as exc:
        raise RequestError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if not data.startswith(_PNG_SIGNATURE):
        raise RequestError(f"{p}: not a PNG file")
    texts: dict[str, str] = {}
    blobs: dict[str, bytes] = {}
    budget = _MAX_TEXT  # for all compressed text together
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(body) < length or len(crc) < 4:
            break  # truncated file: keep whatever was read before the cut
        pos += 12 + length
        if struct.unpack(">I", crc)[0] != zlib.crc32(ctype + body):
            continue  # a damaged chunk must not poison the others
        try:
            if ctype in (b"tEXt", b"zTXt", b"iTXt"):
                raw_key, _, rest = body.partition(b"\0")
                key = raw_key.decode("latin-1")
                if key not in texts:  # the first one counts
                    texts[key] = _text_body(ctype, rest, max(1, min(_MAX_INFLATE, budget)))
                    if ctype == b"zTXt" or (ctype == b"iTXt" and rest[:1] == b"\1"):
                        budget -= len(texts[key])
            elif ctype == BLOB_CHUNK:
                name, _, payload = body.partition(b"\0")
                blobs[name.decode("ascii", "replace")] = payload
        except zlib.error:
            continue
        except RequestError as exc:
            raise RequestError(f"{p}: {exc}") from None
        if ctype == b"IEND":
            break
    return texts, blobs


_EXIF_IFD, _USER_COMMENT = 0x8769, 0x9286


def _user_comment_text(raw: bytes | str) -> str:
    """An EXIF UserComment as text: an 8-byte charset prefix, then the bytes. A1111 writes
    "UNICODE" as UTF-16 big-endian (piexif's way); other writers use the EXIF block's own byte
    order, so the order is read off where the zero bytes of ASCII characters fall."""
    if isinstance(raw, str):
        return raw.rstrip("\0")
    prefix, body = raw[:8], raw[8:]
    if prefix.rstrip(b"\0") == b"UNICODE":
        if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            text = body.decode("utf-16")
        else:
            zeros_even = body[0::2].count(0)
            text = body.decode("utf-16-le" if body[1::2].count(0) > zeros_even else "utf-16-be",
                               "replace")
    elif prefix.rstrip(b"\0") == b"JIS":
        text = body.decode("shift_jis", "replace")
    elif prefix.rstrip(b"\0") in (b"ASCII", b""):
        text = _decode_text(body)
    else:  # no prefix at all: the whole field is the text
        text = _decode_text(raw)
    return text.rstrip("\0")


def read_exif_parameters(path: str | os.PathLike[str]) -> str | None:
    """A1111's generation text in a JPEG's or WebP's EXIF UserComment, or None when there is none.
    Raises RequestError when the file cannot be read as an image."""
    p = Path(path)
    try:
        with Image.open(p) as img:  # lazy: reads the headers, not the pixels
            raw = img.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT)
    except FileNotFoundError:
        raise RequestError(f"{p}: file not found") from None
    except (OSError, SyntaxError, ValueError, struct.error) as exc:  # Pillow's broken-file errors
        raise RequestError(f"{p}: not an image this app can read ({exc})") from None
    if not raw:
        return None
    text = _user_comment_text(raw[:_MAX_INFLATE])
    # A camera's or a person's comment is not a job: A1111's text ends in a settings line.
    return text if parse_a1111(text)[2] else None


def _is_png(path: str | os.PathLike[str]) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(_PNG_SIGNATURE)) == _PNG_SIGNATURE
    except OSError:
        return False


def has_parameters(path: str | os.PathLike[str]) -> bool:
    """Whether a file is a PNG carrying generation parameters (ours or A1111's), or a JPEG or
    WebP with A1111's text in its EXIF; False for anything unreadable."""
    try:
        if not _is_png(path):
            text = read_exif_parameters(path)
            return text is not None and not _is_json_object(text)
        texts, _ = read_png_metadata(path)
    except (OSError, RequestError):
        return False
    return JSON_KEY in texts or (PARAMETERS_KEY in texts
                                 and not _is_json_object(texts[PARAMETERS_KEY]))


def read_metadata(path: str | os.PathLike[str], warn: Warn = None) -> JobRequest:
    """The JobRequest stored in a PNG: exactly, when we wrote it; best effort from an A1111
    ``parameters`` text otherwise, from a PNG text chunk or a JPEG's or WebP's EXIF. Raises
    RequestError when there is neither."""
    p = Path(path)
    if p.is_file() and not _is_png(p):
        text = read_exif_parameters(p)
        texts, blobs = ({PARAMETERS_KEY: text} if text is not None else {}), {}
    else:
        texts, blobs = read_png_metadata(p)
    if JSON_KEY in texts:
        try:
            return request_from_payload(texts[JSON_KEY], blobs)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # hand-edited or damaged
            why = str(exc) if isinstance(exc, RequestError) else f"metadata: damaged ({exc!r})"
            if PARAMETERS_KEY not in texts:
                raise RequestError(f"{p}: {why}") from None
            if warn is not None:
                warn(f"{p}: {why}; using the plain-text parameters instead")
    if PARAMETERS_KEY in texts and not _is_json_object(texts[PARAMETERS_KEY]):
        try:
            return request_from_a1111(texts[PARAMETERS_KEY], warn)
        except RequestError as exc:
            raise RequestError(f"{p}: {exc}") from None
    if (tool := _other_tool(texts)) is not None:
        raise RequestError(f"{p}: its parameters are {tool}, which this app cannot read (it "
                           "restores its own PNGs and A1111's 'parameters' text)")
    raise RequestError(f"{p}: has no generation parameters")


def _is_json_object(text: str) -> bool:
    if not text.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _other_tool(texts: dict[str, str]) -> str | None:
    """Which tool wrote the generation parameters of a PNG that has none we can read."""
    if PARAMETERS_KEY in texts:  # A1111's key holding JSON
        return "SwarmUI's or Fooocus's JSON"
    if "prompt" in texts or "workflow" in texts:
        return "a ComfyUI workflow"
    if {"invokeai_metadata", "sd-metadata", "Dream"} & texts.keys():
        return "InvokeAI's"
    if texts.get("Software") == "NovelAI":
        return "NovelAI's"
    return None



def save_png_with_metadata(path: str | os.PathLike[str], image: np.ndarray, request: JobRequest,
                           model_name: str = "", result: JobResult | None = None,
                           replace: bool = True) -> Path:
    """Write ``image`` atomically with the A1111 text, our JSON and the arrays (``replace``
    False: keep an existing file, FileExistsError)."""
    return save_png(path, image, pnginfo=png_chunks(request, model_name, result),
                    replace=replace)
