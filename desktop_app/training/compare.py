"""Paired comparison of two models on the same held-out prompts and seeds, for deciding whether a
checkpoint ships: per case, what each model got right; per measure, both rates, the cases one
model gained and lost against the other, and a two-sided sign test on those.

    python -m desktop_app.training.compare run MODEL OUT.json [--sets single,two,inpaint,pww8]
    python -m desktop_app.training.compare diff A.json B.json

Sets: single, two, inpaint (quality.py's cases, --n each) and pwwW (pww_quality.py's layouts at
strength W, --pww-n of them; pww0 is the same prompts without a layout). Each set runs on one
model in about --n x 3 seconds on one core; give each its own process to use more.
"""

from __future__ import annotations

import argparse
import json
from math import comb
from pathlib import Path

from desktop_app.training import pww_quality, quality


def sign_test(gained: int, lost: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven if gains and losses
    were equally likely."""
    n, k = gained + lost, min(gained, lost)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n)


def run_set(engine, name: str, n: int, pww_n: int, steps: int = 20) -> list[dict]:
    cfg = engine.model_info.cfg_scale()
    out = []
    if name.startswith("pww"):
        strength = float(name[3:])
        for case in pww_quality.cases(pww_n):
            img = engine.run(pww_quality.request_for(case, strength, steps, cfg)).image
            out.append(pww_quality.score(case, img))
        return out
    makers = {"single": quality.single_cases, "two": quality.two_cases,
              "inpaint": quality.inpaint_cases}
    if name not in makers:
        raise SystemExit(f"unknown set {name!r}: choose single, two, inpaint or pwwW")
    for case in makers[name](n):
        img = engine.run(quality.request_for(case, steps, cfg)).image
        out.append(quality.score(case, img, name))
    return out


def _flat(cases: list[dict], key: str) -> list[bool]:
    """Per-case booleans of a measure; a list-valued one (pww's per-object placement) is one
    entry per object."""
    return [bool(v) for c in cases for v in (c[key] if isinstance(c[key], list) else [c[key]])]


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
            gained = sum(q and not p for p, q in zip(xa, xb, strict=True))
            lost = sum(p and not q for p, q in zip(xa, xb, strict=True))
            lines.append(f"| {name} (n={n}) | {key} | {sum(xa) / len(xa):.1%} | "
                         f"{sum(xb) / len(xb):.1%} | {gained} | {lost} | "
                         f"{sign_test(gained, lost):.3f} |")
    return lines


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
    d = sub.add_parser("diff", help="compare two result files")
    d.add_argument("a", type=Path)
    d.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "diff":
        print("\n".join(diff(json.loads(args.a.read_text()), json.loads(args.b.read_text()))))
        return
    from desktop_app.engine import Engine

    engine = Engine(device="cpu")
    engine.load(args.model)
    sets = {name: run_set(engine, name, args.n, args.pww_n, args.steps)
            for name in args.sets.split(",")}
    args.out.write_text(json.dumps({"model": args.model, "steps": args.steps, "sets": sets}) + "\n")
    for name, cases in sets.items():
        rates = {key: _flat(cases, key) for key in cases[0]}
        print(f"{name} (n={len(cases)}): "
              + ", ".join(f"{key} {sum(v) / len(v):.1%}" for key, v in rates.items()))


if __name__ == "__main__":
    main()
