"""The shipped built-in model: its folder, the app end to end on it, and its quality bar.

Thresholds sit just under what was measured for the shipped weights (models/builtin/README.md),
so a regression cannot land. The evaluator is deterministic; seeds are fixed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from desktop_app.training import evaluator, quality, scenes

BUILTIN = Path(__file__).resolve().parents[1] / "models" / "builtin"
pytestmark = pytest.mark.skipif(not (BUILTIN / "unet").is_dir(),
                                reason="models/builtin has no trained UNet yet")

# Measured on the shipped weights (UNet step 1400) with exactly these subsets: single-object
# background 78%, two-object background 69%, outside-the-mask pixels bit-exact 100%. Object
# attributes are still near chance (colour+shape 3%, position 9%), so they get no threshold yet: a
# bar of 0 could not fail. Raise these as training goes on (the model card has the numbers).
MIN_SINGLE_BACKGROUND = 0.70
MIN_TWO_BACKGROUND = 0.60


@pytest.fixture(scope="module")
def generate():
    return quality.engine_generator(None)


def test_folder_is_safetensors_only_and_within_budget():
    files = [p for p in BUILTIN.rglob("*") if p.is_file()]
    weights = [p for p in files if p.suffix in (".safetensors", ".bin", ".ckpt", ".pt", ".pth")]
    assert weights and all(p.suffix == ".safetensors" for p in weights)
    assert sum(p.stat().st_size for p in files) <= 100 * 2**20


def test_single_object_quality(generate):
    res = quality.measure(generate, quality.single_cases(32), "single")
    assert res["background"] >= MIN_SINGLE_BACKGROUND


def test_two_object_quality(generate):
    res = quality.measure(generate, quality.two_cases(16), "two")
    assert res["background"] >= MIN_TWO_BACKGROUND


def test_inpainting_keeps_every_pixel_outside_the_mask(generate):
    res = quality.measure(generate, quality.inpaint_cases(16), "inpaint")
    assert res["outside_bit_exact"] == 1.0


def test_app_generates_with_the_builtin_model_end_to_end(qtbot):
    import app_helpers

    # Fresh settings (an autouse fixture): like a first run, the app loads the built-in model.
    window = app_helpers.open_real_window(qtbot, None, (256, 256))
    assert window.client.model_info.family == "builtin"
    previews: list[int] = []
    window.client.progress.connect(lambda job, step, total, rate: previews.append(step))
    window.panel.prompt.setPlainText("a big red circle in the center on a gray background")
    window.panel.steps.setValue(12)
    with qtbot.waitSignal(window.generation.history_added, timeout=120_000) as added:
        window.generation.generate()
    result = added.args[0].result
    assert window.doc.image is not None and np.array_equal(window.doc.image, result.image)
    assert previews and previews[-1] == 12
    assert result.image.shape == (256, 256, 3)
    window.close()


def test_evaluator_agrees_with_rendered_eval_scenes():
    # The quality numbers mean something only if the evaluator reads the target scenes right.
    cases = quality.single_cases(32) + quality.two_cases(16)
    assert all(evaluator.scene_correct(c.scene, evaluator.read(scenes.render(c.scene)))
               for c in cases)
