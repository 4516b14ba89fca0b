"""Paint-with-words on a tiny random UNet: where the bias lands, how big it is, what stays
untouched, and the attention maps / adherence read back from the conditional pass."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from desktop_app.document.job import Region
from desktop_app.engine.attention_maps import PwwAttnProcessor, project
from desktop_app.engine.pww import PaintWithWords

CLIP_DIR = Path(__file__).parent / "fixtures" / "clip_tokenizer"
PROMPT = "a red circle and a blue square"
LATENT = 16  # cross-attention at 16x16 and 8x8
RED = [2, 3]  # token positions of "red circle" (BOS at 0)


def make_unet(in_channels: int = 4):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=LATENT,
        in_channels=in_channels, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32).eval()


@pytest.fixture(scope="module")
def unet():
    return make_unet()


@pytest.fixture(scope="module")
def clip():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(CLIP_DIR)


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 4, LATENT, LATENT, generator=g), torch.randn(2, 77, 32, generator=g)


def left_half(size: int = LATENT * 8) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    m[:, : size // 2] = 1
    return m


def run(unet, x, e) -> torch.Tensor:
    with torch.no_grad():
        return unet(x, 500, e).sample


def attn2(unet, level_n: int):
    """The first cross-attention module working at a given sequence length."""
    names = {64: "down_blocks.1.attentions.0.transformer_blocks.0.attn2",
             256: "down_blocks.0.attentions.0.transformer_blocks.0.attn2"}
    return unet.get_submodule(names[level_n])


def test_no_regions_with_maps_is_bit_identical_and_restored(unet, clip, inputs):
    before = dict(unet.attn_processors)
    stock = run(unet, *inputs)
    pww = PaintWithWords(unet, [clip], PROMPT, (), (LATENT, LATENT), collect_attention=True)
    with pww:
        installed = unet.attn_processors
        pww.set_sigma(14.0)
        out = run(unet, *inputs)
    assert torch.equal(out, stock)
    ours = {n for n, p in installed.items() if isinstance(p, PwwAttnProcessor)}
    assert ours == {n for n in installed if ".attn2." in n} and len(ours) == 7
    after = unet.attn_processors
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)
    assert set(pww.attention_maps()) == {"a", "red", "circle", "and", "blue", "square"}


def test_no_regions_no_maps_installs_nothing(unet, clip, inputs):
    before = dict(unet.attn_processors)
    with PaintWithWords(unet, [clip], PROMPT, (), (LATENT, LATENT)) as pww:
        during = unet.attn_processors
        assert pww.attention_maps() == {}
    assert all(during[k] is before[k] for k in before)


def test_processors_restored_after_an_exception(unet, clip):
    before = dict(unet.attn_processors)
    with pytest.raises(RuntimeError), \
            PaintWithWords(unet, [clip], PROMPT, (Region("red", left_half()),), (LATENT, LATENT)):
        raise RuntimeError("cancelled")
    after = unet.attn_processors
    assert all(after[k] is before[k] for k in before)


@pytest.mark.parametrize("n", [256, 64])
def test_bias_changes_only_region_pixels_of_the_conditional_half(unet, clip, n):
    attn = attn2(unet, n)
    side = int(math.isqrt(n))
    g = torch.Generator().manual_seed(2)
    hs = torch.randn(2, n, attn.to_q.in_features, generator=g)
    e = torch.randn(2, 77, 32, generator=g)
    stock = attn.processor
    pww = PaintWithWords(unet, [clip], PROMPT, (Region("red circle", left_half(), 2.0),),
                         (LATENT, LATENT))
    pww.set_sigma(10.0)
    with torch.no_grad():
        ref = stock(attn, hs, e)
        out = PwwAttnProcessor(pww, stock)(attn, hs, e)
    changed = (out - ref).abs().amax(dim=-1).reshape(2, side, side)
    assert torch.equal(out[0], ref[0])  # unconditional half: untouched
    assert changed[1, :, : side // 2].min() > 1e-4  # every pixel inside moved
    assert changed[1, :, side // 2:].max() < 1e-5  # no pixel outside did


def probs_pair(unet, clip, regions, mode="max", sigma=5.0):
    attn = attn2(unet, 256)
    g = torch.Generator().manual_seed(3)
    hs = torch.randn(1, 256, attn.to_q.in_features, generator=g)
    e = torch.randn(1, 77, 32, generator=g)
    pww = PaintWithWords(unet, [clip], PROMPT, regions, (LATENT, LATENT), mode=mode,
                         do_cfg=False)
    pww.set_sigma(sigma)
    with torch.no_grad():
        q, k, _ = project(attn, hs, e, None)
        scores = (q @ k.transpose(-1, -2)) * attn.scale
        biased = pww.cond_probs(q, k, attn.scale)
    return scores, scores.softmax(-1), biased


@pytest.mark.parametrize("mode", ["max", "std", "std_sigma2"])
def test_bias_size_follows_the_published_formula(unet, clip, mode):
    strength, sigma = 1.5, 5.0
    scores, plain, biased = probs_pair(unet, clip, (Region("red circle", left_half(), strength),),
                                       mode, sigma)
    # Softmax is shift-invariant: the log-ratio of probabilities recovers the added bias.
    shift = torch.log(biased / plain)
    shift = shift - shift[..., :1]  # relative to BOS, which no region owns
    stat = scores.amax() if mode == "max" else scores.std()
    sig = math.log1p(sigma ** 2 if mode == "std_sigma2" else sigma)
    expected = 0.1 * strength * sig * float(stat)
    inside = shift[0, :, :].reshape(8, 16, 16, 77)[:, :, :8]
    outside = shift[0].reshape(8, 16, 16, 77)[:, :, 8:]
    assert torch.allclose(inside[..., RED], torch.full_like(inside[..., RED], expected), atol=1e-4)
    others = [t for t in range(77) if t not in RED]
    assert inside[..., others].abs().max() < 1e-4
    assert outside.abs().max() < 1e-4


def test_overlapping_regions_add(unet, clip):
    top = np.zeros((128, 128), np.float32)
    top[:64] = 1
    regions = (Region("red circle", left_half(), 1.0), Region("red", top, 2.0),
               Region("blue square", top, 1.0))
    scores, plain, biased = probs_pair(unet, clip, regions)
    shift = torch.log(biased / plain)
    shift = (shift - shift[..., :1])[0].reshape(8, 16, 16, 77)
    unit = 0.1 * math.log1p(5.0) * float(scores.amax())
    red, circle, blue = 2, 3, 6
    assert shift[:, 2, 2, red].mean() == pytest.approx(3 * unit, rel=1e-4)  # top-left: 1 + 2
    assert shift[:, 2, 2, circle].mean() == pytest.approx(unit, rel=1e-4)
    assert shift[:, 2, 12, red].mean() == pytest.approx(2 * unit, rel=1e-4)  # top-right
    assert shift[:, 12, 2, blue].abs().max() < 1e-4  # bottom-left: not in "blue square"


def test_outside_suppression_pushes_words_away_from_outside_their_regions(unet, clip):
    top = np.zeros((128, 128), np.float32)
    top[:64] = 1
    regions = (Region("red circle", left_half(), 1.0), Region("red", top, 2.0))
    attn = attn2(unet, 256)
    g = torch.Generator().manual_seed(3)
    hs = torch.randn(1, 256, attn.to_q.in_features, generator=g)
    e = torch.randn(1, 77, 32, generator=g)
    shifts = {}
    for outside in (0.0, 0.5):
        pww = PaintWithWords(unet, [clip], PROMPT, regions, (LATENT, LATENT), do_cfg=False,
                             outside=outside)
        pww.set_sigma(5.0)
        with torch.no_grad():
            q, k, _ = project(attn, hs, e, None)
            scores = (q @ k.transpose(-1, -2)) * attn.scale
            shift = torch.log(pww.cond_probs(q, k, attn.scale) / scores.softmax(-1))
        shifts[outside] = (shift - shift[..., :1])[0].reshape(8, 16, 16, 77)
    unit = 0.1 * math.log1p(5.0) * float(scores.amax())
    red, circle, blue = 2, 3, 6
    s = shifts[0.5]
    # Inside a token's regions the bias is the same as without suppression.
    assert torch.allclose(s[:, :8, :8], shifts[0.0][:, :8, :8], atol=1e-4)
    assert s[:, 12, 2, red].mean() == pytest.approx(unit, rel=1e-4)  # bottom-left: "red circle"
    # Outside all of a token's regions: minus 0.5 x its strongest region's strength.
    assert s[:, 12, 12, red].mean() == pytest.approx(-0.5 * 2 * unit, rel=1e-4)
    assert s[:, 2, 12, circle].mean() == pytest.approx(-0.5 * unit, rel=1e-4)
    assert s[:, 12, 12, circle].mean() == pytest.approx(-0.5 * unit, rel=1e-4)
    assert s[..., blue].abs().max() < 1e-4  # a word no region owns is left alone
    assert shifts[0.0][:, 12, 12, [red, circle]].abs().max() < 1e-4


def test_unet_output_only_conditional_half_changes(unet, clip, inputs):
    stock = run(unet, *inputs)
    pww = PaintWithWords(unet, [clip], PROMPT, (Region("red circle", left_half(), 1.0),),
                         (LATENT, LATENT))
    with pww:
        pww.set_sigma(0.0)  # log(1 + 0) = 0: the end of the schedule has no bias
        at_zero = run(unet, *inputs)
        pww.set_sigma(14.6)
        biased = run(unet, *inputs)
    assert torch.allclose(at_zero, stock, atol=1e-5)
    assert torch.allclose(biased[0], stock[0], atol=1e-6)
    assert (biased[1] - stock[1]).abs().max() > 1e-3


def test_without_cfg_the_whole_batch_is_conditional(unet, clip, inputs):
    stock = run(unet, *inputs)
    pww = PaintWithWords(unet, [clip], PROMPT, (Region("red circle", left_half(), 1.0),),
                         (LATENT, LATENT), do_cfg=False)
    with pww:
        pww.set_sigma(14.6)
        out = run(unet, *inputs)
    assert (out[0] - stock[0]).abs().max() > 1e-3
    assert (out[1] - stock[1]).abs().max() > 1e-3


def test_attention_maps_shape_range_and_per_call_reset(unet, clip, inputs):
    x, e = inputs
    pww = PaintWithWords(unet, [clip], PROMPT, (), (LATENT, LATENT), collect_attention=True)
    with pww:
        run(unet, x, e)
        step = pww._collector.step_mean()
        run(unet, x * 0.5, e.flip(0))
        second = pww.attention_maps()
    assert step.shape == (LATENT * LATENT, 77)
    assert np.allclose(step.sum(axis=1), 1.0, atol=1e-5)  # softmax over tokens, per pixel
    for word, m in second.items():
        assert m.shape == (LATENT, LATENT) and m.dtype == np.float32, word
        assert m.min() >= 0 and m.max() == pytest.approx(1.0)
    fresh = PaintWithWords(unet, [clip], PROMPT, (), (LATENT, LATENT), collect_attention=True)
    with fresh:
        run(unet, x * 0.5, e.flip(0))
    for word, m in fresh.attention_maps().items():
        np.testing.assert_allclose(second[word], m, atol=1e-6)  # only the last call counts


def test_half_precision_maps_do_not_overflow(unet, clip):
    # In float16 (CUDA's default) the maps' QKᵀ was taken before scaling by 1/√d: products past
    # 65504 became inf and the maps NaN. Here unscaled ≈ 1e5, scaled ≈ 5e4.
    import copy

    attn = copy.deepcopy(attn2(unet, 256)).half()
    with torch.no_grad():
        attn.to_q.weight.copy_(torch.eye(32) * 158)
        attn.to_k.weight.copy_(torch.eye(32) * 158)
    hs = torch.ones(1, 256, 32, dtype=torch.float16)
    e = (torch.ones(1, 77, 32) * torch.linspace(1, 0.99, 77)[None, :, None]).half()
    pww = PaintWithWords(unet, [clip], PROMPT, (), (LATENT, LATENT), collect_attention=True,
                         do_cfg=False)
    with torch.no_grad():
        PwwAttnProcessor(pww, attn.processor)(attn, hs, e)
    probs = pww._collector.step_mean()
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)


def test_maps_use_the_resolution_nearest_16x16(clip):
    unet = make_unet()
    pww = PaintWithWords(unet, [clip], PROMPT, (), (8, 8), collect_attention=True)
    g = torch.Generator().manual_seed(4)
    with pww:
        run(unet, torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, 32, generator=g))
    assert pww.attention_maps()["red"].shape == (8, 8)


def test_adherence_rises_with_strength(unet, clip, inputs):
    def adherence(strength: float) -> list[float]:
        regions = (Region("red circle", left_half(), strength), Region("green", left_half()))
        pww = PaintWithWords(unet, [clip], PROMPT, regions, (LATENT, LATENT))
        with pww:
            for sigma in (14.6, 5.0, 1.0):
                pww.set_sigma(sigma)
                run(unet, *inputs)
        return pww.adherence()

    weak, strong = adherence(0.0), adherence(4.0)
    assert 0.0 < weak[0] < strong[0] <= 1.0
    assert math.isnan(weak[1]) and math.isnan(strong[1])  # "green" is not in the prompt


def test_nine_channel_inpaint_unet_and_short_token_axis(clip):
    unet = make_unet(in_channels=9)
    g = torch.Generator().manual_seed(5)
    x, e = torch.randn(2, 9, LATENT, LATENT, generator=g), torch.randn(2, 64, 32, generator=g)
    stock = run(unet, x, e)
    pww = PaintWithWords(unet, [clip], PROMPT, (Region("blue square", left_half()),),
                         (LATENT, LATENT), collect_attention=True)
    with pww:
        pww.set_sigma(10.0)
        out = run(unet, x, e)
    assert out.shape == stock.shape and (out[1] - stock[1]).abs().max() > 1e-3
    assert pww.attention_maps()["blue"].shape == (LATENT, LATENT)


def test_encoder_attention_mask_is_still_honoured(unet, clip, inputs):
    x, e = inputs
    keep = torch.ones(2, 77)
    keep[:, 10:] = 0  # padding tokens the text encoder marked as absent
    with torch.no_grad():
        stock = unet(x, 500, e, encoder_attention_mask=keep).sample
        unmasked = unet(x, 500, e).sample
    pww = PaintWithWords(unet, [clip], PROMPT, (Region("red circle", left_half()),),
                         (LATENT, LATENT))
    with pww, torch.no_grad():
        pww.set_sigma(0.0)
        out = unet(x, 500, e, encoder_attention_mask=keep).sample
    assert (stock - unmasked).abs().max() > 1e-3  # the mask matters for this input
    assert torch.allclose(out, stock, atol=1e-5)


def _fake_encoder(calls: list[str]):
    """Deterministic stand-in for the pipeline's text encoder: different text, different states."""
    def encode(text: str) -> torch.Tensor:
        calls.append(text)
        g = torch.Generator().manual_seed(sum(ord(c) * (i + 1) for i, c in enumerate(text)))
        return torch.randn(1, 77, 32, generator=g)
    return encode


