"""Loading models: clear one-line errors naming the file, pickles refused, built-in default."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from desktop_app.document.job import EngineError


@pytest.fixture
def engine():
    from desktop_app.engine import Engine

    return Engine(device="cpu")


@pytest.fixture
def sd_copy(tiny_sd, tmp_path):
    """A private copy the test may break."""
    return shutil.copytree(tiny_sd, tmp_path / "model")


def test_a_folder_loads_once_and_stays_loaded(engine, tiny_sd):
    info = engine.load(tiny_sd)
    assert info.family == "sd1" and info.name == tiny_sd.name
    unet = engine._model.pipe.unet
    assert engine.load(tiny_sd) is info and engine._model.pipe.unet is unet


def test_missing_folder_names_it(engine, tmp_path):
    with pytest.raises(EngineError, match="nowhere: no such file or folder"):
        engine.load(tmp_path / "nowhere")


def test_a_folder_that_is_not_a_model(engine, tmp_path):
    with pytest.raises(EngineError, match="no model_index.json"):
        engine.load(tmp_path)


def test_missing_component_names_the_folder(engine, sd_copy):
    shutil.rmtree(sd_copy / "vae")
    with pytest.raises(EngineError, match=r"vae: component folder missing"):
        engine.load(sd_copy)


def test_corrupt_safetensors_names_the_file(engine, sd_copy):
    weights = next((sd_copy / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])  # a truncated download
    with pytest.raises(EngineError, match=rf"{weights.name}: not a valid .safetensors file"):
        engine.load(sd_copy)


def test_a_tokenizer_folder_without_its_vocabulary_is_refused_before_loading(engine, sd_copy):
    # transformers made an empty tokenizer of it: the model "loaded", then every job failed
    # with "unexpected OverflowError: int too big to convert".
    for f in (sd_copy / "tokenizer").iterdir():
        f.unlink()
    with pytest.raises(EngineError, match=r"tokenizer: no tokenizer vocabulary \(tokenizer.json"):
        engine.load(sd_copy)


@pytest.mark.parametrize("make", [
    lambda weights: (weights.unlink(), weights.mkdir()),
    pytest.param(lambda weights: weights.chmod(0), marks=pytest.mark.skipif(
        os.geteuid() == 0, reason="root reads any file")),
])
def test_weights_that_cannot_be_read_say_so(engine, sd_copy, make):
    # safetensors calls every file it cannot open "No such file or directory" (or "No such
    # device"): a file you can see was reported as missing, or as not valid.
    weights = next((sd_copy / "unet").glob("*.safetensors"))
    make(weights)
    with pytest.raises(EngineError, match=rf"{weights.name}: cannot read the file \((Is a "
                                          r"directory|Permission denied)\)"):
        engine.load(sd_copy)


def test_unreadable_config_names_the_file(engine, sd_copy):
    (sd_copy / "unet" / "config.json").write_text("{not json")
    with pytest.raises(EngineError, match=r"unet/config.json: unreadable JSON"):
        engine.load(sd_copy)


@pytest.mark.parametrize("edit, expected", [
    # Both used to end as "unexpected IndexError" / diffusers' "KeyError: '_class_name'".
    (lambda index: index.update(unet=[]), r"model_index.json: unet: expected \[library, class\]"),
    (lambda index: index.pop("_class_name"), r"model_index.json: no \"_class_name\""),
    # Was "a StableDiffusionPipeline model, which has no UNet (a diffusion transformer?)".
    (lambda index: [index.pop(k) for k in list(index) if not k.startswith("_")],
     r"model_index.json: lists no components \(unet, vae, ...\): an incomplete model folder"),
])
def test_a_broken_model_index_names_the_entry(engine, sd_copy, edit, expected):
    import json

    index = json.loads((sd_copy / "model_index.json").read_text())
    edit(index)
    (sd_copy / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(EngineError, match=expected):
        engine.load(sd_copy)


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin"])
def test_pickle_files_are_refused_with_a_conversion_hint(engine, tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"not even opened")
    with pytest.raises(EngineError) as err:
        engine.load(path)
    message = str(err.value)
    assert path.name in message and "arbitrary code" in message and "safetensors" in message


def test_a_diffusers_folder_with_pickled_weights_is_refused(engine, sd_copy):
    weights = next((sd_copy / "vae").glob("*.safetensors"))
    weights.rename(sd_copy / "vae" / "diffusion_pytorch_model.bin")
    with pytest.raises(EngineError, match="diffusion_pytorch_model.bin: refusing"):
        engine.load(sd_copy)


def test_a_file_of_another_kind_is_refused(engine, tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG")
    with pytest.raises(EngineError, match="photo.png: not a model"):
        engine.load(path)


def test_builtin_model_defaults_to_dc_model(engine, tiny_builtin, monkeypatch):
    monkeypatch.setenv("DC_MODEL", str(tiny_builtin))
    info = engine.load()
    assert info.family == "builtin" and info.inpaint_channels == 9


def test_missing_builtin_model_is_a_clear_error(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("DC_MODEL", str(tmp_path / "builtin"))
    with pytest.raises(EngineError, match="built-in model is not installed"):
        engine.load()


def test_builtin_path_is_models_builtin_in_the_repo(monkeypatch):
    import desktop_app
    from desktop_app.engine.loading import builtin_path

    monkeypatch.delenv("DC_MODEL", raising=False)
    from pathlib import Path

    repo = Path(desktop_app.__file__).resolve().parents[1]
    assert builtin_path() == repo / "models" / "builtin"


def test_device_choice():
    import torch

    from desktop_app.engine.loading import choose_device

    assert choose_device("cpu") == (torch.device("cpu"), torch.float32)
    assert choose_device("cpu", "bfloat16") == (torch.device("cpu"), torch.bfloat16)
    device, dtype = choose_device("auto")
    if not torch.cuda.is_available():
        assert device.type in ("cpu", "mps") and dtype == torch.float32
    with pytest.raises(EngineError, match="unknown device"):
        choose_device("tpu")
    with pytest.raises(EngineError, match="unknown dtype"):
        choose_device("cpu", "int3")
    with pytest.raises(EngineError, match="unknown device 'cuda:x'"):
        choose_device("cuda:x")
    if not (torch.backends.mps.is_available() or torch.cuda.is_available()):
        # Both used to get past here and fail later as an "unexpected RuntimeError".
        with pytest.raises(EngineError, match="'mps' was asked for but Apple MPS is not"):
            choose_device("mps")
        with pytest.raises(EngineError, match="no CUDA GPU"):
            choose_device("cuda:1")


def test_run_without_a_model_is_an_engine_error(engine):
    from desktop_app.document.job import JobKind, JobRequest

    with pytest.raises(EngineError, match="no model is loaded"):
        engine.run(JobRequest(kind=JobKind.TEXT_TO_IMAGE, prompt="x", width=64, height=64))


def test_a_wrong_file_keeps_the_loaded_model(engine, tiny_sd, tmp_path):
    from desktop_app.document.job import JobKind, JobRequest

    engine.load(tiny_sd)
    bad = tmp_path / "model.ckpt"
    bad.write_bytes(b"x")
    with pytest.raises(EngineError):
        engine.load(bad)
    assert engine.model_info.name == tiny_sd.name
    req = JobRequest(kind=JobKind.TEXT_TO_IMAGE, prompt="x", width=64, height=64, steps=2)
    assert engine.run(req).image.shape == (64, 64, 3)


def test_a_broken_latent_rgb_json_names_the_file(engine, tiny_builtin, tmp_path):
    model = shutil.copytree(tiny_builtin, tmp_path / "builtin")
    (model / "latent_rgb.json").write_text('{"matrix": [[1, 2]]}')
    with pytest.raises(EngineError, match="latent_rgb.json: not a valid latent->RGB file"):
        engine.load(model)


def test_a_folder_with_only_fp16_variant_weights_loads(engine, sd_copy):
    for weights in sd_copy.glob("*/*.safetensors"):
        weights.rename(weights.with_name(weights.stem + ".fp16.safetensors"))
    assert engine.load(sd_copy).family == "sd1"


def test_a_model_folder_can_recommend_its_guidance_scale(engine, sd_copy, tiny_builtin):
    assert engine.load(tiny_builtin).default_cfg is None  # says nothing: the generic 7.5
    assert engine.model_info.cfg_scale() == 7.5
    assert engine.model_info.region_strength() == 1.0  # eDiff-I's generic w
    (sd_copy / "generation_defaults.json").write_text('{"cfg_scale": 4}')
    info = engine.load(sd_copy)
    assert (info.default_cfg, info.cfg_scale()) == (4.0, 4.0)
    assert info.region_strength() == 1.0


def test_a_model_folder_can_recommend_its_region_strength(engine, sd_copy):
    (sd_copy / "generation_defaults.json").write_text('{"region_strength": 6.5}')
    info = engine.load(sd_copy)
    assert (info.default_region_strength, info.region_strength()) == (6.5, 6.5)
    assert info.cfg_scale() == 7.5  # says nothing about guidance


@pytest.mark.parametrize("text, why", [
    ('{"cfg_scale": "high"}', "cfg_scale: expected a number from 0 to 30, got 'high'"),
    ('{"cfg_scale": 99}', "cfg_scale: expected a number from 0 to 30, got 99"),
    ('{"cfg_scale": 4, "region_strength": 50}',
     "region_strength: expected a number from 0 to 10, got 50"),
    ('{"region_strength": true}', "region_strength: expected a number from 0 to 10, got True"),
    ("[4]", "not a valid defaults file"),
    ("{", "not a valid defaults file"),
])
def test_a_broken_defaults_file_names_it_and_keeps_the_loaded_model(engine, sd_copy, tiny_builtin,
                                                                    text, why):
    engine.load(tiny_builtin)
    (sd_copy / "generation_defaults.json").write_text(text)
    with pytest.raises(EngineError, match="generation_defaults.json: " + why):
        engine.load(sd_copy)
    assert engine.model_info.path == str(tiny_builtin)


def test_a_folder_whose_vae_alone_ships_fp16_variant_weights_loads(engine, sd_copy):
    # The variant was read from unet/ only: a plain UNet with an fp16-only VAE did not load.
    weights = next((sd_copy / "vae").glob("*.safetensors"))
    weights.rename(weights.with_name(weights.stem + ".fp16.safetensors"))
    assert engine.load(sd_copy).family == "sd1"


def test_a_part_of_a_model_folder_names_the_folder_to_choose(engine, sd_copy, tmp_path):
    with pytest.raises(EngineError, match=rf"it is the 'unet' part of the model folder {sd_copy}"):
        engine.load(sd_copy / "unet")
    with pytest.raises(EngineError, match=rf"one weights file of the diffusers model folder "
                                          rf"{sd_copy}: choose that folder"):
        engine.load(next((sd_copy / "unet").glob("*.safetensors")))
    with pytest.raises(EngineError, match=rf"it holds model folders: choose one of {sd_copy}"):
        engine.load(tmp_path)  # the folder the model folder is in


def test_a_single_file_beside_model_index_is_a_checkpoint(sd_copy, tiny_sd_single_file):
    from desktop_app.engine.loading import check_model

    # Hub repos (SD 1.5, SDXL) ship whole single-file checkpoints at the model folder's top.
    check_model(Path(shutil.copy(tiny_sd_single_file, sd_copy / "v1-5.safetensors")))


def test_a_folder_of_hugging_face_cache_snapshots_names_them(engine, tmp_path):
    snapshot = tmp_path / "models--org--name" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    with pytest.raises(EngineError, match=rf"choose one of {snapshot}"):
        engine.load(tmp_path / "models--org--name")


@pytest.mark.parametrize("channels", [5, 8])
def test_a_unet_with_extra_image_inputs_is_refused_before_loading(engine, sd_copy, channels):
    # instruct-pix2pix (8) and depth (5) UNets loaded, then failed mid-job with a RuntimeError.
    import json

    config = json.loads((sd_copy / "unet" / "config.json").read_text())
    (sd_copy / "unet" / "config.json").write_text(json.dumps(dict(config, in_channels=channels)))
    with pytest.raises(EngineError, match=rf"unet/config.json: a UNet with {channels} input "
                                          "channels"):
        engine.load(sd_copy)


def test_a_symlink_loop_is_named(engine, tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(EngineError, match="a: a symbolic link that loops back on itself"):
        engine.load(tmp_path / "a")  # was an unexpected RuntimeError


@pytest.mark.parametrize("sample_size, size", [(33, 64), ([32, 48], 96)])
def test_the_default_size_is_a_multiple_of_8(engine, sd_copy, sample_size, size):
    # 33 x VAE factor 2 gave 66, which every default-size request then refused; a [h, w] sample
    # size was a TypeError.
    import json

    config = json.loads((sd_copy / "unet" / "config.json").read_text())
    (sd_copy / "unet" / "config.json").write_text(
        json.dumps(dict(config, sample_size=sample_size)))
    assert engine.load(sd_copy).default_size == size


def test_a_model_without_a_unet_is_named_and_refused(engine, sd_copy):
    # An SD3 / Flux folder: diffusers failed inside its own code ("TypeError: unsupported
    # operand type(s) for *: 'NoneType' and 'int'").
    import json

    (sd_copy / "unet").rename(sd_copy / "transformer")
    index = json.loads((sd_copy / "model_index.json").read_text())
    index.pop("unet")
    index.update(_class_name="StableDiffusion3Pipeline",
                 transformer=["diffusers", "SD3Transformer2DModel"])
    (sd_copy / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(EngineError, match=r"a StableDiffusion3Pipeline model, which has no UNet.*"
                                          r"runs Stable Diffusion 1.x, 2.x and SDXL"):
        engine.load(sd_copy)


@pytest.mark.parametrize("edit", [
    {"encoder_hid_dim_type": "image_proj", "encoder_hid_dim": 32},  # Kandinsky 2.2 decoder
    {"class_embed_type": "projection", "projection_class_embeddings_input_dim": 64},  # unCLIP
])
def test_a_unet_that_needs_an_image_embedding_is_refused_before_loading(engine, sd_copy, edit):
    import json

    config = json.loads((sd_copy / "unet" / "config.json").read_text())
    (sd_copy / "unet" / "config.json").write_text(json.dumps({**config, **edit}))
    with pytest.raises(EngineError, match=r"unet/config.json: a UNet conditioned on image "
                                          r"embeddings \(StableDiffusionPipeline\)"):
        engine.load(sd_copy)
