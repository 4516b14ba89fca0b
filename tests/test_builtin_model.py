"""The shipped built-in model: its folder, the app end to end on it, and its quality bar.

Thresholds sit just under what was measured for the shipped weights (models/builtin/README.md),
so a regression cannot land. The evaluator is deterministic; seeds are fixed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from desktop_app.training import evaluator, pww_quality, quality, scenes

BUILTIN = Path(__file__).resolve().parents[1] / "models" / "builtin"
pytestmark = pytest.mark.skipif(not (BUILTIN / "unet").is_dir(),
                                reason="models/builtin has no trained UNet yet")

# Measured on the shipped weights (UNet EMA at step 30,000, VAE decoder at step 5000, CFG 4 as the
# model recommends) with exactly these subsets, on one torch thread (the thread count moves a few
# borderline shapes): one object: background 100% (32/32), colour+shape 81% (26/32; 24/32 at
# 29,200, and on 200 prompts 82.5% against 80.0%, on 200 more 79.0% against 80.0%), position 100%
# (32/32), size 100% (32/32), whole scene exactly right (no extra copies) 75% (24/32; 22/32 at
# 29,200); two objects: background 100%, colour and shape of both 44% (7/16, as 29,200);
# inpainting: asked-for object in the mask 62% (10/16; 63.5% on 200), outside pixels bit-exact
# 100%; paint-with-words (16 two-object layouts, at the model's recommended w = 8): see the bars
# below. Bars sit one to four cases under these (more where a 2-thread run can move borderline
# images). Every attribute of both objects is right in 3/16 two-object images, too few for a bar
# that could catch a regression. Raise these as training goes on (the model card has the numbers).
MIN_SINGLE_BACKGROUND = 0.96  # 31/32
MIN_SINGLE_COLOR_SHAPE = 0.68  # 22/32
MIN_SINGLE_POSITION = 0.90  # 29/32
MIN_SINGLE_SIZE = 0.90  # 29/32
MIN_SINGLE_EXACT = 0.65  # 21/32
MIN_TWO_BACKGROUND = 0.93  # 15/16
MIN_TWO_COLOR_SHAPE_BOTH = 0.31  # 5/16
MIN_INPAINT_OBJECT = 0.5  # 8/16
MIN_PWW_BACKGROUND = 0.87  # 14/16
MIN_VAE_RECONSTRUCTION = 0.97  # evaluator on 100 encode/decode round trips (measured 99/100, 35.4 dB)
# At the model's recommended strength (8) with the defaults (words kept in their regions, region
# prompts below sigma 6): measured 26/32 (29,200: 28/32; 28,400 and 26,000: 27/32; 21/32 without
# region prompts on 26,000; on 1,536 objects of eight sets of 96 layouts 30,000 placed 82.1%
# against 29,200's 80.9%), background 16/16.
MIN_PWW_IN_REGION = 0.75  # 24/32 objects
# Two-object prompts with regions read from their position words (Regions > From prompt): every
# attribute of both right in 15/32 (29,200: 13/32; 28,400: 12/32; 26,000: 13/32, its plain
# prompts 3/32), the whole scene exactly right 15/32 (29,200: 13/32); on 200 prompts 30,000 read
# 47% against 16.5% (29,200: 43%; 28,400: 37% against 15%).
MIN_PROMPT_REGIONS_TWO_ALL = 0.34  # 11/32
# Over the same prompts and seeds without a layout: measured +23/32 (26/32 against 3/32; 29,200:
# +22/32, 28 against 6; 28,400: +19/32, 27 against 8; 26,000: +22/32, 27 against 5).
MIN_PWW_GAIN = 0.5  # 16/32


@pytest.fixture(scope="module")
def engine():
    from desktop_app.engine import Engine

    eng = Engine(device="cpu")
    eng.load(None)
    return eng


@pytest.fixture(scope="module")
def generate(engine):
    return quality.generator_for(engine)  # at the guidance scale the app starts from


def test_folder_is_safetensors_only_and_within_budget():
    files = [p for p in BUILTIN.rglob("*") if p.is_file()]
    weights = [p for p in files if p.suffix in (".safetensors", ".bin", ".ckpt", ".pt", ".pth")]
    assert weights and all(p.suffix == ".safetensors" for p in weights)
    assert sum(p.stat().st_size for p in files) <= 100 * 2**20


def test_single_object_quality(generate):
    res = quality.measure(generate, quality.single_cases(32), "single")
    assert res["background"] >= MIN_SINGLE_BACKGROUND
    assert res["color_shape"] >= MIN_SINGLE_COLOR_SHAPE, res
    assert res["position"] >= MIN_SINGLE_POSITION
    assert res["size"] >= MIN_SINGLE_SIZE
    assert res["exact"] >= MIN_SINGLE_EXACT, res


@pytest.mark.parametrize("sampler", ["euler_a", "ddim", "dpmpp_2m"])
def test_every_sampler_draws_the_prompt(generate, sampler):
    # Each sampler builds its scheduler from the model's Euler config; one that misreads it (DDIM
    # clipping latents to [-1, 1] drew noise on 95% of prompts) shows up as wrong colours and
    # backgrounds. Measured 8/8 on both with every sampler.
    res = quality.measure(lambda req: generate(req.replace(sampler=sampler)),
                          quality.single_cases(8), "single", cfg=generate.default_cfg)
    assert res["background"] >= 7 / 8
    assert res["color"] >= 7 / 8


def test_two_object_quality(generate):
    res = quality.measure(generate, quality.two_cases(16), "two")
    assert res["background"] >= MIN_TWO_BACKGROUND
    assert res["color_shape_both"] >= MIN_TWO_COLOR_SHAPE_BOTH


def test_regions_from_the_prompt_bind_each_object_to_its_place(engine, generate):
    from desktop_app.training.compare import with_prompt_regions

    strength = engine.model_info.region_strength()
    res = quality.measure(lambda req: generate(with_prompt_regions(req, strength)),
                          quality.two_cases(32), "two", cfg=generate.default_cfg)
    assert res["all_attributes"] >= MIN_PROMPT_REGIONS_TWO_ALL, res
    assert res["exact"] >= MIN_PROMPT_REGIONS_TWO_ALL, res  # no extra copies either
    assert res["background"] >= MIN_TWO_BACKGROUND


def test_inpainting_keeps_every_pixel_outside_the_mask(generate):
    res = quality.measure(generate, quality.inpaint_cases(16), "inpaint")
    assert res["outside_bit_exact"] == 1.0
    assert res["object_in_mask"] >= MIN_INPAINT_OBJECT


def test_paint_with_words_pulls_objects_into_their_regions(engine):
    # Prompts name two objects without saying where; the layout paints each object's words into a
    # cell. Same prompts and seeds without a layout are the baseline.
    items = pww_quality.cases(16)
    baseline = pww_quality.measure(engine, items, 0.0)
    # At the strength the model recommends, as a new region in the app starts.
    painted = pww_quality.measure(engine, items, engine.model_info.region_strength())
    assert painted["object_in_region"] >= MIN_PWW_IN_REGION
    assert painted["object_in_region"] - baseline["object_in_region"] >= MIN_PWW_GAIN
    assert painted["background"] >= MIN_PWW_BACKGROUND  # the bias does not wreck the image


def test_app_generates_with_the_builtin_model_end_to_end(qtbot):
    import app_helpers

    # Fresh settings (an autouse fixture): like a first run, the app loads the built-in model.
    window = app_helpers.open_real_window(qtbot, None, (256, 256))
    assert window.client.model_info.family == "builtin"
    # The CFG box starts from the scale the model folder recommends, not SD's 7.5.
    recommended = json.loads((BUILTIN / "generation_defaults.json").read_text())["cfg_scale"]
    assert window.panel.cfg.value() == recommended != 7.5
    result, previews = app_helpers.generate_and_wait(
        qtbot, window, "a big red circle in the center on a gray background", 12)
    assert window.doc.image is not None and np.array_equal(window.doc.image, result.image)
    assert previews and previews[-1] == 12
    assert result.image.shape == (256, 256, 3)
    assert result.request.cfg_scale == recommended
    window.close()


def test_vae_reconstructions_read_right():
    # The decoder draws every image the UNet makes; the evaluator must read its round trips of
    # rendered scenes (crisp palette colours, straight edges, small shapes' corners) as the scene.
    from diffusers import AutoencoderKL

    from desktop_app.training import vae_check

    vae = AutoencoderKL.from_pretrained(BUILTIN / "vae").eval()
    acc, psnr = vae_check.reconstruction_accuracy(vae, 100)
    assert acc >= MIN_VAE_RECONSTRUCTION, acc
    assert psnr >= 33.0, psnr


def test_evaluator_agrees_with_rendered_eval_scenes():
    # The quality numbers mean something only if the evaluator reads the target scenes right.
    cases = quality.single_cases(32) + quality.two_cases(16)
    assert all(evaluator.scene_correct(c.scene, evaluator.read(scenes.render(c.scene)))
               for c in cases)
