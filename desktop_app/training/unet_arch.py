"""The built-in UNet's architectures and how a smaller one grows into a bigger one.

ARCHS names each network the training has used (base, then deeper or wider variants); grow()
loads a smaller network's weights into a bigger one so that it starts out computing exactly the
same function, and grown_tensors() names what the growth added (trained at the full learning rate
under --old-lr-scale)."""

from __future__ import annotations

import re

UNET_CONFIG = dict(
    sample_size=32,
    in_channels=9,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(32, 64, 128),
    layers_per_block=1,
    cross_attention_dim=384,
    # UNet2DConditionModel reads attention_head_dim as the number of heads (legacy naming):
    # 1, 2 and 4 heads of width 32.
    attention_head_dim=(1, 2, 4),
    norm_num_groups=16,
)
# Capacity where shapes are drawn: the same network with self- and cross-attention at the 32x32
# level too (one head of width 32). Grown from UNET_CONFIG's weights by grow(), which starts it
# computing exactly the old function.
UNET_CONFIG_ATTN32 = dict(
    UNET_CONFIG,
    down_block_types=("CrossAttnDownBlock2D",) * 3,
    up_block_types=("CrossAttnUpBlock2D",) * 3,
)
# Capacity at the 32x32 level where shapes are drawn, for little compute (+18% step time): three
# more resnets in the down path and three in the up path there. Grown from UNET_CONFIG's weights by
# grow(), each new resnet starting as the identity.
UNET_CONFIG_DEEP32 = dict(UNET_CONFIG, layers_per_block=(4, 1, 1))
# Where words meet places: deep32 plus one more resnet and cross-attention block each way at the
# 16x16 level (+0.47M parameters, +10% per UNet call), grown from deep32's weights the same way.
UNET_CONFIG_DEEP32_16 = dict(UNET_CONFIG, layers_per_block=(4, 2, 1))
# Small squares still come out as rounded blobs, and depth at 32x32 is the lever that drew shape
# best so far (deep32: shape 70.5% -> 81.5% over two runs): deep32_16 with three more resnets each
# way at 32x32 again (+0.18M parameters, about +15% per UNet call).
UNET_CONFIG_DEEPER32_16 = dict(UNET_CONFIG, layers_per_block=(7, 2, 1))
# Binding words to objects is the two-object scenes' weak point, and the one growth that moved it
# was at 16x16 (deep32_16: every attribute of both 10.5% -> 16%): deeper32_16 with a second
# transformer block (self-attention, cross-attention, feed-forward) in each 16x16 attention, so
# every place reads the words and its neighbours twice per block. Grown from deeper32_16, each new
# transformer block starting as the identity. Tried once (30,000 -> 32,000, twenty-third session)
# and not shipped: two objects every attribute 16.5% -> 11.5% (the model card's recipe history).
UNET_CONFIG_DEEPER32_16_T2 = dict(UNET_CONFIG_DEEPER32_16, transformer_layers_per_block=(1, 2, 1))
ARCHS = {"base": UNET_CONFIG, "attn32": UNET_CONFIG_ATTN32, "deep32": UNET_CONFIG_DEEP32,
         "deep32_16": UNET_CONFIG_DEEP32_16, "deeper32_16": UNET_CONFIG_DEEPER32_16,
         "deeper32_16_t2": UNET_CONFIG_DEEPER32_16_T2}
# Each grown architecture's predecessor: its own new blocks (relative to it) are the ones that
# train at the full learning rate under --old-lr-scale.
PARENT = {"attn32": "base", "deep32": "base", "deep32_16": "deep32", "deeper32_16": "deep32_16",
          "deeper32_16_t2": "deeper32_16"}


def make_unet(arch: str = "base"):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**ARCHS[arch])


def _layers(config, key: str = "layers_per_block") -> list[int]:
    lpb, n = config.get(key, 1), len(config["block_out_channels"])
    return [lpb] * n if isinstance(lpb, int) else list(lpb)


def _new_block(key: str, old: set[str]) -> str | None:
    """The whole block a tensor of the bigger net belongs to: a transformer block inside an
    attention the smaller net has, else an attention or resnet (None: neither)."""
    m = re.match(r"(.*?\.attentions\.\d+\.transformer_blocks\.\d+)\.", key)
    if m and not any(k.startswith(m.group(1) + ".") for k in old):
        return m.group(1)
    m = re.match(r"(.*?\.(?:attentions|resnets)\.\d+)\.", key)
    return m.group(1) if m else None


