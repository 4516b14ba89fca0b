"""Cross-attention plumbing for paint-with-words: the diffusers attention processor that adds the
region bias, and the accumulator of cross-attention probabilities behind the attention maps.

The processor only replaces `attn2` (cross-attention) layers. It follows diffusers'
AttnProcessor2_0 step by step, so a layer it touches computes the same thing as the stock one
plus the bias. Layers with nothing to add call the processor they replaced, untouched.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def level_sizes(latent_hw: tuple[int, int], levels: int) -> list[tuple[int, int]]:
    """Spatial size of each UNet level: a stride-2 conv with padding 1 rounds odd sizes up."""
    h, w = int(latent_hw[0]), int(latent_hw[1])
    sizes = []
    for _ in range(max(levels, 1)):
        sizes.append((h, w))
        h, w = (h + 1) // 2, (w + 1) // 2
    return sizes


def infer_hw(n: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """h x w with h*w == n closest to the latent's aspect ratio (for sizes the levels don't cover)."""
    aspect = latent_hw[0] / max(latent_hw[1], 1)
    best = (1, n)
    for h in range(1, int(math.isqrt(n)) + 1):
        if n % h:
            continue
        for cand in ((h, n // h), (n // h, h)):
            if abs(math.log(cand[0] / cand[1] / aspect)) < abs(math.log(best[0] / best[1] / aspect)):
                best = cand
    return best


def resize_mask(mask: np.ndarray, hw: tuple[int, int]) -> torch.Tensor:
    """Region mask at a layer's size: area averaging keeps the covered share when shrinking."""
    t = torch.from_numpy(np.array(mask, dtype=np.float32, copy=True))[None, None]
    if hw[0] <= t.shape[-2] and hw[1] <= t.shape[-1]:
        t = F.interpolate(t, size=hw, mode="area")
    else:
        t = F.interpolate(t, size=hw, mode="bilinear", align_corners=False)
    return t[0, 0].clamp_(0.0, 1.0)


class AttentionCollector:
    """Sums the conditional pass's cross-attention probabilities (mean over heads and batch) at
    one resolution: per UNet call (for previews) and over the whole run (for adherence)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.step_sum: torch.Tensor | None = None
        self.step_count = 0
        self.run_sum: torch.Tensor | None = None
        self._new_call = True

    def new_call(self) -> None:
        # Cleared lazily so maps asked for between two calls still show the last one.
        self._new_call = True

    def add(self, probs: torch.Tensor) -> None:
        """probs: (batch, heads, n, tokens) softmax probabilities of the conditional half."""
        p = probs.detach().float().mean(dim=(0, 1))
        if self._new_call or self.step_sum is None or self.step_sum.shape != p.shape:
            self.step_sum = torch.zeros_like(p)
            self.step_count = 0
            self._new_call = False
        self.step_sum += p
        self.step_count += 1
        if self.run_sum is None or self.run_sum.shape != p.shape:
            self.run_sum = torch.zeros_like(p)
        self.run_sum += p

    def step_mean(self) -> np.ndarray | None:
        if self.step_sum is None or self.step_count == 0:
            return None
        return (self.step_sum / self.step_count).cpu().numpy()

    def run_total(self) -> np.ndarray | None:
        return None if self.run_sum is None else self.run_sum.cpu().numpy()


def project(attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
            temb: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v as (batch, heads, len, head_dim), prepared as AttnProcessor2_0 prepares them."""
    if attn.spatial_norm is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb)
    if hidden_states.ndim == 4:
        b, c, h, w = hidden_states.shape
        hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    query = attn.to_q(hidden_states)
    key, value = project_kv(attn, encoder_hidden_states)
    batch = query.shape[0]
    query = query.view(batch, -1, attn.heads, key.shape[-1]).transpose(1, 2)
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    return query, key, value


