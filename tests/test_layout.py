"""Layout JSON files for paint-with-words: round trips, scaling, and one clear error per field."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from desktop_app.document.job import Region, RequestError
from desktop_app.document.layout import LayoutError, as_rect, load_layout, save_layout


def write(tmp_path, doc) -> str:
    path = tmp_path / "layout.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def circle(w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((xx - w / 3) ** 2 + (yy - h / 2) ** 2 < (h / 4) ** 2).astype(np.float32)


def test_load_mask_and_rect(tmp_path):
    Image.fromarray((circle(64, 48) * 255).astype(np.uint8)).save(tmp_path / "left.png")
    path = write(tmp_path, {"version": 1, "width": 64, "height": 48, "regions": [
        {"words": "red circle", "strength": 1.5, "mask": "left.png"},
        {"words": " blue square ", "rect": [32, 8, 16, 24], "name": "box"}]})
    red, blue = load_layout(path, 64, 48)
    assert (red.words, red.strength, red.name) == ("red circle", 1.5, "")
    np.testing.assert_array_equal(red.mask, circle(64, 48))
    assert (blue.words, blue.strength, blue.name) == ("blue square", 1.0, "box")
    assert blue.mask.shape == (48, 64) and blue.mask.sum() == 16 * 24
    assert blue.mask[8:32, 32:48].all()


def test_a_region_without_strength_gets_the_models_recommendation(tmp_path):
    path = write(tmp_path, {"version": 1, "regions": [
        {"words": "red circle", "rect": [0, 0, 8, 8]},
        {"words": "blue square", "strength": 0.5, "rect": [8, 8, 8, 8]}]})
    red, blue = load_layout(path, 32, 32, default_strength=8.0)
    assert (red.strength, blue.strength) == (8.0, 0.5)  # a strength the file gives stays


def test_layout_of_another_size_is_scaled_to_the_request(tmp_path):
    Image.fromarray((circle(64, 64) * 255).astype(np.uint8)).save(tmp_path / "c.png")
    path = write(tmp_path, {"version": 1, "width": 64, "height": 64, "regions": [
        {"words": "sun", "rect": [0, 0, 32, 16]}, {"words": "moon", "mask": "c.png"}]})
    sun, moon = load_layout(path, 128, 256)
    assert as_rect(sun.mask) == [0, 0, 64, 64]
    assert moon.mask.shape == (256, 128)
    assert 0.0 <= moon.mask.min() and moon.mask.max() <= 1.0
    assert moon.mask[128, 42] == pytest.approx(1.0) and moon.mask[5, 120] == 0.0


def test_round_trip_keeps_rects_as_rects_and_masks_as_pngs(tmp_path):
    rect = np.zeros((40, 60), np.float32)
    rect[5:25, 10:50] = 1
    soft = circle(60, 40) * 0.6
    regions = (Region("red circle", soft, 0.7, "ball"), Region("blue square", rect, 2.0))
    path = tmp_path / "scene.json"
    save_layout(path, regions, 60, 40)
    doc = json.loads(path.read_text())
    assert doc["regions"][1]["rect"] == [10, 5, 40, 20]
    assert doc["regions"][0]["mask"] == "scene.region1.png"
    assert (tmp_path / "scene.region1.png").exists()
    back = load_layout(path, 60, 40)
    assert [(r.words, r.strength, r.name) for r in back] == [
        ("red circle", 0.7, "ball"), ("blue square", 2.0, "")]
    np.testing.assert_allclose(back[0].mask, soft, atol=1 / 255)
    np.testing.assert_array_equal(back[1].mask, rect)
    assert not list(tmp_path.glob("*.tmp"))


def test_as_rect_only_for_exact_rectangles():
    m = np.zeros((10, 10), np.float32)
    assert as_rect(m) is None
    m[2:5, 3:9] = 1
    assert as_rect(m) == [3, 2, 6, 3]
    m[2, 3] = 0.5
    assert as_rect(m) is None
    m[2, 3] = 1
    m[9, 9] = 1
    assert as_rect(m) is None


def region_doc(**fields):
    base = {"words": "cat", "strength": 1.0, "rect": [0, 0, 8, 8]}
    base.update(fields)
    return {"version": 1, "width": 32, "height": 32,
            "regions": [{"words": "dog", "rect": [0, 0, 4, 4]}, base]}


@pytest.mark.parametrize("doc, message", [
    ("{not json", "not valid JSON (line 1, column 2"),
    ("[1, 2]", "expected a JSON object"),
    ({"version": 2, "regions": []}, "version: expected 1, got 2"),
    ({"version": 1, "width": "big", "regions": []}, "width: expected a positive whole number"),
    ({"version": 1, "height": 0, "regions": []}, "height: expected a positive whole number"),
    ({"version": 1}, "regions: expected a list of regions, got null"),
    ({"version": 1, "regions": ["cat"]}, "regions[0]: expected an object, got 'cat'"),
    (region_doc(strength="abc"), "regions[1].strength: expected a number, got 'abc'"),
    (region_doc(strength=True), "regions[1].strength: expected a number, got true"),
    # Out of the regions panel's range: 1e308 overflowed the attention into a black image.
    (region_doc(strength=-1), "regions[1].strength: expected a number from 0 to 10, got -1"),
    (region_doc(strength=1e308), "regions[1].strength: expected a number from 0 to 10, got 1e+308"),
    ({"version": True, "regions": []}, "version: expected 1, got true"),
    (region_doc(words=""), "regions[1].words: expected the prompt words"),
    (region_doc(words=3), "regions[1].words: expected the prompt words it paints, got 3"),
    (region_doc(name=["x"]), "regions[1].name: expected text"),
    (region_doc(rect=[1, 2, 3]), "regions[1].rect: expected [x, y, w, h], got [1, 2, 3]"),
    (region_doc(rect=[0, 0, "w", 4]), "regions[1].rect[2]: expected a number, got 'w'"),
    (region_doc(rect=[0, 0, -4, 4]), "regions[1].rect: width and height must be positive"),
    (region_doc(rect=[40, 40, 4, 4]), "regions[1].rect: [40, 40, 4, 4] lies outside"),
    (region_doc(rect=[4.2, 4.2, 0.2, 0.2]),
     "regions[1].rect: [4.2, 4.2, 0.2, 0.2] covers less than a pixel of the 32x32 image"),
    (region_doc(mask="m.png"), "regions[1]: needs exactly one of \"mask\""),
    ({"version": 1, "regions": [{"words": "cat"}]}, "regions[0]: needs exactly one of"),
    ({"version": 1, "regions": [{"words": "cat", "mask": 5}]},
     "regions[0].mask: expected a PNG file name, got 5"),
    ({"version": 1, "regions": [{"words": "cat", "mask": "gone.png"}]},
     "regions[0].mask: "),
    # These raised OverflowError or RecursionError: a traceback in the app, exit 1 in the CLI.
    ('{"regions": [{"words": "cat", "strength": 1' + "0" * 400 + ', "rect": [0, 0, 8, 8]}]}',
     "regions[0].strength: expected a number, got 1000"),
    ('{"regions": [{"words": "cat", "rect": [0, 0, 1' + "0" * 400 + ', 8]}]}',
     "regions[0].rect[2]: expected a number, got 1000"),
    (region_doc(rect=[1e308, 0, 1e308, 8]), "regions[1].rect: [1e+308, 0, 1e+308, 8] lies outside"),
    ('{"regions": [{"words": "cat", "strength": 1' + "0" * 5000 + "}]}",
     "not a layout (a number with thousands of digits)"),
    ("[" * 100_000 + "]" * 100_000, "not a layout (lists or objects nested too deeply)"),
])
def test_malformed_files_name_the_field(tmp_path, doc, message):
    path = write(tmp_path, doc)
    with pytest.raises(LayoutError) as info:
        load_layout(path, 32, 32)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text
    assert "\n" not in text
    assert isinstance(info.value, RequestError) and isinstance(info.value, ValueError)


def test_missing_or_broken_mask_file_names_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    for name, why in (("gone.png", "file not found"), ("bad.png", "not an image")):
        path = write(tmp_path, {"version": 1, "regions": [{"words": "cat", "mask": name}]})
        with pytest.raises(LayoutError, match=rf"regions\[0\]\.mask: .*{name}: {why}"):
            load_layout(path, 32, 32)


def test_a_rect_past_the_largest_float_once_scaled_is_clipped_to_the_image(tmp_path):
    # x + w, or the side scaled to the request, came to infinity: OverflowError.
    path = write(tmp_path, {"width": 16, "height": 16, "regions": [
        {"words": "cat", "rect": [8, 0, 1e308, 1e308]}]})
    (cat,) = load_layout(path, 32, 32)
    assert cat.mask[:, 16:].all() and not cat.mask[:, :16].any()


def test_a_layout_saved_with_a_byte_order_mark_loads(tmp_path):
    # Windows editors save UTF-8 with a BOM; it was refused as "Unexpected UTF-8 BOM".
    path = tmp_path / "layout.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(
        {"regions": [{"words": "café", "rect": [0, 0, 8, 8]}]}, ensure_ascii=False).encode())
    (region,) = load_layout(path, 32, 32)
    assert region.words == "café" and region.mask.sum() == 64


def test_missing_layout_file(tmp_path):
    with pytest.raises(LayoutError, match="file not found"):
        load_layout(tmp_path / "nope.json", 32, 32)
