"""Train the built-in model's 9-channel UNet on cached latents and caption embeddings.

    python -m desktop_app.training.unet --steps 40000

v-prediction on a linear-beta DDPM schedule (terminal SNR ~4e-5), plain v-MSE loss, 15% caption
dropout for classifier-free guidance, AdamW 1e-3 after 300 warm-up steps, half the samples with a
full mask (text-to-image) and half with a cached random mask (inpainting), EMA weights for
inference. Checkpoints every few minutes to the training cache and resumes from there, or
warm-starts from the shipped weights. With --text-layers N the text encoder's top N layers train
too (TextTop), on the captions instead of their cached embeddings.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np

from desktop_app.training import common
from desktop_app.training.dataset import BARE_CHOICES, Dataset
from desktop_app.training.text_layers import TextTop
from desktop_app.training.unet_arch import ARCHS, grow, grown_tensors, make_unet

SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.0001,
    beta_end=0.02,
    beta_schedule="linear",
    prediction_type="v_prediction",
    timestep_spacing="trailing",
    steps_offset=1,
)


def alphas_cumprod():
    """The training schedule's cumulative alphas (float32, one per timestep): what noising a
    latent to timestep t uses, in training and in the probes that read a UNet at given t."""
    from diffusers import DDPMScheduler

    cfg = {k: v for k, v in SCHEDULER_CONFIG.items()
           if k not in ("timestep_spacing", "steps_offset")}
    return DDPMScheduler(**cfg).alphas_cumprod.float()


def pixel_weights(fg, fg_weight: float, edge_weight: float = 0.0, small=None,
                  small_weight: float = 0.0):
    """Per latent pixel loss weight from its shape coverage c in [0, 1]: 1 + fg_weight·c, plus
    edge_weight·4c(1 − c), which peaks where an outline or a corner crosses the pixel, plus
    small_weight on the pixels of small objects' boxes (`small`, dataset.small_boxes)."""
    w = 1 + fg_weight * fg + edge_weight * 4 * fg * (1 - fg)
    return w if small is None else w + small_weight * small


def loss_weight(snr, weighting: str):
    """Per-sample weight on the v-MSE.

    Plain v-MSE equals (SNR + 1) times the x0-MSE, so every noise level counts at least as much as a
    plain x0 loss. Min-SNR-5 for v-prediction, min(SNR, 5) / (SNR + 1), shrinks the high-noise steps
    (SNR -> 0) to almost nothing; those are the steps where the caption decides colour, shape and
    place, and with min-SNR the first 1600 steps learned backgrounds but not objects.
    """
    import torch

    if weighting == "min-snr-5":
        return torch.clamp(snr, max=5.0) / (snr + 1)
    return torch.ones_like(snr)


