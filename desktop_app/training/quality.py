"""The built-in model's quality bar, measured through the real engine on held-out captions.

    python -m desktop_app.training.quality --n 200 [--steps 20] [--cfg 4]

Held-out: every eval prompt names an object whose (colour, shape, cell) never appears in training
(scenes.is_held_out). Fixed seeds; the default sampler and the guidance scale the app starts from
on this model.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from desktop_app.document.job import JobKind, JobRequest
from desktop_app.document.model_info import GENERIC_CFG
from desktop_app.training import evaluator, scenes

DEFAULT_STEPS = 20


@dataclass(frozen=True)
class Case:
    prompt: str
    seed: int
    scene: scenes.Scene  # the scene the prompt describes
    mask: np.ndarray | None = None  # inpaint: 1 = repaint
    init: np.ndarray | None = None
    target: scenes.Shape | None = None  # inpaint: the object asked for inside the mask


def _caption_cases(n: int, seed: int, n_objects: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        sc = scenes.random_scene(rng, held_out=True, n_objects=n_objects)
        out.append(Case(scenes.canonical_caption(sc), seed + i, sc))
    return out


def single_cases(n: int, seed: int = 1000) -> list[Case]:
    return _caption_cases(n, seed, 1)


def bare_cases(n: int, seed: int = 1500) -> list[Case]:
    """One object named by colour and shape alone ("a red square on a gray background"); size and
    place are the model's to choose, so only colour, shape, background and count are scored."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        sc = scenes.random_scene(rng, held_out=None, n_objects=1)
        out.append(Case(scenes.bare_caption(sc), seed + i, sc))
    return out


def two_cases(n: int, seed: int = 2000) -> list[Case]:
    return _caption_cases(n, seed, 2)


def inpaint_cases(n: int, seed: int = 3000) -> list[Case]:
    """A scene with one object; the mask covers an empty cell; the prompt adds a held-out object
    there (and still describes the kept one)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        new = scenes.random_scene(rng, held_out=True, n_objects=2)
        target, kept = new.shapes
        base = scenes.Scene(new.background, (kept,), new.offsets[1:])
        cx, cy = scenes.cell_center(target.cell)
        half = 128 / 3 - 2
        mask = np.zeros((256, 256), np.float32)
        mask[int(cy - half):int(cy + half), int(cx - half):int(cx + half)] = 1
        out.append(Case(scenes.canonical_caption(new), seed + i, new, mask, scenes.render(base),
                        target))
    return out


def request_for(case: Case, steps: int, cfg: float) -> JobRequest:
    kind = JobKind.INPAINT if case.mask is not None else JobKind.TEXT_TO_IMAGE
    return JobRequest(kind=kind, prompt=case.prompt, seed=case.seed, steps=steps, cfg_scale=cfg,
                      sampler="euler", width=256, height=256, strength=1.0,
                      init_image=case.init, mask=case.mask)


def measure(generate: Callable[[JobRequest], np.ndarray], cases: list[Case], kind: str,
            steps: int = DEFAULT_STEPS, cfg: float | None = None) -> dict[str, float]:
    """Share of cases right per attribute. `generate` maps a request to an RGB uint8 image; cfg
    None = the guidance scale the app would start from (`generate.default_cfg`, see
    generator_for)."""
    if cfg is None:
        cfg = getattr(generate, "default_cfg", GENERIC_CFG)
    tallies: dict[str, list[bool]] = {}
    for case in cases:
        for k, v in score(case, generate(request_for(case, steps, cfg)), kind).items():
            tallies.setdefault(k, []).append(v)
    return {k: float(np.mean(v)) for k, v in tallies.items()}


def score(case: Case, img: np.ndarray, kind: str) -> dict[str, bool]:
    """What one generated image got right, per measure."""
    reading = evaluator.read(img)
    if kind == "single":
        res = evaluator.score_single(case.scene.shapes[0], case.scene.background, reading)
        # The per-attribute scores read the best-matching object; this one also fails an
        # image that draws extra copies or other objects.
        res["exact"] = evaluator.scene_correct(case.scene, reading)
    elif kind == "bare":
        res = evaluator.score_single(case.scene.shapes[0], case.scene.background, reading)
        del res["position"], res["size"]
    elif kind == "two":
        both = [evaluator.object_present(s, reading) for s in case.scene.shapes]
        res = {"all_attributes": all(both) and reading.background == case.scene.background,
               "color_shape_both": all(
                   any(f.color == s.color and f.shape == s.shape for f in reading.objects)
                   for s in case.scene.shapes),
               "background": reading.background == case.scene.background,
               "exact": evaluator.scene_correct(case.scene, reading)}
    else:
        keep = case.mask < 0.5
        res = {"object_in_mask": evaluator.object_present(case.target, reading,
                                                          check_size=False),
               "outside_bit_exact": bool(np.array_equal(img[keep], case.init[keep]))}
    return {k: bool(v) for k, v in res.items()}


def generator_for(engine) -> Callable[[JobRequest], np.ndarray]:
    """request -> image on a loaded engine; carries the model's recommended guidance scale."""

    def generate(req: JobRequest) -> np.ndarray:
        return engine.run(req).image

    generate.default_cfg = engine.model_info.cfg_scale()  # type: ignore[attr-defined]
    return generate


def engine_generator(model: str | None = None):
    from desktop_app.engine import Engine

    engine = Engine(device="cpu")
    engine.load(model)
    return generator_for(engine)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--cfg", type=float, default=None,
                    help="default: the model's recommended scale (generation_defaults.json)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--sets", default="single,two,inpaint")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    gen = engine_generator(args.model)
    if args.cfg is None:
        args.cfg = gen.default_cfg
    results = {}
    makers = {"single": single_cases, "two": two_cases, "inpaint": inpaint_cases}
    for name in args.sets.split(","):
        t0 = time.time()
        results[name] = measure(gen, makers[name](args.n), name, args.steps, args.cfg)
        print(f"{name} (n={args.n}, {time.time() - t0:.0f} s): "
              + ", ".join(f"{k} {v:.1%}" for k, v in results[name].items()), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "steps": args.steps, "cfg": args.cfg, **results}, f, indent=2)


if __name__ == "__main__":
    main()
