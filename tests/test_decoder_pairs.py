"""Pairs for fine-tuning the built-in model's decoder on the UNet's own latents: made through the
engine's real image-to-image path, filtered to those whose layout survived, mirrored consistently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from desktop_app.training import decoder_pairs, scenes, vae

BUILTIN = Path(__file__).resolve().parents[1] / "models" / "builtin"


def test_layout_check_accepts_the_scene_and_rejects_a_lost_or_recoloured_object():
    rng = np.random.default_rng(3)
    scene = scenes.random_scene(rng, n_objects=2)
    assert decoder_pairs.same_layout(scenes.render(scene), scene)
    dropped = scenes.Scene(scene.background, scene.shapes[:1], scene.offsets[:1])
    assert not decoder_pairs.same_layout(scenes.render(dropped), scene)
    s = scene.shapes[0]
    other = next(c for c in scenes.COLORS if c not in (s.color, scene.background))
    recoloured = scenes.Scene(scene.background,
                              (scenes.Shape(other, s.shape, s.size, s.cell), *scene.shapes[1:]),
                              scene.offsets)
    assert not decoder_pairs.same_layout(scenes.render(recoloured), scene)
    # Shape is not checked: a square the UNet rounded is exactly what the decoder should learn.
    reshaped = scenes.Scene(scene.background,
                            (scenes.Shape(s.color, "circle" if s.shape != "circle" else "square",
                                          s.size, s.cell), *scene.shapes[1:]), scene.offsets)
    assert decoder_pairs.same_layout(scenes.render(reshaped), scene)


def test_pairs_come_from_the_engine_and_a_light_touch_keeps_the_scene():
    from desktop_app.engine import Engine

    engine = Engine(device="cpu")
    engine.load(BUILTIN)
    # Strength 0.1 of 20 steps: the UNet only finishes the last two, so the scene survives.
    pairs = decoder_pairs.make_pairs(engine, 3, seed=5, strengths=(0.1, 0.1), batch=2)
    assert pairs["latents"].shape == (3, 4, 32, 32) and pairs["latents"].dtype == np.float16
    assert pairs["images"].shape == (3, 256, 256, 3) and pairs["images"].dtype == np.uint8
    assert pairs["strengths"].tolist() == pytest.approx([0.1] * 3)
    assert pairs["layout_kept"].all()
    # Deterministic: the same seed gives the same pairs.
    again = decoder_pairs.make_pairs(engine, 3, seed=5, strengths=(0.1, 0.1), batch=2)
    assert np.array_equal(pairs["latents"], again["latents"])


def test_pair_batches_mirror_latent_and_image_together():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(1, 4, 32, 32)).astype(np.float16)
    x = rng.integers(0, 256, size=(1, 256, 256, 3), dtype=np.uint8)
    zb, xb = vae.pair_batch(np.random.default_rng(1), z, x, 64)
    z0, x0 = np.asarray(z[0], np.float32), vae.to_tensor(x)[0].numpy()
    flipped = 0
    for zi, xi in zip(zb.numpy(), xb.numpy(), strict=True):
        if np.array_equal(zi, z0):
            assert np.array_equal(xi, x0)
        else:
            assert np.array_equal(zi, z0[..., ::-1]) and np.array_equal(xi, x0[..., ::-1])
            flipped += 1
    assert 0 < flipped < 64