def learning_rate(step: int, args, fresh_from: int = 0) -> float:
    """Linear warm-up over 300 steps from `fresh_from` (the step where the optimizer state started
    empty: 0, or a warm start from shipped weights, whose Adam moments are gone), then constant, or
    a half cosine from --decay-from down to --min-lr at --steps."""
    lr = args.lr * min(1.0, (step - fresh_from + 1) / 300)
    if args.decay_from is not None and step >= args.decay_from:
        span = max(1, args.steps - args.decay_from)
        frac = min(1.0, (step - args.decay_from) / span)
        lr = args.min_lr + (args.lr - args.min_lr) * 0.5 * (1 + np.cos(np.pi * frac))
    return lr


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--export-every", type=int, default=1000)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--decay-from", type=int, default=None,
                    help="from this step on, lower the learning rate along a half cosine to "
                         "--min-lr at --steps (default: constant after warm-up)")
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--weighting", choices=("v", "min-snr-5"), default="v")
    ap.add_argument("--fg-weight", type=float, default=0.0,
                    help="extra loss weight on latent pixels covered by shapes (from the cached "
                         "foreground maps, `data fg`); the background is >90%% of every image and "
                         "was learned first")
    # Small squares come out as rounded blobs (their corners are a fraction of a latent pixel), and
    # no decoder fixes that (model card); weight the latent pixels a shape's outline crosses.
    # Tried at 4 from the shipped 26,000 for 1,100 steps: one-object shape worse (p ~ 0.04), two
    # objects level (model card's recipe history), so it stays off by default.
    ap.add_argument("--edge-weight", type=float, default=0.0,
                    help="extra loss weight on partly covered latent pixels (outlines, corners): "
                         "+ edge-weight x 4c(1 - c) for coverage c, so half covered gets it all")
    # Small squares drawn round are the largest group of one-object misses (their side is under
    # five latent pixels; big squares are right 93%), and a big object has 3.4x a small one's
    # pixels, so the loss hears little of the corners that tell them apart. Tried at 4 from
    # 28,400 for 800 steps: small squares 22.6% -> 41.9%, but more extra copies on prompts
    # without a place (model card's recipe history), so it stays off by default.
    ap.add_argument("--small-weight", type=float, default=0.0,
                    help="extra loss weight on the latent pixels of each small object's bounding "
                         "box (grown by one pixel), background around its corners included")
    ap.add_argument("--eval-n", type=int, default=16,
                    help="after each export, generate this many held-out one-object prompts (and "
                         "half as many two-object ones) with the exported model and log the "
                         "evaluator's scores; 0 = off")
    ap.add_argument("--arch", choices=sorted(ARCHS), default="base",
                    help="attn32: attention at the 32x32 level too; deep32: three more resnets "
                         "each way at the 32x32 level; deep32_16: deep32 plus a resnet and a "
                         "cross-attention block each way at 16x16; deeper32_16: deep32_16 with "
                         "three more resnets each way at 32x32; a warm start from smaller "
                         "weights (checkpoint or shipped) grows them (grow()) so training starts "
                         "from the same function")
    ap.add_argument("--old-lr-scale", type=float, default=1.0,
                    help="with a grown --arch: learning rate of the weights its parent "
                         "architecture (PARENT) also has, relative to --lr (the blocks the "
                         "growth added get --lr)")
    ap.add_argument("--text-layers", type=int, default=0,
                    help="train the text encoder's top N layers with the UNet (0: frozen, cached "
                         "caption embeddings); see TextTop")
    ap.add_argument("--text-lr-scale", type=float, default=0.1,
                    help="with --text-layers: their learning rate relative to --lr (with its own "
                         "warm-up from the step they started training)")
    ap.add_argument("--grounding", type=float, default=0.0,
                    help="weight of the token grounding loss (training/grounding.py): each "
                         "object's colour and shape words should be attended to inside the "
                         "object, at the 16x16 and 8x8 cross-attention layers; 0 = off")
    ap.add_argument("--bare-captions", type=float, default=0.0, metavar="SHARE",
                    help="this share of samples takes the scene's bare caption, without sizes, "
                         "places or both (`python -m desktop_app.training.data bare` first)")
    ap.add_argument("--bare-kinds", choices=BARE_CHOICES, default="all",
                    help="'neither': only the scenes whose bare caption names neither size nor "
                         "place (a third) take it, so --bare-captions 0.4 gives about 13%% of "
                         "samples such captions and every other sample a full caption; "
                         "'neither1': only the one-object scenes among those (two in five); "
                         "'nosize': only the scenes whose bare caption drops the sizes but keeps "
                         "the places (a third)")
    ap.add_argument("--layout-share", type=float, default=0.0, metavar="SHARE",
                    help="this share of the samples that keep a caption trains with "
                         "paint-with-words: the bare caption, and the engine's bias pushing each "
                         "object's words into a region around it (training/layout_bias.py; "
                         "`python -m desktop_app.training.data bare` first)")
    # The shipped UNet's last two phases: 800 steps more from the 28,400 export with nothing
    # changed but a fresh optimizer and a second anneal placed more paint-with-words objects, and
    # 800 more from 29,200 the same way with --layout-share 0.3 (model card).
    ap.add_argument("--warm-restart-at", type=int, default=None, metavar="STEP",
                    help="when the checkpoint stands at exactly STEP, restart from its EMA weights "
                         "(what would ship) with a fresh optimizer and a new warm-up, as a warm "
                         "start from the shipped weights does; a checkpoint past STEP resumes")
    ap.add_argument("--export-only", action="store_true",
                    help="write the checkpoint's EMA weights to models/builtin/unet and stop")
    args = ap.parse_args(argv)
    if args.export_only:
        export_checkpoint()
        return

    import torch

    common.setup_threads()
    torch.manual_seed(args.seed)
    shipped_state = common.MODEL_DIR / "training_state.json"
    if not args.text_layers and shipped_state.exists() and json.loads(
            shipped_state.read_text()).get("text_layers", 0):
        raise SystemExit("the shipped text encoder was trained with the UNet, so the cached caption "
                         "embeddings (from the pretrained one) no longer match it: pass "
                         "--text-layers")
    text = TextTop(args.text_layers) if args.text_layers else None
    ground_tok = lay_tok = None
    if args.grounding or args.layout_share:  # both map object words to the model's tokens
        from transformers import AutoTokenizer

        tok = text.tok if text else AutoTokenizer.from_pretrained(common.MODEL_DIR / "tokenizer")
        ground_tok = tok if args.grounding else None
        lay_tok = tok if args.layout_share else None
    ds = Dataset(tokenizer=text.tok if text else None, grounding_tokenizer=ground_tok,
                 bare_share=args.bare_captions, bare_kinds=args.bare_kinds,
                 small_maps=bool(args.small_weight), layout_tokenizer=lay_tok,
                 layout_share=args.layout_share)
    logf = common.CACHE_DIR / "unet.log"
    common.log(f"dataset: {ds.n} scenes from {ds.chunks} chunks"
               + (f", bare captions ({args.bare_kinds}) for {args.bare_captions:.0%} of samples"
                  if args.bare_captions else "")
               + (f", paint-with-words layouts for {args.layout_share:.0%} of captioned samples"
                  if args.layout_share else ""), logf)
    unet = make_unet(args.arch)
    ema = copy.deepcopy(unet).requires_grad_(False)
    # After a growth the old weights are already trained: --old-lr-scale lets them move slower
    # than the new blocks, which start from zero.
    added = grown_tensors(args.arch) if args.arch != "base" else set()
    named = list(unet.named_parameters())
    groups = [{"params": [p for k, p in named if k not in added]}]
    lr_scales = [1.0]
    if added:
        groups.append({"params": [p for k, p in named if k in added]})
        lr_scales = [args.old_lr_scale, 1.0]
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=0.01)
    acp = alphas_cumprod()
    step = fresh_from = text_from = 0
    ckpt = common.CACHE_DIR / "unet.pt"
    if ckpt.exists():
        st = torch.load(ckpt, weights_only=True)
        held = st.get("arch", "base")
        held_text = st.get("text_layers", 0)
        if held_text and held_text != args.text_layers:
            raise SystemExit(f"{ckpt} trains the text encoder's top {held_text} layers: pass "
                             f"--text-layers {held_text}")
        restart = held == args.arch and st["step"] == args.warm_restart_at
        if restart and held_text:
            raise SystemExit("--warm-restart-at restarts the UNet only; the checkpoint also trains "
                             "text layers")
        if restart:
            unet.load_state_dict(st["ema"])
            ema.load_state_dict(st["ema"])
            step = fresh_from = st["step"]
            common.log(f"warm restart from the step-{step} checkpoint's EMA weights, optimizer "
                       "state fresh", logf)
        elif held == args.arch:
            unet.load_state_dict(st["model"])
            ema.load_state_dict(st["ema"])
            if held_text:
                text.load(st)
                opt.add_param_group({"params": text.params()})
                text_from = st["text_from"]
            opt.load_state_dict(st["opt"])
            step = st["step"]
            fresh_from = st.get("fresh_from", 0)
            common.log(f"resumed UNet from step {step}", logf)
        else:
            # The pipeline's growth phases: the smaller run's EMA weights (what would ship) grown
            # into the bigger network, with a fresh optimizer.
            small = make_unet(held)
            small.load_state_dict(st["ema"])
            try:
                new = grow(small, unet)
            except ValueError as exc:
                raise SystemExit(f"{ckpt} holds a {held!r} UNet, which cannot grow into "
                                 f"{args.arch!r} ({exc}); pass --arch {held} or move the "
                                 "checkpoint away") from None
            ema.load_state_dict(unet.state_dict())
            step = fresh_from = st["step"]
            common.log(f"grew the step-{step} {held} checkpoint into {args.arch!r}: {len(new)} "
                       "new tensors, same function at the start", logf)
    elif (common.MODEL_DIR / "unet" / "diffusion_pytorch_model.safetensors").exists():
        from diffusers import UNet2DConditionModel

        shipped = UNet2DConditionModel.from_pretrained(common.MODEL_DIR / "unet")
        if shipped.state_dict().keys() == unet.state_dict().keys():
            unet.load_state_dict(shipped.state_dict())
        else:
            new = grow(shipped, unet)
            common.log(f"grew the shipped UNet into {args.arch!r}: {len(new)} new tensors, "
                       "same function at the start", logf)
        ema.load_state_dict(unet.state_dict())
        meta = json.loads((common.MODEL_DIR / "training_state.json").read_text())
        step = fresh_from = int(meta.get("step", 0))
        common.log(f"warm start from shipped weights (step {step}, optimizer state fresh)", logf)
    if text is not None and len(opt.param_groups) == len(lr_scales):
        # The text layers join here (a fresh Adam state for them; the UNet's is kept).
        opt.add_param_group({"params": text.params()})
        text_from = step
        common.log(f"training the text encoder's top {text.k} layers from step {step} at "
                   f"{args.text_lr_scale:g} x the learning rate", logf)
    train_params = list(unet.parameters()) + (text.params() if text else [])
    rng = np.random.default_rng([args.seed, step])
    prog = common.Progress(args.steps, "unet")
    n_params = sum(p.numel() for p in unet.parameters())
    if (args.fg_weight or args.edge_weight) and not ds.fg.any():
        raise SystemExit("--fg-weight and --edge-weight need foreground maps: run `python -m desktop_app.training.data fg`")
    common.log(f"UNet {n_params / 1e6:.2f}M parameters, {args.weighting} loss weighting, "
               f"foreground weight {args.fg_weight:g}, edge weight {args.edge_weight:g}, "
               f"small-object weight {args.small_weight:g}, lr {args.lr:g}"
               + (f" cosine to {args.min_lr:g} from step {args.decay_from}" if args.decay_from is not None else ""),
               logf)
    grounding = None
    if args.grounding:
        from desktop_app.training.grounding import Grounding

        grounding = Grounding(unet)  # records the online UNet's attention, not the EMA's
        common.log(f"token grounding loss, weight {args.grounding:g}", logf)
    layout_bias = None
    if args.layout_share:
        from desktop_app.training.layout_bias import LayoutBias

        layout_bias = LayoutBias(unet)
    t0, losses, ground_losses = time.time(), [], []
    while step < args.steps:
        lr = learning_rate(step, args, fresh_from)
        for g, scale in zip(opt.param_groups, lr_scales, strict=False):
            g["lr"] = float(lr) * scale
        if text is not None:
            opt.param_groups[-1]["lr"] = float(
                learning_rate(step, args, text_from)) * args.text_lr_scale
        lat, mask, mlat, emb, fg, tokens, ground, small, layout = ds.batch(rng, args.batch)
        if text is not None:
            emb = text(tokens)
        t = torch.from_numpy(rng.integers(0, 1000, args.batch))
        noise = torch.randn_like(lat)
        a = acp[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * lat + (1 - a).sqrt() * noise
        target = a.sqrt() * noise - (1 - a).sqrt() * lat
        if layout_bias is not None:  # σ = √((1 − ᾱ)/ᾱ), the engine's noise level of the step
            layout_bias.set(*layout, torch.log1p(((1 - a) / a).sqrt()).view(-1))
        pred = unet(torch.cat([noisy, mask, mlat], 1), t, encoder_hidden_states=emb).sample
        snr = a / (1 - a)
        w = loss_weight(snr, args.weighting)
        pix = pixel_weights(fg, args.fg_weight, args.edge_weight, small, args.small_weight)
        loss = (w * pix * (pred - target) ** 2).mean() / pix.mean()
        total = loss
        if grounding is not None:
            g_loss = grounding.loss(*ground)
            total = loss + args.grounding * g_loss
            ground_losses.append(g_loss.item())
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(train_params, 1.0)
        opt.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters(), strict=True):
                pe.lerp_(p, 1 - decay)
        if text is not None:
            text.update_ema(decay)
        losses.append(loss.item())
        prog.update(step, loss=float(np.mean(losses[-50:])))
        if step % args.ckpt_every == 0 or step == args.steps:
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": unet.state_dict(), "ema": ema.state_dict(),
                        "opt": opt.state_dict(), "step": step, "arch": args.arch,
                        "fresh_from": fresh_from,
                        **({**text.state(), "text_from": text_from} if text else {})}, tmp)
            tmp.replace(ckpt)
            rate = args.ckpt_every / (time.time() - t0)
            t0 = time.time()
            common.log(f"step {step} loss {np.mean(losses[-args.ckpt_every:]):.4f} "
                       f"{rate:.2f} it/s"
                       + (f" text drift {text.drift():.4f}" if text else "")
                       + (f" grounding {np.mean(ground_losses[-args.ckpt_every:]):.4f}"
                          if grounding else ""), logf)
        if step % args.ckpt_every == 0 and ds.reload():
            common.log(f"dataset grew: {ds.n} scenes from {ds.chunks} chunks", logf)
        if step % args.export_every == 0 or step == args.steps:
            from desktop_app.training import export

            export.export_unet(ema, step, text_layers=text.k if text else 0)
            if text is not None:
                text.export()
            common.log(f"exported EMA UNet at step {step}"
                       + (" and text encoder" if text else ""), logf)
            if args.eval_n:
                common.log(f"eval at step {step}: {quick_eval(args.eval_n)}", logf)


def quick_eval(n: int) -> str:
    """The shipped quality measure on a small held-out subset, through the real engine."""
    from desktop_app.training import quality

    gen = quality.engine_generator(str(common.MODEL_DIR))
    one = quality.measure(gen, quality.single_cases(n), "single")
    two = quality.measure(gen, quality.two_cases(max(1, n // 2)), "two")
    keys = ("color", "shape", "color_shape", "position", "size", "background")
    return (" ".join(f"{k} {one[k]:.0%}" for k in keys)
            + f" | two: color_shape_both {two['color_shape_both']:.0%} "
              f"all {two['all_attributes']:.0%}")


def export_checkpoint() -> None:
    import torch

    from desktop_app.training import export

    st = torch.load(common.CACHE_DIR / "unet.pt", weights_only=True)
    unet = make_unet(st.get("arch", "base"))
    unet.load_state_dict(st["ema"])
    k = st.get("text_layers", 0)
    export.export_unet(unet, st["step"], text_layers=k)
    if k:
        text = TextTop(k)
        text.load(st)
        text.export()
    common.log(f"exported EMA UNet at step {st['step']}", common.CACHE_DIR / "unet.log")


if __name__ == "__main__":
    main()
