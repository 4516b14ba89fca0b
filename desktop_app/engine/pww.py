"""eDiff-I paint-with-words: regions of the image bound to words of the prompt.

In every cross-attention layer, for the conditional half of the batch only, the attention
scores (scaled, QKᵀ/√d, as SDPA sees them) get a bias at (pixel inside the region, token of
the region's words):

    max:        scale · w · log(1 + σ)  · max(QKᵀ/√d)
    std:        scale · w · log(1 + σ)  · std(QKᵀ/√d)
    std_sigma2: scale · w · log(1 + σ²) · std(QKᵀ/√d)

With `outside` = a > 0 (the engine passes JobRequest.pww_outside, 1 by default) the region's
tokens also get the negative of that bias, times a, at every pixel outside all the regions that
own them: a word painted into one place is pushed away from the rest of the image, so its colour
or shape stops leaking onto the other objects (on the built-in model at w = 8, objects placed in
their cell rose from 55.9% to 63.2% of 288; see its model card). a = 0 is eDiff-I's bias, inside
only.

Region prompts (`local_sigma` = s > 0; the engine passes JobRequest.pww_local_sigma, 6 by
default): once the noise level σ falls below s, each region's pixels read, besides the biased
prompt, a prompt of their own: the prompt with the *other* regions' words left out ("a red circle
and a blue square on a gray background" → "a red circle and a on a gray background" for the
circle's region). The layer's attention output inside a region (area-resized mask m) becomes
(1 − m) · the biased prompt's + m · the region prompt's (shares over overlapping regions, capped at
1). The layout is settled in the noisy early steps by the bias; the later steps, where each
object's shape and colour are drawn, then see one object's words where that object goes, instead
of every object's words bound to places only by token order. σ is the same quantity on every
model (σ² = (1 − ᾱ)/ᾱ; 6 is an SNR of 1/36), so s means the same noise level everywhere. A region
whose prompt would equal the whole prompt (a single region, or words every region shares) gets
none. On the built-in model at w = 8, objects placed in their cell rose from 61.0% to 78.8% of
480 (57.8% to 77.6% on 96 layouts never used for tuning; the model card has the sweep over s).

The statistic is one scalar per batch element over the whole score tensor of the call (all
heads, pixels and tokens). The reference implementation adds the bias to raw QKᵀ and scales
the sum afterwards, which is the same thing: max and std are proportional to the scale.
Overlapping regions add. Masks are area-resized to each layer's size.

Words are found in the prompt as whole phrases (case-insensitive, on word boundaries) and mapped
to token positions through the tokenizer's offset mapping, for each tokenizer (SDXL has two,
whose states share one token axis); a region owns every token that covers any occurrence.

Cost: the conditional half needs QKᵀ for the statistic anyway, so it is reused (bias added in
place, softmax, ·V) instead of a second pass through SDPA; the unconditional half runs SDPA
exactly as the stock processor does. Bias templates (strength · mask · token) are built once
per job and resolution; per call only the σ·statistic factor changes.

Attention maps: softmax probabilities of the conditional half, averaged over heads, batch and
the layers at the resolution nearest 16x16, kept for the last UNet call (previews) and summed
over the run (adherence). Only that resolution is looked at. With no regions the images are
bit-identical: the stock processors still compute every output.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from desktop_app.document.job import PWW_MODES, Region
from desktop_app.document.regions import phrase_spans
from desktop_app.engine.attention_maps import (
    AttentionCollector,
    PwwAttnProcessor,
    infer_hw,
    level_sizes,
    project_kv,
    resize_mask,
)

MAP_TARGET = 16 * 16  # attention maps come from the layers nearest to 16x16
_WORD = re.compile(r"\w+(?:['’-]\w+)*")


@dataclass(frozen=True)
class TokenInfo:
    """One tokenizer's view of the prompt: character span of each token position of the
    untruncated encoding (None for special tokens) and how many positions survive truncation."""

    offsets: tuple[tuple[int, int] | None, ...]
    kept: int
    limit: int  # the tokenizer's model_max_length, as users know it


def encode_prompt(tokenizer: Any, prompt: str) -> TokenInfo:
    try:
        full = tokenizer(prompt, return_offsets_mapping=True, return_special_tokens_mask=True,
                         truncation=False)
        spans = full["offset_mapping"]
    except NotImplementedError:  # a Python ("slow") tokenizer has no offset mapping
        full = tokenizer(prompt, return_special_tokens_mask=True, truncation=False)
        spans = _align(tokenizer, prompt, full["input_ids"], full["special_tokens_mask"])
    offsets = tuple(
        None if special or a == b else (int(a), int(b))
        for (a, b), special in zip(spans, full["special_tokens_mask"], strict=True))
    limit = getattr(tokenizer, "model_max_length", None)
    kept = len(offsets)
    if isinstance(limit, int) and 0 < limit < len(offsets):
        trunc = tokenizer(prompt, return_special_tokens_mask=True, truncation=True,
                          max_length=limit)["special_tokens_mask"]
        # Truncation keeps a prefix and closes it with its own end token(s).
        kept = max((i + 1 for i, special in enumerate(trunc) if not special), default=0)
    return TokenInfo(offsets, kept, limit if isinstance(limit, int) else len(offsets))


def _align(tokenizer: Any, prompt: str, ids: list[int],
           special: list[int]) -> list[tuple[int, int]]:
    """Character spans found by locating each token's text in the prompt, left to right."""
    text, cursor, spans = prompt.lower(), 0, []
    for tid, is_special in zip(ids, special, strict=True):
        piece = "" if is_special else tokenizer.decode([tid]).strip().lower()
        piece = piece.removeprefix("##")
        at = text.find(piece, cursor) if piece else -1
        if at < 0 or text[cursor:at].strip():  # not found, or it skips over other text
            spans.append((cursor, cursor))
            continue
        spans.append((at, at + len(piece)))
        cursor = at + len(piece)
    return spans


