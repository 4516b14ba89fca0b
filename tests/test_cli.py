"""`diffusion-canvas generate` end to end on tiny random models: outputs, previews, metadata,
one-line errors with a non-zero exit code, Ctrl+C, and the real `python -m desktop_app` entry."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from desktop_app import cli
from desktop_app.document.image_io import load_image, save_png
from desktop_app.document.job import JobKind
from desktop_app.document.metadata import read_metadata

ROOT = Path(__file__).resolve().parents[1]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def _init(tmp_path: Path, w: int = 48, h: int = 40) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    save_png(tmp_path / "init.png", image)
    return tmp_path / "init.png", image


def test_text_to_image_writes_png_previews_and_metadata(tiny_sd, tmp_path, capsys):
    out, previews = tmp_path / "out.png", tmp_path / "previews"
    code, stdout, err = _run(capsys, "generate", "--prompt", "a red fox", "--negative", "blur",
                             "--model", str(tiny_sd), "--steps", "3", "--seed", "7",
                             "--cfg", "5", "--sampler", "euler_a", "--previews", str(previews),
                             "--out", str(out))
    assert code == 0, err
    assert stdout.strip() == str(out)
    image = load_image(out)
    assert image.shape == (64, 64, 3)  # no --width/--height: the model's own size
    assert sorted(p.name for p in previews.iterdir()) == [
        "step_001.png", "step_002.png", "step_003.png"]
    assert "step 3/3" in err and "seed 7" in err
    req = read_metadata(out)
    assert req.kind is JobKind.TEXT_TO_IMAGE
    assert (req.prompt, req.negative_prompt, req.seed, req.steps) == ("a red fox", "blur", 7, 3)
    assert (req.cfg_scale, req.sampler, req.width, req.height) == (5.0, "euler_a", 64, 64)
    with Image.open(out) as png:
        assert "Seed: 7" in png.info["parameters"] and "Model: tiny_sd" in png.info["parameters"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


@pytest.mark.parametrize("given, used", [((), 3.0), (("--cfg", "6"), 6.0)])
def test_guidance_scale_defaults_to_the_models_recommendation(tiny_sd, tmp_path, capsys, given,
                                                              used):
    import shutil

    model = shutil.copytree(tiny_sd, tmp_path / "model")
    (model / "generation_defaults.json").write_text('{"cfg_scale": 3}')
    out = tmp_path / "out.png"
    code, _, err = _run(capsys, "--prompt", "x", "--model", str(model), "--steps", "1",
                        "--quiet", *given, "--out", str(out))
    assert code == 0, err
    assert read_metadata(out).cfg_scale == used


def test_image_to_image_takes_the_init_size(tiny_sd, tmp_path, capsys):
    init, image = _init(tmp_path)
    out = tmp_path / "i2i.png"
    code, _, err = _run(capsys, "--prompt", "x", "--model", str(tiny_sd), "--steps", "2",
                        "--init", str(init), "--strength", "0.5", "--quiet", "--out", str(out))
    assert code == 0, err
    assert err == ""  # --quiet: nothing on stderr when all is well
    assert load_image(out).shape == (40, 48, 3)
    req = read_metadata(out)
    assert req.kind is JobKind.IMAGE_TO_IMAGE and req.strength == 0.5
    np.testing.assert_array_equal(req.init_image, image)


def test_inpaint_repaints_white_and_keeps_black(tiny_sd_inpaint, tmp_path, capsys):
    init, image = _init(tmp_path, 64, 64)
    mask = np.zeros((32, 32), np.uint8)  # half size: resized with a warning
    mask[:, :16] = 255  # left half = repaint
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "inpaint.png"
    code, _, err = _run(capsys, "--prompt", "x", "--model", str(tiny_sd_inpaint), "--steps", "2",
                        "--init", str(init), "--mask", str(tmp_path / "mask.png"),
                        "--strength", "1", "--mask-grow", "1", "--mask-feather", "2",
                        "--out", str(out))
    assert code == 0, err
    assert "resized to 64x64" in err
    result = load_image(out).astype(int)
    keep = np.abs(result[:, 40:] - image[:, 40:].astype(int)).mean()
    repaint = np.abs(result[:, :24] - image[:, :24].astype(int)).mean()
    assert keep < 2 and repaint > 20
    req = read_metadata(out)
    assert req.kind is JobKind.INPAINT
    assert (req.mask_grow, req.mask_feather, req.inpaint_only_masked) == (1, 2.0, False)
    assert req.mask.shape == (64, 64)
    assert req.mask[:, :30].min() == 1.0 and req.mask[:, 34:].max() == 0


def test_regions_layout_reaches_the_engine_and_the_metadata(tiny_sd, tmp_path, capsys):
    left = np.zeros((32, 32), np.uint8)
    left[:, :16] = 255
    Image.fromarray(left).save(tmp_path / "left.png")
    layout = {"version": 1, "width": 32, "height": 32, "regions": [
        {"words": "red fox", "mask": "left.png", "strength": 1.5},
        {"words": "blue sky", "rect": [0, 0, 32, 8], "name": "sky"},
        {"words": "green tree", "rect": [16, 16, 16, 16]},
    ]}
    (tmp_path / "layout.json").write_text(json.dumps(layout))
    out = tmp_path / "pww.png"
    code, _, err = _run(capsys, "--prompt", "a red fox under a blue sky", "--model", str(tiny_sd),
                        "--steps", "2", "--regions", str(tmp_path / "layout.json"),
                        "--pww-scale", "0.3", "--pww-mode", "std", "--pww-outside", "0.5",
                        "--pww-local-sigma", "2", "--out", str(out))
    assert code == 0, err
    assert any(line.startswith("warning:") and "green tree" in line for line in err.splitlines())
    req = read_metadata(out)
    assert (req.pww_scale, req.pww_mode, req.pww_outside, req.pww_local_sigma) == (
        0.3, "std", 0.5, 2.0)
    assert [(r.words, r.strength, r.name) for r in req.regions] == [
        ("red fox", 1.5, ""), ("blue sky", 1.0, "sky"), ("green tree", 1.0, "")]
    sky = req.regions[1].mask  # the layout's 32 px rect, scaled to the 64 px request
    assert sky.shape == (64, 64) and sky[:16].min() == 1.0 and sky[16:].max() == 0.0
    fox = req.regions[0].mask
    assert fox[:, :28].min() > 0.99 and fox[:, 36:].max() < 0.01


def test_layout_regions_without_strength_get_the_models_recommendation(tiny_sd, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_sd, model)
    (model / "generation_defaults.json").write_text('{"region_strength": 3.0}')
    layout = {"version": 1, "regions": [{"words": "red fox", "rect": [0, 0, 32, 64]},
                                        {"words": "blue sky", "rect": [32, 0, 32, 8],
                                         "strength": 0.5}]}
    (tmp_path / "layout.json").write_text(json.dumps(layout))
    out = tmp_path / "pww.png"
    code, _, err = _run(capsys, "--prompt", "a red fox under a blue sky", "--model", str(model),
                        "--steps", "1", "--regions", str(tmp_path / "layout.json"),
                        "--out", str(out))
    assert code == 0, err
    assert [r.strength for r in read_metadata(out).regions] == [3.0, 0.5]


def test_regions_from_the_prompt_place_each_clause_in_its_third(tiny_sd, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_sd, model)
    (model / "generation_defaults.json").write_text('{"region_strength": 3.0}')
    out = tmp_path / "auto.png"
    code, _, err = _run(capsys, "--prompt", "a red fox at the bottom left, a blue sky at the top",
                        "--model", str(model), "--steps", "1", "--regions-from-prompt",
                        "--width", "96", "--height", "48", "--out", str(out))
    assert code == 0, err
    assert "regions from the prompt: 'red fox at the bottom left'" in err
    regions = read_metadata(out).regions
    assert [(r.words, r.strength) for r in regions] == [
        ("red fox at the bottom left", 3.0), ("blue sky at the top", 3.0)]
    fox, sky = regions[0].mask, regions[1].mask
    assert fox.shape == (48, 96) and fox[32:, :32].min() == 1.0 and fox.sum() == 16 * 32
    assert sky[:16, 32:64].min() == 1.0 and sky.sum() == 16 * 32
    # Nothing to place: a warning, and the image is made without regions.
    out2 = tmp_path / "plain.png"
    code, _, err = _run(capsys, "--prompt", "a red fox", "--model", str(model), "--steps", "1",
                        "--regions-from-prompt", "--out", str(out2))
    assert code == 0 and "says nowhere where" in err and read_metadata(out2).regions == ()


def test_an_out_folder_without_write_permission_fails_before_the_job(tmp_path, capsys,
                                                                    monkeypatch):
    real_access = os.access
    monkeypatch.setattr(cli.os, "access",  # tests run as root here, who may write anywhere
                        lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    code, _, err = _run(capsys, "--prompt", "x", "--model", str(tmp_path / "never_loaded"),
                        "--out", str(tmp_path / "out.png"))
    assert code == 2
    assert _assert_one_line_error(err).endswith(f"no permission to write in {tmp_path}")


@pytest.mark.parametrize("previews, expected", [
    ("{tmp}/file.png/previews", "cannot make the folder (Not a directory)"),  # was exit 1
    ("{tmp}/read_only", "no permission to write in it"),  # failed at step 1, after the model
])
def test_a_previews_folder_that_cannot_be_written_fails_before_the_model_loads(
        tmp_path, capsys, monkeypatch, previews, expected):
    save_png(tmp_path / "file.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "read_only").mkdir()
    real_access = os.access
    monkeypatch.setattr(cli.os, "access",  # tests run as root here, who may write anywhere
                        lambda p, mode: Path(p).name != "read_only" and real_access(p, mode))

    def load_engine(*args):
        raise RuntimeError("loaded the model")

    monkeypatch.setattr(cli, "_load_engine", load_engine)
    previews = previews.replace("{tmp}", str(tmp_path))
    code, _, err = _run(capsys, "--prompt", "x", "--previews", previews,
                        "--out", str(tmp_path / "out.png"))
    assert code == 2
    assert _assert_one_line_error(err) == f"error: --previews {previews}: {expected}"


@pytest.mark.parametrize("option, expected", [
    (("--device", "tpu"), "unknown device 'tpu'"),
    (("--device", "cuda:7"), "device 'cuda"),  # no CUDA here, or not 8 GPUs
    (("--dtype", "float8"), "unknown dtype 'float8'"),
])
def test_an_unknown_or_absent_device_or_dtype_is_bad_input(tiny_sd, tmp_path, capsys, option,
                                                           expected):
    # Exit 1 ("the engine failed") used to say the engine was at fault for a mistyped option.
    code, _, err = _run(capsys, "--prompt", "x", "--model", str(tiny_sd), *option,
                        "--out", str(tmp_path / "out.png"))
    assert code == 2
    assert expected in _assert_one_line_error(err)


@pytest.mark.parametrize("argv, expected", [
    # Bytes that are not UTF-8 in an argument reach Python as lone surrogates: the tokenizer
    # failed ("unexpected TypeError", exit 1), or the job ran and its PNG could not be written.
    (["--prompt", "a\udcffb"], "prompt: character 2 ('\\udcff') is not valid text"),
    (["--prompt", "x", "--negative", "\udcff"], "negative prompt: character 1"),
    (["--prompt", "a cat", "--regions", "{tmp}/layout.json"], "region 1 words: character 1"),
])
def test_text_that_is_not_unicode_is_bad_input_and_writes_nothing(tiny_sd, tmp_path, capsys,
                                                                  argv, expected):
    (tmp_path / "layout.json").write_text('{"regions": [{"words": "\\ud800", "rect": [0, 0, 8, 8]}]}')
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, stdout, err = _run(capsys, *argv, "--model", str(tiny_sd), "--steps", "1", "--quiet",
                             "--out", str(tmp_path / "out.png"))
    assert code == 2 and stdout == ""
    assert expected in _assert_one_line_error(err)
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("size_args, expected", [
    ([], (50, 37)),  # its own size: no multiple of 8 is needed
    (["--width", "96"], (96, 71)),  # one side given: the other keeps the aspect
    (["--height", "16"], (22, 16)),
    (["--width", "64", "--height", "64"], (64, 64)),
])
def test_init_size_and_aspect(tmp_path, size_args, expected):
    _init(tmp_path, 50, 37)
    Image.fromarray(np.full((37, 50), 255, np.uint8)).save(tmp_path / "m.png")
    args = cli.build_parser().parse_args(["--prompt", "p", "--init", str(tmp_path / "init.png"),
                                          "--mask", str(tmp_path / "m.png"), *size_args,
                                          "--out", str(tmp_path / "o.png")])
    messages: list[str] = []
    console = cli.Console(quiet=True)
    console.warn = messages.append
    image, mask = cli._load_inputs(args, console)
    w, h = expected
    assert image.shape == (h, w, 3) and mask.shape == (h, w)
    resized = size_args != []
    assert any("50x37 resized to" in m for m in messages) == resized
    assert any("mask is 50x37" in m for m in messages) == resized


def test_inpaint_of_an_odd_sized_image_keeps_its_size_and_every_kept_pixel(tiny_sd_inpaint,
                                                                          tmp_path, capsys):
    init, image = _init(tmp_path, 50, 37)
    mask = np.zeros((37, 50), np.uint8)
    mask[5:30, 20:50] = 255  # reaches the right edge, where the padding is
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "odd.png"
    code, _, err = _run(capsys, "--prompt", "x", "--model", str(tiny_sd_inpaint), "--steps", "2",
                        "--init", str(init), "--mask", str(tmp_path / "mask.png"),
                        "--strength", "1", "--out", str(out))
    assert code == 0, err
    assert "resized" not in err
    result = load_image(out)
    assert result.shape == (37, 50, 3)
    assert np.array_equal(result[mask == 0], image[mask == 0])
    assert np.abs(result[mask > 0].astype(int) - image[mask > 0]).mean() > 20


def test_text_to_image_at_a_size_that_is_no_multiple_of_8(tiny_sd, tmp_path, capsys):
    out = tmp_path / "odd.png"
    code, _, err = _run(capsys, "--prompt", "x", "--model", str(tiny_sd), "--steps", "2",
                        "--width", "65", "--height", "33", "--out", str(out))
    assert code == 0, err
    assert load_image(out).shape == (33, 65, 3)
    assert read_metadata(out).width == 65


BAD_INPUTS = [
    (["--steps", "abc"], "--steps"),
    (["--steps", "0"], "--steps"),
    (["--cfg", "nan"], "--cfg"),
    (["--strength", "1.5"], "--strength"),
    (["--sampler", "heun"], "--sampler"),
    (["--width", "7"], "--width"),
    (["--seed", "-5"], "--seed"),
    (["--init", "{tmp}/missing.png"], "missing.png"),
    (["--init", "{tmp}/corrupt.png"], "corrupt.png"),
    (["--mask", "{tmp}/mask.png"], "--mask needs --init"),
    (["--init", "{tmp}/init.png", "--mask", "{tmp}/empty.png"], "mask is empty"),
    (["--model", "{tmp}/no_such_model"], "no_such_model"),
    (["--model", ""], "--model: empty path"),  # used to try the current folder as a model
    (["--model", "{tmp}/model.ckpt"], "model.ckpt"),
    (["--model", "{tmp}/loop"], "loop: a broken or looping symbolic link"),  # was "not found"
    (["--regions", "{tmp}/no_layout.json"], "no_layout.json"),
    (["--regions", "{tmp}/bad_layout.json"], "bad_layout.json"),
    (["--sampler", "lcm"], "LCM"),
    (["--regions", "{tmp}/bad_layout.json", "--regions-from-prompt"], "choose one"),
    (["--device", "tpu"], "tpu"),
    (["--dtype", "float8"], "float8"),
]


@pytest.fixture
def bad_files(tmp_path):
    _init(tmp_path, 64, 64)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "empty.png")
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(tmp_path / "mask.png")
    (tmp_path / "model.ckpt").write_bytes(b"\x80\x04 a pickle")
    (tmp_path / "bad_layout.json").write_text("{not json")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    return tmp_path


@pytest.mark.parametrize("extra, expected", BAD_INPUTS, ids=[b[1] + str(i)
                                                              for i, b in enumerate(BAD_INPUTS)])
def test_bad_input_exits_non_zero_with_one_line(tiny_sd, bad_files, capsys, extra, expected):
    out = bad_files / "out.png"
    extra = [a.replace("{tmp}", str(bad_files)) for a in extra]
    model = [] if "--model" in extra else ["--model", str(tiny_sd)]
    code, stdout, err = _run(capsys, "--prompt", "p", "--steps", "2", *model, *extra,
                             "--quiet", "--out", str(out))
    assert code != 0
    assert expected in _assert_one_line_error(err)
    assert not out.exists() and stdout == ""


@pytest.mark.parametrize("argv, expected", [
    (["--out", "{tmp}/x.png"], "--prompt"),
    (["--prompt", "p", "--out", "{tmp}/x.jpg"], ".png"),
    (["--prompt", "p", "--out", "{tmp}/nowhere/x.png"], "does not exist"),
    (["--prompt", "p", "--out", "{tmp}/existing.png"], "--overwrite"),
    (["--prompt", "p", "--out", "{tmp}/existing.png/x.png"], "existing.png is a file, not a folder"),
    (["--prompt", "p", "--regions", "{tmp}", "--out", "{tmp}/x.png"],  # was "file not found"
     "is a folder, not a layout file"),
])
def test_bad_output_paths_fail_before_any_work(tmp_path, capsys, argv, expected):
    save_png(tmp_path / "existing.png", np.zeros((8, 8, 3), np.uint8))
    before = (tmp_path / "existing.png").read_bytes()
    code, _, err = _run(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert code == 2
    assert expected in _assert_one_line_error(err)
    assert (tmp_path / "existing.png").read_bytes() == before  # never clobbered


@pytest.mark.parametrize("size_args, expected", [
    ([], "wide.png: 5000x16 is over the 4096-pixel limit; scale it down with --width"),
    (["--height", "64"], "wide.png: 5000x16 scaled to 20000x64 is over the 4096-pixel limit"),
])
def test_an_init_image_too_big_fails_before_the_model_loads(tmp_path, capsys, monkeypatch,
                                                           size_args, expected):
    # It used to load the model first, then fail with "size 5000x16 is out of range".
    Image.new("RGB", (5000, 16)).save(tmp_path / "wide.png")
    def load_engine(*args):
        raise RuntimeError("loaded the model")

    monkeypatch.setattr(cli, "_load_engine", load_engine)
    code, stdout, err = _run(capsys, "--prompt", "p", "--init", str(tmp_path / "wide.png"),
                             *size_args, "--out", str(tmp_path / "o.png"))
    assert code == 2 and stdout == ""
    assert expected in _assert_one_line_error(err)
    assert not (tmp_path / "o.png").exists()
    code, _, err = _run(capsys, "--prompt", "p", "--init", str(tmp_path / "wide.png"),
                        "--width", "1024", "--out", str(tmp_path / "o.png"))
    assert code == 1 and "loaded the model" in err  # scaled down, it gets as far as the model


def test_ctrl_c_cancels_cleanly_and_writes_nothing(tiny_sd, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.png"
    save_png(out, np.zeros((8, 8, 3), np.uint8))
    before = out.read_bytes()
    seen: list[int] = []
    real_call = cli.PreviewWriter.__call__

    def press_ctrl_c(self, preview):
        seen.append(preview.step)
        real_call(self, preview)
        if preview.step == 1:
            signal.raise_signal(signal.SIGINT)  # the real signal, through the CLI's handler

    monkeypatch.setattr(cli.PreviewWriter, "__call__", press_ctrl_c)
    handler_before = signal.getsignal(signal.SIGINT)
    code, stdout, err = _run(capsys, "--prompt", "p", "--model", str(tiny_sd), "--steps", "6",
                             "--previews", str(tmp_path / "prev"), "--overwrite", "--out", str(out))
    assert code == 130
    assert "cancelled; nothing was written" in err and "Traceback" not in err
    assert out.read_bytes() == before and stdout == ""
    assert max(seen) <= 2  # stopped within a step of the request, not after all six
    assert signal.getsignal(signal.SIGINT) is handler_before  # handler restored


def test_an_out_file_made_while_the_job_ran_is_not_clobbered(tiny_sd, tmp_path, capsys,
                                                            monkeypatch):
    # --out is checked at the start; a file made there during the run (say by a second run with
    # the same --out) used to be replaced silently at the end.
    out = tmp_path / "out.png"
    real_call = cli.PreviewWriter.__call__

    def someone_writes_out(self, preview):
        real_call(self, preview)
        if preview.step == 1:
            out.write_bytes(b"the other run's picture")

    monkeypatch.setattr(cli.PreviewWriter, "__call__", someone_writes_out)
    code, stdout, err = _run(capsys, "--prompt", "p", "--model", str(tiny_sd), "--steps", "2",
                             "--quiet", "--out", str(out))
    assert code == 2 and stdout == ""
    assert "was created while the job ran" in _assert_one_line_error(err)
    assert out.read_bytes() == b"the other run's picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_a_model_path_with_a_tilde_is_expanded_as_the_engine_does(tiny_sd, tmp_path, capsys,
                                                                  monkeypatch):
    # The shell leaves --model=~/... alone; the check used to call it "not found".
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "my model").symlink_to(tiny_sd)
    code, _, err = _run(capsys, "--prompt", "p", "--steps", "1", "--model=~/my model",
                        "--quiet", "--out", str(tmp_path / "o.png"))
    assert code == 0, err
    assert (tmp_path / "o.png").is_file()


def test_engine_failure_on_a_broken_model_is_one_line(tmp_path, capsys):
    broken = tmp_path / "broken_model"
    broken.mkdir()
    (broken / "model_index.json").write_text("{ not json")
    code, _, err = _run(capsys, "--prompt", "p", "--model", str(broken), "--quiet",
                        "--out", str(tmp_path / "o.png"))
    assert code == 1
    assert "broken_model" in _assert_one_line_error(err)
    assert not (tmp_path / "o.png").exists()


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_python_m_entry_point(tiny_sd, tmp_path):
    out = tmp_path / "sub.png"
    proc = subprocess.run(
        [sys.executable, "-m", "desktop_app", "generate", "--prompt", "a cat",
         "--model", str(tiny_sd), "--steps", "2", "--seed", "3", "--out", str(out)],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
    assert read_metadata(out).seed == 3

    bad = subprocess.run([sys.executable, "-m", "desktop_app", "generate", "--prompt", "p",
                          "--init", str(tmp_path / "nope.png"), "--out", str(tmp_path / "b.png")],
                         cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "nope.png" in bad.stderr


class _Tty:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_progress_bar_redraws_in_place_on_a_terminal():
    tty = _Tty()
    console = cli.Console(stream=tty)
    for step in range(1, 5):
        console.step(step, 4)
    frames = tty.text.split("\r")[1:]
    assert len(frames) == 4 and frames[0].startswith("step 1/4")
    assert frames[-1].startswith("step 4/4 [########################]")
    assert "it/s" in frames[-1] and tty.text.endswith("\n") and tty.text.count("\n") == 1


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as info:  # argparse prints help and exits
        cli.build_parser().parse_args(["--help"])
    assert info.value.code == 0
    assert cli.main(["--help"]) == 0
    assert "--inpaint-only-masked" in capsys.readouterr().out
