"""Paired comparison of two models on the same held-out prompts and seeds, for deciding whether a
checkpoint ships: per case, what each model got right; per measure, both rates, the cases one
model gained and lost against the other, and a two-sided sign test on those.

    python -m desktop_app.training.compare run MODEL OUT.json [--sets single,two,inpaint,pww8]
        [--place-from-prompt] [--only-masked PADDING]
    python -m desktop_app.training.compare diff A.json B.json
    python -m desktop_app.training.compare breakdown A.json [B.json]

Sets: single, bare (one object by colour and shape alone), two, inpaint (quality.py's cases,
--n each) and pwwW (pww_quality.py's layouts at
strength W, --pww-n of them, --pww-objects objects each; pww0 is the same prompts without a
layout). Each set runs on one
model in about --n x 3 seconds on one core; give each its own process to use more.

A decoder candidate is compared on the very latents the shipped decoder reads: `--also-vae DIR
--also-out B.json` decodes every job's final latents a second time with the VAE in DIR (the UNet
runs once), and `diff` then compares A.json and B.json as usual.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from math import comb
from pathlib import Path
from types import SimpleNamespace

from desktop_app.training import pww_quality, quality


def sign_test(gained: int, lost: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven if gains and losses
    were equally likely."""
    n, k = gained + lost, min(gained, lost)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n)


class Decoders:
    """Runs jobs on the engine and decodes each job's final latents with the model's own VAE and
    with any `others` too, so decoder candidates are compared on exactly the same latents (the
    UNet runs once)."""

    def __init__(self, engine, others: tuple[Path, ...] = ()) -> None:
        self.engine = engine
        self._extra: list = []
        if not others:
            return
        from diffusers import AutoencoderKL

        vae = engine._model.pipe.vae
        decoders = [SimpleNamespace(vae=AutoencoderKL.from_pretrained(
            o, torch_dtype=vae.dtype).to(vae.device).eval()) for o in others]
        own = engine._decode

        def decode(pipe, latents):
            self._extra = [own(d, latents) for d in decoders]
            return own(pipe, latents)

        engine._decode = decode

    def images(self, request) -> list:
        from desktop_app.engine import jobs

        first = self.engine.run(request).image
        info = self.engine.model_info
        work = jobs.plan(request, info.inpaint_channels, info.default_size)
        return [first] + [jobs.finish(request, work, g) for g in self._extra]


def with_prompt_regions(request, strength: float):
    """The request with a region for each place its prompt names (document.prompt_layout), at
    `strength`: what Regions ▸ From prompt and `generate --regions-from-prompt` send."""
    from dataclasses import replace

    from desktop_app.document.prompt_layout import prompt_regions

    return replace(request, regions=prompt_regions(request.prompt, request.width,
                                                   request.height, strength))


def run_set(decoders: Decoders, name: str, n: int, pww_n: int, steps: int = 20,
            pww_seed: int = 4000, place_from_prompt: bool = False,
            only_masked: int | None = None, pww_objects: int = 2) -> list[list[dict]]:
    """Per decoder, per case: what it got right. `place_from_prompt`: the single, two and
    inpaint prompts get regions from their position words (with_prompt_regions).
    `only_masked`: inpaint jobs work on a crop around the mask with this padding, scaled to the
    model's size ("inpaint only masked")."""
    from desktop_app.document.model_info import region_strength_for

    cfg = decoders.engine.model_info.cfg_scale()
    if name.startswith("pww"):
        strength = float(name[3:])
        items = [(c, pww_quality.request_for(c, strength, steps, cfg), pww_quality.score)
                 for c in pww_quality.cases(pww_n, pww_seed, n_objects=pww_objects)]
    else:
        makers = {"single": quality.single_cases, "bare": quality.bare_cases,
                  "two": quality.two_cases, "inpaint": quality.inpaint_cases}
        if name not in makers:
            raise SystemExit(f"unknown set {name!r}: choose single, bare, two, inpaint or pwwW")
        items = [(c, quality.request_for(c, steps, cfg),
                  lambda case, img: quality.score(case, img, name)) for c in makers[name](n)]
        if only_masked is not None and name == "inpaint":
            items = [(c, replace(r, inpaint_only_masked=True, inpaint_padding=only_masked), f)
                     for c, r, f in items]
        if place_from_prompt:
            strength = region_strength_for(decoders.engine.model_info)
            items = [(c, with_prompt_regions(r, strength), f) for c, r, f in items]
    out: list[list[dict]] = []
    for case, request, score in items:
        for k, img in enumerate(decoders.images(request)):
            if k == len(out):
                out.append([])
            out[k].append(score(case, img))
    return out


