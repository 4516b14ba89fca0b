"""One command that (re)trains the built-in model from scratch with fixed seeds, resuming wherever
an earlier run stopped:

    python -m desktop_app.training.pipeline [--unet-steps N]

Stages (each skips itself when its output exists; state lives in the training cache,
$DC_TRAIN_CACHE or ~/.cache/diffusion-canvas-train, and the shipped weights in models/builtin):
1. VAE on 96 px crops (1750 steps of a 2500-step cosine schedule, batch 16), then on full
   256 px images (to step 2200 of a 2750-step schedule, batch 4), then the decoder alone (encoder
   frozen) to step 3200
2. frozen text encoder, tokenizer, scheduler, model_index and the recommended guidance scale
   (generation_defaults.json) written to models/builtin
3. caption embeddings (16 chunks of 1000 scenes, 2 captions each), latents (image + masked image)
   and foreground maps
4. UNet (v-prediction, v-MSE with shape pixels weighted 1 + UNET_FG_WEIGHT, AdamW 1e-3 decaying
   to 1e-4 over the last fifth, EMA) to --unet-steps, exported to models/builtin/unet every 1000
   steps; then grown into --arch deep32 (three more resnets each way at 32x32, starting as the
   identity) and trained GROW_STEPS more (new blocks at 1e-3, the rest at a quarter of it, cosine
   to 5e-5 over the last 60%), then RESTART_STEPS more from a warm restart (7e-4 and a quarter of
   it, cosine to 5e-5 after the first 600); then grown into --arch deep32_16 (one more resnet
   and cross-attention block each way at 16x16) and trained GROW16_STEPS more (new blocks at
   1e-3, the rest at a quarter, cosine to 5e-5 after the first 700); then into --arch
   deeper32_16 (three more resnets each way at 32x32) for DEEPER32_STEPS; then FINAL_RESTART_STEPS
   more from a warm restart of its EMA weights (fresh optimizer, 2.5e-4 cosine to 5e-5); then
   LAYOUT_STEPS more from another such restart with LAYOUT_SHARE of the captioned samples
   trained under paint-with-words (training/layout_bias.py; needs the bare captions)
5. latent -> RGB preview factors fitted against the VAE
Runs on 2 threads with OMP_WAIT_POLICY=PASSIVE (set before torch is imported).
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from desktop_app.training import common, data, export, unet, unet_arch, vae  # noqa: E402

VAE_CROP_STEPS = 1750
VAE_FULL_STEPS = 2200
VAE_DECODER_STEPS = 3200
VAE_EDGE_STEPS = 5000
DATA_CHUNKS = 16
UNET_FG_WEIGHT = 4.0
UNET_DECAY_FROM = 0.8
# The shipped UNet: the base network to step 18,000, grown (deep32) and trained to 21,000,
# restarted and trained to 23,700, grown again (deep32_16) and trained to 26,000, grown deeper at
# 32x32 (deeper32_16) and trained to 28,400, then restarted from its EMA weights and trained to
# 29,200, then restarted once more with paint-with-words layouts in training to 30,000.
UNET_STEPS = 18000
GROW_STEPS = 3000
RESTART_STEPS = 2700
GROW16_STEPS = 2300
DEEPER32_STEPS = 2400
FINAL_RESTART_STEPS = 800
LAYOUT_STEPS = 800
LAYOUT_SHARE = 0.3
# Each phase's architecture; a run resumes at the phase of its checkpoint's (or the shipped) one.
ARCH_ORDER = ("base", "deep32", "deep32_16", "deeper32_16")


def _vae_step() -> int:
    import torch

    path = common.CACHE_DIR / "vae.pt"
    if not path.exists():
        return 0
    return int(torch.load(path, weights_only=False)["step"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--unet-steps", type=int, default=UNET_STEPS,
                    help="steps of the base UNet before it is grown")
    args = ap.parse_args(argv)
    # Each VAE phase exports when it ends, so a run interrupted between phases is recognised by its
    # checkpoint, not by the exported folder; with no checkpoint the shipped VAE is kept.
    vae_step = _vae_step()
    if not (common.MODEL_DIR / "vae" / "config.json").exists() or 0 < vae_step < VAE_EDGE_STEPS:
        if vae_step < VAE_CROP_STEPS:
            vae.main(["--steps", str(VAE_CROP_STEPS), "--schedule-steps", "2500"])
        if _vae_step() < VAE_FULL_STEPS:
            vae.main(["--steps", str(VAE_FULL_STEPS), "--crop", "256", "--batch", "4",
                      "--lr", "5e-4", "--schedule-steps", "2750", "--ckpt-every", "100"])
        vae.main(["--steps", str(VAE_DECODER_STEPS), "--crop", "256", "--batch", "4",
                  "--lr", "5e-4", "--schedule-steps", "4000", "--ckpt-every", "100",
                  "--decoder-only"])
        # Then weight the edges (small squares' corners) and teach the decoder perturbed latents,
        # as the UNet's samples are (reconstructions 97% -> 99.3%).
        vae.main(["--steps", str(VAE_EDGE_STEPS), "--crop", "256", "--batch", "4",
                  "--lr", "5e-4", "--schedule-steps", "6000", "--ckpt-every", "100",
                  "--decoder-only", "--edge-weight", "4", "--latent-noise", "0.15"])
    if not (common.MODEL_DIR / "model_index.json").exists():
        export.export_static()
    if not (common.MODEL_DIR / "generation_defaults.json").exists():
        export.write_generation_defaults()
    if not (common.MODEL_DIR / "vocabulary.txt").exists():
        export.write_vocabulary()
    data.main(["text", "--chunks", str(DATA_CHUNKS)])
    data.main(["latents", "--chunks", str(DATA_CHUNKS)])
    data.main(["fg", "--chunks", str(DATA_CHUNKS)])
    data.main(["bare", "--chunks", str(DATA_CHUNKS)])
    if not (common.MODEL_DIR / "latent_rgb.json").exists():
        print(json.dumps(export.fit_latent_rgb()))
    # Base: constant 1e-3, then a half cosine to 1e-4 over the last fifth. A run that already grew
    # resumes in its growth phase and never steps back to a smaller network.
    held = ARCH_ORDER.index(_unet_arch())
    if held == 0:
        unet.main(["--steps", str(args.unet_steps), "--fg-weight", str(UNET_FG_WEIGHT),
                   "--decay-from", str(int(args.unet_steps * UNET_DECAY_FROM))])
    end = args.unet_steps + GROW_STEPS
    if held <= 1:
        unet.main(["--arch", "deep32", "--steps", str(end), "--lr", "1e-3", "--old-lr-scale",
                   "0.25", "--decay-from", str(end - int(GROW_STEPS * 0.6)), "--min-lr", "5e-5",
                   "--fg-weight", str(UNET_FG_WEIGHT)])
        # A warm restart: the new blocks were still growing when the cosine ended.
        unet.main(["--arch", "deep32", "--steps", str(end + RESTART_STEPS), "--lr", "7e-4",
                   "--old-lr-scale", "0.25", "--decay-from", str(end + 600), "--min-lr", "5e-5",
                   "--fg-weight", str(UNET_FG_WEIGHT)])
    end += RESTART_STEPS
    if held <= 2:
        unet.main(["--arch", "deep32_16", "--steps", str(end + GROW16_STEPS), "--lr", "1e-3",
                   "--old-lr-scale", "0.25", "--decay-from", str(end + 700), "--min-lr", "5e-5",
                   "--fg-weight", str(UNET_FG_WEIGHT)])
    end += GROW16_STEPS
    # Three more resnets each way at 32x32, starting as the identity: constant to 1,500 steps
    # in, then a half cosine to 5e-5.
    unet.main(["--arch", "deeper32_16", "--steps", str(end + DEEPER32_STEPS), "--lr", "1e-3",
               "--old-lr-scale", "0.25", "--decay-from", str(end + 1500), "--min-lr", "5e-5",
               "--fg-weight", str(UNET_FG_WEIGHT)])
    end += DEEPER32_STEPS
    # A warm restart from those EMA weights with nothing else changed (fresh AdamW, 300 steps of
    # warm-up to 2.5e-4, a half cosine to 5e-5 from 200 steps in): paint-with-words 77.4% -> 81.1%.
    unet.main(["--arch", "deeper32_16", "--steps", str(end + FINAL_RESTART_STEPS), "--lr", "2.5e-4",
               "--decay-from", str(end + 200), "--min-lr", "5e-5",
               "--fg-weight", str(UNET_FG_WEIGHT), "--warm-restart-at", str(end)])
    end += FINAL_RESTART_STEPS
    # The same restart once more, with LAYOUT_SHARE of the captioned samples denoised under the
    # engine's paint-with-words bias (bare caption, a region per object): objects placed in their
    # regions 80.4% -> 81.7% of 576 (two-object layouts) and 67.0% -> 73.3% of 288 (three).
    unet.main(["--arch", "deeper32_16", "--steps", str(end + LAYOUT_STEPS), "--lr", "2.5e-4",
               "--decay-from", str(end + 200), "--min-lr", "5e-5",
               "--fg-weight", str(UNET_FG_WEIGHT), "--warm-restart-at", str(end),
               "--layout-share", str(LAYOUT_SHARE)])


def _unet_arch() -> str:
    """The architecture training would resume: the checkpoint's, else the shipped UNet's (a
    warm start), else base (from scratch)."""
    import torch

    path = common.CACHE_DIR / "unet.pt"
    if path.exists():
        return torch.load(path, weights_only=True).get("arch", "base")
    shipped = common.MODEL_DIR / "unet" / "config.json"
    if not shipped.exists():
        return "base"
    return unet_arch.arch_of(json.loads(shipped.read_text())) or "base"


if __name__ == "__main__":
    main()
