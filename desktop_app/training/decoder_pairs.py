"""Pairs for fine-tuning the VAE decoder on the latents the UNet actually produces.

The decoder was trained on the encoder's latents, but sampling ends somewhere slightly off that
manifold: small squares come out with soft corners (read as circles), edges wobble. To show the
decoder what the UNet's latents look like, each pair renders a training scene, noises its latent
part of the way (image-to-image at strength s, the engine's own sampler and guidance) and lets the
UNet finish; the pair is (the final latent, the clean scene). The layout survives the partial
noising, so the target is known, while the edges, corners and colours are the UNet's own.

    python -m desktop_app.training.decoder_pairs OUT.npz --n 1500 --seed 0 [--strengths 0.3,0.7]

Scenes come from the training distribution only (`held_out=False`); the evaluation prompts'
held-out (colour, shape, cell) triples never appear in a pair.

Tried on 2026-12-04 (model card, *Decoder fine-tuned on the UNet's own latents*): it did not help.
The UNet's small squares and small circles are the same blobs, so a decoder trained on them learns
their average; the fix has to be in the UNet.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from desktop_app.training import common, evaluator, scenes


def make_pairs(engine, n: int, seed: int, strengths: tuple[float, float], steps: int = 20,
               cfg: float | None = None, batch: int = 8) -> dict[str, np.ndarray]:
    """`n` pairs in batches of `batch` scenes sharing one strength. Calls the engine's own
    pipeline and sampler the way an image-to-image job on this model does (a 9-channel UNet:
    the inpaint pipeline with a full mask), batched: the UNet at 32x32 is overhead-bound on CPU."""
    import torch
    from PIL import Image

    from desktop_app.engine import samplers

    model_pipe = engine._model.pipe
    pipe = engine._pipeline("inpaint")
    pipe.scheduler = samplers.make_scheduler("euler", dict(model_pipe.scheduler.config),
                                             pipe.unet.config)
    cfg = engine.model_info.cfg_scale() if cfg is None else cfg
    rng = np.random.default_rng(seed)
    full = Image.fromarray(np.full((scenes.SIZE, scenes.SIZE), 255, np.uint8))
    latents, images, used, kept = [], [], [], []
    prog = common.Progress(n, "pairs")
    while len(images) < n:
        b = min(batch, n - len(images))
        batch_scenes = [scenes.random_scene(rng, held_out=False) for _ in range(b)]
        imgs = [scenes.render(sc) for sc in batch_scenes]
        prompts = [scenes.caption(sc, rng) for sc in batch_scenes]
        s = float(rng.uniform(*strengths))
        gens = [torch.Generator("cpu").manual_seed(seed * 100_000 + len(images) + i)
                for i in range(b)]
        with torch.no_grad():
            out = pipe(prompt=prompts, image=[Image.fromarray(x) for x in imgs],
                       mask_image=[full] * b, strength=s, num_inference_steps=steps,
                       guidance_scale=cfg, generator=gens, width=scenes.SIZE,
                       height=scenes.SIZE, output_type="latent").images
        z = (out.float() / pipe.vae.config.scaling_factor).numpy().astype(np.float16)
        with torch.no_grad():
            dec = pipe.vae.decode(torch.from_numpy(z).to(pipe.vae.dtype)).sample
        dec = ((dec.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        kept += [same_layout(d.permute(1, 2, 0).numpy(), sc)
                 for d, sc in zip(dec, batch_scenes, strict=True)]
        latents += list(z)
        images += imgs
        used += [s] * b
        prog.update(len(images))
    return {"latents": np.stack(latents), "images": np.stack(images),
            "strengths": np.asarray(used, np.float32), "layout_kept": np.asarray(kept)}


def same_layout(decoded: np.ndarray, scene: scenes.Scene) -> bool:
    """The shipped decoder reads the UNet's latent as the scene's objects, colour and cell, and
    nothing else. Pairs where the UNet added, dropped or recoloured an object would teach the
    decoder to paint over its input; shape is left out on purpose (that is what it should learn)."""
    got = sorted((f.color, f.cell) for f in evaluator.read(decoded).objects)
    return got == sorted((s.color, s.cell) for s in scene.shapes)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strengths", default="0.3,0.7",
                    help="image-to-image strength range (uniform): how much the UNet redraws")
    ap.add_argument("--model", default=None)
    args = ap.parse_args(argv)
    lo, hi = (float(x) for x in args.strengths.split(","))
    common.setup_threads()
    from desktop_app.engine import Engine

    engine = Engine(device="cpu")
    engine.load(args.model)
    pairs = make_pairs(engine, args.n, args.seed, (lo, hi))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **pairs)
    common.log(f"wrote {args.n} pairs to {args.out}")


if __name__ == "__main__":
    main()