def tokens_covering(info: TokenInfo, spans: list[tuple[int, int]]) -> list[int]:
    """Token positions whose characters overlap any span (sub-word tokens included)."""
    merged = _merged(spans)
    ends = [b for _, b in merged]
    return [i for i, off in enumerate(info.offsets)
            if off is not None and _overlaps(merged, ends, off)]


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans sorted, overlapping ones joined: what any of them overlaps, one of these does,
    and their ends ascend, so one bisection finds it (a long prompt repeats a region's words
    thousands of times; testing every span against every token took minutes)."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _overlaps(merged: list[tuple[int, int]], ends: list[int], span: tuple[int, int]) -> bool:
    """Whether `span` overlaps one of `merged` (from _merged; `ends` their ends)."""
    k = bisect.bisect_right(ends, span[0])  # the first that ends after the span starts
    return k < len(merged) and merged[k][0] < span[1]


def prompt_words(prompt: str) -> list[tuple[str, tuple[int, int]]]:
    """The words of the prompt (lower-cased, hyphen/apostrophe compounds kept) with their spans."""
    return [(m.group(0).lower(), m.span()) for m in _WORD.finditer(prompt)]


class PaintWithWords:
    """Installs paint-with-words on a UNet for one job (a context manager). See module doc."""

    def __init__(self, unet: Any, tokenizers: list, prompt: str, regions: tuple[Region, ...],
                 latent_hw: tuple[int, int], scale: float = 0.1, mode: str = "max",
                 collect_attention: bool = False, do_cfg: bool = True,
                 outside: float = 0.0, local_sigma: float = 0.0,
                 encode: Callable[[str], torch.Tensor] | None = None) -> None:
        if mode not in PWW_MODES:
            raise ValueError(f"unknown paint-with-words mode {mode!r}; choose one of {PWW_MODES}")
        self.unet = unet
        self.regions = tuple(regions)
        self.latent_hw = (int(latent_hw[0]), int(latent_hw[1]))
        self.scale = float(scale)
        self.mode = mode
        self.outside = float(outside)
        self.collect_attention = bool(collect_attention)
        self.do_cfg = bool(do_cfg)
        self.warnings: list[str] = []
        self._sigma = 0.0
        infos = [encode_prompt(t, prompt) for t in tokenizers if t is not None]
        self._region_tokens = [self._map_region(i, r, prompt, infos)
                               for i, r in enumerate(self.regions)]
        self._word_tokens = self._map_words(prompt, infos[0]) if infos else {}
        self._names = [n for n in unet.attn_processors if n.endswith("attn2.processor")]
        self._sizes = level_sizes(self.latent_hw, len(unet.config.block_out_channels))
        levels = sorted({self._level(n) for n in self._names})
        self._map_n = self._pick_map_n(levels)
        self._active = [(r, t) for r, t in zip(self.regions, self._region_tokens, strict=True)
                        if t and r.strength != 0]
        self._templates: dict[int, torch.Tensor] = {}
        self._bias_cache: dict[tuple, torch.Tensor] = {}
        self._collector = AttentionCollector(self._map_n)
        self.local_sigma = float(local_sigma)
        self.region_prompts = self._region_prompts(prompt) if self.local_sigma > 0 else {}
        self._local_emb: dict[int, torch.Tensor] = {}
        if self.region_prompts and encode is None:
            raise ValueError("region prompts need an `encode` function (prompt -> embeddings)")
        for i, text in self.region_prompts.items():
            self._local_emb[i] = encode(text).detach()
        self._local_w: dict[tuple, tuple] = {}
        self._local_kv: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._saved: dict[str, Any] | None = None
        self._hook: Any = None

    # -- set-up -------------------------------------------------------------------------------

    def _map_region(self, i: int, region: Region, prompt: str,
                    infos: list[TokenInfo]) -> list[int]:
        label = f"region {i + 1}" + (f" ({region.name})" if region.name else "")
        if not np.any(region.mask > 0):
            self.warnings.append(f"{label}: its mask is empty, so {region.words.strip()!r} is "
                                 "painted nowhere")
            return []
        spans = phrase_spans(prompt, region.words)
        if not spans:
            self.warnings.append(f"{label}: words {region.words.strip()!r} are not in the prompt")
            return []
        kept: set[int] = set()
        dropped = False
        for info in infos:
            covering = tokens_covering(info, spans)
            kept.update(p for p in covering if p < info.kept)
            dropped = dropped or any(p >= info.kept for p in covering)
        if dropped:
            limit = min(info.limit for info in infos)
            where = "partly " if kept else ""
            self.warnings.append(
                f"{label}: words {region.words.strip()!r} fall {where}beyond the text encoder's "
                f"{limit}-token limit and are {where}ignored; move them earlier in the prompt")
        return sorted(kept)

    @staticmethod
    def _map_words(prompt: str, info: TokenInfo) -> dict[str, list[int]]:
        found = prompt_words(prompt)
        starts, ends = [a for _, (a, _) in found], [b for _, (_, b) in found]
        words: dict[str, list[int]] = {}
        # Token by token, each finding its words by bisection (words and tokens both run left to
        # right): every word against every token took minutes on a prompt of thousands of words.
        for p, off in enumerate(info.offsets[:info.kept]):
            if off is None:
                continue
            for k in range(bisect.bisect_right(ends, off[0]), bisect.bisect_left(starts, off[1])):
                toks = words.setdefault(found[k][0], [])
                if not toks or toks[-1] != p:
                    toks.append(p)
        return words

    def _region_prompts(self, prompt: str) -> dict[int, str]:
        """Index of each active region -> the prompt without the other active regions' words.
        An occurrence of another region's words that overlaps this region's own stays."""
        spans = {i: phrase_spans(prompt, r.words) for i, r in enumerate(self.regions)}
        active = [i for i, r in enumerate(self.regions) if self._region_tokens[i] and r.strength]
        out = {}
        for i in active:
            own = _merged(spans[i])
            own_ends = [b for _, b in own]
            cut = sorted({sp for j in active if j != i for sp in spans[j]
                          if not _overlaps(own, own_ends, sp)})
            text, end = [], 0
            for a, b in cut:
                if a >= end:
                    text.append(prompt[end:a])
                    end = b
                elif b > end:  # overlapping cuts merge
                    end = b
            text.append(prompt[end:])
            local = re.sub(r"\s+", " ", "".join(text)).strip()
            if local and local != re.sub(r"\s+", " ", prompt).strip():
                out[i] = local
        return out

    @property
    def local_active(self) -> bool:
        """Whether this UNet call's layers mix in the region prompts (σ below local_sigma)."""
        return bool(self._local_emb) and self._sigma < self.local_sigma

    def local_weights(self, n: int, like: torch.Tensor
                      ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Each pixel's share of the biased prompt's attention output (n,) and, per region
        prompt, the pixels it reaches with their shares (indices, shares); all shares of a
        pixel sum to 1. Only those pixels are attended with a region prompt, so its cost
        follows its region's area."""
        key = (n, like.dtype, like.device)
        if key not in self._local_w:
            hw = self._hw(n)
            ms = torch.stack([torch.as_tensor(resize_mask(self.regions[i].mask, hw).reshape(n))
                              for i in self._local_emb]).float()
            total = ms.sum(0)
            ms = ms / total.clamp(min=1.0)
            rows = []
            for m in ms:
                idx = torch.nonzero(m > 0).flatten()
                rows.append((idx.to(like.device), m[idx].to(device=like.device, dtype=like.dtype)))
            base = (1 - total.clamp(max=1.0)).to(device=like.device, dtype=like.dtype)
            self._local_w[key] = (base, rows)
        return self._local_w[key]

    def local_kv(self, attn: Any, like: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys and values of each region prompt in this layer (computed once per job)."""
        out = []
        for i, emb in self._local_emb.items():
            key = (id(attn), i, like.dtype, like.device)
            if key not in self._local_kv:
                self._local_kv[key] = project_kv(attn, emb.to(device=like.device,
                                                               dtype=like.dtype))
            out.append(self._local_kv[key])
        return out

    def _level(self, name: str) -> int:
        parts = name.split(".")
        n_levels = len(self._sizes)
        if parts[0] == "down_blocks":
            return int(parts[1])
        if parts[0] == "up_blocks":
            return n_levels - 1 - int(parts[1])
        return n_levels - 1  # mid block

    def _pick_map_n(self, levels: list[int]) -> int:
        sizes = [self._sizes[lv] for lv in levels if 0 <= lv < len(self._sizes)] or self._sizes
        best = min(sizes, key=lambda hw: (abs(math.log(hw[0] * hw[1] / MAP_TARGET)), -hw[0]))
        return best[0] * best[1]

    def _hw(self, n: int) -> tuple[int, int]:
        for hw in self._sizes:
            if hw[0] * hw[1] == n:
                return hw
        return infer_hw(n, self.latent_hw)

    def _template(self, n: int) -> torch.Tensor:
        """(n, tokens): sum over regions of strength · mask(pixel) · [token belongs to region],
        minus outside · (strongest region of the token) · (1 − the token's regions' cover)."""
        if n not in self._templates:
            hw = self._hw(n)
            tokens = max(max(t) for _, t in self._active) + 1
            tpl = torch.zeros(n, tokens)
            cover = torch.zeros(n, tokens)
            top = torch.zeros(tokens)
            for region, toks in self._active:
                m = torch.as_tensor(resize_mask(region.mask, hw).reshape(n, 1))
                tpl[:, toks] += m * float(region.strength)
                cover[:, toks] = torch.maximum(cover[:, toks], m)
                top[toks] = torch.clamp(top[toks], min=float(region.strength))
            if self.outside:
                tpl -= self.outside * top * (1 - cover)
            self._templates[n] = tpl
        return self._templates[n]

    # -- the contract -------------------------------------------------------------------------

    def __enter__(self) -> PaintWithWords:
        if not (self.regions or self.collect_attention) or not self._names:
            return self
        self._saved = dict(self.unet.attn_processors)
        procs = dict(self._saved)
        for name in self._names:
            procs[name] = PwwAttnProcessor(self, self._saved[name])
        self.unet.set_attn_processor(procs)  # diffusers empties this dict, not self._saved
        self._hook = self.unet.register_forward_pre_hook(self._on_unet_call)
        try:
            if self._active:
                for h, w in self._sizes:
                    self._template(h * w)
        except BaseException:  # out of memory: no __exit__ follows, and the UNet stayed patched
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self._saved is not None:
            self.unet.set_attn_processor(dict(self._saved))
            self._saved = None

    def set_sigma(self, sigma: float) -> None:
        self._sigma = max(float(sigma), 0.0)

    def attention_maps(self) -> dict[str, np.ndarray]:
        """word -> h x w float32 in [0, 1] (max-normalised), from the last UNet call."""
        probs = self._collector.step_mean()
        if probs is None:
            return {}
        hw = self._hw(self._map_n)
        maps = {}
        for word, toks in self._word_tokens.items():
            toks = [t for t in toks if t < probs.shape[1]]
            if not toks:
                continue
            m = probs[:, toks].sum(axis=1).reshape(hw)
            peak = float(m.max())
            maps[word] = (m / peak if peak > 0 else np.zeros_like(m)).astype(np.float32)
        return maps

    def adherence(self) -> list[float]:
        """Per region: share of its words' attention mass (summed over the run, at the maps'
        resolution) that lies inside its mask. NaN when it cannot be measured (words absent
        from the prompt, or nothing ran)."""
        total = self._collector.run_total()
        hw = self._hw(self._map_n)
        out = []
        for region, toks in zip(self.regions, self._region_tokens, strict=True):
            toks = [t for t in toks if total is not None and t < total.shape[1]]
            if not toks:
                out.append(float("nan"))
                continue
            attn = total[:, toks].sum(axis=1).reshape(hw)
            mass = float(attn.sum())
            inside = float((attn * resize_mask(region.mask, hw).numpy()).sum())
            out.append(inside / mass if mass > 0 else float("nan"))
        return out

    # -- called by the processors -------------------------------------------------------------

    @property
    def has_bias(self) -> bool:
        return bool(self._active)

    def _on_unet_call(self, module: Any, args: Any) -> None:
        self._collector.new_call()

    def cond_start(self, batch: int) -> int:
        """Index of the first conditional batch element ([uncond, cond] under CFG)."""
        return batch // 2 if self.do_cfg and batch % 2 == 0 else 0

    def wants_probs(self, n: int) -> bool:
        return n == self._map_n and (self.collect_attention or bool(self.regions))

    def collect(self, n: int, probs: torch.Tensor) -> None:
        if n == self._map_n:
            self._collector.add(probs)

    def cond_probs(self, q: torch.Tensor, k: torch.Tensor, attn_scale: float,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax attention of the conditional half (batch, heads, n, tokens), biased."""
        n, tokens = q.shape[-2], k.shape[-2]
        # Scaling q (n x d) is cheaper than scaling the (n x tokens) scores.
        scores = (q * attn_scale) @ k.transpose(-1, -2)
        flat = scores.detach().flatten(1).float()
        if self.mode == "max":
            stat, sig = flat.amax(dim=1), math.log1p(self._sigma)
        else:
            sig = math.log1p(self._sigma ** 2 if self.mode == "std_sigma2" else self._sigma)
            stat = flat.std(dim=1)
        factor = (self.scale * sig * stat).to(q.dtype).view(-1, 1, 1, 1)
        scores.addcmul_(factor, self._bias_template(n, tokens, q))
        if mask is not None:
            scores += mask
        # Half-precision scores are normalised in float32, as SDPA's kernels do internally.
        probs = scores.softmax(dim=-1, dtype=torch.float32).to(q.dtype)
        if self.wants_probs(n):
            self.collect(n, probs)
        return probs

    def _bias_template(self, n: int, tokens: int, like: torch.Tensor) -> torch.Tensor:
        key = (n, tokens, like.dtype, like.device)
        if key not in self._bias_cache:
            tpl = self._template(n)[:, :tokens]
            if tpl.shape[1] < tokens:
                tpl = torch.nn.functional.pad(tpl, (0, tokens - tpl.shape[1]))
            self._bias_cache[key] = tpl.to(device=like.device, dtype=like.dtype)[None, None]
        return self._bias_cache[key]
