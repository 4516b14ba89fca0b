"""Token grounding for the built-in UNet: an extra training loss that teaches cross-attention
where each object's words belong (the idea of TokenCompose, Wang et al. 2024, on our procedural
scenes, whose object masks are known exactly).

For every object of a training scene whose "<colour> <shape>" appears once in the caption, the
attention its tokens get, summed over the pixels of one cross-attention layer (heads averaged),
should fall inside the object:

    L = mean over layers at 16x16 and 8x8, objects:  1 - sum_p mask(p) a(p) / sum_p a(p)

where a(p) is the attention pixel p pays to the object's colour and shape tokens and mask is the
object's footprint (any 16x16 cell its shape covers; 8x8 by max-pooling that). Why: two-object
scenes fail because one object's colour or shape lands on the other (model card, *Known gaps*),
the plain denoising loss under-fits that binding even on training scenes, and this loss names the
binding directly. Captions that were dropped for classifier-free guidance carry no objects.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from desktop_app.training import scenes

MAX_OBJECTS = 3
SIDE = 16  # the finest cross-attention level of the built-in UNet (32x32 latents)


def object_masks(scene: scenes.Scene, side: int = SIDE) -> np.ndarray:
    """(MAX_OBJECTS, side, side) float32: 1 in each cell an object's shape covers (> 10%)."""
    out = np.zeros((MAX_OBJECTS, side, side), np.float32)
    offsets = scene.offsets or tuple((0, 0) for _ in scene.shapes)
    f = scenes.SIZE // side
    for i, (s, (dx, dy)) in enumerate(zip(scene.shapes, offsets, strict=True)):
        cx, cy = scenes.cell_center(s.cell)
        cov = scenes._coverage(s.shape, cx + dx, cy + dy, scenes.EXTENT[s.size])
        cells = (cov > 0.1).reshape(side, f, side, f).mean(axis=(1, 3))
        out[i] = cells > 0.1
    return out


def object_spans(caption: str, scene: scenes.Scene) -> list[tuple[int, int] | None]:
    """Character span of each object's "<colour> <shape>" in the caption, None where it is
    missing or not unique (two objects alike, or the phrase twice)."""
    spans: list[tuple[int, int] | None] = []
    for s in scene.shapes:
        found = [m.span() for m in re.finditer(rf"\b{re.escape(s.color)} {s.shape}\b", caption)]
        spans.append(found[0] if len(found) == 1 else None)
    return spans


def token_matrix(tok: Any, captions: list[str], scene_of: list[scenes.Scene],
                 max_tokens: int) -> np.ndarray:
    """(len(captions), MAX_OBJECTS, max_tokens) bool: which token positions (as the pipeline
    tokenizes, padded to max_tokens) hold each object's colour and shape words."""
    out = np.zeros((len(captions), MAX_OBJECTS, max_tokens), bool)
    enc = tok(captions, max_length=max_tokens, truncation=True, return_offsets_mapping=True)
    for i, (cap, sc) in enumerate(zip(captions, scene_of, strict=True)):
        offsets = enc["offset_mapping"][i]
        for o, span in enumerate(object_spans(cap, sc)):
            if span is None:
                continue
            for t, (a, b) in enumerate(offsets):
                if b > a and a < span[1] and b > span[0]:
                    out[i, o, t] = True
    return out


def wrap_cross_attention(unet: Any, wrap: Any) -> dict:
    """Give each cross-attention layer of `unet` the processor wrap(original); returns the
    original processors, for unet.set_attn_processor(dict(saved)) to put back."""
    saved = dict(unet.attn_processors)
    procs = dict(saved)
    for name, proc in procs.items():
        if name.endswith("attn2.processor"):
            procs[name] = wrap(proc)
    unet.set_attn_processor(procs)
    return saved


class Grounding:
    """Records the cross-attention probabilities of a UNet's 16x16 and 8x8 layers during one
    forward pass (replacing their processors; remove() restores them) and turns them into L."""

    def __init__(self, unet: Any, sizes: tuple[int, ...] = (SIDE * SIDE, SIDE * SIDE // 4)) -> None:
        self.unet = unet
        self.sizes = sizes
        self.probs: list[Any] = []
        self._saved = wrap_cross_attention(unet, lambda proc: _Recorder(self, proc))

    def remove(self) -> None:
        self.unet.set_attn_processor(dict(self._saved))

    def loss(self, tokens: Any, masks: Any) -> Any:
        """tokens (B, MAX_OBJECTS, T) float, masks (B, MAX_OBJECTS, SIDE*SIDE) float. Uses and
        clears what the last forward pass recorded. Zero (with a graph) if no object counts."""
        import torch
        import torch.nn.functional as F

        probs, self.probs = self.probs, []
        valid = tokens.any(-1)  # (B, O)
        if not probs:
            return torch.zeros(())
        if not valid.any():
            return probs[0].sum() * 0.0
        terms = []
        for p in probs:  # (B, n, T)
            n = p.shape[1]
            m = masks
            if n != masks.shape[-1]:
                side = int(round(masks.shape[-1] ** 0.5))
                small = int(round(n ** 0.5))
                m = F.adaptive_max_pool2d(masks.view(-1, 1, side, side), small).view(
                    masks.shape[0], masks.shape[1], n)
            a = torch.einsum("bnt,bot->bon", p, tokens[..., :p.shape[-1]])
            inside = (a * m).sum(-1) / a.sum(-1).clamp_min(1e-8)
            terms.append((1 - inside)[valid])
        return torch.cat(terms).mean()


class _Recorder:
    """Cross-attention computed explicitly (softmax(QKᵀ·scale)·V) so the probabilities keep
    their graph; other sequence lengths and self-attention go to the original processor."""

    def __init__(self, owner: Grounding, original: Any) -> None:
        self.owner = owner
        self.original = original

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None,
                 attention_mask: Any = None, temb: Any = None, **kwargs: Any) -> Any:
        from desktop_app.engine.attention_maps import finish, project

        if (encoder_hidden_states is None or attention_mask is not None
                or hidden_states.ndim != 3 or hidden_states.shape[1] not in self.owner.sizes):
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask,
                                 temb, **kwargs)
        q, k, v = project(attn, hidden_states, encoder_hidden_states, temb)
        probs = ((q * attn.scale) @ k.transpose(-1, -2)).softmax(-1)
        self.owner.probs.append(probs.mean(1))
        return finish(attn, probs @ v, hidden_states)


