"""From a JobRequest to what one pipeline call needs (and back): which pipeline, at what size,
with which image and mask; crop-and-paste for "inpaint only masked"; the final composite.

Text-to-image and image-to-image on a 9-channel model are inpainting with an all-ones mask.
A request of any size is run at the next multiples of 8 (what the VAE needs): image, mask and
regions are extended by repeating their last row and column, and the result is cropped back, so
an odd-sized canvas comes back at its own size with every pixel outside the mask unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from PIL import Image

from desktop_app.document import mask_ops
from desktop_app.document.job import JobKind, JobRequest, Region, RequestError, padded_size


@dataclass
class WorkItem:
    pipeline: str  # "txt2img" | "img2img" | "inpaint"
    width: int
    height: int
    strength: float
    init: np.ndarray | None = None  # height x width x 3 uint8
    mask: np.ndarray | None = None  # height x width float32 0/1: what the pipeline repaints
    regions: tuple[Region, ...] = ()
    box: tuple[int, int, int, int] | None = None  # crop in the request image (only masked)
    soft_mask: np.ndarray | None = None  # request-size mask for the final composite


def plan(request: JobRequest, inpaint_channels: int, default_size: int) -> WorkItem:
    work = _plan(request, inpaint_channels, default_size)
    if work.box is not None:  # the crop is scaled to a multiple-of-8 size already
        return work
    w, h = padded_size(work.width, work.height)
    if (w, h) == (work.width, work.height):
        return work
    regions = tuple(Region(words=r.words, strength=r.strength, name=r.name,
                           mask=pad_edges(r.mask, w, h)) for r in work.regions)
    return dataclasses.replace(
        work, width=w, height=h, regions=regions,
        init=None if work.init is None else pad_edges(work.init, w, h),
        mask=None if work.mask is None else pad_edges(work.mask, w, h))


def pad_edges(a: np.ndarray, width: int, height: int) -> np.ndarray:
    """`a` extended to height x width by repeating its last row and column."""
    extra = ((0, height - a.shape[0]), (0, width - a.shape[1])) + ((0, 0),) * (a.ndim - 2)
    return np.pad(a, extra, mode="edge")


def _plan(request: JobRequest, inpaint_channels: int, default_size: int) -> WorkItem:
    w, h = request.width, request.height
    nine = inpaint_channels == 9
    if request.kind is JobKind.TEXT_TO_IMAGE:
        if not nine:
            return WorkItem("txt2img", w, h, 1.0, regions=request.regions)
        return WorkItem("inpaint", w, h, 1.0, init=np.zeros((h, w, 3), np.uint8),
                        mask=np.ones((h, w), np.float32), regions=request.regions)
    if request.kind is JobKind.IMAGE_TO_IMAGE:
        _check_denoise_steps(request)
        if not nine:
            return WorkItem("img2img", w, h, request.strength, init=request.init_image,
                            regions=request.regions)
        return WorkItem("inpaint", w, h, request.strength, init=request.init_image,
                        mask=np.ones((h, w), np.float32), regions=request.regions)
    _check_denoise_steps(request)
    return _plan_inpaint(request, default_size)


def _check_denoise_steps(request: JobRequest) -> None:
    if int(request.steps * request.strength) < 1:
        raise RequestError(f"{request.steps} steps at strength {request.strength} leave no "
                           "denoising step: raise steps or strength")


def _plan_inpaint(request: JobRequest, default_size: int) -> WorkItem:
    soft = mask_ops.prepare(request.mask, request.mask_grow, request.mask_feather)
    if not np.any(soft > 0):
        raise RequestError(f"the mask is empty after shrinking it by {-request.mask_grow} px")
    # The pipeline repaints everything the soft mask touches, so every blended pixel is generated.
    hard = (soft > 0).astype(np.float32)
    w, h = request.width, request.height
    if not request.inpaint_only_masked:
        return WorkItem("inpaint", w, h, request.strength, init=request.init_image, mask=hard,
                        regions=request.regions, soft_mask=soft)
    box = mask_ops.crop_box(soft, request.inpaint_padding)
    work_w, work_h = _work_size(box[2] - box[0], box[3] - box[1], default_size)
    regions = tuple(Region(words=r.words, strength=r.strength, name=r.name,
                           mask=_crop_resize(r.mask, box, work_w, work_h, Image.BILINEAR))
                    for r in request.regions)
    init = _crop_resize(request.init_image, box, work_w, work_h, Image.LANCZOS)
    mask = (_crop_resize(hard, box, work_w, work_h, Image.BILINEAR) > 0).astype(np.float32)
    return WorkItem("inpaint", work_w, work_h, request.strength, init=init, mask=mask,
                    regions=regions, box=box, soft_mask=soft)


def _work_size(box_w: int, box_h: int, default_size: int) -> tuple[int, int]:
    """The crop scaled so its long side is the model's trained size, sides multiples of 8."""
    scale = default_size / max(box_w, box_h)
    return (max(8, int(round(box_w * scale / 8)) * 8), max(8, int(round(box_h * scale / 8)) * 8))


def _crop_resize(a: np.ndarray, box, width: int, height: int, resample) -> np.ndarray:
    left, top, right, bottom = box
    crop = np.ascontiguousarray(a[top:bottom, left:right])
    if crop.dtype == np.uint8:
        return np.asarray(Image.fromarray(crop).resize((width, height), resample))
    img = Image.fromarray(crop.astype(np.float32)).resize((width, height), resample)
    return np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)


def finish(request: JobRequest, work: WorkItem, generated: np.ndarray) -> np.ndarray:
    """Back to the request's size; outside the (soft) mask the original bytes are kept."""
    if work.box is None:  # drop the rows and columns padding added
        generated = generated[:request.height, :request.width]
    if work.soft_mask is None:
        return generated
    full = generated
    if work.box is not None:
        left, top, right, bottom = work.box
        patch = Image.fromarray(generated).resize((right - left, bottom - top), Image.LANCZOS)
        full = np.array(request.init_image, copy=True)
        full[top:bottom, left:right] = np.asarray(patch)
    return mask_ops.composite(request.init_image, full, work.soft_mask)
