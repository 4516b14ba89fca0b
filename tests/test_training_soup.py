"""Interpolating two UNets (WiSE-FT, training.soup): the ends are the two networks, the middle is
the weight-wise mean; other architectures, alpha outside [0, 1] and an existing folder are refused."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import UNet2DConditionModel
from tiny_models import trained_builtin_unet

from desktop_app.training import soup

_net = trained_builtin_unet


def _run(net):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 9, 32, 32, generator=g)
    emb = torch.randn(1, 64, 384, generator=g)
    with torch.no_grad():
        return net(x, torch.tensor([400]), encoder_hidden_states=emb).sample


def _folder(tmp_path, name, net, step):
    d = tmp_path / name
    net.save_pretrained(d / "unet")
    (d / "training_state.json").write_text(json.dumps({"step": step, "vae_step": 7}))
    (d / "model_index.json").write_text("{}")
    return d


def test_soup_ends_are_the_two_networks_and_the_middle_is_their_mean(tmp_path):
    a, b = _net(0), _net(1)
    base, tuned = _folder(tmp_path, "a", a, 100), _folder(tmp_path, "b", b, 250)
    for alpha, expect in ((0.0, a), (1.0, b)):
        out = tmp_path / f"soup{alpha}"
        soup.soup(base, tuned, out, alpha)
        mixed = UNet2DConditionModel.from_pretrained(out / "unet").eval()
        torch.testing.assert_close(_run(mixed), _run(expect), rtol=0, atol=0)
    out = tmp_path / "half"
    soup.soup(base, tuned, out, 0.5)
    mixed = UNet2DConditionModel.from_pretrained(out / "unet").eval()
    sd_a, sd_b = a.state_dict(), b.state_dict()
    for name, t in mixed.state_dict().items():
        torch.testing.assert_close(t, (sd_a[name] + sd_b[name]) / 2)
    # A network between two different ones computes something different from both.
    assert (_run(mixed) - _run(a)).abs().max() > 1e-3
    assert (_run(mixed) - _run(b)).abs().max() > 1e-3
    # The rest of the folder comes from the tuned model; the state records where it came from.
    assert (out / "model_index.json").exists()
    state = json.loads((out / "training_state.json").read_text())
    assert state["vae_step"] == 7
    assert state["soup"] == {"base_step": 100, "tuned_step": 250, "alpha": 0.5}


def test_soup_refuses_different_architectures_bad_alpha_and_an_existing_folder(tmp_path):
    base = _folder(tmp_path, "a", _net(0, "base"), 1)
    grown = _folder(tmp_path, "b", _net(1, "deep32"), 2)
    with pytest.raises(ValueError, match="differ in architecture"):
        soup.soup(base, grown, tmp_path / "out", 0.5)
    assert not (tmp_path / "out").exists()
    same = _folder(tmp_path, "c", _net(2, "base"), 3)
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        soup.soup(base, same, tmp_path / "out", 1.5)
    # An existing folder other than TUNED is never overwritten.
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "work.png").write_bytes(b"mine")
    with pytest.raises(ValueError, match="already exists"):
        soup.soup(base, same, tmp_path / "keep", 0.5)
    assert (tmp_path / "keep" / "work.png").read_bytes() == b"mine"