def test_region_prompts_leave_out_the_other_regions_words(clip):
    calls: list[str] = []
    top = np.zeros((128, 128), np.float32)
    top[:64] = 1
    regions = (Region("red circle", left_half(), 1.0), Region("blue square", top, 1.0),
               Region("circle", top, 1.0))
    pww = PaintWithWords(make_unet(), [clip], "A red circle and a blue  square, then a circle",
                         regions, (LATENT, LATENT), local_sigma=3.0, encode=_fake_encoder(calls))
    # "circle" inside "red circle" belongs to the first region too, so the first keeps it.
    assert pww.region_prompts == {0: "A red circle and a , then a",
                                  1: "A and a blue square, then a",
                                  2: "A red circle and a , then a circle"}
    assert calls == list(pww.region_prompts.values())


def test_region_prompts_need_two_regions_and_can_be_off(clip):
    calls: list[str] = []
    one = PaintWithWords(make_unet(), [clip], PROMPT, (Region("red circle", left_half(), 1.0),),
                         (LATENT, LATENT), local_sigma=3.0, encode=_fake_encoder(calls))
    two = (Region("red circle", left_half(), 1.0), Region("blue square", left_half(), 1.0))
    off = PaintWithWords(make_unet(), [clip], PROMPT, two, (LATENT, LATENT), local_sigma=0.0,
                         encode=_fake_encoder(calls))
    assert one.region_prompts == {} and off.region_prompts == {} and calls == []


