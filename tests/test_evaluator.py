from __future__ import annotations

import numpy as np

from desktop_app.training import evaluator, scenes


def test_reads_rendered_ground_truth_at_least_99_percent():
    rng = np.random.default_rng(7)
    trials = 150
    correct = 0
    for _ in range(trials):
        scene = scenes.random_scene(rng, held_out=None)
        correct += evaluator.scene_correct(scene, evaluator.read(scenes.render(scene)))
    assert correct / trials >= 0.99


def test_detects_wrong_attributes():
    scene = scenes.Scene("gray", (scenes.Shape("red", "circle", "big", 0),))
    img = scenes.render(scene)
    for wrong in (scenes.Shape("blue", "circle", "big", 0), scenes.Shape("red", "square", "big", 0),
                  scenes.Shape("red", "circle", "small", 0), scenes.Shape("red", "circle", "big", 8)):
        assert not evaluator.scene_correct(scenes.Scene("gray", (wrong,)), evaluator.read(img))
    assert not evaluator.scene_correct(scenes.Scene("white", scene.shapes), evaluator.read(img))
    blank = np.full((256, 256, 3), 128, np.uint8)
    assert evaluator.read(blank).objects == ()


def test_tolerates_noise_and_soft_edges():
    rng = np.random.default_rng(3)
    scene = scenes.random_scene(rng, n_objects=3)
    img = scenes.render(scene).astype(np.int16) + rng.integers(-12, 13, size=(256, 256, 3))
    assert evaluator.scene_correct(scene, evaluator.read(np.clip(img, 0, 255).astype(np.uint8)))
