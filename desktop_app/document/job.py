"""What a generation needs, frozen: the GUI thread snapshots the document into a JobRequest and the
engine sees only that. Also the plain-data messages the engine sends back (previews, results).

No Qt, no torch: numpy and the standard library only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np


class JobKind(StrEnum):
    TEXT_TO_IMAGE = "text-to-image"
    IMAGE_TO_IMAGE = "image-to-image"
    INPAINT = "inpaint"


SAMPLERS = ("euler", "euler_a", "ddim", "dpmpp_2m", "lcm")
SAMPLER_LABELS = {
    "euler": "Euler",
    "euler_a": "Euler a",
    "ddim": "DDIM",
    "dpmpp_2m": "DPM++ 2M",
    "lcm": "LCM",
}
PWW_MODES = ("max", "std", "std_sigma2")  # w·log(1+σ)·max(QKᵀ), ·std(QKᵀ), w·log(1+σ²)·std(QKᵀ)
MAX_SIDE = 4096
MIN_SIDE = 8  # one latent pixel: the smallest canvas or init image the app and CLI take
SIZE_MULTIPLE = 8  # what the VAE needs; any request size is run padded up to it, then cropped
MAX_REGION_STRENGTH = 10.0  # the regions panel's range; far beyond it the attention overflows


def padded_size(width: int, height: int) -> tuple[int, int]:
    """The size a job of width x height runs at: each side rounded up to SIZE_MULTIPLE."""
    m = SIZE_MULTIPLE
    return -(-width // m) * m, -(-height // m) * m


class RequestError(ValueError):
    """A request that cannot run; the message is shown to the user as it is."""


def _check_text(label: str, text: str) -> None:
    """Refuse text that has no UTF-8 form: a lone surrogate, which is what bytes that are not
    UTF-8 become on a command line, or a "\\ud800" escape in a JSON file. The tokenizer failed on
    it with a TypeError, or the job ran and its PNG could not be written."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(f"{label}: character {exc.start + 1} ({text[exc.start]!r}) is not "
                           "valid text (bytes that are not UTF-8?)") from None


