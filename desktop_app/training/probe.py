"""Diagnostics for the built-in UNet: which caption words move its predictions, and whether its
features know where they are.

    python -m desktop_app.training.probe [--unet models/builtin/unet] [--noises 8]

1. Word sensitivity. The same noise goes through the UNet with prompts that differ only in one
   attribute (colour, shape, size, position or background). At high noise levels (t = 999, 700, 500)
   the x0 estimate should depend on the words alone; the printed number is the share of the
   estimate's energy that changes between the prompts. Zero means the model ignores those words.
2. Position placement. For the nine position prompts, does the change concentrate in the named
   cell of the 3x3 grid (out of 9)?
3. Position readability. A ridge regression from the hidden states entering each cross-attention
   layer to the 3x3 cell of each location (pure-noise input, held-out locations): if the features
   carry position, a model that ignores position words has a learning problem, not a missing input.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from desktop_app.training import common, data, scenes  # noqa: E402
from desktop_app.training import unet as unet_train  # noqa: E402

TIMESTEPS = (999, 700, 500)
BASE = dict(size="big", color="red", shape="circle", cell="top left", bg="gray")
VARIANTS = {
    "colour": ("color", ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")),
    "shape": ("shape", scenes.SHAPES),
    "size": ("size", scenes.SIZES),
    "position": ("cell", scenes.CELLS),
    "background": ("bg", ("gray", "white", "black", "light blue")),
}


def prompt(size: str, color: str, shape: str, cell: str, bg: str) -> str:
    where = "in the center" if cell == "center" else f"at the {cell}"
    return f"a {size} {color} {shape} {where} on a {bg} background"


class Prober:
    def __init__(self, unet_path: str, noises: int) -> None:
        import torch
        from diffusers import UNet2DConditionModel

        self.torch = torch
        self.unet = UNet2DConditionModel.from_pretrained(unet_path).eval()
        self.tok, self.enc = data.load_text_encoder()
        self.acp = unet_train.alphas_cumprod()
        gen = torch.Generator().manual_seed(0)
        self.noise = torch.randn(noises, 4, 32, 32, generator=gen)
        blank = data.DATA_DIR / "masked_full.pt"
        if blank.exists():
            self.blank = torch.load(blank).float()
        else:  # the latent of an all-zero image, as the training data stores it
            from diffusers import AutoencoderKL

            vae = AutoencoderKL.from_pretrained(common.MODEL_DIR / "vae").eval()
            with torch.no_grad():
                z = vae.encode(torch.zeros(1, 3, 256, 256)).latent_dist.mean[0]
            self.blank = z * vae.config.scaling_factor

    def inputs(self):
        n = len(self.noise)
        return self.torch.cat([self.noise, self.torch.ones(n, 1, 32, 32),
                               self.blank.expand(n, -1, -1, -1)], 1)

    def x0(self, text: str, t: int):
        """Mean over the noises of the UNet's x0 estimate for a pure-noise input at timestep t."""
        torch = self.torch
        emb = data.embed(self.tok, self.enc, [text]).expand(len(self.noise), -1, -1)
        with torch.no_grad():
            v = self.unet(self.inputs(), torch.full((len(self.noise),), t),
                          encoder_hidden_states=emb).sample
        a = self.acp[t]
        return (a.sqrt() * self.noise - (1 - a).sqrt() * v).mean(0)

    def sensitivity(self, key: str, values, t: int):
        x0s = self.torch.stack([self.x0(prompt(**{**BASE, key: v}), t) for v in values])
        dev = x0s - x0s.mean(0, keepdim=True)
        return float(dev.pow(2).mean() / x0s.pow(2).mean()), dev

    @staticmethod
    def placed(dev) -> int:
        """How many of the nine position prompts change the estimate most in their own cell."""
        hits = 0
        for i in range(9):
            energy = dev[i].pow(2).sum(0).numpy()
            cells = [energy[r * 32 // 3:(r + 1) * 32 // 3, c * 32 // 3:(c + 1) * 32 // 3].mean()
                     for r in range(3) for c in range(3)]
            hits += int(np.argmax(cells)) == i
        return hits

    def readability(self, t: int = 999) -> dict[str, float]:
        """Held-out accuracy of a ridge probe from each cross-attention layer's input to the cell."""
        torch = self.torch
        feats: dict[str, object] = {}
        hooks = []
        for name, mod in self.unet.named_modules():
            if name.endswith("attn2"):
                def grab(_m, args, _kw, name=name):
                    feats[name] = args[0].detach()
                hooks.append(mod.register_forward_pre_hook(grab, with_kwargs=True))
        emb = data.embed(self.tok, self.enc, [prompt(**BASE)]).expand(len(self.noise), -1, -1)
        try:
            with torch.no_grad():
                self.unet(self.inputs(), torch.full((len(self.noise),), t),
                          encoder_hidden_states=emb)
        finally:
            for h in hooks:
                h.remove()
        out = {}
        for name, f in feats.items():
            n, hw, ch = f.shape
            side = int(round(hw ** 0.5))
            ys, xs = np.divmod(np.arange(hw), side)
            cell = np.tile((ys * 3 // side) * 3 + xs * 3 // side, n)
            x = np.c_[f.reshape(-1, ch).numpy(), np.ones(n * hw)]
            train = np.arange(n * hw) < (n * hw * 2) // 3  # whole noise samples held out
            w = np.linalg.solve(x[train].T @ x[train] + 1e-2 * np.eye(ch + 1),
                                x[train].T @ np.eye(9)[cell[train]])
            acc = float(((x[~train] @ w).argmax(1) == cell[~train]).mean())
            out[f"{name.removesuffix('.transformer_blocks.0.attn2')} ({side}x{side})"] = acc
        return out


def binding(text_encoder: str, n: int = 48, seed: int = 9) -> dict[str, float]:
    """How much the text encoder's word vectors know which object they belong to. For n two-object
    captions (`scenes.canonical_caption`) and the same captions with the two objects' places
    swapped: each object's colour and shape words against themselves (mean cosine), and each place
    phrase's words, first bound to one object, then to the other. 1.0 means a word's vector
    ignores the rest of the sentence; the UNet then has to bind by token order alone."""
    import torch
    from transformers import AutoTokenizer, BertModel

    tok = AutoTokenizer.from_pretrained(common.MODEL_DIR / "tokenizer")
    enc = BertModel.from_pretrained(text_encoder, add_pooling_layer=False).float().eval()

    def read(scene):
        """Normalised word vectors, and per object the token indices of its colour + shape words
        and of its place words."""
        cap = scenes.canonical_caption(scene)
        ids = tok(cap, return_offsets_mapping=True, return_tensors="pt")
        at = {a: i for i, (a, b) in enumerate(ids.pop("offset_mapping")[0].tolist()) if b > a}
        with torch.no_grad():
            h = torch.nn.functional.normalize(enc(**ids)[0][0], dim=-1)
        objects, places, pos = [], [], 0
        for shape in scene.shapes:
            part = scenes.canonical_caption(scenes.Scene(scene.background, (shape,),
                                                         scene.offsets[:1])).split(" on a ")[0]
            pos = cap.index(part, pos)
            words = part.split(" ")
            offs = np.cumsum([0] + [len(w) + 1 for w in words[:-1]]) + pos
            objects.append([at[o] for w, o in zip(words, offs, strict=True)
                            if w in (shape.color, shape.shape)])
            places.append([at[o] for o in offs[-len(shape.cell_name.split()):]])
            pos += len(part)
        return h, objects, places

    rng = np.random.default_rng(seed)
    sims: dict[str, list[float]] = {"object words": [], "place words": []}
    for _ in range(n):
        sc = scenes.random_scene(rng, held_out=None, n_objects=2)
        a, b = sc.shapes
        swapped = scenes.Scene(sc.background, (
            scenes.Shape(a.color, a.shape, a.size, b.cell),
            scenes.Shape(b.color, b.shape, b.size, a.cell)), sc.offsets)
        h0, obj0, pl0 = read(sc)
        h1, obj1, pl1 = read(swapped)
        for k in range(2):
            sims["object words"] += [float(h0[i] @ h1[j]) for i, j in zip(obj0[k], obj1[k],
                                                                       strict=True)]
            # Object k's place phrase in the original is object 1-k's in the swapped caption.
            sims["place words"] += [float(h0[i] @ h1[j]) for i, j in zip(pl0[k], pl1[1 - k],
                                                                      strict=True)]
    return {k: float(np.mean(v)) for k, v in sims.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--unet", default=str(common.MODEL_DIR / "unet"))
    ap.add_argument("--noises", type=int, default=8)
    ap.add_argument("--binding", metavar="TEXT_ENCODER",
                    help="only measure how much this text encoder's word vectors know which "
                         "object they belong to (binding())")
    args = ap.parse_args(argv)
    common.setup_threads()
    if args.binding:
        for k, v in binding(args.binding).items():
            print(f"{k}: mean cosine with the objects' places swapped {v:.3f}")
        return
    p = Prober(args.unet, args.noises)
    print("word sensitivity (share of the x0 estimate that changes with the words), by timestep")
    print("| words | " + " | ".join(f"t={t}" for t in TIMESTEPS) + " |")
    print("|---|" + "---|" * len(TIMESTEPS))
    placed = {}
    for label, (key, values) in VARIANTS.items():
        cells = []
        for t in TIMESTEPS:
            share, dev = p.sensitivity(key, values, t)
            cells.append(f"{share:.1e}")
            if key == "cell":
                placed[t] = p.placed(dev)
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("position words change the estimate most in the named cell: "
          + ", ".join(f"t={t}: {k}/9" for t, k in placed.items()))
    print("position readable from cross-attention inputs (ridge probe, chance 11%):")
    for name, acc in p.readability().items():
        print(f"  {name}: {acc:.0%}")


if __name__ == "__main__":
    main()
