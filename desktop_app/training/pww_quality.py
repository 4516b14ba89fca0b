"""Paint-with-words on the built-in model: does painting an object's words into a cell put it
there? Prompts name objects without saying where; layouts place each object in a chosen cell.

    python -m desktop_app.training.pww_quality --n 100 [--strengths 0,0.5,1,2,4,8]

Reports, per strength w (w = 0 is the same prompt and seed with no layout): the share of objects
found (colour and shape) in their region's cell, the share of images with every object placed,
and the background still right (image sanity).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np

from desktop_app.document.job import JobKind, JobRequest, Region
from desktop_app.training import evaluator, scenes


@dataclass(frozen=True)
class PwwCase:
    prompt: str
    seed: int
    scene: scenes.Scene  # where the layout puts each object


def cases(n: int, seed: int = 4000, n_objects: int = 2) -> list[PwwCase]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        sc = scenes.random_scene(rng, held_out=None, n_objects=n_objects)
        words = [f"a {s.color} {s.shape}" for s in sc.shapes]
        prompt = " and ".join(words) + f" on a {sc.background} background"
        out.append(PwwCase(prompt, seed + i, sc))
    return out


def cell_mask(cell: int, size: int = 256) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    row, col = divmod(cell, 3)
    step = size / 3
    m[int(row * step):int((row + 1) * step), int(col * step):int((col + 1) * step)] = 1
    return m


def request_for(case: PwwCase, strength: float, steps: int, cfg: float) -> JobRequest:
    regions = () if strength == 0 else tuple(
        Region(words=f"{s.color} {s.shape}", mask=cell_mask(s.cell), strength=strength)
        for s in case.scene.shapes)
    return JobRequest(kind=JobKind.TEXT_TO_IMAGE, prompt=case.prompt, seed=case.seed, steps=steps,
                      cfg_scale=cfg, sampler="euler", width=256, height=256, regions=regions)


def score(case: PwwCase, img: np.ndarray) -> dict:
    """Per object of the layout: found (colour and shape) in its cell; and the background."""
    reading = evaluator.read(img)
    placed = [any(f.color == s.color and f.shape == s.shape and f.cell == s.cell
                  for f in reading.objects) for s in case.scene.shapes]
    return {"placed": placed, "background": reading.background == case.scene.background}


def measure(engine, items: list[PwwCase], strength: float, steps: int = 20,
            cfg: float | None = None) -> dict[str, float]:
    """cfg None = the model's recommended guidance scale, as the app would start from."""
    if cfg is None:
        cfg = engine.model_info.cfg_scale()
    placed, all_placed, background, adherence = [], [], [], []
    for case in items:
        res = engine.run(request_for(case, strength, steps, cfg))
        got = score(case, res.image)
        placed += got["placed"]
        all_placed.append(all(got["placed"]))
        background.append(got["background"])
        adherence += [a for a in res.region_adherence if a == a]  # skip NaN
    return {"object_in_region": float(np.mean(placed)), "all_in_region": float(np.mean(all_placed)),
            "background": float(np.mean(background)),
            "attention_adherence": float(np.mean(adherence)) if adherence else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--strengths", default="0,0.5,1,2,4,8")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=None,
                    help="default: the model's recommended scale (generation_defaults.json)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from desktop_app.engine import Engine

    engine = Engine(device="cpu")
    engine.load(args.model)
    items = cases(args.n)
    if args.cfg is None:
        args.cfg = engine.model_info.cfg_scale()
    table = {}
    print("| w | object in its region | all objects placed | background right | attention inside |")
    print("|---|---|---|---|---|")
    for w in (float(x) for x in args.strengths.split(",")):
        r = measure(engine, items, w, args.steps, args.cfg)
        table[w] = r
        print(f"| {w:g} | {r['object_in_region']:.1%} | {r['all_in_region']:.1%} | "
              f"{r['background']:.1%} | {r['attention_adherence']:.2f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "steps": args.steps, "cfg": args.cfg, "table": table}, f,
                      indent=2)


if __name__ == "__main__":
    main()
