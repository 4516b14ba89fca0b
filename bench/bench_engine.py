"""Engine overhead against a bare diffusers pipeline call, on the same model and settings.

For each model it prints, side by side:
  * images/s of a bare diffusers pipeline call (same weights, same Euler sampler, same seed, size,
    steps and CFG) and of Engine.run with previews off and on (a preview every step), and the
    ratio engine / bare (goal: >= 0.97 with previews on);
  * the preview cost: time spent making and delivering a preview as a % of a step (goal <= 3%);
  * cancel latency: a second thread sets the cancel event half-way through a step, as the GUI
    does; reported in ms and in steps until Engine.run raised JobCancelled.

Runs are interleaved (bare, engine, engine+previews, then rotated) so a busy machine slows every
variant alike; medians are reported. Models:
  tiny     the tiny random SD of the tests (64 px) -- seconds
  sd15     the real SD 1.5 architecture (UNet 860M, VAE, CLIP ViT-L text encoder) with random
           weights, built from configs written here, cached on disk; 256 px -- several minutes
  builtin  models/builtin (or DC_MODEL), if it exists

    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_engine.py
    ... bench/bench_engine.py --models tiny --reps 5      # quick
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # tiny_models

from desktop_app.document.job import JobCancelled, JobKind, JobRequest  # noqa: E402
from desktop_app.engine import previews  # noqa: E402
from desktop_app.engine.engine import Engine  # noqa: E402

PROMPT = "a watercolour fox in a snowy forest, morning light"
SEED = 1234
CFG = 7.5
VARIANTS = ("bare", "engine", "engine+previews")

# ---- SD 1.5 architecture from its published hyper-parameters (random weights, nothing loaded) ----
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                      "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                    "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, norm_eps=1e-5,
    act_fn="silu", flip_sin_to_cos=True, freq_shift=0, downsample_padding=1,
    mid_block_scale_factor=1.0,
)
SD15_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    act_fn="silu", norm_num_groups=32, sample_size=512, scaling_factor=0.18215,
)
SD15_TEXT = dict(  # CLIP ViT-L/14 text tower
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
    num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
    layer_norm_eps=1e-5, projection_dim=768,
)
SD15_SCHEDULER = dict(  # SD 1.5 ships PNDM with this schedule; the engine builds Euler from it
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    steps_offset=1, skip_prk_steps=True, set_alpha_to_one=False, prediction_type="epsilon",
)


def build_sd15(folder: Path) -> Path:
    """Random-weight SD 1.5 as a diffusers folder (about 4.3 GB), reused when already there."""
    if (folder / "model_index.json").is_file():
        return folder
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    print(f"building the random-weight SD 1.5 architecture in {folder} (once) ...", flush=True)
    # The cheap parts first: a bad config should fail before minutes of weight initialisation.
    scheduler = PNDMScheduler(**SD15_SCHEDULER)
    tokenizer = CLIPTokenizer.from_pretrained(ROOT / "tests" / "fixtures" / "clip_tokenizer")
    torch.manual_seed(0)
    text = CLIPTextModel(CLIPTextConfig(**SD15_TEXT, bos_token_id=tokenizer.bos_token_id,
                                        eos_token_id=tokenizer.eos_token_id,
                                        pad_token_id=tokenizer.pad_token_id))
    pipe = StableDiffusionPipeline(
        unet=UNet2DConditionModel(**SD15_UNET), vae=AutoencoderKL(**SD15_VAE),
        text_encoder=text, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
    try:
        pipe.save_pretrained(tmp, safe_serialization=True)
        tmp.rename(folder)  # only a complete folder is ever reused
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def build_tiny(folder: Path) -> Path:
    import tiny_models

    return tiny_models.build_tiny_sd(folder)


# ---- measuring -----------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    path: Path
    size: int
    steps: int
    reps: int
    cancel_trials: int


@dataclass
class Results:
    seconds: dict[str, list[float]] = field(default_factory=lambda: {v: [] for v in VARIANTS})
    preview_cost: list[float] = field(default_factory=list)  # seconds per preview
    step_time: list[float] = field(default_factory=list)  # seconds between previews
    cancel_ms: list[float] = field(default_factory=list)
    cancel_steps: list[float] = field(default_factory=list)


class PreviewClock:
    """Times PreviewSender.step_done (projection + Preview + callback) and the gaps between calls
    (one step each). Patched on the class for the bench only; the engine code is unchanged."""

    def __init__(self, results: Results) -> None:
        self.results = results
        self.original = previews.PreviewSender.step_done
        self.last: float | None = None

    def __enter__(self) -> PreviewClock:
        original, clock = self.original, self

        def timed(sender, step, total):
            t0 = time.perf_counter()
            original(sender, step, total)
            t1 = time.perf_counter()
            clock.results.preview_cost.append(t1 - t0)
            if clock.last is not None and step > 1:
                clock.results.step_time.append(t1 - clock.last)
            clock.last = t1

        previews.PreviewSender.step_done = timed
        self.last = None
        return self

    def __exit__(self, *exc) -> None:
        previews.PreviewSender.step_done = self.original


def bare_pipeline(engine: Engine):
    """The diffusers pipeline the engine would use, built on the engine's own components (so the
    weights and their memory are shared and only the wrapper differs)."""
    import diffusers

    base = engine._model.pipe  # bench-only peek: the alternative is a second copy of the weights
    nine = engine.model_info.inpaint_channels == 9
    cls = diffusers.StableDiffusionInpaintPipeline if nine else diffusers.StableDiffusionPipeline
    if engine.model_info.family == "sdxl":
        cls = (diffusers.StableDiffusionXLInpaintPipeline if nine
               else diffusers.StableDiffusionXLPipeline)
    pipe = cls.from_pipe(base)
    pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(base.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_bare(pipe, case: Case, nine: bool) -> float:
    from PIL import Image

    args = dict(prompt=PROMPT, num_inference_steps=case.steps, guidance_scale=CFG,
                width=case.size, height=case.size, output_type="np",
                generator=torch.Generator("cpu").manual_seed(SEED))
    if nine:  # text-to-image on a 9-channel model: all-ones mask, strength 1 (as the engine does)
        args.update(image=Image.new("RGB", (case.size, case.size)),
                    mask_image=Image.new("L", (case.size, case.size), 255), strength=1.0)
    t0 = time.perf_counter()
    pipe(**args)
    return time.perf_counter() - t0


def request_for(case: Case) -> JobRequest:
    return JobRequest(kind=JobKind.TEXT_TO_IMAGE, prompt=PROMPT, seed=SEED, steps=case.steps,
                      cfg_scale=CFG, sampler="euler", width=case.size, height=case.size)


def run_engine(engine: Engine, case: Case, with_previews: bool, results: Results | None) -> float:
    shown: list[object] = []  # the consumer keeps the latest preview, as the app does

    def on_preview(preview) -> None:
        shown[:] = [preview.image]

    request = request_for(case)
    clock = PreviewClock(results) if (with_previews and results is not None) else None
    t0 = time.perf_counter()
    if clock is not None:
        with clock:
            engine.run(request, on_preview=on_preview)
    else:
        engine.run(request, on_preview=on_preview if with_previews else None)
    return time.perf_counter() - t0


def cancel_trial(engine: Engine, case: Case, step_estimate: float, results: Results) -> None:
    """Cancel from another thread half-way through the middle step; time until run() gives up."""
    cancel = threading.Event()
    state: dict[str, float] = {}
    done_steps: list[float] = []
    at_step = max(1, case.steps // 2)

    def press() -> None:
        state["set"] = time.perf_counter()
        cancel.set()

    def on_preview(preview) -> None:
        done_steps.append(time.perf_counter())
        if preview.step == at_step:
            threading.Timer(step_estimate / 2, press).start()

    try:
        engine.run(request_for(case), on_preview=on_preview, cancel=cancel)
        print(f"  cancel trial: the job finished before the cancel (steps={case.steps})")
        return
    except JobCancelled:
        end = time.perf_counter()
    if "set" not in state:
        return
    latency = end - state["set"]
    results.cancel_ms.append(latency * 1000)
    results.cancel_steps.append(latency / step_estimate)


def measure(case: Case) -> Results:
    engine = Engine(device="cpu", dtype="float32")
    engine.preview_max_per_second = 0  # worst case: a preview after every single step
    t0 = time.perf_counter()
    info = engine.load(case.path)
    print(f"\n== {case.name}: {info.name} ({info.family}, {info.inpaint_channels}-channel UNet), "
          f"{case.size}x{case.size}, {case.steps} steps, CFG {CFG}, Euler, {case.reps} reps "
          f"(loaded in {time.perf_counter() - t0:.1f} s)", flush=True)
    bare = bare_pipeline(engine)
    nine = info.inpaint_channels == 9
    runners = {
        "bare": lambda r: run_bare(bare, case, nine),
        "engine": lambda r: run_engine(engine, case, False, r),
        "engine+previews": lambda r: run_engine(engine, case, True, r),
    }
    for variant in VARIANTS:  # warm-up: first calls allocate and build pipelines
        runners[variant](None)
    results = Results()
    for rep in range(case.reps):
        order = VARIANTS[rep % 3:] + VARIANTS[:rep % 3]  # A B C, B C A, C A B, ...
        for variant in order:
            results.seconds[variant].append(runners[variant](results))
        print(f"  rep {rep + 1}/{case.reps}: " + ", ".join(
            f"{v} {results.seconds[v][-1]:.3f} s" for v in VARIANTS), flush=True)
    step = statistics.median(results.step_time) if results.step_time else 0.0
    for _ in range(case.cancel_trials if case.steps >= 3 else 0):
        cancel_trial(engine, case, step, results)
    return results


def report(case: Case, r: Results) -> list[str]:
    med = {v: statistics.median(r.seconds[v]) for v in VARIANTS}
    ips = {v: 1.0 / med[v] for v in VARIANTS}
    ratio_off, ratio_on = ips["engine"] / ips["bare"], ips["engine+previews"] / ips["bare"]
    step = statistics.median(r.step_time) if r.step_time else float("nan")
    cost = statistics.median(r.preview_cost) if r.preview_cost else float("nan")
    pct = 100 * cost / step if step == step and step > 0 else float("nan")
    cancel = (f"{statistics.median(r.cancel_ms):.0f} ms = {statistics.median(r.cancel_steps):.2f}"
              f" steps (n={len(r.cancel_ms)})" if r.cancel_ms else "not measured")

    def mark(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    return [
        f"{case.name}: bare {ips['bare']:.3f} img/s | engine {ips['engine']:.3f} img/s "
        f"(x{ratio_off:.3f}) | engine+previews {ips['engine+previews']:.3f} img/s "
        f"(x{ratio_on:.3f}, goal >= 0.97: {mark(ratio_on >= 0.97)})",
        f"{'':{len(case.name)}}  preview {cost * 1000:.2f} ms of a {step * 1000:.1f} ms step = "
        f"{pct:.3g}% (goal <= 3%: {mark(pct <= 3)}) | cancel latency {cancel}",
    ]


def cases(args: argparse.Namespace, workdir: Path) -> list[Case]:
    out = []
    for name in args.models.split(","):
        name = name.strip()
        if name == "tiny":
            out.append(Case("tiny", build_tiny(workdir / "tiny_sd"), args.size or 64,
                            args.steps or 20, args.reps or 9, 3))
        elif name == "sd15":
            out.append(Case("sd15", build_sd15(Path(args.cache) / "sd15-random"),
                            args.size or 256, args.steps or 4, args.reps or 3, 2))
        elif name == "builtin":
            path = Path(os.environ.get("DC_MODEL", ROOT / "models" / "builtin"))
            if not (path / "model_index.json").is_file():
                print(f"(builtin skipped: no model at {path})")
                continue
            out.append(Case("builtin", path, args.size or 256, args.steps or 20,
                            args.reps or 3, 3))
        else:
            raise SystemExit(f"unknown model {name!r}: use tiny, sd15, builtin")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="tiny,sd15,builtin",
                   help="comma-separated: tiny, sd15, builtin (default: all available)")
    p.add_argument("--steps", type=int, default=None, help="override every model's steps")
    p.add_argument("--size", type=int, default=None, help="override every model's size (px)")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions of each variant")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "diffusion-canvas-bench"),
                   help="where the random-weight SD 1.5 folder is kept between runs")
    args = p.parse_args()
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    for lib in (dlog, tlog):  # their loading bars and advisories would bury the table
        lib.set_verbosity_error()
        lib.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    lines = []
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        for case in cases(args, Path(tmp)):
            lines += report(case, measure(case))
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
