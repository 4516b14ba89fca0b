"""The window over the real Engine with a tiny random built-in-shaped model: checks the
UI <-> engine contract (previews, results, cancel, errors) end to end on the engine thread."""

from __future__ import annotations

import app_helpers as helpers
import numpy as np
import pytest

from desktop_app.document.job import JobKind

pytest.importorskip("desktop_app.engine")


@pytest.fixture
def real_window(qtbot, tiny_builtin):
    window = helpers.open_real_window(qtbot, str(tiny_builtin), (64, 64))
    yield window
    window.close()


def test_real_engine_generates_previews_and_a_result(qtbot, real_window):
    window = real_window
    result, steps = helpers.generate_and_wait(qtbot, window, "a red ball", 2)
    assert result.request.kind is JobKind.TEXT_TO_IMAGE
    assert window.doc.image is not None and window.doc.image.shape == (64, 64, 3)
    assert np.array_equal(window.doc.image, result.image)
    assert steps and steps[-1] == 2


def test_real_engine_inpaint_with_a_region_and_cancel(qtbot, real_window):
    window = real_window
    window.doc.set_image(np.full((64, 64, 3), 90, np.uint8))
    window.tool.set_shape("rect")
    window.tool.press(8, 8)
    window.tool.release(40, 40)
    window.regions.add("ball")
    window.tool.press(10, 10)
    window.tool.release(30, 30)
    result, _ = helpers.generate_and_wait(qtbot, window, "a red ball", 2)
    assert result.request.kind is JobKind.INPAINT and len(result.region_adherence) == 1
    before = window.doc.image.copy()
    window.panel.steps.setValue(200)
    with qtbot.waitSignal(window.client.preview, timeout=120_000):
        window.generation.generate()
    with qtbot.waitSignal(window.client.cancelled, timeout=120_000):
        window.generation.cancel()
    assert np.array_equal(window.doc.image, before)


def test_real_engine_keeps_its_model_when_a_wrong_file_is_chosen(qtbot, real_window, tmp_path):
    window = real_window
    loaded = window.model_label.text()
    (tmp_path / "model.ckpt").write_bytes(b"a pickled checkpoint")
    (tmp_path / "notes.safetensors").write_text("a text file renamed")
    for name in ("model.ckpt", "notes.safetensors"):
        with qtbot.waitSignal(window.client.model_failed, timeout=120_000):
            window.models.open(str(tmp_path / name))
        assert name in window.last_error and "still using tiny_builtin" in window.last_error
        assert window.model_label.text() == loaded
    result, _ = helpers.generate_and_wait(qtbot, window, "a red ball", 1)
    assert result.model_name == "tiny_builtin"


def test_real_engine_inpaints_an_odd_sized_photo_at_its_own_size(qtbot, real_window, tmp_path):
    from PIL import Image

    window = real_window
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)  # no multiple of 8
    Image.fromarray(photo).save(tmp_path / "photo.png")
    assert window.actions_.open_path(str(tmp_path / "photo.png"))
    window.tool.set_shape("rect")
    window.tool.press(40, 10)
    window.tool.release(61, 45)  # to the bottom-right corner, where the job pads
    window.panel.strength.setValue(1.0)
    result, steps = helpers.generate_and_wait(qtbot, window, "a red ball", 2)
    assert result.request.kind is JobKind.INPAINT and steps[-1] == 2
    assert window.doc.size == (61, 45) and window.doc.image.shape == (45, 61, 3)
    keep = window.doc.mask == 0
    assert keep.sum() > 1500 and not keep[44, 60]
    assert np.array_equal(window.doc.image[keep], photo[keep])
    assert not np.array_equal(window.doc.image[~keep], photo[~keep])
