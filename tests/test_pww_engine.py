"""Paint-with-words through the engine on every tiny model family: CLIP (SD 1.x), two CLIP
tokenizers (SDXL), BERT with [CLS]/[SEP] (built-in) and a 9-channel inpainting UNet."""

from __future__ import annotations

import numpy as np
import pytest

from desktop_app.document.job import EngineError, JobKind, JobRequest, Region

SIZE = 64


def _request(kind: JobKind, **kw) -> JobRequest:
    base = dict(kind=kind, prompt="a red cat on a blue sofa", steps=3, width=SIZE, height=SIZE,
                seed=3, cfg_scale=5.0)
    if kind is JobKind.INPAINT:
        rng = np.random.default_rng(1)
        base["init_image"] = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        base["mask"] = np.ones((SIZE, SIZE), np.float32)
        base["strength"] = 1.0
    base.update(kw)
    return JobRequest(**base)


def _left() -> np.ndarray:
    m = np.zeros((SIZE, SIZE), np.float32)
    m[:, : SIZE // 2] = 1
    return m


CASES = [("tiny_sd", JobKind.TEXT_TO_IMAGE), ("tiny_sdxl", JobKind.TEXT_TO_IMAGE),
         ("tiny_builtin", JobKind.TEXT_TO_IMAGE), ("tiny_sd_inpaint", JobKind.INPAINT)]


@pytest.mark.parametrize("model, kind", CASES)
def test_regions_steer_and_maps_name_the_prompt_words(engine_for, model, kind):
    engine = engine_for(model)
    regions = (Region("red cat", _left(), 3.0), Region("blue sofa", 1 - _left(), 3.0),
               Region("green dog", _left()))
    previews = []
    result = engine.run(_request(kind, regions=regions), on_preview=previews.append,
                        attention_maps=True)
    plain = engine.run(_request(kind))
    assert not np.array_equal(result.image, plain.image)
    assert any("'green dog' are not in the prompt" in w for w in result.warnings)
    red, blue, green = result.region_adherence
    assert 0.0 < red <= 1.0 and 0.0 < blue <= 1.0 and np.isnan(green)
    maps = previews[-1].attention
    assert set(maps) == {"a", "red", "cat", "on", "blue", "sofa"}
    shapes = {m.shape for m in maps.values()}
    assert len(shapes) == 1 and all(m.max() == pytest.approx(1.0) for m in maps.values())


@pytest.mark.parametrize("model, kind", CASES)
def test_maps_without_regions_leave_the_image_unchanged(engine_for, model, kind):
    engine = engine_for(model)
    previews = []
    with_maps = engine.run(_request(kind), on_preview=previews.append, attention_maps=True)
    plain = engine.run(_request(kind))
    np.testing.assert_array_equal(with_maps.image, plain.image)
    assert previews and previews[-1].attention


@pytest.mark.parametrize("model", ["tiny_sd", "tiny_builtin"])
def test_outside_suppression_keeps_the_words_attention_in_their_regions(engine_for, model):
    engine = engine_for(model)
    regions = (Region("red cat", _left(), 2.0), Region("blue sofa", 1 - _left(), 2.0))
    # Region prompts off: with these two regions covering the image, they would replace the
    # biased prompt everywhere in the late steps.
    inside_only = engine.run(_request(JobKind.TEXT_TO_IMAGE, regions=regions, pww_outside=0.0,
                                      pww_local_sigma=0.0))
    pushed = engine.run(_request(JobKind.TEXT_TO_IMAGE, regions=regions, pww_outside=2.0,
                                 pww_local_sigma=0.0))
    assert not np.array_equal(inside_only.image, pushed.image)
    for before, after in zip(inside_only.region_adherence, pushed.region_adherence, strict=True):
        assert after > before + 0.02


@pytest.mark.parametrize("model, kind", CASES)
def test_region_prompts_act_only_below_their_noise_level(engine_for, model, kind):
    # Every family encodes the region prompts with its own text encoder(s) (two on SDXL).
    engine = engine_for(model)
    regions = (Region("red cat", _left(), 2.0), Region("blue sofa", 1 - _left(), 2.0))
    off = engine.run(_request(kind, regions=regions, pww_local_sigma=0.0))
    below_every_step = engine.run(_request(kind, regions=regions, pww_local_sigma=1e-3))
    on = engine.run(_request(kind, regions=regions, pww_local_sigma=3.0))
    np.testing.assert_array_equal(below_every_step.image, off.image)
    assert not np.array_equal(on.image, off.image)


def test_running_out_of_memory_setting_up_regions_leaves_later_jobs_unbiased(engine_for,
                                                                             monkeypatch):
    from desktop_app.engine import pww

    engine = engine_for("tiny_sd")
    plain = engine.run(_request(JobKind.TEXT_TO_IMAGE))

    def out_of_memory(self, n):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(pww.PaintWithWords, "_template", out_of_memory)
    with pytest.raises(EngineError, match="out of memory"):
        engine.run(_request(JobKind.TEXT_TO_IMAGE, regions=(Region("red cat", _left(), 3.0),)))
    monkeypatch.undo()
    # The UNet kept the failed job's region bias: every later job drew it, with no regions.
    assert np.array_equal(engine.run(_request(JobKind.TEXT_TO_IMAGE)).image, plain.image)
