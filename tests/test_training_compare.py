"""The paired comparison used to decide whether a checkpoint ships: per-case results on a real
model (the built-in one, at 2 steps), and the sign test on the cases one model gained and lost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from desktop_app.training import compare

BUILTIN = Path(__file__).resolve().parents[1] / "models" / "builtin"


def test_the_sign_test_is_exact_and_symmetric():
    assert compare.sign_test(0, 0) == 1.0
    assert compare.sign_test(10, 0) == 2 / 2 ** 10  # all ten one way: 2 of 1024 splits
    assert compare.sign_test(3, 7) == compare.sign_test(7, 3)
    assert compare.sign_test(5, 5) == 1.0
    assert compare.sign_test(24, 8) < 0.01 < compare.sign_test(17, 8)


def test_run_writes_per_case_results_and_diff_counts_gains_and_losses(tmp_path):
    # The built-in model (the cases are 256 px: a tiny random model is slower there), 2 steps.
    out = tmp_path / "a.json"
    compare.main(["run", str(BUILTIN), str(out), "--sets", "single,bare,two,inpaint,pww4",
                  "--n", "2", "--pww-n", "2", "--steps", "2"])
    a = json.loads(out.read_text())
    assert [len(a["sets"][s]) for s in ("single", "bare", "two", "inpaint", "pww4")] == [2] * 5
    assert set(a["sets"]["single"][0]) >= {"color", "shape", "exact", "count"}
    # A bare prompt names no size or place, so neither is scored.
    assert set(a["sets"]["bare"][0]) == {"color", "shape", "color_shape", "background", "count"}
    assert len(a["sets"]["pww4"][0]["placed"]) == 2  # one entry per object of the layout
    assert a["pww_seed"] == 4000  # the layouts' seed, so a breakdown can rebuild them
    # Inpainting keeps the unmasked pixels whatever the model draws.
    assert all(c["outside_bit_exact"] for c in a["sets"]["inpaint"])
    # B: the same cases with the first single-object case flipped on every measure.
    b = json.loads(out.read_text())
    b["model"] = "b"
    first = b["sets"]["single"][0]
    b["sets"]["single"][0] = {k: not v for k, v in first.items()}
    lines = compare.diff(a, b)
    for key, was in first.items():
        row = next(x for x in lines if x.startswith(f"| single (n=2) | {key} |"))
        gained, lost = (0, 1) if was else (1, 0)
        assert row.split(" | ")[4:6] == [str(gained), str(lost)]
    same = compare.diff(a, a)
    assert all(x.endswith("| 0 | 0 | 1.000 |") for x in same[4:])


def test_other_decoders_read_the_same_latents(tmp_path):
    # Decoder candidates are compared on the very latents the UNet produced for the shipped one:
    # the same VAE gives the same image bit for bit, a different one a different image, and an
    # inpainting job keeps the unmasked pixels whichever decoder drew the rest.
    import torch
    from diffusers import AutoencoderKL

    from desktop_app.engine import Engine
    from desktop_app.training import quality

    same, blank = tmp_path / "same", tmp_path / "blank"
    vae = AutoencoderKL.from_pretrained(BUILTIN / "vae")
    vae.save_pretrained(same)
    with torch.no_grad():
        vae.decoder.conv_out.weight.zero_()
        vae.decoder.conv_out.bias.zero_()  # decodes everything to mid-gray
    vae.save_pretrained(blank)
    engine = Engine(device="cpu")
    engine.load(BUILTIN)
    decoders = compare.Decoders(engine, (same, blank))
    case = quality.inpaint_cases(1)[0]
    own, again, gray = decoders.images(quality.request_for(case, 3, 4.0))
    assert np.array_equal(own, again)
    inside = case.mask > 0.5
    assert np.all(np.abs(gray[inside].astype(int) - 128) <= 1)
    assert not np.array_equal(own[inside], gray[inside])
    assert np.array_equal(gray[~inside], case.init[~inside])


def test_breakdown_groups_cases_by_the_kind_of_object_their_prompt_names():
    # Synthetic results on the real held-out cases: model A gets exactly the small squares right
    # in the one-object set, and the two-object cases that contain a big circle; B also gets the
    # first case that is not a small square right.
    from desktop_app.training import quality

    singles, twos = quality.single_cases(40), quality.two_cases(30)

    def kinds(case):
        return {(o.size, o.shape) for o in case.scene.shapes}

    a = {"model": "a", "sets": {
        "single": [{"color_shape": ("small", "square") in kinds(c)} for c in singles],
        "two": [{"color_shape_both": ("big", "circle") in kinds(c)} for c in twos]}}
    b = json.loads(json.dumps(a))
    b["model"] = "b"
    first_other = next(i for i, c in enumerate(singles) if ("small", "square") not in kinds(c))
    b["sets"]["single"][first_other]["color_shape"] = True
    rows = {tuple(x.strip() for x in line.split("|")[1:4]): line.split("|")[4:-1]
            for line in compare.breakdown(a, b)[4:]}
    n_small_squares = sum(("small", "square") in kinds(c) for c in singles)
    assert 0 < n_small_squares < 40
    assert [x.strip() for x in rows[("single", "color_shape", "small square")]] == [
        str(n_small_squares), "100.0%", "100.0%", "0", "0"]
    obj = singles[first_other].scene.shapes[0]
    other_kind = f"{obj.size} {obj.shape}"
    other = [x.strip() for x in rows[("single", "color_shape", other_kind)]]
    assert other[1] == "0.0%" and other[3:] == ["1", "0"]
    # Every kind of object appears; a two-object case counts under both of its objects.
    assert {k[2] for k in rows if k[0] == "single"} == {
        f"{z} {s}" for z in ("small", "big") for s in ("circle", "square", "triangle")}
    two_rows = {k[2]: v for k, v in rows.items() if k[0] == "two"}
    assert sum(int(v[0]) for v in two_rows.values()) == sum(len(kinds(c)) for c in twos)
    assert two_rows["big circle"][1].strip() == "100.0%"
    for kind, v in two_rows.items():  # the rest: the share of their cases with a big circle too
        with_kind = [c for c in twos if tuple(kind.split()) in kinds(c)]
        share = sum(("big", "circle") in kinds(c) for c in with_kind) / len(with_kind)
        assert v[1].strip() == f"{share:.1%}"
    # Without B: A's rate only; paint-with-words results from a file that does not record its
    # layouts' seed cannot be grouped, so they are left out.
    a["sets"]["pww8"] = [{"placed": [True]}]
    alone = compare.breakdown(a)
    assert alone[0] == "A = a" and not any(line.startswith("| pww") for line in alone)


def test_breakdown_groups_paint_with_words_objects_by_shape():
    # Synthetic results on real layouts: A places exactly the squares; B also the first circle.
    from desktop_app.training import pww_quality

    layouts = pww_quality.cases(30, 6000)
    a = {"model": "a", "pww_seed": 6000, "sets": {"pww8": [
        {"placed": [o.shape == "square" for o in c.scene.shapes]} for c in layouts]}}
    b = json.loads(json.dumps(a))
    b["model"] = "b"
    i, j = next((i, j) for i, c in enumerate(layouts)
                for j, o in enumerate(c.scene.shapes) if o.shape == "circle")
    b["sets"]["pww8"][i]["placed"][j] = True
    rows = {line.split("|")[3].strip(): [x.strip() for x in line.split("|")[4:-1]]
            for line in compare.breakdown(a, b) if line.startswith("| pww8 | placed")}
    count = {shape: sum(o.shape == shape for c in layouts for o in c.scene.shapes)
             for shape in ("circle", "square", "triangle")}
    assert all(count.values()) and sum(count.values()) == 60
    assert rows["any size square"] == [str(count["square"]), "100.0%", "100.0%", "0", "0"]
    assert rows["any size circle"] == [str(count["circle"]), "0.0%",
                                       f"{1 / count['circle']:.1%}", "1", "0"]
    assert rows["any size triangle"][1:] == ["0.0%", "0.0%", "0", "0"]
    # Layouts from another seed are other objects: no per-shape rows rather than wrong ones.
    b["pww_seed"] = 7000
    assert not any(line.startswith("| pww") for line in compare.breakdown(a, b))
    # Three-object layouts (--pww-objects 3) are rebuilt with their three objects each; a file of
    # two-object layouts is not compared with them.
    threes = pww_quality.cases(30, 6000, n_objects=3)
    c = {"model": "c", "pww_seed": 6000, "pww_objects": 3, "sets": {"pww8": [
        {"placed": [o.shape == "triangle" for o in x.scene.shapes]} for x in threes]}}
    rows = {line.split("|")[3].strip(): [x.strip() for x in line.split("|")[4:-1]]
            for line in compare.breakdown(c) if line.startswith("| pww8 | placed")}
    n_tri = sum(o.shape == "triangle" for x in threes for o in x.scene.shapes)
    assert sum(int(v[0]) for v in rows.values()) == 90
    assert rows["any size triangle"] == [str(n_tri), "100.0%"]
    assert rows["any size circle"][1] == "0.0%"
    assert not any(line.startswith("| pww") for line in compare.breakdown(c, a))


def test_place_from_prompt_gives_the_measured_prompts_their_regions():
    from desktop_app.training import quality

    case = next(c for c in quality.two_cases(20) if "at the" in c.prompt)
    request = compare.with_prompt_regions(quality.request_for(case, 20, 4.0), 8.0)
    assert len(request.regions) == 2 and all(r.strength == 8.0 for r in request.regions)
    for region in request.regions:  # each region is its object's cell, bound to its words
        (shape,) = [s for s in case.scene.shapes if f"{s.color} {s.shape}" in region.words]
        row, col = divmod(shape.cell, 3)
        ys, xs = np.nonzero(region.mask)
        assert (ys.min() // 85, xs.min() // 85) == (row, col) and region.mask.sum() > 80 * 80
    request.validate()


def test_inpaint_jobs_can_run_on_a_crop_around_the_mask_and_only_they_do():
    from types import SimpleNamespace

    from desktop_app.training import quality

    class Recorder:
        engine = SimpleNamespace(model_info=SimpleNamespace(cfg_scale=lambda: 4.0))
        requests: list = []

        def images(self, request):
            self.requests.append(request)
            return [np.zeros((256, 256, 3), np.uint8)]

    rec = Recorder()
    for name in ("inpaint", "bare", "single"):
        compare.run_set(rec, name, 3, 0, only_masked=24)
    inpaint, rest = rec.requests[:3], rec.requests[3:]
    assert all(r.inpaint_only_masked and r.inpaint_padding == 24 for r in inpaint)
    assert not any(r.inpaint_only_masked for r in rest)
    bare = [r.prompt for r in rest[:3]]
    assert bare == [c.prompt for c in quality.bare_cases(3)]
    assert not any(w in p for p in bare for w in ("big", "small", " at ", "center"))
