"""``diffusion-canvas generate``: one image from the command line, over the same engine as the app.

Exit codes: 0 written; 1 the engine failed (bad model file, out of memory, ...); 2 bad input
(a missing file, a bad number, an unknown sampler, ...); 130 cancelled with Ctrl+C. Every failure
is one line on stderr (``--debug`` adds the traceback of unexpected errors), and the output file
is written only when the job succeeded, atomically, so a failure never leaves a broken PNG or
clobbers an existing one.

The job kind follows from the inputs: no --init is text-to-image, --init is image-to-image,
--init with --mask is inpainting (white in the mask = repaint).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import secrets
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

import numpy as np

from desktop_app.document.job import (
    MAX_SIDE,
    MIN_SIDE,
    PWW_MODES,
    SAMPLERS,
    EngineError,
    JobCancelled,
    JobKind,
    JobRequest,
    Region,
    RequestError,
)
from desktop_app.document.model_info import GENERIC_REGION_STRENGTH, region_strength_for
from desktop_app.document.prompt_layout import prompt_regions

EXIT_OK, EXIT_ENGINE, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
MAX_SEED = 2**63 - 1


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse prints usage + message; we want 1 line
        raise _UsageError(message)


def _number(cast: Callable[[str], Any], low: float | None = None, high: float | None = None,
            low_open: bool = False) -> Callable[[str], Any]:
    """An argparse type that rejects NaN, infinities and out-of-range values with the range."""

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid number") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            lo = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"{text} is out of range {lo}{low}, {high}]")
        return value

    parse.__name__ = cast.__name__  # argparse names the type in its messages
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="diffusion-canvas generate",
                description="Generate one image (text-to-image, image-to-image, inpaint, "
                            "paint-with-words) and write it as a PNG with its parameters.")
    p.add_argument("--prompt", required=True, help="what to draw")
    p.add_argument("--negative", default="", help="what to avoid")
    p.add_argument("--model", default=None,
                   help="diffusers folder or .safetensors file (default: the built-in model)")
    p.add_argument("--seed", type=_number(int, -1, MAX_SEED), default=-1,
                   help="random seed; -1 (default) picks one and reports it")
    p.add_argument("--steps", type=_number(int, 1, 1000), default=20)
    p.add_argument("--cfg", type=_number(float, 0, 100), default=None,
                   help="guidance scale (default: what the model recommends, else 7.5)")
    p.add_argument("--sampler", choices=SAMPLERS, default="euler")
    p.add_argument("--width", type=_number(int, MIN_SIDE, MAX_SIDE), default=None,
                   help="default: the init image's width, else the model's size; any size "
                        "works (the job runs padded to multiples of 8 and is cropped back)")
    p.add_argument("--height", type=_number(int, MIN_SIDE, MAX_SIDE), default=None)
    p.add_argument("--init", type=Path, default=None, help="image for image-to-image / inpaint")
    p.add_argument("--mask", type=Path, default=None,
                   help="inpaint mask (needs --init): white = repaint, black = keep")
    p.add_argument("--strength", type=_number(float, 0, 1, low_open=True), default=0.75,
                   help="how much of the init image to repaint, in (0, 1]")
    p.add_argument("--mask-grow", type=_number(int, -512, 512), default=0,
                   help="grow (or with a negative value shrink) the mask by this many pixels")
    p.add_argument("--mask-feather", type=_number(float, 0, 512), default=0.0,
                   help="soft mask edge, in pixels")
    p.add_argument("--inpaint-only-masked", action="store_true",
                   help="work on a crop around the mask at model resolution, then paste back")
    p.add_argument("--inpaint-padding", type=_number(int, 0, 1024), default=32)
    p.add_argument("--regions", type=Path, default=None,
                   help="paint-with-words layout (JSON) of regions and their words")
    p.add_argument("--regions-from-prompt", action="store_true",
                   help="a region for each clause of the prompt that says where its subject goes "
                        "('a red circle at the top left and a blue square on the right'): that "
                        "third of the image, bound to the clause's words")
    p.add_argument("--pww-scale", type=_number(float, 0, 10), default=0.1)
    p.add_argument("--pww-mode", choices=PWW_MODES, default="max")
    p.add_argument("--pww-outside", type=_number(float, 0, 10), default=1.0,
                   help="push a region's words away from outside the region by this share of "
                        "its strength (0: eDiff-I's bias inside only)")
    p.add_argument("--pww-local-sigma", type=_number(float, 0, 1000), default=6.0,
                   help="region prompts: below this noise level each region also reads the "
                        "prompt without the other regions' words (0: off)")
    p.add_argument("--previews", type=Path, default=None,
                   help="folder to write each step's preview to (step_001.png, ...)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default="auto", help="auto, float32, float16, bfloat16")
    p.add_argument("--out", type=Path, required=True, help="output .png")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar or notes")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    return p


# ----------------------------------------------------------------------------- console


@dataclass
class Console:
    """Progress bar and notes on stderr. On a terminal the bar redraws in place; in a log it
    prints at most one line per second so logs stay readable."""

    stream: IO[str] = field(default_factory=lambda: sys.stderr)
    quiet: bool = False
    _t0: float | None = None
    _first_step: int = 0
    _last_line: float = 0.0
    _open_bar: bool = False

    def note(self, message: str) -> None:
        if not self.quiet:
            self._write_line(message)

    def warn(self, message: str) -> None:
        self._write_line(f"warning: {message}")

    def error(self, message: str) -> None:
        self._write_line(f"error: {' '.join(message.split())}")  # one line, whatever it held

    def _write_line(self, text: str) -> None:
        if self._open_bar:
            self.stream.write("\n")
            self._open_bar = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def _tty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def step(self, step: int, total: int) -> None:
        if self.quiet:
            return
        now = time.perf_counter()
        if self._t0 is None:  # rate from the first step on, so model warm-up does not count
            self._t0, self._first_step = now, step
        done = step - self._first_step
        rate = done / (now - self._t0) if done and now > self._t0 else 0.0
        width = 24
        filled = round(width * step / total)
        line = (f"step {step:>{len(str(total))}}/{total} [{'#' * filled}{'.' * (width - filled)}]"
                + (f" {rate:.2f} it/s" if rate else ""))
        if self._tty():
            self.stream.write("\r" + line)
            self._open_bar = step < total
            if step >= total:
                self.stream.write("\n")
        elif now - self._last_line >= 1.0 or step >= total:
            self.stream.write(line + "\n")
            self._last_line = now
        self.stream.flush()


@contextlib.contextmanager
def cancel_on_sigint(cancel: threading.Event, console: Console) -> Iterator[None]:
    """First Ctrl+C asks the job to stop at the next step; a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals can only be handled on the main thread (e.g. called from a test worker)
        return

    def handler(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        console.note("cancelling... (Ctrl+C again to stop at once)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# ----------------------------------------------------------------------------- inputs


def _check_paths(args: argparse.Namespace) -> None:
    out: Path = args.out
    if out.suffix.lower() != ".png":
        raise RequestError(f"--out {out}: must be a .png file (the parameters are stored in it)")
    if out.is_dir():
        raise RequestError(f"--out {out}: is a folder")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        why = "is a file, not a folder" if folder.exists() else "does not exist"
        raise RequestError(f"--out {out}: folder {out.parent} {why}")
    if not os.access(folder, os.W_OK | os.X_OK):  # now, not after the job has run
        raise RequestError(f"--out {out}: no permission to write in {folder}")
    if out.exists() and not args.overwrite:
        raise RequestError(f"--out {out}: already exists (use --overwrite to replace it)")
    if args.mask is not None and args.init is None:
        raise RequestError("--mask needs --init: the image to inpaint")
    if args.regions is not None and getattr(args, "regions_from_prompt", False):
        raise RequestError("--regions and --regions-from-prompt: choose one")
    if args.regions is not None and not args.regions.exists():
        raise RequestError(f"--regions {args.regions}: file not found")
    if args.regions is not None and args.regions.is_dir():
        raise RequestError(f"--regions {args.regions}: is a folder, not a layout file")
    if args.model is not None:
        if not args.model.strip():  # Path("") is the current folder: not what anyone means
            raise RequestError("--model: empty path (leave --model out for the built-in model)")
        # Pickles and broken files are refused by the engine's loader, which expands ~ too.
        model = Path(args.model).expanduser()
        if not model.exists():
            why = "a broken or looping symbolic link" if model.is_symlink() else "not found"
            raise RequestError(f"--model {args.model}: {why}")
    if args.previews is not None:
        if args.previews.exists() and not args.previews.is_dir():
            raise RequestError(f"--previews {args.previews}: exists and is not a folder")


def _make_previews_folder(folder: Path) -> None:
    """Make the --previews folder before the model loads: one that cannot be made or written
    in is bad input (exit 2), not an engine failure or a failure at the first step."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RequestError(f"--previews {folder}: cannot make the folder "
                           f"({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RequestError(f"--previews {folder}: no permission to write in it")


def _round(n: float) -> int:
    return max(MIN_SIDE, int(round(n)))


def _init_size(args: argparse.Namespace, w0: int, h0: int) -> tuple[int, int]:
    """The request size for an init image: as asked, else the image's own, keeping its aspect when
    only one side is given. Any size works: the engine pads to the multiples of 8 the VAE needs
    and crops back."""
    if args.width and args.height:
        return args.width, args.height
    if args.width:
        return args.width, _round(h0 * args.width / w0)
    if args.height:
        return _round(w0 * args.height / h0), args.height
    return w0, h0


def _load_inputs(args: argparse.Namespace,
                 console: Console) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The init image (at the request size) and the mask (resized to it). Both are read before
    the model loads, so a bad file fails in milliseconds rather than after seconds of loading."""
    from desktop_app.document.image_io import load_image, load_mask, resize_image

    if args.init is None:
        return None, None
    image = load_image(args.init, warn=console.warn)
    h0, w0 = image.shape[:2]
    w, h = _init_size(args, w0, h0)
    if min(w, h) < MIN_SIDE:
        raise RequestError(f"--init {args.init}: {w}x{h} is too small "
                           f"(at least {MIN_SIDE} pixels a side)")
    if max(w, h) > MAX_SIDE:  # now, not after seconds of loading the model
        size = f"{w0}x{h0}" + (f" scaled to {w}x{h}" if (w, h) != (w0, h0) else "")
        raise RequestError(f"--init {args.init}: {size} is over the {MAX_SIDE}-pixel limit; "
                           "scale it down with --width or --height")
    if (w, h) != (w0, h0):
        console.warn(f"{args.init}: {w0}x{h0} resized to {w}x{h}")
        image = resize_image(image, w, h)
    mask = None if args.mask is None else load_mask(args.mask, size=(w, h), warn=console.warn)
    if mask is not None and not np.any(mask > 0):
        raise RequestError(f"--mask {args.mask}: the mask is empty (all black); "
                           "paint the area to repaint in white")
    return image, mask


def _load_regions(path: Path, width: int, height: int,
                  default_strength: float) -> tuple[Region, ...]:
    try:
        from desktop_app.document.layout import load_layout
    except ImportError:
        raise RequestError(f"--regions {path}: layouts are not supported by this build") from None
    try:
        return tuple(load_layout(path, width, height, default_strength))
    except RequestError as exc:
        msg = str(exc)
        raise RequestError(msg if str(path) in msg else f"--regions {path}: {msg}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RequestError(f"--regions {path}: bad layout ({exc})") from None


def build_request(args: argparse.Namespace, init: np.ndarray | None, mask: np.ndarray | None,
                  default_size: int, model_name: str, default_cfg: float,
                  default_strength: float = GENERIC_REGION_STRENGTH) -> JobRequest:
    if init is not None:
        height, width = init.shape[:2]
    else:
        width, height = args.width or default_size, args.height or default_size
    kind = (JobKind.INPAINT if mask is not None
            else JobKind.IMAGE_TO_IMAGE if init is not None else JobKind.TEXT_TO_IMAGE)
    if getattr(args, "regions_from_prompt", False):
        regions = prompt_regions(args.prompt, width, height, default_strength)
    else:
        regions = (_load_regions(args.regions, width, height, default_strength) if args.regions
                   else ())
    seed = args.seed if args.seed >= 0 else secrets.randbelow(2**32)
    cfg = default_cfg if args.cfg is None else args.cfg
    request = JobRequest(
        kind=kind, prompt=args.prompt, negative_prompt=args.negative, seed=seed,
        steps=args.steps, cfg_scale=cfg, sampler=args.sampler, width=width, height=height,
        strength=args.strength if init is not None else 1.0, init_image=init, mask=mask,
        mask_grow=args.mask_grow, mask_feather=args.mask_feather,
        inpaint_only_masked=args.inpaint_only_masked, inpaint_padding=args.inpaint_padding,
        regions=regions, pww_scale=args.pww_scale, pww_mode=args.pww_mode,
        pww_outside=args.pww_outside, pww_local_sigma=args.pww_local_sigma, model=model_name,
    )
    request.validate()
    return request


# ----------------------------------------------------------------------------- running


@dataclass
class PreviewWriter:
    """Writes every preview as step_NNN.png and drives the progress bar."""

    console: Console
    folder: Path | None = None
    written: list[Path] = field(default_factory=list)

    def __call__(self, preview: Any) -> None:
        self.console.step(preview.step, preview.total)
        if self.folder is None:
            return
        from desktop_app.document.image_io import save_png

        digits = max(3, len(str(preview.total)))
        path = self.folder / f"step_{preview.step:0{digits}d}.png"
        save_png(path, np.ascontiguousarray(preview.image, dtype=np.uint8), durable=False)
        self.written.append(path)


def _hush_libraries() -> None:
    """diffusers/transformers print loading bars, advisories and deprecation notes that mean
    nothing to a user of this command; our own notes and real errors still get through."""
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    for lib in (diffusers_logging, transformers_logging):
        lib.set_verbosity_error()
        lib.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _load_engine(args: argparse.Namespace, console: Console) -> Any:
    if not args.debug:
        _hush_libraries()
    from desktop_app.engine import Engine

    try:
        engine = Engine(device=args.device, dtype=args.dtype)
    except EngineError as exc:  # an unknown or absent device, an unknown dtype: bad input
        raise RequestError(str(exc)) from None
    if args.previews is not None:
        engine.preview_max_per_second = 0  # the user asked for every step's picture
    t0 = time.perf_counter()
    info = engine.load(args.model)
    console.note(f"model {info.name} ({info.family}, {info.device}, {info.dtype}) "
                 f"loaded in {time.perf_counter() - t0:.1f} s")
    return engine


def generate(args: argparse.Namespace, console: Console) -> int:
    from desktop_app.document.metadata import save_png_with_metadata

    _check_paths(args)
    init, mask = _load_inputs(args, console)
    if args.previews is not None:
        _make_previews_folder(args.previews)
    cancel = threading.Event()
    with cancel_on_sigint(cancel, console):
        engine = _load_engine(args, console)
        info = engine.model_info
        request = build_request(args, init, mask, int(info.default_size), info.name,
                                info.cfg_scale(), region_strength_for(info))
        if cancel.is_set():
            raise JobCancelled()
        if getattr(args, "regions_from_prompt", False):
            if request.regions:
                console.note("regions from the prompt: " + "; ".join(
                    f"{r.words!r} at strength {r.strength:g}" for r in request.regions))
            else:
                console.warn("--regions-from-prompt: the prompt says nowhere where a thing goes "
                             "(e.g. 'at the top left', 'on the right'); no regions")
        console.note(f"{request.kind.value} {request.width}x{request.height}, "
                     f"{request.steps} steps, seed {request.seed}")
        writer = PreviewWriter(console, args.previews)
        result = engine.run(request, on_preview=writer, cancel=cancel)
        if cancel.is_set():  # Ctrl+C after the last step still means "I don't want it"
            raise JobCancelled()
        for w in result.warnings:
            console.warn(w)
        try:
            save_png_with_metadata(args.out, result.image, request, info.name, result,
                                   replace=args.overwrite)
        except FileExistsError:  # checked at the start, but made since (another run?): keep it
            raise RequestError(f"--out {args.out}: was created while the job ran and is left as "
                               "it was; nothing was written (use --overwrite to replace it)"
                               ) from None
    console.note(f"wrote {args.out} in {result.elapsed:.1f} s (seed {request.seed})")
    print(args.out, file=sys.stdout, flush=True)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "generate":  # accept the sub-command whether or not it was stripped
        argv = argv[1:]
    console = Console()
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as exc:
        console.error(f"{exc} (see diffusion-canvas generate --help)")
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    console.quiet = args.quiet
    try:
        return generate(args, console)
    except RequestError as exc:
        console.error(str(exc))
        return EXIT_USAGE
    except (JobCancelled, KeyboardInterrupt):
        console.error("cancelled; nothing was written")
        return EXIT_CANCELLED
    except EngineError as exc:
        console.error(str(exc))
        return EXIT_ENGINE
    except OSError as exc:  # e.g. disk full or no permission while writing --out or previews
        where = f"{exc.filename}: " if exc.filename else ""
        console.error(f"{where}{exc.strerror or exc}")
        return EXIT_ENGINE
    except MemoryError:
        console.error("out of memory; try a smaller size or fewer regions")
        return EXIT_ENGINE
    except Exception as exc:  # a bug: still one line, with the traceback on request
        if args.debug:
            traceback.print_exc()
        console.error(f"unexpected {type(exc).__name__}: {exc} (run with --debug for details)")
        return EXIT_ENGINE


if __name__ == "__main__":
    sys.exit(main())
