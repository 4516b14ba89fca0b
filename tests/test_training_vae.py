"""Fine-tuning the built-in VAE's decoder in a new session (training cache gone) starts from the
shipped weights, keeps the encoder (and so the UNet's cached latents and the scaling factor)
unchanged, and the edge-weighted loss weights exactly the pixels next to colour boundaries."""

from __future__ import annotations

import json

import torch
from diffusers import AutoencoderKL

from desktop_app.training import common
from desktop_app.training import vae as training_vae


def test_edge_weights_mark_pixels_near_a_colour_boundary_only():
    x = -torch.ones(1, 3, 32, 32)
    x[:, 0, 10:20, 10:20] = 1.0  # a red-ish square on a dark background
    w = training_vae.edge_weights(x, 4.0)[0, 0]
    assert w.shape == (32, 32)
    assert w[15, 15] == 1 and w[0, 0] == 1 and w[31, 31] == 1  # far inside, far outside
    assert w[10, 15] == 5 and w[9, 15] == 5 and w[15, 19] == 5  # on and beside the edges
    assert w[15, 7] == 5 and w[15, 6] == 1  # within 2 px of the edge between columns 9 and 10
    flat = training_vae.edge_weights(-torch.ones(2, 3, 16, 16), 4.0)
    assert torch.equal(flat, torch.ones(2, 1, 16, 16))


def test_decoder_fine_tune_warm_starts_from_the_shipped_vae(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "CACHE_DIR", tmp_path / "cache")
    shipped = AutoencoderKL.from_pretrained(common.MODEL_DIR / "vae")
    start = json.loads((common.MODEL_DIR / "training_state.json").read_text())["vae_step"]
    out = tmp_path / "vae"
    training_vae.main(["--decoder-only", "--crop", "64", "--batch", "2", "--steps", str(start + 2),
                       "--lr", "1e-4", "--edge-weight", "4", "--latent-noise", "0.1",
                       "--export-to", str(out)])
    tuned = AutoencoderKL.from_pretrained(out)
    assert json.loads((out / "step.json").read_text()) == {"vae_step": start + 2}
    before, after = shipped.state_dict(), tuned.state_dict()
    for k in before:
        if k.startswith(("encoder.", "quant_conv.")):
            assert torch.equal(before[k], after[k]), k
    # Two small steps from the shipped decoder, not a fresh network: moved, but barely.
    w0, w1 = before["decoder.conv_out.weight"], after["decoder.conv_out.weight"]
    assert not torch.equal(w0, w1)
    assert (w1 - w0).abs().max() < 0.01 * w0.abs().max()
    assert abs(tuned.config.scaling_factor - shipped.config.scaling_factor) < 1e-4
    # The shipped model's own state is untouched when exporting elsewhere.
    assert json.loads((common.MODEL_DIR / "training_state.json").read_text())["vae_step"] == start