def _flat(cases: list[dict], key: str) -> list[bool]:
    """Per-case booleans of a measure; a list-valued one (pww's per-object placement) is one
    entry per object."""
    return [bool(v) for c in cases for v in (c[key] if isinstance(c[key], list) else [c[key]])]


def _paired(xa: list[bool], xb: list[bool]) -> tuple[int, int]:
    """Cases B got right and A did not (gained), and the other way round (lost)."""
    pairs = list(zip(xa, xb, strict=True))
    return sum(q and not p for p, q in pairs), sum(p and not q for p, q in pairs)


def diff(a: dict, b: dict) -> list[str]:
    """Table lines comparing result files a and b set by set, on the cases both ran."""
    lines = [f"A = {a['model']}", f"B = {b['model']}",
             "| set | measure | A | B | B gained | B lost | sign test p |",
             "|---|---|---|---|---|---|---|"]
    for name, ca in a["sets"].items():
        cb = b["sets"].get(name)
        if not cb:
            continue
        n = min(len(ca), len(cb))
        for key in ca[0]:
            xa, xb = _flat(ca[:n], key), _flat(cb[:n], key)
            gained, lost = _paired(xa, xb)
            lines.append(f"| {name} (n={n}) | {key} | {sum(xa) / len(xa):.1%} | "
                         f"{sum(xb) / len(xb):.1%} | {gained} | {lost} | "
                         f"{sign_test(gained, lost):.3f} |")
    return lines


# Per set: the measure the breakdown reports, and which objects of a case it groups the case by.
BREAKDOWN = {
    "single": ("color_shape", quality.single_cases, lambda c: c.scene.shapes),
    # The prompt names no size, so the size the scene happened to get means nothing here.
    "bare": ("color_shape", quality.bare_cases,
             lambda c: [replace(s, size="any size") for s in c.scene.shapes]),
    "two": ("color_shape_both", quality.two_cases, lambda c: c.scene.shapes),
    "inpaint": ("object_in_mask", quality.inpaint_cases, lambda c: (c.target,)),
}


def breakdown(a: dict, b: dict | None = None) -> list[str]:
    """Table lines of a result file's main measure per kind of object (size and shape), for the
    sets that have one (BREAKDOWN). A case counts under every kind of object its prompt names (a
    two-object case with a small square and a big circle in both rows). The cases are rebuilt
    from their count, as `run` made them: its first n. With b (the same cases of another model),
    also b's rate and the cases b gained and lost. Paint-with-words sets: each object's placement
    by its shape (_pww_breakdown)."""
    lines = [f"A = {a['model']}"] + ([f"B = {b['model']}"] if b else [])
    lines += ["| set | measure | object | n | A | " + ("B | B gained | B lost |" if b else ""),
              "|---|---|---|---|---|" + ("---|---|---|" if b else "")]
    for name, (key, make, objects) in BREAKDOWN.items():
        ca = a["sets"].get(name)
        cb = b["sets"].get(name) if b else None
        if not ca or (b and not cb):
            continue
        n = min(len(ca), len(cb)) if cb else len(ca)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, case in enumerate(make(n)):
            for kind in sorted({(o.size, o.shape) for o in objects(case)}):
                groups.setdefault(kind, []).append(i)
        for (size, shape), idx in sorted(groups.items()):
            lines.append(_rate_row(f"| {name} | {key} | {size} {shape}",
                                   [bool(ca[i][key]) for i in idx],
                                   [bool(cb[i][key]) for i in idx] if cb else None))
    return lines + _pww_breakdown(a, b)


def _pww_breakdown(a: dict, b: dict | None) -> list[str]:
    """Paint-with-words placement per shape, one entry per object of a layout (the prompt names
    no size, and each region is its object's whole cell, so the shape is the only kind). The
    layouts are rebuilt from the seed the result file records; files written before it was
    recorded are left out."""
    lines = []
    seed = a.get("pww_seed")
    if seed is None or (b and (b.get("pww_seed"), b.get("pww_objects", 2))
                        != (seed, a.get("pww_objects", 2))):
        return lines
    for name in sorted(k for k in a["sets"] if k.startswith("pww")):
        ca = a["sets"][name]
        cb = b["sets"].get(name) if b else None
        if b and not cb:
            continue
        n = min(len(ca), len(cb)) if cb else len(ca)
        groups: dict[str, list[tuple[int, int]]] = {}
        for i, case in enumerate(pww_quality.cases(n, seed, a.get("pww_objects", 2))):
            for j, obj in enumerate(case.scene.shapes):
                groups.setdefault(obj.shape, []).append((i, j))
        for shape, idx in sorted(groups.items()):
            lines.append(_rate_row(f"| {name} | placed | any size {shape}",
                                   [bool(ca[i]["placed"][j]) for i, j in idx],
                                   [bool(cb[i]["placed"][j]) for i, j in idx] if cb else None))
    return lines


