"""The UNet's per-pixel loss weights: shapes count more than the background, and with
--edge-weight the latent pixels an outline or a corner crosses (where small squares get rounded)
count more still."""

from __future__ import annotations

import numpy as np
import torch

from desktop_app.training import data, scenes, unet


def test_pixel_weights_favour_shapes_and_peak_on_their_outlines():
    c = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert unet.pixel_weights(c, 4.0).tolist() == [1.0, 2.0, 3.0, 5.0]  # no edge term by default
    w = unet.pixel_weights(c, 4.0, 2.0)
    assert w.tolist() == [1.0, 2.0 + 1.5, 3.0 + 2.0, 5.0]  # 4c(1 - c): 0, 0.75, 1, 0


def test_edge_weight_lands_on_a_rendered_squares_corners_and_sides():
    sc = scenes.Scene("gray", (scenes.Shape("red", "square", "small", 4),))
    cov = torch.from_numpy(data.foreground(sc))  # 32 x 32 coverage of 8 x 8 blocks
    extra = unet.pixel_weights(cov, 0.0, 1.0) - 1
    inside, outside = cov == 1, cov == 0
    assert inside.any() and outside.any()
    assert extra[inside].abs().max() == 0 and extra[outside].abs().max() == 0
    edge = extra > 0
    ys, xs = np.nonzero(edge.numpy())
    # The weighted pixels ring the square: they reach past its inside on all four sides.
    iy, ix = np.nonzero(inside.numpy())
    assert ys.min() < iy.min() and ys.max() > iy.max() and xs.min() < ix.min() and xs.max() > ix.max()
