"""Paint-with-words during training (`training.unet --layout-share P`).

At inference, paint-with-words adds eDiff-I's bias to the cross-attention scores of the
conditional pass (engine/pww.py): w · 0.1 · log(1 + σ) · max(QKᵀ) at (pixel inside a region,
token of the region's words), and, with `pww_outside` a, minus a times that outside the region.
The built-in UNet only ever saw that bias at inference. Its misses under a layout are objects
drawn wrong where they were painted (most of them big squares drawn round: model card), not
objects put elsewhere. So a share of the training samples is denoised *with* the bias, the way
the app will run it: the scene's bare caption (sizes, places or both left out, as a person
writes when they paint the places instead), and a region per object around where the scene has
it. The model then learns to draw an object well when its words are pushed into a region, with
the same formula, scale, statistic and outside term as the engine, and nothing at inference
changes. Without a layout (strength 0) a sample's attention is the plain softmax(QKᵀ)·V.

Regions are what a person paints: half the time the object's grid cell (as the app's layouts
and `pww_quality` use), half the time its bounding box grown by 2–24 px on each side; the
strength is uniform in [2, 10] (the built-in model recommends 8). Masks shrink to each
attention layer's size by area, as engine.attention_maps.resize_mask does; a rectangle's area
share is the product of its row and column shares, computed exactly here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from desktop_app.training import grounding, scenes

MAX_OBJECTS = grounding.MAX_OBJECTS
SCALE = 0.1  # the engine's default (eDiff-I's reference implementation)
OUTSIDE = 1.0  # the engine's default pww_outside
STRENGTH = (2.0, 10.0)
MARGIN = (2.0, 24.0)


def object_rects(scene: scenes.Scene, rng: np.random.Generator) -> np.ndarray:
    """(MAX_OBJECTS, 4) float32 [x0, y0, x1, y1] in image pixels: each object's region (its grid
    cell, or its box grown by a random margin, clipped to the image); zeros past the objects."""
    out = np.zeros((MAX_OBJECTS, 4), np.float32)
    offsets = scene.offsets or tuple((0, 0) for _ in scene.shapes)
    step = scenes.SIZE / 3
    for i, (s, (dx, dy)) in enumerate(zip(scene.shapes, offsets, strict=True)):
        if rng.random() < 0.5:
            row, col = divmod(s.cell, 3)
            out[i] = (col * step, row * step, (col + 1) * step, (row + 1) * step)
        else:
            cx, cy = scenes.cell_center(s.cell)
            half = scenes.EXTENT[s.size] / 2 + rng.uniform(*MARGIN)
            out[i] = (cx + dx - half, cy + dy - half, cx + dx + half, cy + dy + half)
    return np.clip(out, 0, scenes.SIZE)


def region_masks(rects: Any, side: int) -> Any:
    """rects (B, O, 4) -> (B, O, side * side): the share of each of side x side equal cells of
    the image that each rectangle covers (area resizing of the rectangle's mask)."""
    import torch

    edges = torch.arange(side + 1, dtype=torch.float32) * (scenes.SIZE / side)
    lo, hi = edges[:-1], edges[1:]

    def cover(a: Any, b: Any) -> Any:  # (B, O) -> (B, O, side)
        return (torch.minimum(b[..., None], hi) - torch.maximum(a[..., None], lo)).clamp(
            min=0) / (scenes.SIZE / side)

    cx = cover(rects[..., 0], rects[..., 2])
    cy = cover(rects[..., 1], rects[..., 3])
    return (cy[..., :, None] * cx[..., None, :]).flatten(-2)


class LayoutBias:
    """Replaces a UNet's cross-attention processors with ones that add the paint-with-words bias
    of the layout given to set() (per sample: regions, tokens, strength, log(1 + σ)) for the next
    forward passes; remove() restores the originals."""

    def __init__(self, unet: Any, scale: float = SCALE, outside: float = OUTSIDE) -> None:
        self.unet = unet
        self.scale = scale
        self.outside = outside
        self.layout: tuple | None = None
        self._templates: dict[tuple[int, int], Any] = {}
        self._saved = grounding.wrap_cross_attention(unet, lambda proc: _Biased(self, proc))

    def remove(self) -> None:
        self.unet.set_attn_processor(dict(self._saved))

    def set(self, rects: Any, tokens: Any, strength: Any, log_sigma: Any) -> None:
        """rects (B, O, 4) pixels, tokens (B, O, T) 0/1, strength (B,) with 0 where a sample has
        no layout, log_sigma (B,) = log(1 + σ) of each sample's noise level."""
        self.layout = (rects, tokens, strength, log_sigma) if bool((strength > 0).any()) else None
        self._templates = {}

    def template(self, n: int, t: int) -> Any:
        """(B, 1, n, t): strength · ((1 + outside) · mask − outside) at each object's tokens, so
        its words get +w inside its region and −outside · w outside it (the engine's template)."""
        import torch

        if (n, t) not in self._templates:
            rects, tokens, strength, _ = self.layout
            m = region_masks(rects, int(round(n ** 0.5)))
            signed = (1 + self.outside) * m - self.outside
            tpl = torch.einsum("bon,bot->bnt", signed, tokens[..., :t].float())
            self._templates[(n, t)] = (tpl * strength.view(-1, 1, 1))[:, None]
        return self._templates[(n, t)]


class _Biased:
    """Cross-attention with the layout's bias added to the scores (explicit softmax(QKᵀ)·V, as
    the engine's processor computes the conditional half); without a layout, the original."""

    def __init__(self, owner: LayoutBias, original: Any) -> None:
        self.owner = owner
        self.original = original

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None,
                 attention_mask: Any = None, temb: Any = None, **kwargs: Any) -> Any:
        from desktop_app.engine.attention_maps import finish, project

        if (self.owner.layout is None or encoder_hidden_states is None
                or attention_mask is not None or hidden_states.ndim != 3):
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask,
                                 temb, **kwargs)
        q, k, v = project(attn, hidden_states, encoder_hidden_states, temb)
        scores = (q * attn.scale) @ k.transpose(-1, -2)
        stat = scores.detach().flatten(1).amax(dim=1)
        factor = (self.owner.scale * self.owner.layout[3] * stat).view(-1, 1, 1, 1)
        scores = scores + factor * self.owner.template(q.shape[-2], k.shape[-2])
        return finish(attn, scores.softmax(-1) @ v, hidden_states)
