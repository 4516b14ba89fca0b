"""Finding, checking and loading a model: a diffusers folder (SD 1.x/2.x, SD inpaint, SDXL, the
built-in model) or one .safetensors file (SD 1.x / 2.x / SDXL), always offline.

Every failure becomes an EngineError naming the file and what is wrong with it, before diffusers
gets a chance to fail with a stack trace or reach for the hub.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import desktop_app
from desktop_app.document.job import MAX_REGION_STRENGTH, EngineError
from desktop_app.document.vocabulary import prompt_words

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
# Components that hold weights (the rest are tokenizers, schedulers, feature extractors).
WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")
# A tokenizer folder holds at least one of these (CLIP's BPE, BERT's WordPiece, sentencepiece).
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "spiece.model", "tokenizer.model")
SUPPORTED = ("Diffusion Canvas runs Stable Diffusion 1.x, 2.x and SDXL models and their "
             "inpainting variants")
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
          "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


@dataclass
class LoadedModel:
    pipe: Any  # the diffusers pipeline the weights were loaded into
    path: Path
    family: str
    folder: Path | None  # where latent_rgb.json / taesd may live


def builtin_path() -> Path:
    """models/builtin next to the package, unless DC_MODEL points elsewhere."""
    env = os.environ.get("DC_MODEL")
    if env:
        return Path(env).expanduser()
    return Path(desktop_app.__file__).resolve().parents[1] / "models" / "builtin"


def quiet_libraries() -> None:
    """Our own errors say what matters; diffusers/transformers info and dtype chatter on every
    job would bury them in the CLI."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def choose_device(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """auto: CUDA in fp16, then Apple MPS, then CPU in fp32."""
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif _mps_available():
            device = "mps"
        else:
            device = "cpu"
    if device.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise EngineError(f"unknown device {device!r}; use auto, cpu, cuda or mps")
    try:
        parsed = torch.device(device)
    except RuntimeError:  # e.g. "cuda:x"
        raise EngineError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N "
                          "or mps") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise EngineError("device 'cuda' was asked for but no CUDA GPU is available")
    if parsed.type == "cuda" and (parsed.index or 0) >= torch.cuda.device_count():
        raise EngineError(f"device {device!r} was asked for but there are only "
                          f"{torch.cuda.device_count()} CUDA GPU(s)")
    if parsed.type == "mps" and not _mps_available():
        raise EngineError("device 'mps' was asked for but Apple MPS is not available here")
    if dtype == "auto":
        return torch.device(device), torch.float16 if device.startswith("cuda") else torch.float32
    if dtype not in DTYPES:
        raise EngineError(f"unknown dtype {dtype!r}; use auto, float32, float16 or bfloat16")
    return torch.device(device), DTYPES[dtype]


def refuse_pickle(path: Path) -> EngineError:
    return EngineError(
        f"{path}: refusing to load a pickled checkpoint ({path.suffix}): unpickling can run "
        "arbitrary code. Convert it once, in a trusted environment, to .safetensors, e.g. "
        "python -c \"import torch, safetensors.torch as s; d = torch.load('model.ckpt', "
        "map_location='cpu', weights_only=True); s.save_file(d.get('state_dict', d), "
        "'model.safetensors')\" (a diffusers folder: DiffusionPipeline.from_pretrained(folder)"
        ".save_pretrained(new_folder, safe_serialization=True))")


def check_safetensors(path: Path) -> None:
    """Read the header (cheap) so a truncated or non-safetensors file fails with its name."""
    from safetensors import safe_open

    try:  # safetensors calls any file it cannot open "No such file or directory"
        with open(path, "rb"):
            pass
    except OSError as e:
        raise EngineError(f"{path}: cannot read the file ({e.strerror or e})") from e
    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except Exception as e:  # safetensors raises its own error types; the message is what matters
        raise EngineError(f"{path}: not a valid .safetensors file ({e})") from e


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise EngineError(f"{path}: missing") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EngineError(f"{path}: unreadable JSON ({e})") from e
    if not isinstance(data, dict):
        raise EngineError(f"{path}: expected a JSON object")
    return data


def check_folder(folder: Path) -> dict:
    """Validate a diffusers folder; returns its model_index.json."""
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise EngineError(f"{folder}: not a diffusers model folder (no model_index.json)"
                          + _where_the_model_is(folder))
    index = _read_json(index_path)
    if not isinstance(index.get("_class_name"), str):
        raise EngineError(f"{index_path}: no \"_class_name\": not a diffusers pipeline index")
    if not any(isinstance(v, list) for k, v in index.items() if not k.startswith("_")):
        raise EngineError(f"{index_path}: lists no components (unet, vae, ...): an incomplete "
                          "model folder?")
    if not isinstance(index.get("unet"), list):
        # SD3, Flux, PixArt, Kandinsky's prior...: diffusers would try to load them and fail
        # with an error about the code, not the model.
        raise EngineError(f"{folder}: a {index['_class_name']} model, which has no UNet "
                          f"(a diffusion transformer?); {SUPPORTED}")
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list):
            continue
        if len(value) != 2:
            raise EngineError(f"{index_path}: {name}: expected [library, class], got {value}")
        if value[0] is None:
            continue
        sub = folder / name
        if not sub.is_dir():
            raise EngineError(f"{sub}: component folder missing (model_index.json lists {name})")
        if name in WEIGHT_COMPONENTS:
            config = _check_weights(sub)
            channels = config.get("in_channels", 4)
            if name == "unet":
                _check_conditioning(sub / "config.json", config, index["_class_name"])
            if name == "unet" and channels not in (4, 9):
                # e.g. instruct-pix2pix (8), depth-to-image (5), the x4 upscaler (7): they need
                # an extra image input; run as text-to-image they failed mid-job.
                raise EngineError(f"{sub / 'config.json'}: a UNet with {channels} input channels "
                                  "(instruct-pix2pix, depth or upscaler?); only 4 (text-to-image) "
                                  "and 9 (inpainting) are supported")
        elif name == "scheduler":
            _read_json(sub / "scheduler_config.json")
        elif name in ("tokenizer", "tokenizer_2") and not any(
                (sub / f).is_file() for f in TOKENIZER_FILES):
            # transformers makes an empty tokenizer of it, and the first job fails on it.
            raise EngineError(f"{sub}: no tokenizer vocabulary ({', '.join(TOKENIZER_FILES)}); "
                              "the model folder is incomplete")
    return index


def _check_conditioning(path: Path, config: dict, pipeline: str) -> None:
    """Refuse UNets that need an image embedding besides the text (Kandinsky 2.2's decoder,
    Stable unCLIP): they load, then fail or draw noise without one."""
    image_cond = config.get("encoder_hid_dim_type") not in (None, "text_proj") or \
        config.get("addition_embed_type") in ("image", "image_hint", "text_image") or \
        config.get("class_embed_type") is not None
    if image_cond:
        raise EngineError(f"{path}: a UNet conditioned on image embeddings ({pipeline}); "
                          f"{SUPPORTED}")


def _where_the_model_is(folder: Path) -> str:
    """A hint for a folder next to the model folder: one of its components, or a folder (or a
    Hugging Face cache entry) holding model folders."""
    if (folder.parent / "model_index.json").is_file():
        return f"; it is the {folder.name!r} part of the model folder {folder.parent}: choose that"
    try:
        inside = sorted(p.parent for pattern in ("*/model_index.json", "snapshots/*/model_index.json")
                        for p in folder.glob(pattern))
    except OSError:
        return ""
    if not inside:
        return ""
    more = f" (and {len(inside) - 3} more)" if len(inside) > 3 else ""
    return f"; it holds model folders: choose one of {', '.join(map(str, inside[:3]))}{more}"


def model_folder_around(path: Path) -> Path | None:
    """The diffusers folder a component's weights file is in (folder/unet/x.safetensors), if any.
    A file beside model_index.json is not one: hub repos ship whole single-file checkpoints there."""
    folder = path.parent.parent
    if (folder / "model_index.json").is_file() and not (path.parent / "model_index.json").is_file():
        return folder
    return None


def _check_weights(sub: Path) -> dict:
    config = _read_json(sub / "config.json")
    weights = sorted(sub.glob("*.safetensors"))
    if not weights:
        pickles = [p for p in sorted(sub.iterdir()) if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            raise refuse_pickle(pickles[0])
        raise EngineError(f"{sub}: no .safetensors weights found")
    for w in weights:
        check_safetensors(w)
    return config


def resolve(path: Path) -> Path:
    """The absolute path with symbolic links followed; a link loop is named, not a traceback."""
    try:
        return path.resolve()
    except RuntimeError as e:  # Python < 3.13 on a loop
        raise EngineError(f"{path}: a symbolic link that loops back on itself") from e
    except OSError as e:
        raise EngineError(f"{path}: cannot follow this path ({e.strerror or e})") from e


def check_model(path: Path) -> None:
    """Every check that needs no weights loaded (cheap): run before dropping the current model,
    so picking a wrong file does not cost the user the model they had."""
    if not path.exists():
        raise EngineError(f"{path}: no such file or folder")
    if path.is_dir():
        check_folder(path)
        return
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise refuse_pickle(path)
    if path.suffix.lower() != ".safetensors":
        raise EngineError(f"{path}: not a model: expected a diffusers folder or a "
                          ".safetensors file")
    from desktop_app.engine.single_file import detect_variant

    if (folder := model_folder_around(path)) is not None:
        raise EngineError(f"{path}: one weights file of the diffusers model folder {folder}: "
                          "choose that folder")
    check_safetensors(path)
    detect_variant(path)


def load_model(path: Path, device: torch.device, dtype: torch.dtype,
               single_file_config: Path | None = None) -> LoadedModel:
    check_model(path)
    if path.is_file():
        from desktop_app.engine.single_file import load_single_file

        pipe = load_single_file(path, dtype, single_file_config)
        folder = None
    else:
        pipe = _load_folder(path, dtype)
        folder = path
    if getattr(pipe, "unet", None) is None or getattr(pipe, "vae", None) is None:
        raise EngineError(f"{path}: {type(pipe).__name__} is not a UNet + VAE Stable Diffusion "
                          "model; this app runs SD 1.x/2.x, SDXL and the built-in model")
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    return LoadedModel(pipe=pipe, path=path, family=detect_family(pipe), folder=folder)


DEFAULTS_FILE = "generation_defaults.json"


def recommended_defaults(folder: Path | None) -> tuple[float | None, float | None]:
    """(guidance scale, paint-with-words region strength) a model folder recommends in
    generation_defaults.json (``{"cfg_scale": 4.0, "region_strength": 8.0}``), each None when it
    says nothing. The built-in model draws better at a lower scale than the 7.5 that suits Stable
    Diffusion, and places painted words better at a higher strength than the generic 1; a wrong
    file is named, not ignored."""
    path = folder / DEFAULTS_FILE if folder is not None else None
    if path is None or not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text())
        cfg, strength = data.get("cfg_scale"), data.get("region_strength")
    except (OSError, ValueError, AttributeError) as e:
        raise EngineError(f"{path}: not a valid defaults file: expected "
                          f'{{"cfg_scale": a number, "region_strength": a number}} '
                          f"({type(e).__name__}: {e})") from e
    return (_number_in(path, "cfg_scale", cfg, 30.0),
            _number_in(path, "region_strength", strength, MAX_REGION_STRENGTH))


VOCABULARY_FILE = "vocabulary.txt"


def model_vocabulary(folder: Path | None) -> frozenset[str] | None:
    """The words a model folder says its training captions used (vocabulary.txt: one word a line),
    or None when it does not say; an unreadable or empty file is named, not ignored. The file is
    split into words as prompts are ("Cat," is "cat"; a Notepad byte-order mark is no part of the
    first word), or a word in it could never match a prompt's."""
    path = folder / VOCABULARY_FILE if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        words = frozenset(prompt_words(path.read_text(encoding="utf-8-sig")))
    except (OSError, UnicodeDecodeError) as e:
        raise EngineError(f"{path}: not a readable word list ({type(e).__name__}: {e})") from e
    if not words:
        raise EngineError(f"{path}: lists no words (one word a line, or remove the file)")
    return words