def localization(model_dir: Any, n: int = 64, timesteps: tuple[int, ...] = (900, 500, 100),
                 seed: int = 123, probe: dict | None = None) -> list[float]:
    """How well a model's cross-attention already grounds the words: 1 - L (the share of each
    object's colour and shape word attention that falls inside the object, 16x16 and 8x8 layers)
    on n training scenes drawn with `seed`, noised to each of `timesteps` with the same noise,
    as text-to-image input (full mask). The captions go through the model folder's own text
    encoder, so a model whose encoder was trained (--text-layers) is read as it runs. `probe`
    (from probe_batch) reuses scenes already drawn; loading them takes most of the time."""
    from pathlib import Path

    import torch
    from diffusers import UNet2DConditionModel
    from transformers import AutoTokenizer, BertModel

    from desktop_app.training.unet import alphas_cumprod

    model_dir = Path(model_dir)
    if probe is None:
        probe = probe_batch(AutoTokenizer.from_pretrained(model_dir / "tokenizer"), n, seed)
    enc = BertModel.from_pretrained(model_dir / "text_encoder", add_pooling_layer=False).eval()
    unet = UNet2DConditionModel.from_pretrained(model_dir / "unet").eval()
    acp = alphas_cumprod()
    lat, cond = probe["lat"], probe["cond"]
    b = lat.shape[0]
    g = Grounding(unet)
    out = []
    try:
        with torch.no_grad():
            emb = enc(probe["ids"], attention_mask=probe["att"])[0]
            for t in timesteps:
                noisy = acp[t].sqrt() * lat + (1 - acp[t]).sqrt() * probe["noise"]
                unet(torch.cat([noisy, cond], 1), torch.full((b,), t), encoder_hidden_states=emb)
                out.append(1.0 - float(g.loss(*probe["ground"])))
    finally:
        g.remove()
    return out


def probe_batch(tok: Any, n: int = 64, seed: int = 123) -> dict:
    """n training scenes (drawn with `seed`) for localization(): latents, the text-to-image
    conditioning (full mask, blank masked image), token ids, object tokens and footprints, noise."""
    import torch

    from desktop_app.training.dataset import Dataset

    ds = Dataset(tokenizer=tok, grounding_tokenizer=tok)
    lat, mask, mlat, _, _, (ids, att), ground, _, _ = ds.batch(np.random.default_rng(seed), n)
    mask[:] = 1.0
    mlat[:] = ds.masked_full.float()
    noise = torch.randn(lat.shape, generator=torch.Generator().manual_seed(seed))
    return {"lat": lat, "cond": torch.cat([mask, mlat], 1), "ids": ids, "att": att,
            "ground": ground, "noise": noise}


def main(argv: list[str] | None = None) -> None:
    """python -m desktop_app.training.grounding MODEL_DIR [MODEL_DIR ...]: each model's
    localization() on the training cache's scenes (the model card's numbers)."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--timesteps", default="900,500,100")
    args = ap.parse_args(argv)
    from pathlib import Path

    from transformers import AutoTokenizer

    ts = tuple(int(t) for t in args.timesteps.split(","))
    tok = AutoTokenizer.from_pretrained(Path(args.models[0]) / "tokenizer")
    for m in args.models[1:]:
        if AutoTokenizer.from_pretrained(Path(m) / "tokenizer").get_vocab() != tok.get_vocab():
            raise SystemExit(f"{m} has another tokenizer than {args.models[0]}: read it on its own")
    probe = probe_batch(tok, args.n)  # drawn once: the same scenes and noise for every model
    for m in args.models:
        shares = localization(m, timesteps=ts, probe=probe)
        print(f"{m}: object words' attention inside the object "
              + ", ".join(f"t={t} {100 * s:.1f}%" for t, s in zip(ts, shares, strict=True)),
              flush=True)


if __name__ == "__main__":
    main()
