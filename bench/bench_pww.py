"""Paint-with-words overhead: the same UNet steps (CFG batch of 2) with and without regions.

Rounds alternate between the variants and time is this process's CPU time (run it with one
thread), so other work on the machine disturbs the comparison less; the medians and their ratio
are printed side by side (goal: regions cost at most ~10% per step).

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_pww.py
    ... bench/bench_pww.py --latent 32 --rounds 7 --builtin   # also models/builtin, if present
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desktop_app.document.job import Region  # noqa: E402
from desktop_app.engine.pww import PaintWithWords  # noqa: E402

PROMPT = "a red circle on the left and a blue square on the right, grass below"


def tiny_unet(channels: tuple[int, ...] = (32, 64), context: int = 32):
    """Cross-attention at every level. (32, 64) is the tests' size: head dim 4, so attention is
    most of the step. (320, 640, 1280) with context 768 has SD 1.x's widths and head dims."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    n = len(channels)
    return UNet2DConditionModel(
        block_out_channels=channels, layers_per_block=1, sample_size=32,
        down_block_types=("CrossAttnDownBlock2D",) * n,
        up_block_types=("CrossAttnUpBlock2D",) * n,
        cross_attention_dim=context, attention_head_dim=8, norm_num_groups=32).eval()


def regions(size: int) -> tuple[Region, ...]:
    left = np.zeros((size, size), np.float32)
    left[:, : size // 2] = 1
    return (Region("red circle", left, 1.0), Region("blue square", 1 - left, 1.0),
            Region("grass", np.pad(np.ones((size // 4, size), np.float32),
                                   ((size - size // 4, 0), (0, 0))), 0.5))


def time_steps(unet, tokenizers, latent: int, steps: int, with_regions: bool,
               collect: bool, local: bool = False) -> float:
    """`local`: region prompts on, every step below their noise level (their worst case: a
    real job spends only its later steps there: 11 of 20 on the built-in model at the default 6)."""
    cfg = unet.config
    x = torch.randn(2, cfg.in_channels, latent, latent)
    e = torch.randn(2, tokenizers[0].model_max_length, cfg.cross_attention_dim)
    regs = regions(latent * 8) if with_regions else ()
    # The region prompts' text states: encoded once per job, outside the steps timed here.
    pww = PaintWithWords(unet, tokenizers, PROMPT, regs, (latent, latent),
                         collect_attention=collect, outside=1.0,  # the app's default
                         local_sigma=6.0 if local else 0.0, encode=lambda _: e[:1])
    with torch.no_grad(), pww:
        start = time.process_time()
        for i in range(steps):
            pww.set_sigma(5.9 * (1 - i / steps) if local else 14.6 * (1 - i / steps))
            unet(x, 999 - i, e)
            if collect:
                pww.attention_maps()
        return (time.process_time() - start) / steps


def compare(label: str, unet, tokenizers, latent: int, steps: int, rounds: int) -> None:
    time_steps(unet, tokenizers, latent, 1, True, True)  # warm-up
    times: dict[str, list[float]] = {"plain": [], "regions": [], "regions+maps": [],
                                     "region prompts": []}
    for _ in range(rounds):
        times["plain"].append(time_steps(unet, tokenizers, latent, steps, False, False))
        times["regions"].append(time_steps(unet, tokenizers, latent, steps, True, False))
        times["regions+maps"].append(time_steps(unet, tokenizers, latent, steps, True, True))
        times["region prompts"].append(
            time_steps(unet, tokenizers, latent, steps, True, False, local=True))
    base = statistics.median(times["plain"])
    print(f"{label}, latent {latent}x{latent}, CFG batch 2, {steps} steps x {rounds} rounds")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:14s} {med * 1000:8.1f} ms/step   x{med / base:.3f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latent", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sd-widths", action="store_true",
                    help="also time a random UNet with SD 1.x channel widths (slow)")
    ap.add_argument("--builtin", action="store_true", help="also time models/builtin")
    args = ap.parse_args(argv)
    from transformers import AutoTokenizer

    clip = AutoTokenizer.from_pretrained(ROOT / "tests" / "fixtures" / "clip_tokenizer")
    compare("tiny UNet (32, 64)", tiny_unet(), [clip], args.latent, args.steps, args.rounds)
    if args.sd_widths:
        compare("random UNet (320, 640, 1280)", tiny_unet((320, 640, 1280), 768), [clip],
                args.latent, max(args.steps // 4, 1), args.rounds)
    builtin = ROOT / "models" / "builtin"
    if args.builtin and (builtin / "unet").is_dir():
        from diffusers import UNet2DConditionModel

        unet = UNet2DConditionModel.from_pretrained(builtin / "unet").eval()
        tok = AutoTokenizer.from_pretrained(builtin / "tokenizer")
        compare("built-in model", unet, [tok], 32, args.steps, args.rounds)
    elif args.builtin:
        print("models/builtin is not there yet; skipped")


if __name__ == "__main__":
    main()
