"""Growing the built-in UNet (attention or more resnets added at the 32x32 level) keeps what it has
learned: the grown network starts out computing exactly the small one's function, and the new
blocks are live."""

from __future__ import annotations

import re

import pytest
import torch

from desktop_app.training import unet as training_unet


def _pair(seed: int, arch: str = "attn32"):
    torch.manual_seed(seed)
    small = training_unet.make_unet("base").eval()
    with torch.no_grad():  # a trained network, not a fresh init, whose zero biases hide mistakes
        for p in small.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return small, training_unet.make_unet(arch).eval()


def _run(net, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 9, 32, 32, generator=g)
    emb = torch.randn(2, 64, 384, generator=g)
    with torch.no_grad():
        return net(x, torch.tensor([15, 800]), encoder_hidden_states=emb).sample


def test_grown_unet_starts_with_the_same_function_and_its_new_attention_is_live():
    small, big = _pair(0)
    added = training_unet.grow(small, big)
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
    added = training_unet.grow(small, big)
    blocks = {re.match(r"(.*?\.resnets\.\d+)\.", k).group(1) for k in added}
    # Three new resnets each way at the 32x32 level; the old up resnet 1 moved to the end, where
    # it still meets the skip from conv_in that it was trained on.
    assert blocks == {"down_blocks.0.resnets.1", "down_blocks.0.resnets.2",
                      "down_blocks.0.resnets.3", "up_blocks.2.resnets.1", "up_blocks.2.resnets.2",
                      "up_blocks.2.resnets.3"}
    assert set(added) == training_unet.grown_tensors("deep32")
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


def test_grow_refuses_anything_but_added_blocks():
    from diffusers import UNet2DConditionModel

    small = training_unet.make_unet("base")
    wider = UNet2DConditionModel(**dict(training_unet.UNET_CONFIG, block_out_channels=(48, 64, 128)))
    with pytest.raises(ValueError, match="cannot grow"):
        training_unet.grow(small, wider)
    with pytest.raises(ValueError, match="lacks"):
        training_unet.grow(training_unet.make_unet("attn32"), small)
    with pytest.raises(ValueError, match="cannot grow"):
        training_unet.grow(training_unet.make_unet("deep32"), small)
