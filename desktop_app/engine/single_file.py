"""One-file checkpoints (.safetensors in the original LDM/SGM key layout: A1111/ComfyUI style)
loaded offline.

diffusers' from_single_file normally downloads the matching diffusers configs and tokenizers
from the hub. We give it a local config folder instead: the architecture configs for SD 1.x, 2.x
and SDXL ship in engine/configs/, and the CLIP tokenizer (vocab.json + merges.txt) is rebuilt from the
CLIP BPE merge list shipped beside them (from the open_clip package, MIT licence).
"""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
from pathlib import Path

from desktop_app.document.job import EngineError

CONFIGS = Path(__file__).parent / "configs"
BPE_FILE = CONFIGS / "clip_bpe_simple_vocab_16e6.txt.gz"
CLIP_MERGES = 49152 - 256 - 2  # CLIP's vocabulary: 256 bytes x2, merges, 2 special tokens
UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
PIPELINES = {"sd15": "StableDiffusionPipeline", "sd15_inpaint": "StableDiffusionInpaintPipeline",
             "sd2": "StableDiffusionPipeline", "sd2_inpaint": "StableDiffusionInpaintPipeline",
             "sdxl": "StableDiffusionXLPipeline", "sdxl_inpaint": "StableDiffusionXLInpaintPipeline"}
# SD 2.x has a 512 px epsilon model and a 768 px v-prediction one, with the same tensors. A norm
# bias of the last up-block's transformer tells them apart (the test ComfyUI uses): its spread is
# above 0.09 in v-prediction checkpoints.
SD2_V_PROBE = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
SD2_V_STD = 0.09


def detect_variant(path: Path) -> str:
    """sd15 / sd2 / sdxl, with _inpaint for 9-channel UNets, from the tensor names (header
    only)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        if UNET_IN not in keys:
            if what := _what_else(keys):
                raise EngineError(f"{path}: {what}, not a whole Stable Diffusion model; choose "
                                  "an SD 1.x, 2.x or SDXL checkpoint or a diffusers folder")
            raise EngineError(f"{path}: no Stable Diffusion UNet inside (no {UNET_IN}); "
                              "only SD 1.x, 2.x and SDXL single files are supported")
        shape = f.get_slice(UNET_IN).get_shape()
        if len(shape) != 4:
            raise EngineError(f"{path}: {UNET_IN} has shape {shape}, not a UNet's first "
                              "convolution; the file is damaged or not a Stable Diffusion model")
        in_channels = shape[1]

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    sdxl_unet = "model.diffusion_model.label_emb.0.0.weight" in keys
    if has("conditioner.embedders.1."):
        base = "sdxl"
    elif has("cond_stage_model.transformer."):
        base = "sd15"
    elif has("cond_stage_model.model."):  # OpenCLIP ViT-H
        base = "sd2"
    elif sdxl_unet and has("conditioner.embedders.0.model."):
        raise EngineError(f"{path}: an SDXL refiner checkpoint (one OpenCLIP text encoder); it "
                          "only refines SDXL images and is not supported")
    elif sdxl_unet and has("conditioner.embedders.0."):
        raise EngineError(f"{path}: an SDXL checkpoint without its second text encoder (no "
                          "conditioner.embedders.1.* tensors); SDXL needs both")
    elif not has("conditioner.") and not has("cond_stage_model."):
        raise EngineError(f"{path}: a{'n SDXL' if sdxl_unet else ''} UNet without its text "
                          f"encoder{'' if has('first_stage_model.') else ' or VAE'}; load a full "
                          "checkpoint or a diffusers folder")
    else:
        raise EngineError(f"{path}: unrecognised checkpoint layout (no SD 1.x, 2.x or SDXL "
                          "text encoder inside)")
    if not has("first_stage_model."):
        raise EngineError(f"{path}: no VAE inside (no first_stage_model.* tensors); load a "
                          "checkpoint with its VAE included, or a diffusers folder")
    if in_channels not in (4, 9):
        raise EngineError(f"{path}: UNet with {in_channels} input channels is not supported")
    if keys & {"edm_mean", "edm_vpred.sigma_max"}:
        raise EngineError(f"{path}: an EDM-trained checkpoint (e.g. Playground v2.5); its noise "
                          "schedule is not supported")
    return base + ("_inpaint" if in_channels == 9 else "")


def _what_else(keys: set[str]) -> str | None:
    """What a .safetensors without a Stable Diffusion UNet probably is, from its tensor names."""
    if any(m in k for k in keys for m in ("lora_", ".lora.", "hada_w", "lokr_w")):
        return "a LoRA"
    if keys and all(k.startswith(("encoder.", "decoder.", "quant_conv", "post_quant_conv",
                                  "first_stage_model.")) for k in keys):
        return "a VAE on its own"
    if keys and all(k.startswith(("text_model.", "cond_stage_model.", "conditioner.", "transformer.",
                                  "text_projection", "logit_scale", "token_embedding",
                                  "positional_embedding", "ln_final")) for k in keys):
        return "a text encoder on its own"
    if keys & {"emb_params", "clip_l", "clip_g"} or any(k.startswith("string_to_param")
                                                        for k in keys):
        return "a textual-inversion embedding"
    if any(k.startswith(("control_model.", "controlnet_")) or "input_hint_block" in k
           for k in keys):
        return "a ControlNet"
    if "conv_in.weight" in keys and any(k.startswith("down_blocks.") for k in keys):
        return "a UNet in diffusers layout on its own"
    return None


def sampling_overrides(path: Path, variant: str | None = None) -> dict:
    """Scheduler settings a checkpoint announces with marker tensors, as ComfyUI reads them:
    "v_pred" (v-prediction) and "ztsnr" (zero terminal SNR). Without them a v-prediction model
    would silently draw noise-like images. An SD 2.x text-to-image file without a marker is
    v-prediction when A1111's side file (the same name with .yaml) says
    ``parameterization: "v"`` (a side file without the key means eps, as in LDM), or, with no
    side file, when its probe tensor says so (SD2_V_PROBE)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        probe = f.get_tensor(SD2_V_PROBE) if variant == "sd2" and SD2_V_PROBE in keys else None
    out: dict = {}
    if "v_pred" in keys:
        out["prediction_type"] = "v_prediction"
    elif variant == "sd2" and _sd2_is_v(path, probe):
        out["prediction_type"] = "v_prediction"
    if "ztsnr" in keys:
        out.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
    return out