def _number_in(path: Path, key: str, value: Any, top: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top:
        raise EngineError(f"{path}: {key}: expected a number from 0 to {top:g}, got {value!r}")
    return float(value)


def _load_folder(folder: Path, dtype: torch.dtype):
    from diffusers import DiffusionPipeline

    index = _read_json(folder / "model_index.json")
    extra: dict[str, Any] = {}
    if "safety_checker" in index:
        # Never load the safety checker: 1.2 GB for a filter this offline canvas does not use.
        extra = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    variant = _weights_variant(folder)
    if variant:
        extra["variant"] = variant
    try:
        return DiffusionPipeline.from_pretrained(
            folder, dtype=dtype, use_safetensors=True, local_files_only=True, **extra)
    except Exception as e:  # diffusers/transformers raise many types; report the file
        raise EngineError(f"{folder}: could not load the model ({type(e).__name__}: {e})") from e


def _weights_variant(folder: Path) -> str | None:
    """"fp16" when a component only ships variant weights (unet/*.fp16.safetensors), as many hub
    downloads do; diffusers looks for the plain names unless told, and falls back to them for
    components that have no variant files."""
    for name in WEIGHT_COMPONENTS:
        names = [p.name for p in (folder / name).glob("*.safetensors")]
        suffixes = {n.split(".")[-2] for n in names if n.count(".") >= 2}
        if names and len(suffixes) == 1 and all(n.count(".") >= 2 for n in names):
            return suffixes.pop()
    return None


def detect_family(pipe) -> str:
    text_encoder = getattr(pipe, "text_encoder", None)
    if text_encoder is not None and getattr(text_encoder.config, "model_type", "") == "bert":
        return "builtin"
    unet_cfg = pipe.unet.config
    if (getattr(pipe, "text_encoder_2", None) is not None
            or getattr(unet_cfg, "addition_embed_type", None) == "text_time"):
        return "sdxl"
    if unet_cfg.cross_attention_dim == 1024:  # OpenCLIP ViT-H text encoder
        return "sd2"
    return "sd1"


def tokenizers_of(pipe) -> list:
    return [t for t in (getattr(pipe, "tokenizer", None), getattr(pipe, "tokenizer_2", None))
            if t is not None]
