"""Assemble models/builtin as a diffusers StableDiffusionInpaintPipeline folder.

    python -m desktop_app.training.export            # text encoder, tokenizer, scheduler, index
"""

from __future__ import annotations

import json
import shutil

import numpy as np

from desktop_app.training import common, data, scenes

# Stable Diffusion's customary 7.5 over-guides this model: it draws extra copies of the object.
# UNet step 17,000, 48 held-out one-object prompts, CFG 3 / 4 / 5 / 7.5: scene exactly right
# 67 / 67 / 60 / 50%, exactly one object 96 / 90 / 88 / 81%, colour and shape 71 / 73 / 69 / 69%
# (step 15,000, 40 prompts: colour and shape 62% at 4 against 47% at 7.5). The model card has it.
RECOMMENDED_CFG = 4.0
# Paint-with-words: eDiff-I's w = 1 moves this model's objects too little. On two sets of 48
# layouts (prompts without position words, each object's words painted into a cell), objects
# placed at w = 1 / 4 / 8: 30% / 47% / 58% and 24% / 45% / 52%, background right at every
# strength; w = 6 and 10 placed 52% on the first set. The model card has it.
RECOMMENDED_REGION_STRENGTH = 8.0
MODEL_INDEX = {
    "_class_name": "StableDiffusionInpaintPipeline",
    "_diffusers_version": "0.42.1",
    "feature_extractor": [None, None],
    "image_encoder": [None, None],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "text_encoder": ["transformers", "BertModel"],
    "tokenizer": ["transformers", "BertTokenizerFast"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def export_static() -> None:
    """Everything but the UNet and VAE: the pretrained text encoder (fp16 on disk), tokenizer,
    scheduler."""
    from diffusers import EulerDiscreteScheduler
    from transformers import AutoTokenizer, BertModel

    from desktop_app.training.unet import SCHEDULER_CONFIG

    out = common.MODEL_DIR
    out.mkdir(parents=True, exist_ok=True)
    src = data.text_encoder_path()
    save_text_encoder(BertModel.from_pretrained(src, add_pooling_layer=False), out)
    tok = AutoTokenizer.from_pretrained(src, model_max_length=data.MAX_TOKENS)
    tok.save_pretrained(out / "tokenizer")
    EulerDiscreteScheduler(**SCHEDULER_CONFIG).save_pretrained(out / "scheduler")
    write_generation_defaults()
    write_vocabulary()
    (out / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2) + "\n")


def save_text_encoder(enc, out=None) -> None:
    """Write `enc` (a BertModel) as the model folder's text encoder: weights in fp16 to stay under
    the size budget, config saying float32 so that loaders that honour the saved dtype compute in
    fp32 (as training did) on the CPU, and the attention mask switched on (the pipeline passes it
    only when the config asks). Written beside the old folder and swapped in."""
    import copy

    import torch

    out = common.MODEL_DIR if out is None else out
    enc = copy.deepcopy(enc)
    enc.config.use_attention_mask = True
    final, tmp = out / "text_encoder", out / "text_encoder.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    enc.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
    cfg = json.loads((tmp / "config.json").read_text())
    cfg["dtype"] = "float32"
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def write_generation_defaults() -> None:
    """The guidance scale the app and the command line start from on this model (measured: see
    RECOMMENDED_CFG)."""
    (common.MODEL_DIR / "generation_defaults.json").write_text(
        json.dumps({"cfg_scale": RECOMMENDED_CFG}) + "\n")


def write_vocabulary() -> None:
    """vocabulary.txt: every word the training captions use, so the app can tell a person which
    words of a prompt this model never saw."""
    (common.MODEL_DIR / "vocabulary.txt").write_text("\n".join(scenes.vocabulary()) + "\n")


def fit_latent_rgb() -> dict:
    """Least-squares 4x3 matrix + bias from latents (as the UNet sees them) to RGB in [-1, 1]."""
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(common.MODEL_DIR / "vae").eval()
    rng = np.random.default_rng(5)
    imgs = np.stack([scenes.render(scenes.random_scene(rng, held_out=None)) for _ in range(48)])
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
    small = F.avg_pool2d(x, 8)
    A = z.permute(0, 2, 3, 1).reshape(-1, 4).numpy()
    B = small.permute(0, 2, 3, 1).reshape(-1, 3).numpy()
    A1 = np.concatenate([A, np.ones((len(A), 1), np.float32)], 1)
    sol, *_ = np.linalg.lstsq(A1, B, rcond=None)
    err = float(np.sqrt(((A1 @ sol - B) ** 2).mean()))
    res = {"matrix": sol[:4].round(5).tolist(), "bias": sol[4].round(5).tolist(), "rmse": err}
    (common.MODEL_DIR / "latent_rgb.json").write_text(json.dumps(res, indent=2) + "\n")
    return res


def export_unet(unet, step: int, text_layers: int = 0) -> None:
    """Write the UNet and the training state (step, and how many of the text encoder's top layers
    were trained with it: the caller exports that encoder)."""
    out = common.MODEL_DIR / "unet"
    tmp = common.MODEL_DIR / "unet.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    unet.save_pretrained(tmp, safe_serialization=True)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    state_file = common.MODEL_DIR / "training_state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    state["step"] = step
    if text_layers:
        state["text_layers"] = text_layers
    else:
        state.pop("text_layers", None)
    state_file.write_text(json.dumps(state) + "\n")


if __name__ == "__main__":
    export_static()
    print(fit_latent_rgb())
