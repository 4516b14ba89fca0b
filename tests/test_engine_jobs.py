"""The engine runs every job kind on tiny random models shaped like each supported family."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from desktop_app.document.job import JobCancelled, JobKind, JobRequest, Region, RequestError

SIZE = 64
MODELS = ["tiny_sd", "tiny_sd_inpaint", "tiny_sdxl", "tiny_builtin"]


def _init_image() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _mask() -> np.ndarray:
    m = np.zeros((SIZE, SIZE), np.float32)
    m[16:40, 20:52] = 1.0
    return m


def _request(kind: JobKind, **kw) -> JobRequest:
    base = dict(kind=kind, prompt="a red cat on a blue sofa", steps=3, width=SIZE, height=SIZE,
                seed=42, cfg_scale=5.0, strength=0.7)
    if kind is not JobKind.TEXT_TO_IMAGE:
        base["init_image"] = _init_image()
    if kind is JobKind.INPAINT:
        base["mask"] = _mask()
    base.update(kw)
    return JobRequest(**base)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", list(JobKind))
def test_every_job_kind_runs_on_every_model_kind(engine_for, model, kind):
    engine = engine_for(model)
    previews = []
    result = engine.run(_request(kind), job_id=5, on_preview=previews.append)
    assert result.image.shape == (SIZE, SIZE, 3) and result.image.dtype == np.uint8
    assert result.image.std() > 0  # a real decoded picture, not a blank buffer
    assert result.job_id == 5 and result.warnings == ()
    # img2img/inpaint at strength 0.7 over 3 steps denoise int(3 * 0.7) = 2 of them
    total = 3 if kind is JobKind.TEXT_TO_IMAGE else 2
    assert [p.step for p in previews] == list(range(1, total + 1))
    assert all(p.total == total and p.job_id == 5 for p in previews)
    assert all(p.image.dtype == np.uint8 and p.image.ndim == 3 and p.image.shape[2] == 3
               for p in previews)


def test_model_info_describes_each_family(engine_for):
    families = {m: engine_for(m).model_info for m in MODELS}
    assert {m: i.family for m, i in families.items()} == {
        "tiny_sd": "sd1", "tiny_sd_inpaint": "sd1", "tiny_sdxl": "sdxl", "tiny_builtin": "builtin"}
    assert families["tiny_sd"].inpaint_channels == 4
    assert families["tiny_sd_inpaint"].inpaint_channels == 9
    assert families["tiny_builtin"].inpaint_channels == 9
    assert all(i.default_size == SIZE and i.device == "cpu" and i.dtype == "float32"
               for i in families.values())
    assert "lcm" not in families["tiny_sd"].samplers


@pytest.mark.parametrize("sampler", ["euler", "euler_a", "ddim", "dpmpp_2m"])
def test_every_sampler_runs_and_gives_its_own_image(engine_for, sampler):
    engine = engine_for("tiny_sd")
    previews = []
    image = engine.run(_request(JobKind.TEXT_TO_IMAGE, sampler=sampler),
                       on_preview=previews.append).image
    euler = engine.run(_request(JobKind.TEXT_TO_IMAGE, sampler="euler")).image
    assert [p.step for p in previews] == [1, 2, 3]
    if sampler == "ddim":
        # Deterministic DDIM is Euler's method on the same ODE (Karras et al. 2022): on the same
        # timesteps the images agree up to rounding, unless DDIM distorts x0 (it used to clip it).
        assert np.abs(image.astype(int) - euler.astype(int)).max() <= 2
    elif sampler != "euler":
        assert not np.array_equal(image, euler)


def test_lcm_on_a_model_without_lcm_support_is_a_request_error(engine_for):
    with pytest.raises(RequestError, match="LCM"):
        engine_for("tiny_sd").run(_request(JobKind.TEXT_TO_IMAGE, sampler="lcm"))


@pytest.mark.parametrize("model", ["tiny_sd", "tiny_sdxl", "tiny_builtin"])
def test_same_request_and_seed_gives_bit_identical_images(engine_for, model):
    engine = engine_for(model)
    req = _request(JobKind.TEXT_TO_IMAGE, sampler="euler_a")  # ancestral: noise every step
    first = engine.run(req).image
    engine.run(req.replace(seed=43))  # something else in between must not leak state
    assert np.array_equal(first, engine.run(req).image)
    assert not np.array_equal(first, engine.run(req.replace(seed=43)).image)


@pytest.mark.parametrize("model", ["tiny_sd", "tiny_sd_inpaint", "tiny_sdxl", "tiny_builtin"])
@pytest.mark.parametrize("only_masked", [False, True])
def test_inpaint_keeps_every_unmasked_pixel_bit_exact(engine_for, model, only_masked):
    req = _request(JobKind.INPAINT, mask_feather=4.0, mask_grow=2,
                   inpaint_only_masked=only_masked, inpaint_padding=4)
    image = engine_for(model).run(req).image
    from desktop_app.document import mask_ops

    soft = mask_ops.prepare(req.mask, 2, 4.0)
    outside = soft == 0
    assert outside.sum() > 1000
    assert np.array_equal(image[outside], req.init_image[outside])
    inside = req.mask > 0
    assert np.abs(image[inside].astype(int) - req.init_image[inside]).mean() > 5


def test_text_to_image_on_a_9_channel_model_ignores_no_pixel(engine_for):
    # An all-ones mask: the whole picture is generated, no black init leaks through.
    image = engine_for("tiny_sd_inpaint").run(_request(JobKind.TEXT_TO_IMAGE)).image
    assert image.mean() > 5


def test_cancel_after_step_k_raises_and_sends_no_more_previews(engine_for):
    engine = engine_for("tiny_sd")
    cancel = threading.Event()
    previews = []

    def on_preview(p):
        previews.append(p)
        if p.step == 2:
            cancel.set()

    with pytest.raises(JobCancelled):
        engine.run(_request(JobKind.TEXT_TO_IMAGE, steps=4), job_id=9, on_preview=on_preview,
                   cancel=cancel)
    assert [p.step for p in previews] == [1, 2]
    # The engine is fine afterwards.
    assert engine.run(_request(JobKind.TEXT_TO_IMAGE)).image.shape == (SIZE, SIZE, 3)


def test_cancel_set_before_the_job_starts(engine_for):
    cancel = threading.Event()
    cancel.set()
    previews = []
    with pytest.raises(JobCancelled):
        engine_for("tiny_sd").run(_request(JobKind.TEXT_TO_IMAGE), on_preview=previews.append,
                                  cancel=cancel)
    assert previews == []


def test_previews_are_throttled_but_the_last_step_always_arrives(engine_for):
    engine = engine_for("tiny_sd")
    engine.preview_max_per_second = 0.001  # one preview per 1000 s
    previews = []
    try:
        engine.run(_request(JobKind.TEXT_TO_IMAGE, steps=4), on_preview=previews.append)
    finally:
        engine.preview_max_per_second = 0
    assert [p.step for p in previews] == [1, 4]


def test_builtin_previews_use_its_latent_rgb_json(engine_for, tiny_builtin):
    import json

    from desktop_app.engine.previews import latent_rgb_for

    projector = latent_rgb_for("builtin", tiny_builtin)
    matrix = json.loads((tiny_builtin / "latent_rgb.json").read_text())["matrix"]
    assert np.allclose(projector.matrix.numpy(), np.array(matrix))
    assert engine_for("tiny_builtin").model_info.preview == "latent_rgb"


@pytest.mark.parametrize("model", ["tiny_sd", "tiny_builtin"])
def test_a_10000_character_prompt_is_truncated_with_a_warning(engine_for, model):
    result = engine_for(model).run(_request(JobKind.TEXT_TO_IMAGE, prompt="cat " * 2500))
    assert result.image.shape == (SIZE, SIZE, 3)
    assert len(result.warnings) == 1 and "the model reads only the first" in result.warnings[0]


@pytest.mark.parametrize("steps", [0, -3])
def test_zero_or_negative_steps_is_a_request_error(engine_for, steps):
    with pytest.raises(RequestError, match="steps"):
        engine_for("tiny_sd").run(_request(JobKind.TEXT_TO_IMAGE, steps=steps))


def test_too_few_steps_for_the_strength_is_a_request_error(engine_for):
    with pytest.raises(RequestError, match="strength"):
        engine_for("tiny_sd").run(_request(JobKind.IMAGE_TO_IMAGE, steps=1, strength=0.5))


def test_mask_of_another_size_is_a_request_error(engine_for):
    with pytest.raises(RequestError, match="mask is 32x32"):
        engine_for("tiny_sd").run(_request(JobKind.INPAINT, mask=np.ones((32, 32), np.float32)))


def test_mask_shrunk_to_nothing_is_a_request_error(engine_for):
    with pytest.raises(RequestError, match="empty"):
        engine_for("tiny_sd").run(_request(JobKind.INPAINT, mask_grow=-20))


@pytest.mark.parametrize("strength", [float("nan"), float("inf"), 1e308, -1.0])
def test_a_region_strength_out_of_range_is_a_request_error(engine_for, strength):
    # 1e308 used to overflow the attention scores and come back as an all-black image.
    region = Region("red cat", np.ones((SIZE, SIZE), np.float32), strength)
    with pytest.raises(RequestError, match=r"region 1 \('red cat'\) strength must be from 0 to 10"):
        engine_for("tiny_sd").run(_request(JobKind.TEXT_TO_IMAGE, regions=(region,)))


def test_regions_run_paint_with_words_and_report_adherence(engine_for):
    region = np.zeros((SIZE, SIZE), np.float32)
    region[:, :32] = 1.0
    req = _request(JobKind.TEXT_TO_IMAGE, regions=(Region(words="red cat", mask=region),))
    previews = []
    result = engine_for("tiny_sd").run(req, on_preview=previews.append, attention_maps=True)
    plain = engine_for("tiny_sd").run(req.replace(regions=()))
    assert len(result.region_adherence) == 1 and 0.0 <= result.region_adherence[0] <= 1.0
    assert not np.array_equal(result.image, plain.image)  # the bias changed the picture
    assert previews[-1].attention and all(
        m.dtype == np.float32 for m in previews[-1].attention.values())


@pytest.mark.parametrize("message", [
    "CUDA out of memory. Tried to allocate 2.00 GiB",
    "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried "
    "to allocate 10737418240 bytes",
])
def test_out_of_memory_becomes_an_engine_error_with_advice(engine_for, monkeypatch, message):
    from desktop_app.document.job import EngineError

    engine = engine_for("tiny_sd")
    pipe = engine._pipeline("txt2img")

    def explode(**kwargs):
        raise RuntimeError(message)

    monkeypatch.setattr(type(pipe), "__call__", lambda self, **kw: explode(**kw))
    with pytest.raises(EngineError, match="out of memory at 64x64.*smaller size"):
        engine.run(_request(JobKind.TEXT_TO_IMAGE))
    monkeypatch.undo()
    assert engine.run(_request(JobKind.TEXT_TO_IMAGE)).image.shape == (SIZE, SIZE, 3)


def test_lcm_runs_on_a_model_that_supports_it(tmp_path):
    import tiny_models

    from desktop_app.engine import Engine

    engine = Engine(device="cpu")
    info = engine.load(tiny_models.build_tiny_lcm(tmp_path / "lcm"))
    assert "lcm" in info.samplers
    previews = []
    engine.preview_max_per_second = 0
    image = engine.run(_request(JobKind.TEXT_TO_IMAGE, sampler="lcm", cfg_scale=1.5),
                       on_preview=previews.append).image
    assert image.shape == (SIZE, SIZE, 3) and [p.step for p in previews] == [1, 2, 3]


_LEFT_HALF = np.zeros((SIZE, SIZE), np.float32)
_LEFT_HALF[:, :SIZE // 2] = 1.0
_RED_CAT_LEFT = (Region(words="red cat", mask=_LEFT_HALF, strength=4.0),)


def _engine_with_scheduler(tiny_sd, tmp_path, **changes):
    """An engine on a copy of the tiny SD whose scheduler config has these changes."""
    import json
    import shutil

    from desktop_app.engine import Engine

    model = shutil.copytree(tiny_sd, tmp_path / "model")
    path = model / "scheduler" / "scheduler_config.json"
    config = dict(json.loads(path.read_text()), **changes)
    path.write_text(json.dumps(config))
    engine = Engine(device="cpu")
    engine.load(model)
    return engine, config


def test_ddim_with_regions_on_a_zero_terminal_snr_model(tiny_sd, tmp_path):
    # A "ztsnr" v-prediction model: DDIM's schedule has alpha_bar = 0 at its first timestep, and
    # reading the noise level there for paint-with-words divided by zero.
    engine, _ = _engine_with_scheduler(tiny_sd, tmp_path, prediction_type="v_prediction",
                                       rescale_betas_zero_snr=True, timestep_spacing="trailing")
    req = _request(JobKind.TEXT_TO_IMAGE, sampler="ddim", regions=_RED_CAT_LEFT)
    result = engine.run(req, attention_maps=True)
    assert result.image.std() > 0 and np.isfinite(result.region_adherence).all()


@pytest.mark.parametrize("scheduler_extra", [
    {},  # discrete timesteps: unchanged
    # Continuous timesteps: Euler hands the UNet 0.25·log σ, not a 0-999 index, and reading that
    # as an index gave regions a noise level near 0, so almost no bias at any step.
    {"timestep_type": "continuous", "prediction_type": "v_prediction"},
    {"use_karras_sigmas": True},
], ids=["discrete", "continuous", "karras"])
def test_regions_see_the_noise_level_the_sampler_uses(tiny_sd, tmp_path, monkeypatch,
                                                      scheduler_extra):
    import diffusers

    from desktop_app.engine.pww import PaintWithWords

    seen = []
    original = PaintWithWords.set_sigma
    monkeypatch.setattr(PaintWithWords, "set_sigma",
                        lambda self, sigma: (seen.append(sigma), original(self, sigma)))
    engine, config = _engine_with_scheduler(tiny_sd, tmp_path, **scheduler_extra)
    req = _request(JobKind.TEXT_TO_IMAGE, sampler="euler", regions=_RED_CAT_LEFT)
    engine.run(req)
    reference = diffusers.EulerDiscreteScheduler.from_config(config)
    reference.set_timesteps(req.steps)
    expected = [float(s) for s in reference.sigmas[:req.steps]]
    assert seen == pytest.approx(expected, rel=1e-4) and max(seen) > 1.0


def test_a_local_taesd_folder_is_used_for_previews(tiny_sd, tmp_path):
    import shutil

    import tiny_models

    from desktop_app.engine import Engine

    model = shutil.copytree(tiny_sd, tmp_path / "with_taesd")
    tiny_models.save_tiny_taesd(model / "taesd")
    engine = Engine(device="cpu")
    engine.preview_max_per_second = 0
    assert engine.load(model).preview == "taesd"
    previews = []
    engine.run(_request(JobKind.TEXT_TO_IMAGE), on_preview=previews.append)
    latent = SIZE // 2
    assert len(previews) == 3 and previews[0].image.shape[0] > latent  # decoded, not projected


def test_inpaint_only_masked_works_on_a_crop_at_model_resolution(engine_for):
    big = 128  # twice the tiny model's size; the mask covers a small corner
    rng = np.random.default_rng(1)
    init = rng.integers(0, 256, (big, big, 3), dtype=np.uint8)
    mask = np.zeros((big, big), np.float32)
    mask[8:24, 8:24] = 1
    req = _request(JobKind.INPAINT, width=big, height=big, init_image=init, mask=mask,
                   inpaint_only_masked=True, inpaint_padding=8)
    previews = []
    result = engine_for("tiny_sd_inpaint").run(req, on_preview=previews.append)
    assert result.image.shape == (big, big, 3)
    assert previews[-1].image.shape == (SIZE // 2, SIZE // 2, 3)  # latent of a 64 px crop
    assert np.array_equal(result.image[mask == 0], init[mask == 0])
    assert not np.array_equal(result.image[mask > 0], init[mask > 0])


@pytest.mark.parametrize("model", ["tiny_sdxl", "tiny_builtin", "tiny_sd_inpaint"])
def test_paint_with_words_runs_on_other_model_kinds(engine_for, model):
    region = np.zeros((SIZE, SIZE), np.float32)
    region[32:, :] = 1.0
    req = _request(JobKind.INPAINT, regions=(Region(words="blue sofa", mask=region),))
    result = engine_for(model).run(req, attention_maps=True)
    assert len(result.region_adherence) == 1
    assert np.array_equal(result.image[req.mask == 0], req.init_image[req.mask == 0])


@pytest.mark.parametrize("sampler", ["euler_a", "dpmpp_2m"])
def test_preview_hooks_do_not_change_what_diffusers_computes(engine_for, tiny_sd, sampler):
    """The engine (with its x0/sigma hooks and previews) matches a plain diffusers run."""
    import torch
    from diffusers import StableDiffusionPipeline

    from desktop_app.engine.samplers import make_scheduler

    req = _request(JobKind.TEXT_TO_IMAGE, sampler=sampler)
    ours = engine_for("tiny_sd").run(req, on_preview=lambda p: None).image
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = make_scheduler(sampler, dict(pipe.scheduler.config), pipe.unet.config)
    plain = pipe(req.prompt, num_inference_steps=req.steps, guidance_scale=req.cfg_scale,
                 width=SIZE, height=SIZE, generator=torch.Generator("cpu").manual_seed(req.seed),
                 output_type="np").images[0]
    plain = (plain * 255).round().astype(np.uint8)
    assert np.abs(ours.astype(int) - plain).max() <= 1  # only the last rounding may differ


def test_cancel_during_the_final_decode_delivers_nothing(engine_for, monkeypatch):
    engine = engine_for("tiny_sd")
    cancel = threading.Event()
    decode = engine._decode

    def slow_decode(pipe, latents):
        cancel.set()  # the user presses Cancel while the VAE decodes
        return decode(pipe, latents)

    monkeypatch.setattr(engine, "_decode", slow_decode)
    with pytest.raises(JobCancelled):
        engine.run(_request(JobKind.TEXT_TO_IMAGE), cancel=cancel)


@pytest.mark.parametrize("model", ["tiny_sd", "tiny_sd_inpaint", "tiny_builtin"])
@pytest.mark.parametrize("kind", list(JobKind))
def test_an_odd_sized_canvas_comes_back_at_its_own_size(engine_for, model, kind):
    # 61x45 is no multiple of 8: the job runs padded to 64x48 and is cropped back.
    w, h = 61, 45
    req = _request(kind, width=w, height=h)
    if req.init_image is not None:
        req = req.replace(init_image=np.ascontiguousarray(req.init_image[:h, :w]))
    if req.mask is not None:
        req = req.replace(mask=np.ascontiguousarray(req.mask[:h, :w]))
    result = engine_for(model).run(req)
    assert result.image.shape == (h, w, 3) and result.image.std() > 0
    if kind is JobKind.INPAINT:
        outside = req.mask == 0
        assert np.array_equal(result.image[outside], req.init_image[outside])
        assert np.abs(result.image[~outside].astype(int) - req.init_image[~outside]).mean() > 5


def test_an_odd_sized_job_pads_by_repeating_the_last_row_and_column():
    from desktop_app.engine import jobs

    w, h = 13, 10
    img = np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)
    mask = np.zeros((h, w), np.float32)
    mask[:, -1] = 1.0  # touches the right edge: the repaint reaches into the padding
    region = np.zeros((h, w), np.float32)
    region[-1, :] = 1.0
    req = JobRequest(kind=JobKind.INPAINT, prompt="p", width=w, height=h, init_image=img,
                     mask=mask, regions=(Region("p", region),))
    work = jobs.plan(req, inpaint_channels=4, default_size=64)
    assert (work.width, work.height) == (16, 16)
    assert np.array_equal(work.init[:h, :w], img)
    assert np.array_equal(work.init[:h, w:], np.repeat(img[:, -1:], 3, axis=1))
    assert np.array_equal(work.init[h:, :w], np.repeat(img[-1:], 6, axis=0))
    assert work.mask[:h, w:].all() and not work.mask[h:, :w - 1].any()
    assert work.regions[0].mask[h:, :].all() and not work.regions[0].mask[:h - 1].any()
    generated = np.zeros((16, 16, 3), np.uint8)
    generated[:h, :w] = 200
    out = jobs.finish(req, work, generated)
    assert out.shape == (h, w, 3)
    assert np.array_equal(out[:, :-1], img[:, :-1]) and (out[:, -1] == 200).all()


def test_paint_with_words_on_an_odd_sized_canvas(engine_for):
    w, h = 61, 45
    region = np.zeros((h, w), np.float32)
    region[:, :30] = 1.0
    req = _request(JobKind.TEXT_TO_IMAGE, width=w, height=h,
                   regions=(Region(words="red cat", mask=region),))
    result = engine_for("tiny_sd").run(req)
    assert result.image.shape == (h, w, 3) and len(result.region_adherence) == 1
