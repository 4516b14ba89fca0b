"""One-file .safetensors checkpoints (original LDM layout) load offline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from desktop_app.document.job import EngineError, JobKind, JobRequest
from desktop_app.engine import single_file


def _txt2img(engine):
    req = JobRequest(kind=JobKind.TEXT_TO_IMAGE, prompt="a red cat", steps=2, width=64,
                     height=64, seed=3)
    return engine.run(req).image


# The tiny SD 2.x has SD 1.x's text width (32), so it reports the sd1 family: what is checked is
# that its OpenCLIP-named text encoder and linear-projection UNet convert exactly.
@pytest.mark.parametrize(("folder_fixture", "family"), [("tiny_sd", "sd1"), ("tiny_sd2", "sd1"),
                                                        ("tiny_sdxl", "sdxl")])
def test_single_file_gives_the_same_model_as_the_folder(request, folder_fixture, family):
    from desktop_app.engine import Engine

    folder = request.getfixturevalue(folder_fixture)
    path = request.getfixturevalue(folder_fixture + "_single_file")
    engine = Engine(device="cpu")
    engine.single_file_config = folder  # its architecture, instead of real SD 1.5's / SDXL's
    info = engine.load(path)
    assert info.family == family and info.name == path.name
    from_file = _txt2img(engine)
    from_folder = Engine(device="cpu")
    from_folder.load(folder)
    assert np.array_equal(from_file, _txt2img(from_folder))


VAE_KEY = "first_stage_model.decoder.conv_out.weight"


def _fake_header(path, tensors):
    import torch
    from safetensors.torch import save_file

    save_file({k: torch.zeros(shape) for k, shape in tensors.items()}, str(path))
    return path


@pytest.mark.parametrize(("text_key", "channels", "variant"), [
    ("cond_stage_model.transformer.text_model.x", 4, "sd15"),
    ("cond_stage_model.transformer.text_model.x", 9, "sd15_inpaint"),
    ("cond_stage_model.model.token_embedding.weight", 4, "sd2"),
    ("cond_stage_model.model.token_embedding.weight", 9, "sd2_inpaint"),
    ("conditioner.embedders.1.model.x", 4, "sdxl"),
    ("conditioner.embedders.1.model.x", 9, "sdxl_inpaint"),
])
def test_variant_is_read_from_the_tensor_names(tmp_path, text_key, channels, variant):
    path = _fake_header(tmp_path / "m.safetensors", {single_file.UNET_IN: (8, channels, 1, 1),
                                                     text_key: (1,), VAE_KEY: (1,)})
    assert single_file.detect_variant(path) == variant


def test_unsupported_single_files_are_named(tmp_path):
    odd = _fake_header(tmp_path / "odd.safetensors", {"weight": (2, 2)})
    with pytest.raises(EngineError, match="odd.safetensors: no Stable Diffusion UNet"):
        single_file.detect_variant(odd)
    # A tensor of that name but not 4-D used to end as "unexpected IndexError".
    flat = _fake_header(tmp_path / "flat.safetensors",
                        {single_file.UNET_IN: (320,), "cond_stage_model.transformer.x": (1,)})
    with pytest.raises(EngineError, match=r"flat.safetensors: .* has shape \[320\], not a UNet"):
        single_file.detect_variant(flat)


UNET = {single_file.UNET_IN: (8, 4, 1, 1)}
SDXL_UNET = {**UNET, "model.diffusion_model.label_emb.0.0.weight": (1,)}
SD_TEXT = {"cond_stage_model.transformer.text_model.x": (1,)}


# Each used to say "no Stable Diffusion UNet inside" or "unrecognised checkpoint layout", or (no
# VAE) fail inside diffusers with a multi-line message.
@pytest.mark.parametrize(("tensors", "says"), [
    ({"lora_unet_down_blocks_0.lora_down.weight": (4, 32), "lora_te_x.alpha": (1,)}, "a LoRA"),
    ({"unet.down_blocks.0.attn.to_q.lora_A.weight": (4, 32)}, "a LoRA"),
    ({"encoder.conv_in.weight": (1,), "decoder.conv_out.weight": (1,)}, "a VAE on its own"),
    ({"text_model.embeddings.token_embedding.weight": (1,)}, "a text encoder on its own"),
    ({"emb_params": (2, 768)}, "a textual-inversion embedding"),
    ({"conv_in.weight": (1,), "down_blocks.0.resnets.0.conv1.weight": (1,)},
     "a UNet in diffusers layout on its own"),
    ({**SDXL_UNET, VAE_KEY: (1,), "conditioner.embedders.0.transformer.x": (1,)},
     "an SDXL checkpoint without its second text encoder"),
    ({**SDXL_UNET, VAE_KEY: (1,), "conditioner.embedders.0.model.x": (1,)},
     "an SDXL refiner checkpoint"),
    (SDXL_UNET, "an SDXL UNet without its text encoder or VAE"),
    ({**UNET, VAE_KEY: (1,)}, "a UNet without its text encoder;"),
    ({**UNET, **SD_TEXT}, "no VAE inside"),
    ({**UNET, **SD_TEXT, VAE_KEY: (1,), "edm_mean": (4,)}, "an EDM-trained checkpoint"),
])
def test_a_file_that_is_not_a_whole_model_says_what_it_is(tmp_path, tensors, says):
    path = _fake_header(tmp_path / "file.safetensors", tensors)
    with pytest.raises(EngineError, match="file.safetensors: " + says):
        single_file.detect_variant(path)


def _with_tensors(source, out, **extra):
    import torch
    from safetensors.torch import load_file, save_file

    save_file(dict(load_file(str(source)), **{k: torch.tensor(v) for k, v in extra.items()}),
              str(out))
    return out


def test_v_prediction_markers_set_the_schedulers_prediction_type(tiny_sd, tiny_sd_single_file,
                                                                  tmp_path):
    # A v-prediction checkpoint (marked with a "v_pred" tensor, plus "ztsnr" for zero terminal
    # SNR) used to load as epsilon-prediction and silently draw noise.
    from desktop_app.engine import Engine, samplers

    path = _with_tensors(tiny_sd_single_file, tmp_path / "vpred.safetensors", v_pred=[],
                         ztsnr=[])
    engine = Engine(device="cpu")
    engine.single_file_config = tiny_sd
    engine.load(path)
    pipe = engine._model.pipe
    for name in ("euler", "dpmpp_2m"):
        config = samplers.make_scheduler(name, dict(pipe.scheduler.config), pipe.unet.config).config
        assert config.prediction_type == "v_prediction" and config.rescale_betas_zero_snr
        assert config.timestep_spacing == "trailing"
    assert _txt2img(engine).shape == (64, 64, 3)


def _sd2_header(path, probe_std: float | None):
    import torch
    from safetensors.torch import save_file

    tensors = {single_file.UNET_IN: torch.zeros(8, 4, 1, 1), VAE_KEY: torch.zeros(1),
               "cond_stage_model.model.token_embedding.weight": torch.zeros(1)}
    if probe_std is not None:
        tensors[single_file.SD2_V_PROBE] = torch.tensor([-1.0, 1.0] * 640) * probe_std
    save_file(tensors, str(path))
    return path


def test_sd2_v_prediction_is_told_from_the_weights_or_the_side_file(tmp_path):
    # SD 2.x's 768 px v-prediction and 512 px epsilon checkpoints have the same tensors; loading a
    # v model as epsilon draws noise. A probe spread above 0.09 means v (ComfyUI's threshold).
    def prediction(path):
        variant = single_file.detect_variant(path)
        return single_file.sampling_overrides(path, variant).get("prediction_type", "epsilon")

    assert prediction(_sd2_header(tmp_path / "v.safetensors", 0.2)) == "v_prediction"
    assert prediction(_sd2_header(tmp_path / "eps.safetensors", 0.05)) == "epsilon"
    assert prediction(_sd2_header(tmp_path / "none.safetensors", None)) == "epsilon"
    # A1111's side file (same name, .yaml) is the user's word and wins over the probe
    (tmp_path / "eps.yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    assert prediction(tmp_path / "eps.safetensors") == "v_prediction"
    (tmp_path / "v.yaml").write_text("model:\n  params:\n    parameterization: eps\n")
    assert prediction(tmp_path / "v.safetensors") == "epsilon"
    # SD 2's own 512 px config (v2-inference.yaml) leaves the key out: LDM's default, eps
    (tmp_path / "v.yaml").write_text("model:\n  params:\n    unet_config:\n      params: {}\n")
    assert prediction(tmp_path / "v.safetensors") == "epsilon"
    # the inpainting model is epsilon whatever the probe says; SD 1.x files are not probed
    inpaint = _sd2_header(tmp_path / "inpaint.safetensors", 0.2)
    assert single_file.sampling_overrides(inpaint, "sd2_inpaint") == {}


def test_sd2_config_folder_pads_with_an_exclamation_mark(tmp_path):
    from transformers import CLIPTokenizer

    folder = single_file.config_folder("sd2", tmp_path / "sd2")
    tok = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    ids = tok("a cat", padding="max_length", max_length=8).input_ids
    assert ids == [49406, 320, 2368, 49407, 0, 0, 0, 0]  # "!" is id 0
    sd1 = CLIPTokenizer.from_pretrained(single_file.config_folder("sd15", tmp_path / "sd1")
                                        / "tokenizer")
    assert sd1("a cat", padding="max_length", max_length=8).input_ids[-1] == 49407


def test_a_single_file_with_an_upper_case_suffix_loads(tiny_sd, tiny_sd_single_file, tmp_path):
    # diffusers reads any name not ending in ".safetensors" with torch.load: it failed.
    import shutil

    from desktop_app.engine import Engine

    path = shutil.copy(tiny_sd_single_file, tmp_path / "Model.SafeTensors")
    engine = Engine(device="cpu")
    engine.single_file_config = tiny_sd
    assert engine.load(path).family == "sd1"


def test_shipped_clip_tokenizer_matches_openai_clip_ids(tmp_path):
    from transformers import CLIPTokenizer

    single_file.write_clip_tokenizer(tmp_path)
    tok = CLIPTokenizer.from_pretrained(tmp_path)
    assert len(tok) == 49408
    # Ids of OpenAI's CLIP vocabulary: <start> a photo of a cat <end>
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


# Parameter counts of the released SD 1.5 / 2.x / SDXL components: the shipped configs must build
# exactly those architectures, or real checkpoints would not fit them (SD 2.x: the 865.91 M the
# original code reports for its UNet, and OpenCLIP ViT-H's text tower less its unused last layer).
@pytest.mark.parametrize(("variant", "unet_params"), [
    ("sd15", 859_520_964), ("sd15_inpaint", 859_535_364),
    ("sd2", 865_910_724), ("sd2_inpaint", 865_925_124),
    ("sdxl", 2_567_463_684), ("sdxl_inpaint", 2_567_478_084),
])
def test_shipped_configs_build_the_released_architectures(variant, unet_params):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = single_file.CONFIGS / variant

    def config(name, file="config.json"):
        return json.loads((folder / name / file).read_text())

    def count(module):
        return sum(p.numel() for p in module.parameters())

    with init_empty_weights():
        assert count(UNet2DConditionModel.from_config(config("unet"))) == unet_params
        assert count(AutoencoderKL.from_config(config("vae"))) == 83_653_863
        text_params = 340_387_840 if variant.startswith("sd2") else 123_060_480
        assert count(CLIPTextModel(CLIPTextConfig(**config("text_encoder")))) == text_params
        if variant.startswith("sdxl"):
            te2 = CLIPTextModelWithProjection(CLIPTextConfig(**config("text_encoder_2")))
            assert count(te2) == 694_659_840


def test_config_folder_is_complete_for_diffusers(tmp_path):
    folder = single_file.config_folder("sdxl", tmp_path / "sdxl")
    index = json.loads((folder / "model_index.json").read_text())
    for name, value in index.items():
        if isinstance(value, list) and value[0] is not None:
            assert (folder / name).is_dir(), name
    assert (folder / "tokenizer_2" / "vocab.json").is_file()
