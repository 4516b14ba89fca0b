"""Evaluator accuracy on VAE reconstructions (the gate before training the UNet).

    python -m desktop_app.training.vae_check [--ckpt] [--n 100]
"""

from __future__ import annotations

import argparse

import numpy as np

from desktop_app.training import common, evaluator, scenes


def reconstruction_accuracy(vae, n: int = 100, seed: int = 11) -> tuple[float, float]:
    """(share of scenes read exactly right after encode/decode, mean PSNR in dB)."""
    import torch

    from desktop_app.training.vae import to_tensor

    rng = np.random.default_rng(seed)
    ok, psnrs = 0, []
    for _ in range(n):
        scene = scenes.random_scene(rng, held_out=None)
        img = scenes.render(scene)
        x = to_tensor(img[None])
        with torch.no_grad():
            rec = vae.decode(vae.encode(x).latent_dist.mean).sample
        out = ((rec[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
        ok += evaluator.scene_correct(scene, evaluator.read(out))
        mse = ((out.astype(np.float32) - img) ** 2).mean()
        psnrs.append(10 * np.log10(255**2 / max(mse, 1e-6)))
    return ok / n, float(np.mean(psnrs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", action="store_true", help="use the training checkpoint")
    ap.add_argument("--n", type=int, default=100)
    args = ap.parse_args()
    import torch
    from diffusers import AutoencoderKL

    common.setup_threads(1)
    if args.ckpt:
        from desktop_app.training.vae import make_vae

        vae = make_vae()
        vae.load_state_dict(torch.load(common.CACHE_DIR / "vae.pt", weights_only=False)["model"])
    else:
        vae = AutoencoderKL.from_pretrained(common.MODEL_DIR / "vae")
    acc, psnr = reconstruction_accuracy(vae.eval(), args.n)
    print(f"evaluator on reconstructions: {acc:.1%}  PSNR {psnr:.2f} dB")


if __name__ == "__main__":
    main()
