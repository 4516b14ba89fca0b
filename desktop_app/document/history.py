"""Finished generations kept for the session: each remembers its request (which already holds the
input image, mask and regions), the settings and region colours, so it can be restored exactly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from desktop_app.document.canvas_doc import DocState
from desktop_app.document.job import (
    MAX_SIDE,
    MIN_SIDE,
    JobKind,
    JobRequest,
    JobResult,
    RequestError,
)
from desktop_app.document.regions import PALETTE, RegionLayer
from desktop_app.document.settings import MAX_SEED, GenerationSettings


@dataclass(eq=False)
class HistoryItem:
    result: JobResult
    settings: GenerationSettings
    colours: tuple[tuple[int, int, int], ...] = ()
    saved_path: str = ""

    @property
    def image(self) -> np.ndarray:
        return self.result.image

    def label(self) -> str:
        req = self.result.request
        return f"#{self.result.job_id} {req.kind.value} seed {req.seed}"

    def restored_settings(self) -> GenerationSettings:
        """The parameters of this job, with its seed fixed so generating again reproduces it."""
        return self.settings.replace(seed_mode="fixed", seed=int(self.result.request.seed))

    def input_state(self) -> DocState:
        """The canvas as it was when the job started: input image (or empty), mask, regions."""
        return request_input_state(self.result.request, self.colours)


def request_input_state(req: JobRequest, colours: tuple[tuple[int, int, int], ...] = ()
                        ) -> DocState:
    """The canvas a request was made from: its input image (none for text-to-image), mask and
    regions (in `colours`, else the palette's). RequestError when a request read from a file
    cannot be a canvas (a size out of range, arrays of another size)."""
    w, h = req.width, req.height
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise RequestError(f"size {w}x{h} is out of range ({MIN_SIDE}..{MAX_SIDE} a side)")
    arrays = [("init image", req.init_image, (h, w, 3)), ("mask", req.mask, (h, w)),
              *((f"region {i + 1} mask", r.mask, (h, w)) for i, r in enumerate(req.regions))]
    for name, a, shape in arrays:
        if a is None or a.shape == shape:
            continue
        if a.ndim >= 2 and a.shape[:2] != (h, w):
            raise RequestError(f"the {name} is {a.shape[1]}x{a.shape[0]}, the job {w}x{h}")
        # Right size, wrong layout (an RGB mask): the canvas would crash on it.
        raise RequestError(f"the {name} is an array of shape {a.shape}, not {shape}")
    mask = (np.array(req.mask, np.float32) if req.mask is not None
            else np.zeros((req.height, req.width), np.float32))
    regions = []
    for i, region in enumerate(req.regions):
        colour = colours[i] if i < len(colours) else PALETTE[i % len(PALETTE)]
        regions.append(RegionLayer.from_region(region, colour))
    image = None
    if req.kind is not JobKind.TEXT_TO_IMAGE and req.init_image is not None:
        image = np.array(req.init_image)
    return DocState((req.width, req.height), image, None, mask, regions)


def request_settings(req: JobRequest, base: GenerationSettings) -> GenerationSettings:
    """`base` (the panel's settings) with every parameter a request carries, seed fixed: what
    restoring a job from its PNG puts in the panel. A seed the panel cannot hold (another tool's
    -1 for "random", a command-line seed over MAX_SEED) leaves the seed random."""
    fixed = 0 <= req.seed <= MAX_SEED
    return base.replace(prompt=req.prompt, negative_prompt=req.negative_prompt, steps=req.steps,
                        cfg_scale=req.cfg_scale, sampler=req.sampler,
                        seed_mode="fixed" if fixed else "random",
                        seed=int(req.seed) if fixed else base.seed, strength=req.strength,
                        mask_grow=req.mask_grow,
                        mask_feather=req.mask_feather,
                        inpaint_only_masked=req.inpaint_only_masked,
                        inpaint_padding=req.inpaint_padding, pww_scale=req.pww_scale,
                        pww_outside=req.pww_outside, pww_local_sigma=req.pww_local_sigma)


class History:
    def __init__(self, limit: int = 40) -> None:
        self.items: list[HistoryItem] = []
        self.limit = limit  # results are full images: cap memory on big canvases

    def add(self, item: HistoryItem) -> None:
        self.items.append(item)
        del self.items[:-self.limit]