def _renamer(small_config, big_config):
    """small's tensor name -> big's, for a big net with the same levels and at least as many
    resnets per level. New down resnets go after the old ones of their level; in the matching up
    block (which has one resnet more than its level's down block and takes the level's skips
    last-first) the old resnet 0 stays first, the new ones follow it, and the old resnets 1.. move
    down by the number added, so each old resnet still meets the skip it was trained on."""
    a, b = _layers(small_config), _layers(big_config)
    if len(a) != len(b) or any(y < x for x, y in zip(a, b, strict=True)):
        raise ValueError(f"resnets per level {a} cannot grow to {b}")
    n = len(a)

    def rename(key: str) -> str:
        m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key)
        if not m:
            return key
        level = n - 1 - int(m.group(1))
        i = int(m.group(3))
        if i > 0:
            i += b[level] - a[level]
        return f"up_blocks.{m.group(1)}.{m.group(2)}.{i}.{m.group(4)}"

    return rename


def grow(small, big) -> list[str]:
    """Load `small`'s weights into `big`, a UNet with the same blocks plus attention where `small`
    had none and/or more resnets per level, so that `big` computes exactly `small`'s function:
    every tensor they share is copied (renamed where added resnets shift an up block's indices,
    see _renamer), each new Transformer2DModel's output projection is zeroed, and each new resnet
    starts as the identity (its last convolution zeroed; an up resnet's shortcut passes the
    incoming features through and ignores its skip input), so that block does nothing until
    training moves it. Returns the new tensors' names; refuses any other difference (a shape
    change, a missing tensor outside a new block)."""
    import torch

    rename = _renamer(small.config, big.config)
    src = {rename(k): v for k, v in small.state_dict().items()}
    dst = big.state_dict()
    gone = sorted(set(src) - set(dst))
    if gone:
        raise ValueError(f"the bigger UNet lacks {len(gone)} tensors, e.g. {gone[0]}")
    for k, v in src.items():
        if dst[k].shape != v.shape:
            raise ValueError(f"{k}: shape {tuple(v.shape)} cannot grow to {tuple(dst[k].shape)}")
    new = sorted(set(dst) - set(src))
    # A new block is a prefix like "down_blocks.0.attentions.0" (or, inside an attention both nets
    # have, "….attentions.0.transformer_blocks.1") that only the big net has.
    old = set(src)
    new_blocks = {b for k in new if (b := _new_block(k, old))}
    stray = [k for k in new if not any(k.startswith(b + ".") for b in new_blocks)]
    if stray or any(k.startswith(b + ".") for b in new_blocks for k in src):
        raise ValueError(f"not a pure growth by whole blocks: {stray[:3] or sorted(new_blocks)[:3]}")
    merged = dict(dst)
    merged.update(src)
    for blk in new_blocks:
        if ".transformer_blocks." in blk:  # pre-norm residual: zeroed outputs make it the identity
            lasts = [blk + s for s in (".attn1.to_out.0", ".attn2.to_out.0", ".ff.net.2")]
        else:
            lasts = [blk + (".proj_out" if ".attentions." in blk else ".conv2")]
        for last in lasts:
            merged[last + ".weight"] = torch.zeros_like(dst[last + ".weight"])
            merged[last + ".bias"] = torch.zeros_like(dst[last + ".bias"])
        if blk + ".conv_shortcut.weight" in dst:  # an up resnet: [features, skip] -> features
            w = torch.zeros_like(dst[blk + ".conv_shortcut.weight"])
            out = w.shape[0]
            w[:, :out, 0, 0] = torch.eye(out)
            merged[blk + ".conv_shortcut.weight"] = w
            merged[blk + ".conv_shortcut.bias"] = torch.zeros_like(dst[blk + ".conv_shortcut.bias"])
    big.load_state_dict(merged)
    return new


def arch_of(config) -> str | None:
    """Which of ARCHS a UNet config is (None: none of them)."""
    for name, arch in ARCHS.items():
        if (_layers(config) == _layers(arch)
                and _layers(config, "transformer_layers_per_block")
                == _layers(arch, "transformer_layers_per_block")
                and tuple(config["down_block_types"]) == arch["down_block_types"]
                and tuple(config["block_out_channels"]) == arch["block_out_channels"]):
            return name
    return None


def grown_tensors(arch: str) -> set[str]:
    """Names of the tensors `arch` has beyond its PARENT (after renaming): the blocks its growth
    added, which train at the full learning rate."""
    small, big = make_unet(PARENT[arch]), make_unet(arch)
    rename = _renamer(small.config, big.config)
    return set(big.state_dict()) - {rename(k) for k in small.state_dict()}
