"""Interpolate two UNets of the same architecture, weight by weight (WiSE-FT, Wortsman et al. 2022).

    python -m desktop_app.training.soup BASE_MODEL TUNED_MODEL OUT_MODEL --alpha 0.5

A fine-tune from a trained network often gains on what it was tuned for and loses on what the
network could already do. When both ends sit in one basin, the straight line between them can
pass through networks that keep most of the gain and most of the old skills (on the built-in model
it did not: the model card's recipe history has the measurement). The result is
(1 - alpha) * base + alpha * tuned for every floating-point tensor of the UNet; OUT_MODEL is a copy
of TUNED_MODEL's folder with that UNet, and its training_state.json records both ends and alpha.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

UNET_FILE = Path("unet") / "diffusion_pytorch_model.safetensors"


def interpolate(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor],
                alpha: float) -> dict[str, torch.Tensor]:
    """(1 - alpha) * base + alpha * tuned, computed in float32 and stored in tuned's dtype."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if base.keys() != tuned.keys():
        only = sorted(base.keys() ^ tuned.keys())
        raise ValueError(f"the UNets differ in architecture: {len(only)} tensors in one only, "
                         f"e.g. {only[0]}")
    out = {}
    for name, t in tuned.items():
        b = base[name]
        if b.shape != t.shape:
            raise ValueError(f"the UNets differ in architecture: {name} is {tuple(b.shape)} "
                             f"in one and {tuple(t.shape)} in the other")
        if t.is_floating_point():
            mixed = torch.lerp(b.float(), t.float(), alpha)
            out[name] = mixed.to(t.dtype).contiguous()
        else:
            out[name] = t.clone()
    return out


def _step(model: Path) -> int | None:
    try:
        return json.loads((model / "training_state.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return None


def soup(base_model: Path, tuned_model: Path, out_model: Path, alpha: float) -> None:
    in_place = out_model.resolve() == tuned_model.resolve()
    if not in_place and out_model.exists():
        raise ValueError(f"{out_model} already exists: give a new folder (or TUNED itself, "
                         "to replace its UNet)")
    mixed = interpolate(load_file(base_model / UNET_FILE), load_file(tuned_model / UNET_FILE), alpha)
    if not in_place:
        shutil.copytree(tuned_model, out_model)
    save_file(mixed, out_model / UNET_FILE)
    state_path = out_model / "training_state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    state["soup"] = {"base_step": _step(base_model), "tuned_step": _step(tuned_model),
                     "alpha": alpha}
    state_path.write_text(json.dumps(state) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", type=Path, help="model folder whose UNet is weighted 1 - alpha")
    ap.add_argument("tuned", type=Path, help="model folder whose UNet is weighted alpha")
    ap.add_argument("out", type=Path, help="output model folder (a copy of TUNED's)")
    ap.add_argument("--alpha", type=float, default=0.5)
    args = ap.parse_args(argv)
    try:
        soup(args.base, args.tuned, args.out, args.alpha)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    print(f"wrote {args.out} = {1 - args.alpha:g} x {args.base} + {args.alpha:g} x {args.tuned}")


if __name__ == "__main__":
    main()