def _frozen_array(a: np.ndarray | None, dtype: Any) -> np.ndarray | None:
    if a is None:
        return None
    out = np.array(a, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Region:
    """A paint-with-words region: where (mask, 1 = inside, float in [0, 1], at the request's size),
    which words of the prompt, and how strongly."""

    words: str
    mask: np.ndarray
    strength: float = 1.0
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", _frozen_array(self.mask, np.float32))


@dataclass(frozen=True, eq=False)
class JobRequest:
    kind: JobKind
    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 20
    cfg_scale: float = 7.5
    sampler: str = "euler"
    width: int = 512
    height: int = 512
    strength: float = 0.75  # image-to-image / inpaint denoising strength
    init_image: np.ndarray | None = None  # H x W x 3 uint8 RGB, at width x height
    mask: np.ndarray | None = None  # H x W float32 in [0, 1], 1 = repaint
    mask_grow: int = 0  # pixels; negative shrinks
    mask_feather: float = 0.0  # pixels of soft edge
    inpaint_only_masked: bool = False  # crop around the mask, work at model resolution, paste back
    inpaint_padding: int = 32
    regions: tuple[Region, ...] = ()
    pww_scale: float = 0.1  # the reference implementation's 0.1 factor
    pww_mode: str = "max"
    # A region's words are also pushed away from everywhere outside the region, by this share of
    # its strength (0 = eDiff-I's bias inside only).
    pww_outside: float = 1.0
    # Region prompts: once the noise level σ falls below this, each region's pixels also read the
    # prompt without the other regions' words (0 = off).
    pww_local_sigma: float = 6.0
    model: str = ""  # display name / path of the model, for metadata only
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", JobKind(self.kind))
        object.__setattr__(self, "init_image", _frozen_array(self.init_image, np.uint8))
        object.__setattr__(self, "mask", _frozen_array(self.mask, np.float32))
        object.__setattr__(self, "regions", tuple(self.regions))

    def replace(self, **changes: Any) -> JobRequest:
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise RequestError with a message naming the bad field."""
        if self.steps < 1:
            raise RequestError(f"steps must be at least 1 (got {self.steps})")
        if self.steps > 1000:
            raise RequestError(f"steps must be at most 1000 (got {self.steps})")
        if not (0 < self.width <= MAX_SIDE and 0 < self.height <= MAX_SIDE):
            raise RequestError(f"size {self.width}x{self.height} is out of range (1..{MAX_SIDE})")
        if self.sampler not in SAMPLERS:
            raise RequestError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        _check_text("prompt", self.prompt)
        _check_text("negative prompt", self.negative_prompt)
        if self.cfg_scale < 0:
            raise RequestError(f"CFG scale must be >= 0 (got {self.cfg_scale})")
        if not 0.0 < self.strength <= 1.0:
            raise RequestError(f"strength must be in (0, 1] (got {self.strength})")
        if self.pww_mode not in PWW_MODES:
            raise RequestError(f"unknown paint-with-words mode {self.pww_mode!r}")
        if not 0.0 <= self.pww_outside <= 10.0:
            raise RequestError("paint-with-words outside suppression must be from 0 to 10 "
                               f"(got {self.pww_outside})")
        if not 0.0 <= self.pww_local_sigma <= 1000.0:
            raise RequestError("paint-with-words region prompts' noise level must be from 0 "
                               f"(off) to 1000 (got {self.pww_local_sigma})")
        shape = (self.height, self.width)
        if self.kind in (JobKind.IMAGE_TO_IMAGE, JobKind.INPAINT):
            if self.init_image is None:
                raise RequestError(f"{self.kind.value} needs an init image")
            if self.init_image.shape != (*shape, 3):
                raise RequestError(
                    f"init image is {self.init_image.shape[1]}x{self.init_image.shape[0]}, "
                    f"the request is {self.width}x{self.height}")
        if self.kind is JobKind.INPAINT:
            if self.mask is None:
                raise RequestError("inpaint needs a mask")
            if self.mask.shape != shape:
                raise RequestError(
                    f"mask is {self.mask.shape[1]}x{self.mask.shape[0]}, "
                    f"the image is {self.width}x{self.height}")
            if not np.any(self.mask > 0):
                raise RequestError("the mask is empty: paint the area to repaint")
        for i, r in enumerate(self.regions):
            if r.mask.shape != shape:
                raise RequestError(
                    f"region {i + 1} ({r.words!r}) mask is {r.mask.shape[1]}x{r.mask.shape[0]}, "
                    f"the request is {self.width}x{self.height}")
            if not r.words.strip():  # by name: the app numbers only the regions painted
                raise RequestError(f"region {r.name!r} has no words" if r.name.strip()
                                   else f"region {i + 1} has no words")
            _check_text(f"region {i + 1} words", r.words)
            _check_text(f"region {i + 1} name", r.name)
            if not (math.isfinite(r.strength) and 0 <= r.strength <= MAX_REGION_STRENGTH):
                raise RequestError(f"region {i + 1} ({r.words!r}) strength must be from 0 to "
                                   f"{MAX_REGION_STRENGTH:g} (got {r.strength})")


@dataclass(frozen=True, eq=False)
class Preview:
    """One intermediate denoising preview (predicted x0, cheaply projected to RGB)."""

    job_id: int
    step: int  # 1-based
    total: int
    image: np.ndarray  # h x w x 3 uint8 (may be smaller than the request)
    attention: dict[str, np.ndarray] | None = None  # word -> h' x w' float32 in [0, 1]


@dataclass(frozen=True, eq=False)
class JobResult:
    job_id: int
    request: JobRequest
    image: np.ndarray  # H x W x 3 uint8
    elapsed: float
    model_name: str = ""
    warnings: tuple[str, ...] = ()
    region_adherence: tuple[float, ...] = ()  # per region: share of its words' attention inside it


class JobCancelled(Exception):
    """The job was cancelled; it delivers no image and writes nothing."""


class EngineError(Exception):
    """A failure with a message fit for the user (bad model file, out of memory, ...)."""
