"""The canvas document: an image (or an empty canvas of a size), an inpaint mask and the
paint-with-words regions. Plain numpy; views subscribe with add_listener and are told what changed.

snapshot() freezes it into a JobRequest; the job kind follows the canvas: no image → text-to-image,
image without mask → image-to-image, image with mask → inpaint; regions add paint-with-words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from desktop_app.document.brush import Rect
from desktop_app.document.job import JobKind, JobRequest
from desktop_app.document.regions import RegionLayer
from desktop_app.document.settings import GenerationSettings

Listener = Callable[[str, Any], None]
# Events: "reset" (size, image, mask and regions may all have changed), "image", "mask" (Rect|None),
# "region" ((RegionLayer, Rect|None)), "regions" (list changed), "region_props" (RegionLayer).


class CanvasDocument:
    def __init__(self, width: int = 512, height: int = 512) -> None:
        self.width = int(width)
        self.height = int(height)
        self.image: np.ndarray | None = None
        self.image_meta: Any = None  # the JobResult when the image came from a job (metadata)
        self.mask = np.zeros((self.height, self.width), np.float32)
        self.regions: list[RegionLayer] = []
        self._listeners: list[Listener] = []

    # -- observers ---------------------------------------------------------------------------
    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def notify(self, event: str, payload: Any = None) -> None:
        for fn in list(self._listeners):
            fn(event, payload)

    # -- whole-document changes --------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    def new(self, width: int, height: int) -> None:
        self.width, self.height = int(width), int(height)
        self.image = None
        self.image_meta = None
        self.mask = np.zeros((self.height, self.width), np.float32)
        self.regions = []
        self.notify("reset")

    def resize_empty(self, width: int, height: int) -> None:
        """Change the size of an empty canvas, keeping mask and regions (nearest resample)."""
        if self.image is not None:
            raise ValueError("the canvas has an image; its size follows the image")
        self.mask = resample_nearest(self.mask, width, height)
        for r in self.regions:
            r.mask = resample_nearest(r.mask, width, height)
        self.width, self.height = int(width), int(height)
        self.notify("reset")

    def set_image(self, image: np.ndarray | None, meta: Any = None) -> None:
        """Replace the image. A new size resets mask and regions (they cannot fit any more)."""
        if image is not None:
            image = np.ascontiguousarray(image, dtype=np.uint8)
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"image must be H x W x 3, got shape {image.shape}")
            h, w = image.shape[:2]
            if (w, h) != self.size:
                self.width, self.height = w, h
                self.mask = np.zeros((h, w), np.float32)
                self.regions = []
                self.image, self.image_meta = image, meta
                self.notify("reset")
                return
        self.image, self.image_meta = image, meta
        self.notify("image")

    def set_state(self, state: DocState) -> None:
        """Put back a saved state (undo, history restore)."""
        self.width, self.height = state.size
        self.image = state.image
        self.image_meta = state.image_meta
        self.mask = state.mask.copy()
        self.regions = [r.copy() for r in state.regions]
        self.notify("reset")

    def state(self) -> DocState:
        return DocState(self.size, self.image, self.image_meta, self.mask.copy(),
                        [r.copy() for r in self.regions])

    # -- mask ---------------------------------------------------------------------------------
    def set_mask(self, mask: np.ndarray) -> None:
        if mask.shape != (self.height, self.width):
            raise ValueError(f"mask is {mask.shape[1]}x{mask.shape[0]}, "
                             f"the canvas is {self.width}x{self.height}")
        self.mask = np.clip(mask.astype(np.float32), 0.0, 1.0)
        self.notify("mask", None)

    def has_mask(self) -> bool:
        return bool(np.any(self.mask > 0))

    # -- regions ------------------------------------------------------------------------------
    def insert_region(self, index: int, region: RegionLayer) -> None:
        self.regions.insert(index, region)
        self.notify("regions")

    def find_region(self, region: RegionLayer) -> RegionLayer | None:
        """`region` as the document holds it now: itself, or its copy once a whole-document undo
        (new canvas, layout, restore) put copies back; None when it is not on the canvas."""
        if any(r is region for r in self.regions):
            return region
        return next((r for r in self.regions if r.uid == region.uid), None)

    def remove_region(self, region: RegionLayer) -> tuple[int, RegionLayer] | None:
        """Remove `region` (or its copy); its index and the removed layer, None when absent."""
        found = self.find_region(region)
        if found is None:
            return None
        index = next(i for i, r in enumerate(self.regions) if r is found)
        del self.regions[index]
        self.notify("regions")
        return index, found

    def update_region(self, region: RegionLayer, **props: Any) -> None:
        for key, value in props.items():
            setattr(region, key, value)
        self.notify("region_props", region)

    def target_changed(self, target: np.ndarray, rect: Rect | None) -> None:
        """Tell views that a mask array (the inpaint mask or a region's) changed inside rect."""
        if target is self.mask:
            self.notify("mask", rect)
            return
        for r in self.regions:
            if r.mask is target:
                r.adherence = None
                self.notify("region", (r, rect))
                return

    # -- jobs ---------------------------------------------------------------------------------
    def job_kind(self) -> JobKind:
        if self.image is None:
            return JobKind.TEXT_TO_IMAGE
        return JobKind.INPAINT if self.has_mask() else JobKind.IMAGE_TO_IMAGE

    def painted_regions(self) -> list[RegionLayer]:
        return [r for r in self.regions if np.any(r.mask > 0)]

    def snapshot(self, settings: GenerationSettings, seed: int | None = None,
                 model: str = "") -> JobRequest:
        """The frozen request for this canvas; arrays are copied so later edits don't leak in."""
        kind = self.job_kind()
        return JobRequest(
            kind=kind,
            prompt=settings.prompt,
            negative_prompt=settings.negative_prompt,
            seed=settings.resolve_seed() if seed is None else int(seed),
            steps=settings.steps,
            cfg_scale=settings.cfg_scale,
            sampler=settings.sampler,
            width=self.width,
            height=self.height,
            strength=settings.strength if kind is not JobKind.TEXT_TO_IMAGE else 1.0,
            init_image=self.image,
            mask=self.mask if kind is JobKind.INPAINT else None,
            mask_grow=settings.mask_grow,
            mask_feather=settings.mask_feather,
            inpaint_only_masked=settings.inpaint_only_masked,
            inpaint_padding=settings.inpaint_padding,
            regions=tuple(r.to_region() for r in self.painted_regions()),
            pww_scale=settings.pww_scale,
            pww_outside=settings.pww_outside,
            pww_local_sigma=settings.pww_local_sigma,
            model=model,
        )


class DocState:
    """A full copy of the document, for undoing whole-document changes and restoring history."""

    def __init__(self, size: tuple[int, int], image: np.ndarray | None,
                 image_meta: Any, mask: np.ndarray,
                 regions: list[RegionLayer]) -> None:
        self.size = size
        self.image = image  # images are never edited in place, so sharing is safe
        self.image_meta = image_meta
        self.mask = mask
        self.regions = regions


def resample_nearest(a: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = a.shape[:2]
    ys = (np.arange(height) * h // max(height, 1)).clip(0, h - 1)
    xs = (np.arange(width) * w // max(width, 1)).clip(0, w - 1)
    return np.ascontiguousarray(a[ys][:, xs])