def project_kv(attn: Any, encoder_hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """k, v as (batch, heads, tokens, head_dim), prepared as AttnProcessor2_0 prepares them."""
    if attn.norm_cross:
        encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
    key = attn.to_k(encoder_hidden_states)
    value = attn.to_v(encoder_hidden_states)
    batch = key.shape[0]
    head_dim = key.shape[-1] // attn.heads
    key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    return key, value


class PwwAttnProcessor:
    """Replaces one cross-attention layer's processor while paint-with-words runs.

    `controller` decides, per call, whether this call needs the biased path (regions) or only a
    look at the probabilities (attention maps), and `original` is the processor it replaced.
    """

    def __init__(self, controller: Any, original: Any) -> None:
        self.controller = controller
        self.original = original

    def __call__(self, attn: Any, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None,
                 temb: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        ctl = self.controller
        if encoder_hidden_states is None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask,
                                 temb, **kwargs)
        n = _seq_len(hidden_states)
        if ctl.has_bias:
            return self._biased(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if ctl.wants_probs(n):
            self._peek(attn, hidden_states, encoder_hidden_states, temb)
        return self.original(attn, hidden_states, encoder_hidden_states, attention_mask,
                             temb, **kwargs)

    def _peek(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
              temb: torch.Tensor | None) -> None:
        """Probabilities of the conditional half for the maps; the output path stays stock."""
        c0 = self.controller.cond_start(hidden_states.shape[0])
        with torch.no_grad():
            q, k, _ = project(attn, hidden_states[c0:], encoder_hidden_states[c0:],
                              None if temb is None else temb[c0:])
            # As in the biased path: q scaled before the product and the softmax in float32. In
            # half precision the unscaled product could pass 65504 and turn the maps to NaN.
            scores = (q * attn.scale) @ k.transpose(-1, -2)
            self.controller.collect(scores.shape[-2], scores.softmax(dim=-1, dtype=torch.float32))

    def _biased(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                attention_mask: torch.Tensor | None, temb: torch.Tensor | None) -> torch.Tensor:
        q, k, v = project(attn, hidden_states, encoder_hidden_states, temb)
        batch = q.shape[0]
        scale = float(attn.scale)
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, k.shape[-2], batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        c0 = self.controller.cond_start(batch)
        parts = []
        if c0:  # the unconditional half runs exactly as the stock processor runs it
            parts.append(F.scaled_dot_product_attention(
                q[:c0], k[:c0], v[:c0], dropout_p=0.0, is_causal=False, scale=scale,
                attn_mask=None if attention_mask is None else attention_mask[:c0]))
        # The conditional half needs QKᵀ for max/std anyway: reuse it instead of SDPA.
        ctl = self.controller
        probs = ctl.cond_probs(
            q[c0:], k[c0:], scale, None if attention_mask is None else attention_mask[c0:])
        cond = probs @ v[c0:]
        if ctl.local_active:  # region prompts: each region's pixels also read their own prompt
            base, rows = ctl.local_weights(q.shape[-2], cond)
            cond = cond * base.view(1, 1, -1, 1)
            qc = q[c0:]
            b = qc.shape[0]
            for (k_r, v_r), (idx, w_r) in zip(ctl.local_kv(attn, qc), rows,
                                              strict=True):
                if idx.numel() == 0:
                    continue
                out_r = F.scaled_dot_product_attention(
                    qc.index_select(2, idx), k_r.expand(b, -1, -1, -1),
                    v_r.expand(b, -1, -1, -1), dropout_p=0.0, is_causal=False, scale=scale)
                cond.index_add_(2, idx, out_r.to(cond.dtype) * w_r.view(1, 1, -1, 1))
        parts.append(cond)
        out = torch.cat(parts) if len(parts) > 1 else parts[0]
        return finish(attn, out.to(q.dtype), hidden_states)


def finish(attn: Any, out: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """The attention output (batch, heads, len, head_dim) turned into the layer's output as
    AttnProcessor2_0 finishes it: heads merged, output projection, the input's shape, the
    residual and the rescale. `residual` is the hidden states the layer was called with."""
    b, heads, _, head_dim = out.shape
    out = out.transpose(1, 2).reshape(b, -1, heads * head_dim)
    out = attn.to_out[1](attn.to_out[0](out))
    if residual.ndim == 4:
        out = out.transpose(-1, -2).reshape(residual.shape)
    if attn.residual_connection:
        out = out + residual
    return out / attn.rescale_output_factor


def _seq_len(hidden_states: torch.Tensor) -> int:
    if hidden_states.ndim == 4:
        return hidden_states.shape[-1] * hidden_states.shape[-2]
    return hidden_states.shape[1]