def _rate_row(cells: str, xa: list[bool], xb: list[bool] | None) -> str:
    """A breakdown row: its leading cells, the group's size and A's rate, and with B's results
    (the same cases) B's rate and the cases B gained and lost."""
    row = f"{cells} | {len(xa)} | {sum(xa) / len(xa):.1%} |"
    if xb is not None:
        gained, lost = _paired(xa, xb)
        row += f" {sum(xb) / len(xb):.1%} | {gained} | {lost} |"
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="per-case results of one model")
    r.add_argument("model")
    r.add_argument("out", type=Path)
    r.add_argument("--sets", default="single,two,inpaint,pww8")
    r.add_argument("--n", type=int, default=200)
    r.add_argument("--pww-n", type=int, default=48)
    r.add_argument("--steps", type=int, default=20)
    r.add_argument("--pww-seed", type=int, default=4000,
                   help="first seed of the paint-with-words layouts (4000: the tuning set)")
    r.add_argument("--pww-objects", type=int, default=2, choices=(1, 2, 3),
                   help="objects (regions) per paint-with-words layout")
    r.add_argument("--place-from-prompt", action="store_true",
                   help="give the single, two and inpaint prompts regions from their position "
                        "words, as Regions > From prompt does")
    r.add_argument("--only-masked", type=int, default=None, metavar="PADDING",
                   help="inpaint on a crop around the mask with this padding (px), scaled to "
                        "the model's size, as 'inpaint only masked' does")
    r.add_argument("--also-vae", type=Path, default=None,
                   help="also decode every job's latents with this VAE folder ...")
    r.add_argument("--also-out", type=Path, default=None, help="... and write its results here")
    d = sub.add_parser("diff", help="compare two result files")
    d.add_argument("a", type=Path)
    d.add_argument("b", type=Path)
    k = sub.add_parser("breakdown", help="a result file's main measures per kind of object")
    k.add_argument("a", type=Path)
    k.add_argument("b", type=Path, nargs="?", default=None)
    args = ap.parse_args(argv)
    if args.cmd == "diff":
        print("\n".join(diff(json.loads(args.a.read_text()), json.loads(args.b.read_text()))))
        return
    if args.cmd == "breakdown":
        other = json.loads(args.b.read_text()) if args.b else None
        print("\n".join(breakdown(json.loads(args.a.read_text()), other)))
        return
    from desktop_app.engine import Engine

    if (args.also_vae is None) != (args.also_out is None):
        raise SystemExit("--also-vae and --also-out go together")
    engine = Engine(device="cpu")
    engine.load(args.model)
    decoders = Decoders(engine, (args.also_vae,) if args.also_vae else ())
    per_set = {name: run_set(decoders, name, args.n, args.pww_n, args.steps, args.pww_seed,
                             args.place_from_prompt, args.only_masked, args.pww_objects)
               for name in args.sets.split(",")}
    label = args.model + (" with regions from the prompt" if args.place_from_prompt else "")
    if args.only_masked is not None:
        label += f", inpainting only masked (padding {args.only_masked})"
    outs = [(args.out, label)]
    if args.also_vae:
        outs.append((args.also_out, f"{args.model} with the VAE {args.also_vae}"))
    for k, (path, label) in enumerate(outs):
        sets = {name: results[k] for name, results in per_set.items()}
        path.write_text(json.dumps({"model": label, "steps": args.steps,
                                    "pww_seed": args.pww_seed,
                                    "pww_objects": args.pww_objects, "sets": sets}) + "\n")
        print(label)
        for name, cases in sets.items():
            rates = {key: _flat(cases, key) for key in cases[0]}
            print(f"  {name} (n={len(cases)}): "
                  + ", ".join(f"{key} {sum(v) / len(v):.1%}" for key, v in rates.items()))


if __name__ == "__main__":
    main()
