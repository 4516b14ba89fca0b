"""Paint-with-words during training (`training.unet --layout-share`): the bias a training sample
gets is the engine's, and the samples that get it read their bare caption with each object's
words pushed into a region around the object."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training_grow import _tiny_cache, _two_object_scenes

from desktop_app.document.job import Region
from desktop_app.engine.attention_maps import resize_mask
from desktop_app.engine.pww import PaintWithWords
from desktop_app.training import layout_bias, scenes
from desktop_app.training.layout_bias import LayoutBias, region_masks

CLIP_DIR = Path(__file__).parent / "fixtures" / "clip_tokenizer"
SHIPPED_TOKENIZER = Path(__file__).resolve().parents[1] / "models" / "builtin" / "tokenizer"
PROMPT = "a red circle and a blue square"  # tokens: BOS a red circle and a blue square EOS
LATENT = 16  # cross-attention at 16x16 and 8x8


def _unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=LATENT,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32).eval()


def _rect_mask(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((scenes.SIZE, scenes.SIZE), np.float32)
    m[y0:y1, x0:x1] = 1
    return m


def test_region_masks_are_the_engines_area_resized_rectangles():
    rects = [(85, 85, 171, 171), (0, 10, 100, 256), (200, 3, 256, 77)]
    got = {side: region_masks(torch.tensor([rects], dtype=torch.float32), side)[0]
           for side in (16, 8, 4)}
    for side, masks in got.items():
        for r, m in zip(rects, masks, strict=True):
            want = resize_mask(_rect_mask(*r), (side, side)).flatten()
            assert torch.allclose(m, want, atol=1e-6)
    # A cell's corners are covered less than its edges, at every resolution.
    centre8 = got[8][0].view(8, 8)
    assert 0 < centre8[2, 2] < centre8[2, 3] < centre8[3, 3] == 1


def test_training_bias_is_the_engines_bias_and_leaves_unlaid_samples_alone():
    # The engine's paint-with-words (both regions at one strength, `pww_outside` 1, σ = 5) and
    # LayoutBias given the same regions, tokens, strength and log(1 + σ) give the same UNet
    # output; a sample of the same batch with strength 0 comes out as without any processor.
    from transformers import AutoTokenizer

    unet = _unet()
    clip = AutoTokenizer.from_pretrained(CLIP_DIR)
    red_circle, blue_square = (85, 85, 171, 171), (10, 150, 120, 250)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, LATENT, LATENT, generator=g)
    e = torch.randn(2, 77, 32, generator=g)
    with torch.no_grad():
        plain = unet(x, 500, e).sample
    regions = (Region("red circle", _rect_mask(*red_circle), 6.0),
               Region("blue square", _rect_mask(*blue_square), 6.0))
    pww = PaintWithWords(unet, [clip], PROMPT, regions, (LATENT, LATENT), do_cfg=False,
                         outside=1.0)
    pww.set_sigma(5.0)
    with pww, torch.no_grad():
        engine = unet(x[:1], 500, e[:1]).sample
    tokens = torch.zeros(2, layout_bias.MAX_OBJECTS, 77)
    tokens[0, 0, [2, 3]] = 1
    tokens[0, 1, [6, 7]] = 1
    rects = torch.zeros(2, layout_bias.MAX_OBJECTS, 4)
    rects[0, 0], rects[0, 1] = torch.tensor(red_circle), torch.tensor(blue_square)
    lb = LayoutBias(unet)
    lb.set(rects, tokens, torch.tensor([6.0, 0.0]), torch.log1p(torch.tensor([5.0, 5.0])))
    with torch.no_grad():
        trained = unet(x, 500, e).sample
    lb.remove()
    assert (engine - plain[:1]).abs().max() > 1e-2  # the bias does change the output
    assert torch.allclose(trained[:1], engine, atol=1e-5)
    assert torch.allclose(trained[1:], plain[1:], atol=1e-5)
    with torch.no_grad():
        assert torch.equal(unet(x, 500, e).sample, plain)  # remove() restored the processors


def _bare_cache(tmp_path, monkeypatch):
    """The tiny cache with two-object scenes, their bare captions (no size, no place), each
    bare embedding marked 7 + scene, and the shipped tokenizer."""
    from desktop_app.training import data

    common = _tiny_cache(tmp_path, monkeypatch)
    sc, _ = _two_object_scenes(4)
    rng = np.random.default_rng(0)
    caps = [scenes.caption(s, rng, with_size=False, with_pos=False) for s in sc]
    bare = torch.stack([torch.full((1, 64, 384), 7.0 + i) for i in range(4)]).half()
    torch.save({"emb": bare, "captions": [[c] for c in caps]}, data.DATA_DIR / "bare_000.pt")
    shutil.copytree(SHIPPED_TOKENIZER, common.MODEL_DIR / "tokenizer")
    return common, sc, caps


def test_layout_samples_read_the_bare_caption_with_each_objects_words_in_its_region(
        tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    from desktop_app.training.dataset import Dataset

    _, sc, caps = _bare_cache(tmp_path, monkeypatch)
    tok = AutoTokenizer.from_pretrained(SHIPPED_TOKENIZER)
    ds = Dataset(layout_tokenizer=tok, layout_share=0.5)
    rng = np.random.default_rng(0)
    idx_rng = np.random.default_rng(0)  # the same draws: which scene each sample is
    _, _, _, emb, _, _, _, _, (rects, tokens, strength) = ds.batch(rng, 2000)
    idx = idx_rng.integers(0, ds.n, 2000)
    laid = strength > 0
    is_bare = (emb >= 7.0).flatten(1).all(1)
    # Exactly the laid-out samples read the bare caption (their own scene's), and only
    # captioned samples are laid out: 50% of the 85% that classifier-free guidance keeps.
    assert torch.equal(laid, is_bare)
    assert torch.equal(emb[is_bare][:, 0, 0].long() - 7, torch.from_numpy(idx)[is_bare])
    assert 0.5 * 0.85 - 0.04 < laid.float().mean() < 0.5 * 0.85 + 0.04
    assert float(strength[laid].min()) >= 2 and float(strength.max()) <= 10
    assert not tokens[~laid].any() and not rects[~laid].any()
    for b in np.flatnonzero(laid.numpy())[:40]:
        scene, cap = sc[idx[b]], caps[idx[b]]
        ids = tok(cap, max_length=64, truncation=True)["input_ids"]
        for o, s in enumerate(scene.shapes):
            words = tok.decode([ids[t] for t in np.flatnonzero(tokens[b, o].numpy())])
            assert words == f"{s.color} {s.shape}", cap
            x0, y0, x1, y1 = rects[b, o].tolist()
            cx, cy = scenes.cell_center(s.cell)
            assert x0 <= cx <= x1 and y0 <= cy <= y1  # the region holds the object
            assert 0 <= x0 < x1 <= scenes.SIZE and 0 <= y0 < y1 <= scenes.SIZE
        assert not tokens[b, len(scene.shapes):].any()
    # Half the regions are the object's grid cell, the others its box grown by 2-24 px.
    widths = rects[laid][..., 2] - rects[laid][..., 0]
    cell = (widths - scenes.SIZE / 3).abs() < 1e-3
    assert 0.35 < cell[:, :2].float().mean() < 0.65
    with pytest.raises(SystemExit, match="frozen text encoder"):
        Dataset(tokenizer=object(), layout_tokenizer=tok, layout_share=0.3)


def test_layout_share_needs_the_bare_captions(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    from desktop_app.training import data
    from desktop_app.training.dataset import Dataset

    _bare_cache(tmp_path, monkeypatch)
    (data.DATA_DIR / "bare_000.pt").unlink()
    with pytest.raises(SystemExit, match="training.data bare"):
        Dataset(layout_tokenizer=AutoTokenizer.from_pretrained(SHIPPED_TOKENIZER),
                layout_share=0.3)


def test_training_with_layouts_runs_and_says_so(tmp_path, monkeypatch):
    from desktop_app.training import unet as training_unet

    common, _, _ = _bare_cache(tmp_path, monkeypatch)
    training_unet.main(["--steps", "2", "--batch", "4", "--eval-n", "0", "--ckpt-every", "1",
                        "--layout-share", "0.5", "--lr", "1e-3"])
    log = (common.CACHE_DIR / "unet.log").read_text()
    assert "paint-with-words layouts for 50% of captioned samples" in log
    losses = [float(v) for v in re.findall(r"step \d+ loss (\d+\.\d+)", log)]
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert torch.load(common.CACHE_DIR / "unet.pt", weights_only=True)["step"] == 2