@pytest.mark.parametrize("n", [256, 64])
def test_region_prompts_take_over_attention_inside_their_regions_below_the_noise_level(
        unet, clip, n):
    attn = attn2(unet, n)
    side = int(math.isqrt(n))
    g = torch.Generator().manual_seed(4)
    hs = torch.randn(2, n, attn.to_q.in_features, generator=g)
    e = torch.randn(2, 77, 32, generator=g)
    top_right = np.zeros((128, 128), np.float32)
    top_right[:64, 64:] = 1
    regions = (Region("red circle", left_half(), 2.0), Region("blue square", top_right, 2.0))
    encode = _fake_encoder([])
    stock = attn.processor
    outs, pwws = {}, {}
    for local, sigma in ((0.0, 2.0), (3.0, 2.0), (3.0, 5.0), (0.0, 5.0)):
        pww = PaintWithWords(unet, [clip], PROMPT, regions, (LATENT, LATENT),
                             local_sigma=local, encode=encode)
        pww.set_sigma(sigma)
        pwws[local] = pww
        with torch.no_grad():
            outs[local, sigma] = PwwAttnProcessor(pww, stock)(attn, hs, e).reshape(
                2, side, side, -1)
    prompts = pwws[3.0].region_prompts
    assert prompts == {0: "a red circle and a", 1: "a and a blue square"}
    with torch.no_grad():
        own = [stock(attn, hs[1:], encode(p)).reshape(side, side, -1) for p in prompts.values()]
        uncond = stock(attn, hs[:1], e[:1]).reshape(side, side, -1)
    mixed, biased = outs[3.0, 2.0], outs[0.0, 2.0]
    h = side // 2
    # Below the noise level each region's pixels read their own prompt (masks of weight 1 here)...
    assert torch.allclose(mixed[1, :, :h], own[0][:, :h], atol=1e-5)
    assert torch.allclose(mixed[1, :h, h:], own[1][:h, h:], atol=1e-5)
    # ...pixels outside every region keep the biased prompt, and the unconditional half is stock.
    assert torch.equal(mixed[1, h:, h:], biased[1, h:, h:])
    assert torch.allclose(mixed[0], uncond, atol=1e-6)
    # Above it nothing changes.
    assert torch.equal(outs[3.0, 5.0], outs[0.0, 5.0])
    assert (mixed[1, :, :h] - biased[1, :, :h]).abs().max() > 1e-3
