"""Growing the built-in UNet (attention or more resnets added at the 32x32 level) keeps what it has
learned: the grown network starts out computing exactly the small one's function, and the new
blocks are live."""

from __future__ import annotations

import json
import re

import pytest
import torch
from tiny_models import trained_builtin_unet

from desktop_app.training import unet as training_unet
from desktop_app.training import unet_arch

_trained = trained_builtin_unet


def _pair(seed: int, arch: str = "attn32"):
    return _trained(seed), unet_arch.make_unet(arch).eval()


def _run(net, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 9, 32, 32, generator=g)
    emb = torch.randn(2, 64, 384, generator=g)
    with torch.no_grad():
        return net(x, torch.tensor([15, 800]), encoder_hidden_states=emb).sample


def test_grown_unet_starts_with_the_same_function_and_its_new_attention_is_live():
    small, big = _pair(0)
    added = unet_arch.grow(small, big)
    assert added and all(".attentions." in k for k in added)
    assert any(k.startswith("down_blocks.0.attentions.0.") for k in added)
    assert any(k.startswith("up_blocks.2.attentions.") for k in added)
    torch.testing.assert_close(_run(big), _run(small), rtol=0, atol=0)
    # Training moves the zeroed projection; then the 32x32 attention changes the output.
    with torch.no_grad():
        big.down_blocks[0].attentions[0].proj_out.weight.normal_(0, 0.1)
    assert (_run(big) - _run(small)).abs().max() > 1e-3