def _sd2_is_v(path: Path, probe) -> bool:
    import re

    side = path.with_suffix(".yaml")
    if side.is_file():
        try:
            text = side.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        if m := re.search(r"^\s*parameterization:\s*[\"']?(\w+)", text, re.MULTILINE):
            return m.group(1) == "v"
        if "unet_config" in text:  # a model config that leaves it out means LDM's default, eps
            return False
    return probe is not None and float(probe.float().std(unbiased=False)) > SD2_V_STD


def _byte_alphabet() -> list[str]:
    """GPT-2/CLIP byte-level BPE alphabet, in CLIP's id order: the printable bytes as themselves,
    then the other bytes mapped to unused code points from 256 up."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1),
            *range(ord("\u00ae"), ord("\u00ff") + 1)]
    others = [chr(256 + i) for i, b in enumerate(b for b in range(256) if b not in keep)]
    return [chr(b) for b in keep] + others


def write_clip_tokenizer(out: Path, pad_token: str = "<|endoftext|>") -> None:
    """vocab.json, merges.txt and tokenizer_config.json of OpenAI's CLIP tokenizer (49408 ids)."""
    lines = gzip.decompress(BPE_FILE.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1:CLIP_MERGES + 1]
    alphabet = _byte_alphabet()
    tokens = alphabet + [a + "</w>" for a in alphabet] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}),
                                    encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n",
                                    encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "pad_token": pad_token}), encoding="utf-8")


def config_folder(variant: str, out: Path) -> Path:
    """A diffusers-layout folder of configs and tokenizers (no weights) for one variant."""
    shutil.copytree(CONFIGS / variant, out)
    # SD 2.x pads prompts with "!" (id 0), as its OpenCLIP tokenizer did in training
    write_clip_tokenizer(out / "tokenizer", pad_token="!" if variant.startswith("sd2") else
                         "<|endoftext|>")
    if variant.startswith("sdxl"):
        write_clip_tokenizer(out / "tokenizer_2", pad_token="!")  # as the SDXL release has it
    return out


def load_single_file(path: Path, dtype, config: Path | None = None):
    """The pipeline for a single-file checkpoint. `config` overrides the shipped config folder
    (a diffusers folder of the same architecture, e.g. for tests)."""
    import diffusers

    variant = detect_variant(path)
    overrides = sampling_overrides(path, variant)
    cls = getattr(diffusers, PIPELINES[variant])
    with tempfile.TemporaryDirectory(prefix="dc-config-") as tmp:
        folder = config if config is not None else config_folder(variant, Path(tmp) / variant)
        if config is None and variant == "sd2" and "prediction_type" not in overrides:
            _set_native_size(folder, 64)  # SD 2.x's 512 px base model, not the 768 px v model
        extra = {} if variant.startswith("sdxl") else dict(safety_checker=None,
                                                           requires_safety_checker=False)
        source = path
        if path.suffix != ".safetensors":  # e.g. .SafeTensors: diffusers would torch.load it
            source = Path(tmp) / "model.safetensors"
            try:
                source.symlink_to(path)
            except OSError as e:
                raise EngineError(f"{path}: rename it to end in .safetensors (lower case)") from e
        try:
            pipe = cls.from_single_file(str(source), config=str(folder), local_files_only=True,
                                        torch_dtype=dtype, **extra)
        except Exception as e:  # diffusers raises many types; report the file
            raise EngineError(f"{path}: could not load the {variant} checkpoint "
                              f"({type(e).__name__}: {e})") from e
    if overrides:
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, **overrides)
    return pipe


def _set_native_size(folder: Path, latent: int) -> None:
    """The UNet's and VAE's sample sizes: the size a new canvas for this model starts at."""
    for name, size in (("unet", latent), ("vae", latent * 8)):
        path = folder / name / "config.json"
        cfg = json.loads(path.read_text())
        cfg["sample_size"] = size
        path.write_text(json.dumps(cfg, indent=1))
