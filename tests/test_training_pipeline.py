"""The retraining command's UNet phases: each resumes where the cache's checkpoint stands, and a
run that already grew into a bigger network never steps back to a smaller one."""

from __future__ import annotations

import pytest
import torch

from desktop_app.training import common, pipeline


@pytest.mark.parametrize("held, expected", [
    (None, ["base", "deep32", "deep32", "deep32_16"] + ["deeper32_16"] * 3),  # nothing
    ("deep32", ["deep32", "deep32", "deep32_16"] + ["deeper32_16"] * 3),
    ("deep32_16", ["deep32_16"] + ["deeper32_16"] * 3),
    ("deeper32_16", ["deeper32_16"] * 3),
])
def test_unet_phases_resume_from_the_checkpoint_arch(monkeypatch, tmp_path, held, expected):
    monkeypatch.setattr(common, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(common, "MODEL_DIR", tmp_path / "model")
    (tmp_path / "cache").mkdir()
    model = tmp_path / "model"
    (model / "vae").mkdir(parents=True)
    for name in ("vae/config.json", "model_index.json", "generation_defaults.json",
                 "vocabulary.txt", "latent_rgb.json"):
        (model / name).write_text("{}")
    if held is not None:
        torch.save({"arch": held, "step": 1}, tmp_path / "cache" / "unet.pt")
    calls, argvs, stages = [], [], []
    monkeypatch.setattr(pipeline.data, "main", lambda argv: stages.append(argv[0]))
    monkeypatch.setattr(pipeline.unet, "main", lambda argv: (argvs.append(argv), calls.append(
        argv[argv.index("--arch") + 1] if "--arch" in argv else "base")))
    pipeline.main([])
    assert calls == expected
    assert stages == ["text", "latents", "fg", "bare"]  # the layout phase reads bare captions
    # The last two phases restart from the EMA weights where the one before ended; only the
    # last trains under paint-with-words layouts.
    restart, layout = argvs[-2], argvs[-1]
    arg = lambda argv, flag: argv[argv.index(flag) + 1] if flag in argv else None  # noqa: E731
    assert arg(layout, "--warm-restart-at") == arg(restart, "--steps")
    assert arg(layout, "--layout-share") == str(pipeline.LAYOUT_SHARE)
    assert arg(restart, "--layout-share") is None


def test_the_recipe_ends_at_the_shipped_unets_step():
    import json
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "models" / "builtin" / "training_state.json"
    total = (pipeline.UNET_STEPS + pipeline.GROW_STEPS + pipeline.RESTART_STEPS
             + pipeline.GROW16_STEPS + pipeline.DEEPER32_STEPS + pipeline.FINAL_RESTART_STEPS
             + pipeline.LAYOUT_STEPS)
    assert json.loads(shipped.read_text())["step"] == total