def test_deepened_unet_starts_with_the_same_function_and_its_new_resnets_are_live():
    small, big = _pair(2, "deep32")
    added = unet_arch.grow(small, big)
    blocks = {re.match(r"(.*?\.resnets\.\d+)\.", k).group(1) for k in added}
    # Three new resnets each way at the 32x32 level; the old up resnet 1 moved to the end, where
    # it still meets the skip from conv_in that it was trained on.
    assert blocks == {"down_blocks.0.resnets.1", "down_blocks.0.resnets.2",
                      "down_blocks.0.resnets.3", "up_blocks.2.resnets.1", "up_blocks.2.resnets.2",
                      "up_blocks.2.resnets.3"}
    assert set(added) == unet_arch.grown_tensors("deep32")
    torch.testing.assert_close(big.up_blocks[2].resnets[4].conv1.weight,
                               small.up_blocks[2].resnets[1].conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(_run(big), _run(small), rtol=0, atol=0)
    with torch.no_grad():  # training moves the zeroed convolutions; then they change the output
        big.up_blocks[2].resnets[2].conv2.weight.normal_(0, 0.1)
    assert (_run(big) - _run(small)).abs().max() > 1e-3
    with torch.no_grad():
        big.up_blocks[2].resnets[2].conv2.weight.zero_()
        big.down_blocks[0].resnets[3].conv2.weight.normal_(0, 0.1)
    assert (_run(big) - _run(small)).abs().max() > 1e-3


def test_deep32_grows_a_cross_attention_level_at_16_with_the_same_function():
    small = _trained(4, "deep32")
    big = unet_arch.make_unet("deep32_16").eval()
    added = unet_arch.grow(small, big)
    blocks = {re.match(r"(.*?\.(?:resnets|attentions)\.\d+)\.", k).group(1) for k in added}
    assert blocks == {"down_blocks.1.resnets.1", "down_blocks.1.attentions.1",
                      "up_blocks.1.resnets.1", "up_blocks.1.attentions.1"}
    assert set(added) == unet_arch.grown_tensors("deep32_16")  # relative to deep32
    # The old second up block at 16x16 moved behind the new one, attention included.
    torch.testing.assert_close(big.up_blocks[1].attentions[2].proj_in.weight,
                               small.up_blocks[1].attentions[1].proj_in.weight, rtol=0, atol=0)
    torch.testing.assert_close(_run(big), _run(small), rtol=0, atol=0)
    with torch.no_grad():  # the new cross-attention block, once trained, changes the output
        big.down_blocks[1].attentions[1].proj_out.weight.normal_(0, 0.1)
    assert (_run(big) - _run(small)).abs().max() > 1e-3
    assert [unet_arch.arch_of(unet_arch.ARCHS[a]) for a in unet_arch.ARCHS] == list(
        unet_arch.ARCHS)
    assert unet_arch.arch_of(dict(unet_arch.UNET_CONFIG, layers_per_block=3)) is None


def test_deeper32_16_grows_the_32_level_again_with_the_same_function():
    small = _trained(5, "deep32_16")
    big = unet_arch.make_unet("deeper32_16").eval()
    added = unet_arch.grow(small, big)
    blocks = {re.match(r"(.*?\.(?:resnets|attentions)\.\d+)\.", k).group(1) for k in added}
    # Three more resnets each way at 32x32, after deep32's four down and its five up resnets' first.
    assert blocks == {f"down_blocks.0.resnets.{i}" for i in (4, 5, 6)} | {
        f"up_blocks.2.resnets.{i}" for i in (1, 2, 3)}
    assert set(added) == unet_arch.grown_tensors("deeper32_16")  # relative to deep32_16
    torch.testing.assert_close(_run(big), _run(small), rtol=0, atol=0)
    with torch.no_grad():
        big.up_blocks[2].resnets[3].conv2.weight.normal_(0, 0.1)
    assert (_run(big) - _run(small)).abs().max() > 1e-3


def test_deeper32_16_grows_second_transformer_blocks_at_16_with_the_same_function():
    small = _trained(6, "deeper32_16")
    big = unet_arch.make_unet("deeper32_16_t2").eval()
    added = unet_arch.grow(small, big)
    blocks = {re.match(r"(.*?\.transformer_blocks\.\d+)\.", k).group(1) for k in added}
    # A second transformer block in each of the five 16x16 attentions (two down, three up), none
    # at 8x8 or in the mid block.
    assert blocks == {f"down_blocks.1.attentions.{i}.transformer_blocks.1" for i in (0, 1)} | {
        f"up_blocks.1.attentions.{i}.transformer_blocks.1" for i in (0, 1, 2)}
    assert set(added) == unet_arch.grown_tensors("deeper32_16_t2")
    assert unet_arch.arch_of(dict(big.config)) == "deeper32_16_t2"
    assert unet_arch.arch_of(dict(small.config)) == "deeper32_16"
    torch.testing.assert_close(_run(big), _run(small), rtol=0, atol=0)
    # Each of the block's three residual branches, once trained, changes the output.
    for branch in ("attn1.to_out.0", "attn2.to_out.0", "ff.net.2"):
        blk = big.up_blocks[1].attentions[1].transformer_blocks[1]
        w = blk.get_submodule(branch).weight
        with torch.no_grad():
            w.normal_(0, 0.1)
        assert (_run(big) - _run(small)).abs().max() > 1e-3, branch
        with torch.no_grad():
            w.zero_()
    torch.testing.assert_close(_run(big), _run(small), rtol=0, atol=0)


def test_grow_refuses_anything_but_added_blocks():
    from diffusers import UNet2DConditionModel

    small = unet_arch.make_unet("base")
    wider = UNet2DConditionModel(**dict(unet_arch.UNET_CONFIG, block_out_channels=(48, 64, 128)))
    with pytest.raises(ValueError, match="cannot grow"):
        unet_arch.grow(small, wider)
    with pytest.raises(ValueError, match="lacks"):
        unet_arch.grow(unet_arch.make_unet("attn32"), small)
    with pytest.raises(ValueError, match="cannot grow"):
        unet_arch.grow(unet_arch.make_unet("deep32"), small)


def _tiny_cache(tmp_path, monkeypatch, n: int = 4):
    from desktop_app.training import common, data

    monkeypatch.setattr(common, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(common, "MODEL_DIR", tmp_path / "model")
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "cache" / "data")
    data.DATA_DIR.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    torch.save({"emb": torch.randn(n, 2, 64, 384, generator=g).half()}, data.DATA_DIR / "text_000.pt")
    torch.save({"lat": torch.randn(n, 4, 32, 32, generator=g).half(),
                "mlat": torch.randn(n, 4, 32, 32, generator=g).half(),
                "mask_bits": torch.zeros(n, 256, 32, dtype=torch.uint8)}, data.DATA_DIR / "lat_000.pt")
    torch.save(torch.zeros(64, 384).half(), data.DATA_DIR / "empty.pt")
    torch.save(torch.zeros(4, 32, 32).half(), data.DATA_DIR / "masked_full.pt")
    return common


def _two_object_scenes(seed: int):
    """Give the tiny cache's four scenes real two-object scenes and their captions (what
    --grounding reads for footprints and words); returns the scenes and one caption of each."""
    import numpy as np

    from desktop_app.training import data, scenes

    text = torch.load(data.DATA_DIR / "text_000.pt")
    rng = np.random.default_rng(seed)
    sc = [scenes.random_scene(rng, held_out=None, n_objects=2) for _ in range(4)]
    text["scenes"] = [data.scene_to_json(s) for s in sc]
    text["captions"] = [[scenes.canonical_caption(s)] * 2 for s in sc]
    torch.save(text, data.DATA_DIR / "text_000.pt")
    return sc, [c[0] for c in text["captions"]]


def test_training_grows_a_base_checkpoint_into_the_bigger_network(tmp_path, monkeypatch):
    # The pipeline's growth phase: the base run's checkpoint is in the cache, and training goes
    # on with --arch deep32 from its EMA weights (the weights that would ship), not from scratch.
    common = _tiny_cache(tmp_path, monkeypatch)
    small, _ = _pair(3)
    raw = {k: v + 1.0 for k, v in small.state_dict().items()}  # training weights, unlike the EMA
    torch.save({"model": raw, "ema": small.state_dict(), "opt": {}, "step": 100, "arch": "base"},
               common.CACHE_DIR / "unet.pt")
    training_unet.main(["--arch", "deep32", "--steps", "101", "--batch", "2", "--eval-n", "0",
                        "--lr", "1e-6"])
    st = torch.load(common.CACHE_DIR / "unet.pt", weights_only=True)
    assert (st["arch"], st["step"], st["fresh_from"]) == ("deep32", 101, 100)
    grown = unet_arch.make_unet("deep32")
    grown.load_state_dict(st["model"])
    # One tiny step from the grown EMA weights: the old up resnet 1 sits at index 4 now.
    moved = grown.up_blocks[2].resnets[4].conv1.weight - small.up_blocks[2].resnets[1].conv1.weight
    assert moved.abs().max() < 1e-3
    assert json.loads((common.MODEL_DIR / "training_state.json").read_text())["step"] == 101


def test_warm_restart_starts_from_the_checkpoints_ema_once_then_resumes(tmp_path, monkeypatch):
    # The recipe's last phase: at exactly the asked step the run restarts from the EMA weights
    # (what shipped), with a fresh optimizer and warm-up; a later run resumes as usual.
    common = _tiny_cache(tmp_path, monkeypatch)
    torch.manual_seed(7)
    net = unet_arch.make_unet("base")
    raw = {k: v + 0.01 for k, v in net.state_dict().items()}  # training weights, not the EMA
    torch.save({"model": raw, "ema": net.state_dict(), "opt": {}, "step": 100, "arch": "base"},
               common.CACHE_DIR / "unet.pt")
    args = ["--steps", "101", "--batch", "2", "--eval-n", "0", "--lr", "1e-6",
            "--warm-restart-at", "100"]
    training_unet.main(args)
    st = torch.load(common.CACHE_DIR / "unet.pt", weights_only=True)
    assert (st["step"], st["fresh_from"]) == (101, 100)
    start = net.state_dict()
    assert max((v - start[k]).abs().max().item() for k, v in st["model"].items()) < 1e-3
    assert st["opt"]["state"]  # the optimizer's own moments, none carried over
    # Past the restart step it resumes: the online weights go on from where they stood.
    after = {k: v.clone() for k, v in st["model"].items()}
    training_unet.main(["--steps", "102"] + args[2:])
    st = torch.load(common.CACHE_DIR / "unet.pt", weights_only=True)
    assert (st["step"], st["fresh_from"]) == (102, 100)
    assert max((v - after[k]).abs().max().item() for k, v in st["model"].items()) < 1e-3
    # Without the flag, a checkpoint resumes its online weights (the raw ones here).
    torch.save({"model": raw, "ema": net.state_dict(), "opt": st["opt"], "step": 100,
                "arch": "base"}, common.CACHE_DIR / "unet.pt")
    training_unet.main(args[:-2])
    st = torch.load(common.CACHE_DIR / "unet.pt", weights_only=True)
    assert max((v - raw[k]).abs().max().item() for k, v in st["model"].items()) < 1e-3


def test_training_grows_a_deep32_checkpoint_and_trains_only_the_new_blocks_fast(tmp_path,
                                                                                 monkeypatch):
    common = _tiny_cache(tmp_path, monkeypatch)
    torch.manual_seed(5)
    small = unet_arch.make_unet("deep32")
    torch.save({"model": small.state_dict(), "ema": small.state_dict(), "opt": {}, "step": 50,
                "arch": "deep32"}, common.CACHE_DIR / "unet.pt")
    # Old weights frozen (--old-lr-scale 0): after a step only deep32_16's new blocks moved.
    training_unet.main(["--arch", "deep32_16", "--steps", "51", "--batch", "2", "--eval-n", "0",
                        "--lr", "1e-3", "--old-lr-scale", "0"])
    st = torch.load(common.CACHE_DIR / "unet.pt", weights_only=True)
    assert (st["arch"], st["step"], st["fresh_from"]) == ("deep32_16", 51, 50)
    grown = unet_arch.make_unet("deep32_16")
    unet_arch.grow(small, grown)
    start = grown.state_dict()
    moved = {k for k, v in st["model"].items() if not torch.equal(v, start[k])}
    assert moved and moved <= unet_arch.grown_tensors("deep32_16")
    # A checkpoint that cannot grow into the asked architecture is refused by name.
    with pytest.raises(SystemExit, match="cannot grow"):
        training_unet.main(["--arch", "deep32", "--steps", "52", "--batch", "2", "--eval-n", "0"])


def test_training_the_text_encoders_top_layer_with_the_unet(tmp_path, monkeypatch):
    # --text-layers 1: the caption goes through the text encoder in the training step, only its
    # last layer learns, and the model folder gets that encoder beside the UNet.
    from transformers import BertModel

    from desktop_app.training import data, export

    common = _tiny_cache(tmp_path, monkeypatch)
    text = torch.load(data.DATA_DIR / "text_000.pt")
    text["captions"] = [["a red circle at the top left", "red circle, top left"],
                        ["a big blue square in the center", "blue square"],
                        ["a small green triangle at the bottom", "a green triangle"],
                        ["there is a white circle on the right", "white circle"]]
    torch.save(text, data.DATA_DIR / "text_000.pt")
    tok, enc = data.load_text_encoder()
    common.MODEL_DIR.mkdir()
    export.save_text_encoder(enc, common.MODEL_DIR)
    tok.save_pretrained(common.MODEL_DIR / "tokenizer")
    torch.manual_seed(5)
    net = unet_arch.make_unet("deep32_16")
    # A checkpoint without text layers (the UNet's Adam state kept): they join at its step.
    added = unet_arch.grown_tensors("deep32_16")
    named = list(net.named_parameters())
    opt = torch.optim.AdamW([{"params": [p for k, p in named if k not in added]},
                             {"params": [p for k, p in named if k in added]}])
    torch.save({"model": net.state_dict(), "ema": net.state_dict(), "opt": opt.state_dict(),
                "step": 50, "arch": "deep32_16"}, common.CACHE_DIR / "unet.pt")
    args = ["--arch", "deep32_16", "--steps", "53", "--batch", "2", "--eval-n", "0",
            "--text-layers", "1", "--text-lr-scale", "1", "--lr", "1e-3", "--ema", "0"]
    training_unet.main(args)
    st = torch.load(common.CACHE_DIR / "unet.pt", weights_only=True)
    assert (st["step"], st["text_layers"], st["text_from"]) == (53, 1, 50)
    shipped = BertModel.from_pretrained(common.MODEL_DIR / "text_encoder", add_pooling_layer=False)
    changed = {k.split(".")[2] for k, v in shipped.state_dict().items()
               if k.startswith("encoder.layer.")
               and not torch.equal(v, enc.state_dict()[k].half().float())}
    assert changed == {"5"}  # the top layer learned; the five below are untouched
    assert shipped.embeddings.word_embeddings.weight.dtype == torch.float32  # fp16 on disk only
    state = json.loads((common.MODEL_DIR / "training_state.json").read_text())
    assert (state["step"], state["text_layers"]) == (53, 1)
    # Resuming keeps the text layers' state; a run that would use the cached embeddings of the
    # pretrained encoder is refused, since the shipped one no longer matches them.
    training_unet.main([*args[:3], "54", *args[4:]])
    st2 = torch.load(common.CACHE_DIR / "unet.pt", weights_only=True)
    assert (st2["step"], st2["text_from"]) == (54, 50)
    assert not torch.equal(st2["text"]["0.output.dense.weight"], st["text"]["0.output.dense.weight"])
    with pytest.raises(SystemExit, match="--text-layers"):
        training_unet.main(["--arch", "deep32_16", "--steps", "55", "--batch", "2",
                            "--eval-n", "0"])



def test_training_with_the_grounding_loss_runs_and_logs_it(tmp_path, monkeypatch):
    # --grounding needs each scene and caption of the text chunks (for the objects' footprints
    # and words) and the tokenizer; its loss is logged beside the denoising loss.
    import shutil
    from pathlib import Path

    common = _tiny_cache(tmp_path, monkeypatch)
    _two_object_scenes(0)
    shipped = Path(__file__).resolve().parents[1] / "models" / "builtin" / "tokenizer"
    shutil.copytree(shipped, common.MODEL_DIR / "tokenizer")
    training_unet.main(["--steps", "2", "--batch", "4", "--eval-n", "0", "--ckpt-every", "1",
                        "--grounding", "0.5", "--lr", "1e-3"])
    log = (common.CACHE_DIR / "unet.log").read_text()
    assert "token grounding loss, weight 0.5" in log
    values = [float(v) for v in re.findall(r"grounding (\d\.\d+)", log)]
    assert len(values) == 2 and all(0 < v <= 1 for v in values)
    assert torch.load(common.CACHE_DIR / "unet.pt", weights_only=True)["step"] == 2


def test_localization_reads_a_model_folder_and_rises_when_attention_is_grounded(tmp_path,
                                                                                 monkeypatch):
    # `python -m desktop_app.training.grounding MODEL`: the model card's measure of where a
    # model's object words are attended. A fresh UNet spreads them out (about the share of the
    # image its objects cover); a few steps of the grounding loss on its cross-attention move
    # them onto the objects, and the measure, read back from the saved folder, rises with it.
    import numpy as np

    from desktop_app.training import data, export, grounding

    common = _tiny_cache(tmp_path, monkeypatch)
    sc, captions = _two_object_scenes(1)
    tok, enc = data.load_text_encoder()
    model = common.MODEL_DIR
    model.mkdir()
    export.save_text_encoder(enc, model)
    tok.save_pretrained(model / "tokenizer")
    torch.manual_seed(0)
    net = unet_arch.make_unet("base")
    net.save_pretrained(model / "unet")
    before = grounding.localization(model, n=4, timesteps=(500,))[0]
    cover = np.mean([grounding.object_masks(s)[:2].mean() for s in sc])
    assert before == pytest.approx(cover, abs=0.15)

    g = grounding.Grounding(net)
    opt = torch.optim.Adam([p for n, p in net.named_parameters() if "attn2.to_" in n], lr=3e-3)
    with torch.no_grad():
        ids, att = data.tokenize(tok, captions)
        emb = enc(ids, attention_mask=att)[0]
    tokens = torch.from_numpy(grounding.token_matrix(tok, captions, sc, ids.shape[1])).float()
    masks = torch.from_numpy(np.stack([grounding.object_masks(s) for s in sc])).float().flatten(2)
    x = torch.randn(4, 9, 32, 32)
    for _ in range(30):
        net(x, torch.full((4,), 500), encoder_hidden_states=emb)
        loss = g.loss(tokens, masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
    g.remove()
    net.save_pretrained(model / "unet")
    after = grounding.localization(model, n=4, timesteps=(500,))[0]
    assert after > before + 0.15


def test_bare_captions_take_the_asked_share_of_samples_and_are_required(tmp_path, monkeypatch):
    # --bare-captions P: each chunk's bare caption (data.prepare_bare) replaces the scene's
    # usual two for a share P of the samples; without the bare files the run stops and says how
    # to make them.
    import numpy as np

    from desktop_app.training import data
    from desktop_app.training.dataset import Dataset

    _tiny_cache(tmp_path, monkeypatch)
    with pytest.raises(SystemExit, match="training.data bare"):
        Dataset(bare_share=0.5)
    bare = torch.full((4, 1, 64, 384), 7.0).half()  # unlike any of the random usual captions
    torch.save({"emb": bare, "captions": [["a red circle"]] * 4}, data.DATA_DIR / "bare_000.pt")
    for share in (0.0, 0.3):
        ds = Dataset(bare_share=share)
        emb = ds.batch(np.random.default_rng(0), 4000)[3]
        is_bare = (emb == 7.0).flatten(1).all(1)
        # Classifier-free guidance still drops 15% of all captions, bare ones included.
        assert share * 0.85 - 0.03 < is_bare.float().mean() < share * 0.85 + 0.03
    with pytest.raises(SystemExit, match="frozen text encoder"):
        Dataset(tokenizer=object(), bare_share=0.3)


def test_bare_kinds_neither_gives_only_captions_without_size_and_place(tmp_path, monkeypatch):
    # --bare-kinds neither: a bare sample is taken only from the scenes whose bare caption names
    # neither size nor place (the prompts paint-with-words is used with); the other scenes keep
    # their usual captions. Bare files made from other scenes are refused.
    import numpy as np

    from desktop_app.training import data
    from desktop_app.training.dataset import Dataset

    _tiny_cache(tmp_path, monkeypatch)
    monkeypatch.setattr(data, "CHUNK", 4)
    kinds, caps = data.bare_draws(0)
    neither = [i for i, k in enumerate(kinds) if data.BARE_KINDS[k] == (False, False)]
    assert 0 < len(neither) < 4
    bare = torch.stack([torch.full((1, 64, 384), 7.0 + i) for i in range(4)]).half()
    torch.save({"emb": bare, "captions": [[c] for c in caps]}, data.DATA_DIR / "bare_000.pt")
    ds = Dataset(bare_share=0.6, bare_kinds="neither")
    emb = ds.batch(np.random.default_rng(0), 4000)[3]
    is_bare = (emb >= 7.0).flatten(1).all(1)
    taken = {int(v) - 7 for v in emb[is_bare][:, 0, 0].unique()}
    assert taken == set(neither)
    expected = 0.6 * 0.85 * len(neither) / 4
    assert expected - 0.03 < is_bare.float().mean() < expected + 0.03
    # --bare-kinds nosize: only the scenes whose bare caption keeps the places but not the sizes.
    nosize = {i for i, k in enumerate(kinds) if data.BARE_KINDS[k] == (False, True)}
    assert nosize and not nosize & set(neither)
    emb = Dataset(bare_share=1.0, bare_kinds="nosize").batch(np.random.default_rng(1), 4000)[3]
    is_bare = (emb >= 7.0).flatten(1).all(1)
    assert {int(v) - 7 for v in emb[is_bare][:, 0, 0].unique()} == nosize
    torch.save({"emb": bare, "captions": [["a red circle"]] * 4}, data.DATA_DIR / "bare_000.pt")
    with pytest.raises(SystemExit, match="other scenes"):
        Dataset(bare_share=0.6, bare_kinds="neither")


def test_bare_kinds_neither1_takes_only_one_object_scenes(tmp_path, monkeypatch):
    # --bare-kinds neither1: of the scenes whose bare caption names neither size nor place, only
    # those with one object take it ("a red circle on a gray background", never "a red circle and
    # a blue square ..."), so bare prompts are learned as one object without its multi-object kin.
    import numpy as np

    from desktop_app.training import data
    from desktop_app.training.dataset import Dataset

    _tiny_cache(tmp_path, monkeypatch, n=40)
    monkeypatch.setattr(data, "CHUNK", 40)
    kinds, caps = data.bare_draws(0)
    sc = data.chunk_scenes(0)
    neither = {i for i, k in enumerate(kinds) if data.BARE_KINDS[k] == (False, False)}
    single = {i for i in neither if len(sc[i].shapes) == 1}
    assert single and neither - single  # the draw has both kinds for the test to tell apart
    bare = torch.stack([torch.full((1, 64, 384), 100.0 + i) for i in range(40)]).half()
    torch.save({"emb": bare, "captions": [[c] for c in caps]}, data.DATA_DIR / "bare_000.pt")
    ds = Dataset(bare_share=1.0, bare_kinds="neither1")
    emb = ds.batch(np.random.default_rng(0), 8000)[3]
    is_bare = (emb >= 100.0).flatten(1).all(1)
    assert {int(v) - 100 for v in emb[is_bare][:, 0, 0].unique()} == single
    with pytest.raises(ValueError, match="neither1"):
        Dataset(bare_share=0.5, bare_kinds="one")


def test_small_weight_weighs_each_small_objects_box_and_nothing_else(tmp_path, monkeypatch):
    # --small-weight: small squares are drawn round because the loss hears little of their
    # corners; the extra weight must land on every latent pixel of a small object and its box
    # (the empty corners a circle would leave included), never on a big object or far background.
    import numpy as np

    from desktop_app.training import data, scenes
    from desktop_app.training.dataset import Dataset, small_boxes
    from desktop_app.training.unet import pixel_weights

    _tiny_cache(tmp_path, monkeypatch)
    sc, _ = _two_object_scenes(5)
    for s in sc + data.chunk_scenes(0)[:50]:
        box = small_boxes(s, margin=0)
        up = np.kron(box, np.ones((8, 8))) > 0
        for shape, off in zip(s.shapes, s.offsets, strict=True):
            alone = scenes.render(scenes.Scene(s.background, (shape,), (off,))).astype(int)
            drawn = np.abs(alone - np.asarray(scenes.BACKGROUNDS[s.background])).sum(-1) > 12
            if shape.size == "small":
                assert up[drawn].all()  # the whole object is in its box
            elif not any(o.size == "small" for o in s.shapes):
                assert not up.any()
        n_small = sum(o.size == "small" for o in s.shapes)
        assert box.sum() <= n_small * 6 * 6  # a 38 px box spans at most 6 latent pixels a side
    ds = Dataset(small_maps=True)
    idx = torch.arange(4)
    want = torch.from_numpy(np.stack([small_boxes(s) for s in sc]))
    assert torch.equal(ds.small[idx].float(), want)
    *_, fg, _, _, small, _ = ds.batch(np.random.default_rng(0), 16)
    w = pixel_weights(fg, 4.0, 0.0, small, 6.0)
    assert torch.allclose(w - pixel_weights(fg, 4.0), 6.0 * small)
    assert Dataset().batch(np.random.default_rng(0), 2)[-2] is None  # off: no maps built
