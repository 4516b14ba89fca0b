"""The token grounding loss for the built-in UNet: object footprints and caption tokens line up
with the scene, recording attention leaves the UNet's output unchanged, and the loss is one the
UNet can lower (it reads where an object's words are attended)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from desktop_app.training import grounding, scenes, unet_arch

TOKENIZER = Path(__file__).resolve().parents[1] / "models" / "builtin" / "tokenizer"


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TOKENIZER)


def _scene():
    return scenes.Scene("gray", (scenes.Shape("red", "circle", "big", 0),
                                 scenes.Shape("blue", "square", "small", 8)), ((0, 0), (0, 0)))


def test_object_masks_cover_each_object_in_its_cell():
    m = grounding.object_masks(_scene())
    assert m.shape == (grounding.MAX_OBJECTS, 16, 16)
    third = 16 // 3
    assert m[0, :third, :third].sum() >= 9 and m[0, -third:, -third:].sum() == 0  # top left
    assert m[1, -third:, -third:].sum() >= 4 and m[1, :third, :third].sum() == 0  # bottom right
    assert m[0].sum() > m[1].sum()  # big against small
    assert not m[2].any()  # no third object


def test_token_matrix_marks_each_objects_colour_and_shape_tokens(tok):
    caps = ["a red circle at the top left and a small blue square at the bottom right",
            "a blue square, and a red circle"]
    same = scenes.Scene("gray", (scenes.Shape("red", "circle", "big", 0),
                                 scenes.Shape("red", "circle", "small", 8)), ((0, 0), (0, 0)))
    caps.append("a red circle and a red circle")
    mat = grounding.token_matrix(tok, caps, [_scene(), _scene(), same], 64)
    for i, cap in enumerate(caps[:2]):
        ids = tok(cap, max_length=64, truncation=True)["input_ids"]
        words = [tok.convert_ids_to_tokens(ids[t]) for t in np.flatnonzero(mat[i, 0])]
        assert words == ["red", "circle"]
        words = [tok.convert_ids_to_tokens(ids[t]) for t in np.flatnonzero(mat[i, 1])]
        assert words == ["blue", "square"]
    assert not mat[2].any()  # two alike objects: which words are whose is unknown


def _unet():
    torch.manual_seed(0)
    net = unet_arch.make_unet("base")
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return net


def _inputs():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(2, 9, 32, 32, generator=g), torch.tensor([500, 900]),
            torch.randn(2, 64, 384, generator=g))


def test_recording_attention_keeps_the_unets_output_and_restores_its_processors():
    net = _unet().eval()
    x, t, emb = _inputs()
    with torch.no_grad():
        plain = net(x, t, encoder_hidden_states=emb).sample
        g = grounding.Grounding(net)
        recorded = net(x, t, encoder_hidden_states=emb).sample
    torch.testing.assert_close(recorded, plain, rtol=1e-4, atol=1e-5)
    sizes = sorted({p.shape[1] for p in g.probs})
    assert sizes == [64, 256] and all(p.shape[-1] == 64 for p in g.probs)
    g.remove()
    assert all(type(p).__name__ != "_Recorder" for p in net.attn_processors.values())


def test_the_loss_reads_where_the_words_are_attended_and_training_lowers_it():
    net = _unet()
    x, t, emb = _inputs()
    masks = torch.from_numpy(np.stack([grounding.object_masks(_scene())] * 2)).view(2, 3, -1)
    tokens = torch.zeros(2, 3, 64)
    tokens[:, 0, [2, 3]] = 1  # object 0's words at positions 2 and 3
    tokens[:, 1, [9, 10]] = 1
    tokens[1] = 0  # a dropped caption carries no objects
    g = grounding.Grounding(net)
    opt = torch.optim.Adam([p for n, p in net.named_parameters() if "attn2.to_" in n], lr=3e-3)
    history = []
    for _ in range(25):
        net(x, t, encoder_hidden_states=emb)
        loss = g.loss(tokens, masks)
        history.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    # At the start attention is spread out: about the share of the image outside the objects.
    outside = 1 - masks[0, :2].sum(-1) / 256
    assert history[0] == pytest.approx(float(outside.mean()), abs=0.15)
    assert history[-1] < 0.6 * history[0]
    # With no object anywhere the loss is zero but still part of the graph.
    net(x, t, encoder_hidden_states=emb)
    empty = g.loss(torch.zeros(2, 3, 64), masks)
    assert empty.item() == 0.0 and empty.requires_grad
