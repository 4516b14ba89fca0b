"""Mask arithmetic used by inpainting (document/mask_ops.py, numpy only)."""

from __future__ import annotations

import numpy as np

from desktop_app.document import mask_ops


def _square(size=32, lo=10, hi=20) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    m[lo:hi, lo:hi] = 1.0
    return m


def test_grow_and_shrink_move_the_edge_by_that_many_pixels():
    m = _square()
    grown = mask_ops.grow(m, 3)
    assert grown[7:23, 7:23].all() and grown.sum() == 16 * 16
    shrunk = mask_ops.grow(m, -3)
    assert shrunk[13:17, 13:17].all() and shrunk.sum() == 4 * 4
    assert np.array_equal(mask_ops.grow(m, 0), m)


def test_shrink_does_not_open_a_gap_along_the_image_border():
    m = np.zeros((10, 10), np.float32)
    m[:, :5] = 1  # a strip on the left edge, as when outpainting
    shrunk = mask_ops.grow(m, -2)
    assert shrunk[:, :3].all() and not shrunk[:, 3:].any()


def test_feather_makes_a_soft_edge_and_keeps_far_pixels():
    m = _square(size=64, lo=20, hi=44)
    soft = mask_ops.feather(m, 6.0)
    assert soft.dtype == np.float32 and soft.min() >= 0 and soft.max() <= 1
    assert soft[32, 32] > 0.99 and soft[0, 0] == 0.0
    edge = soft[32, 14:26]
    assert np.all(np.diff(edge) >= 0) and 0.2 < soft[32, 20] < 0.8  # a ramp across the edge


def test_crop_box_pads_clamps_and_rounds_to_multiples_of_8():
    m = np.zeros((100, 120), np.float32)
    m[40:50, 5:9] = 1
    left, top, right, bottom = mask_ops.crop_box(m, padding=10)
    assert left == 0 and top <= 30 and bottom >= 60
    assert (right - left) % 8 == 0 and (bottom - top) % 8 == 0
    assert mask_ops.crop_box(np.zeros((16, 24), np.float32), 4) == (0, 0, 24, 16)


def test_composite_keeps_unmasked_bytes_and_blends_the_edge():
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    generated = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    soft = mask_ops.feather(_square(), 3.0)
    out = mask_ops.composite(original, generated, soft)
    assert np.array_equal(out[soft == 0], original[soft == 0])
    assert np.array_equal(out[soft == 1], generated[soft == 1])
    half = (soft > 0.3) & (soft < 0.7)
    expected = original[half] * (1 - soft[half, None]) + generated[half] * soft[half, None]
    assert np.abs(out[half].astype(float) - expected).max() <= 0.5
