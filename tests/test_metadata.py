"""The metadata we write into PNGs: readable by A1111-style tools, and exact for our own app."""

from __future__ import annotations

import json
import re
import zlib

import numpy as np
import pytest
from PIL import Image

from desktop_app.document.a1111 import a1111_parameters, parse_a1111
from desktop_app.document.image_io import load_image, save_png
from desktop_app.document.job import JobKind, JobRequest, JobResult, Region, RequestError
from desktop_app.document.metadata import (
    JSON_KEY,
    PARAMETERS_KEY,
    has_parameters,
    read_metadata,
    read_png_metadata,
    request_from_payload,
    save_png_with_metadata,
)


def _assert_same_request(a: JobRequest, b: JobRequest) -> None:
    for name in ("kind", "prompt", "negative_prompt", "seed", "steps", "cfg_scale", "sampler",
                 "width", "height", "strength", "mask_grow", "mask_feather",
                 "inpaint_only_masked", "inpaint_padding", "pww_scale", "pww_mode", "pww_outside",
                 "pww_local_sigma", "model", "extras"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("init_image", "mask"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y)
    assert len(a.regions) == len(b.regions)
    for ra, rb in zip(a.regions, b.regions, strict=True):
        assert (ra.words, ra.strength, ra.name) == (rb.words, rb.strength, rb.name)
        assert ra.mask.dtype == rb.mask.dtype == np.float32
        np.testing.assert_array_equal(ra.mask, rb.mask)


def _inpaint_request(size: int = 64) -> JobRequest:
    rng = np.random.default_rng(3)
    hard = np.zeros((size, size), np.float32)
    hard[8:40, 16:48] = 1.0
    soft = rng.random((size, size), dtype=np.float32)  # not 8-bit exact: stored as float32
    eighths = (np.arange(size * size, dtype=np.float32).reshape(size, size) % 9) / 8
    return JobRequest(
        kind=JobKind.INPAINT, prompt="a red fox, sitting: on snow\nsecond line",
        negative_prompt="blurry, low quality", seed=123456789, steps=7, cfg_scale=6.25,
        sampler="euler_a", width=size, height=size, strength=0.6,
        init_image=rng.integers(0, 256, (size, size, 3), dtype=np.uint8), mask=soft,
        mask_grow=-3, mask_feather=2.5, inpaint_only_masked=True, inpaint_padding=16,
        regions=(Region("red fox", hard, 1.5, "fox"), Region("snow", eighths, 0.5, "ground")),
        pww_scale=0.2, pww_mode="std", pww_outside=0.25, pww_local_sigma=1.5,
        model="tiny-sd, v2", extras={"note": "ünïcode ✓"},
    )


def test_round_trip_through_a_png_is_exact(tmp_path):
    req = _inpaint_request()
    image = np.zeros((64, 64, 3), np.uint8)
    result = JobResult(job_id=1, request=req, image=image, elapsed=1.5, model_name="tiny",
                       warnings=("w1",), region_adherence=(0.7, 0.4))
    path = save_png_with_metadata(tmp_path / "out.png", image, req, "tiny", result)
    _assert_same_request(read_metadata(path), req)
    # The pixels are untouched by the metadata, and Pillow still opens the file normally.
    np.testing.assert_array_equal(load_image(path), image)
    with Image.open(path) as img:
        assert img.info[PARAMETERS_KEY].startswith("a red fox")
        assert json.loads(img.info[JSON_KEY])["result"]["region_adherence"] == [0.7, 0.4]


def test_a_file_from_before_outside_suppression_restores_without_it(tmp_path):
    # Images saved before pww_outside existed were painted with the bias inside only; restoring
    # one must not silently switch the suppression on and give a different picture.
    req = _inpaint_request().replace(pww_outside=1.0)
    image = np.zeros((64, 64, 3), np.uint8)
    path = save_png_with_metadata(tmp_path / "new.png", image, req, "tiny")
    assert read_metadata(path).pww_outside == 1.0
    texts, blobs = read_png_metadata(path)
    doc = json.loads(texts[JSON_KEY])
    del doc["pww_outside"]
    assert request_from_payload(json.dumps(doc), blobs).pww_outside == 0.0


def test_a_file_from_before_region_prompts_restores_without_them(tmp_path):
    # The same for region prompts (pww_local_sigma, on by default since they were added).
    req = _inpaint_request().replace(pww_local_sigma=3.0)
    path = save_png_with_metadata(tmp_path / "new.png", np.zeros((64, 64, 3), np.uint8), req,
                                  "tiny")
    assert read_metadata(path).pww_local_sigma == 3.0
    texts, blobs = read_png_metadata(path)
    doc = json.loads(texts[JSON_KEY])
    del doc["pww_local_sigma"]
    assert request_from_payload(json.dumps(doc), blobs).pww_local_sigma == 0.0


def test_text_to_image_round_trip(tmp_path):
    req = JobRequest(kind=JobKind.TEXT_TO_IMAGE, prompt="", seed=0, width=64, height=32)
    path = save_png_with_metadata(tmp_path / "t.png", np.zeros((32, 64, 3), np.uint8), req)
    got = read_metadata(path)
    _assert_same_request(got, req)
    assert got.init_image is None and got.mask is None and got.regions == ()


def test_big_init_image_still_opens_in_pillow(tmp_path):
    # Pillow refuses text chunks over 1 MB; arrays live in their own chunk so this stays readable.
    rng = np.random.default_rng(0)
    init = rng.integers(0, 256, (768, 768, 3), dtype=np.uint8)
    req = JobRequest(kind=JobKind.IMAGE_TO_IMAGE, prompt="noise", width=768, height=768,
                     init_image=init)
    path = save_png_with_metadata(tmp_path / "big.png", init, req)
    with Image.open(path) as img:
        img.load()
        assert PARAMETERS_KEY in img.info and JSON_KEY in img.info
    np.testing.assert_array_equal(read_metadata(path).init_image, init)


A1111_LINE = re.compile(r"^Steps: (\d+), Sampler: ([^,]+), CFG scale: ([\d.]+), Seed: (\d+), "
                        r"Size: (\d+)x(\d+)")


def test_a1111_text_has_the_layout_other_tools_parse():
    req = JobRequest(kind=JobKind.IMAGE_TO_IMAGE, prompt="a cat", negative_prompt="dog",
                     seed=42, steps=20, cfg_scale=7.5, sampler="euler_a", width=512, height=256,
                     strength=0.75, init_image=np.zeros((256, 512, 3), np.uint8))
    text = a1111_parameters(req, model_name="builtin")
    lines = text.split("\n")
    assert lines[0] == "a cat"
    assert lines[1] == "Negative prompt: dog"
    m = A1111_LINE.match(lines[2])
    assert m is not None, lines[2]
    assert m.groups() == ("20", "Euler a", "7.5", "42", "512", "256")
    assert lines[2].endswith("Model: builtin, Denoising strength: 0.75")


def test_text_to_image_has_no_denoising_strength_or_negative_line():
    text = a1111_parameters(JobRequest(kind=JobKind.TEXT_TO_IMAGE, prompt="p"))
    assert "Denoising strength" not in text and "Negative prompt" not in text
    assert text.split("\n")[0] == "p"


def test_values_with_commas_are_quoted_and_parse_back():
    req = JobRequest(kind=JobKind.TEXT_TO_IMAGE, prompt="line one\nline two",
                     negative_prompt="a, b\nc", model='my, "odd": model')
    prompt, negative, settings = parse_a1111(a1111_parameters(req))
    assert prompt == "line one\nline two"
    assert negative == "a, b\nc"
    assert settings["Model"] == 'my, "odd": model'
    assert settings["Sampler"] == "Euler" and settings["CFG scale"] == "7.5"


def test_reads_a_png_written_by_another_tool(tmp_path):
    from PIL import PngImagePlugin

    text = ("masterpiece, 1girl\nNegative prompt: lowres, bad hands\n"
            "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 99, "
            "Size: 512x768, Model hash: abc123, Model: anything-v5, Clip skip: 2")
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    save_png(tmp_path / "a1111.png", np.zeros((8, 8, 3), np.uint8), pnginfo=info)
    req = read_metadata(tmp_path / "a1111.png")
    assert req.kind is JobKind.TEXT_TO_IMAGE
    assert (req.prompt, req.negative_prompt) == ("masterpiece, 1girl", "lowres, bad hands")
    assert (req.steps, req.sampler, req.cfg_scale, req.seed) == (28, "dpmpp_2m", 7.0, 99)
    assert (req.width, req.height, req.model) == (512, 768, "anything-v5")
    assert req.extras["parameters"] == {"Schedule type": "Karras", "Model hash": "abc123",
                                        "Clip skip": "2"}


_A1111_TEXT = ("a castle on a hill, sunset\nNegative prompt: blurry, lowres\n"
               "Steps: 24, Sampler: Euler a, CFG scale: 6.5, Seed: 1234, Size: 512x640, "
               "Model: dreamshaper_8")


def _with_user_comment(path, fmt, comment: bytes):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = comment
    Image.new("RGB", (16, 16), "navy").save(path, fmt, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("fmt, suffix, comment", [
    # A1111 and Forge save JPEG and WebP with the text in the EXIF UserComment, UTF-16 big-endian
    ("JPEG", "jpg", b"UNICODE\0" + _A1111_TEXT.encode("utf-16-be")),
    ("WEBP", "webp", b"UNICODE\0" + _A1111_TEXT.encode("utf-16-be")),
    # other writers: UTF-16 in the EXIF block's little-endian order, or plain ASCII
    ("JPEG", "jpeg", b"UNICODE\0" + _A1111_TEXT.encode("utf-16-le")),
    ("JPEG", "jpg", b"ASCII\0\0\0" + _A1111_TEXT.encode("ascii")),
], ids=["jpeg-a1111", "webp-a1111", "jpeg-utf16le", "jpeg-ascii"])
def test_reads_a1111_parameters_from_jpeg_and_webp_exif(tmp_path, fmt, suffix, comment):
    path = _with_user_comment(tmp_path / f"out.{suffix}", fmt, comment)
    assert has_parameters(path)
    req = read_metadata(path)
    assert (req.prompt, req.negative_prompt) == ("a castle on a hill, sunset", "blurry, lowres")
    assert (req.steps, req.sampler, req.cfg_scale, req.seed) == (24, "euler_a", 6.5, 1234)
    assert (req.width, req.height, req.model) == (512, 640, "dreamshaper_8")


def test_a_jpeg_without_parameters_is_a_clear_error(tmp_path):
    plain = tmp_path / "photo.jpg"
    Image.new("RGB", (16, 16), "navy").save(plain, "JPEG")
    commented = _with_user_comment(tmp_path / "note.jpg", "JPEG", b"ASCII\0\0\0holiday 2019")
    assert not has_parameters(plain) and not has_parameters(tmp_path / "nothing.jpg")
    with pytest.raises(RequestError, match="photo.jpg: has no generation parameters"):
        read_metadata(plain)
    # a camera's or a person's comment is not a prompt with settings
    with pytest.raises(RequestError, match="note.jpg"):
        read_metadata(commented)


def test_png_without_metadata_is_a_clear_error(tmp_path):
    save_png(tmp_path / "plain.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(RequestError, match="plain.png.*no generation parameters"):
        read_metadata(tmp_path / "plain.png")
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8\xff not a png")
    with pytest.raises(RequestError, match="x.jpg: not an image"):
        read_metadata(tmp_path / "x.jpg")
    with pytest.raises(RequestError, match="not found"):
        read_metadata(tmp_path / "missing.png")


def test_damaged_json_falls_back_to_parameters_with_a_warning(tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 5, Sampler: Euler, CFG scale: 3, Seed: 1, "
                                "Size: 64x64")
    info.add_text(JSON_KEY, '{"format": "diffusion-canvas", "steps": "many"}')
    save_png(tmp_path / "d.png", np.zeros((4, 4, 3), np.uint8), pnginfo=info)
    messages: list[str] = []
    req = read_metadata(tmp_path / "d.png", warn=messages.append)
    assert req.prompt == "a cat" and req.steps == 5
    assert len(messages) == 1 and "steps" in messages[0]


def test_missing_arrays_fall_back_to_parameters_with_a_warning(tmp_path):
    req = _inpaint_request(16)
    path = save_png_with_metadata(tmp_path / "m.png", np.zeros((16, 16, 3), np.uint8), req)
    data = path.read_bytes()
    texts, blobs = read_png_metadata(path)
    assert set(blobs) == {"init_image", "mask", "region_0", "region_1"}
    # Cut the file right after the text chunks: the array chunks (after the pixels) are gone.
    cut = data.index(b"IDAT") - 4
    (tmp_path / "cut.png").write_bytes(data[:cut])
    messages: list[str] = []
    fallback = read_metadata(tmp_path / "cut.png", warn=messages.append)
    assert len(messages) == 1 and "missing" in messages[0]
    assert fallback.prompt == req.prompt and fallback.init_image is None
    assert texts[JSON_KEY]


@pytest.mark.parametrize("doc", [
    '{"format": "diffusion-canvas", "version": 1, "regions": [5]}',
    '{"format": "diffusion-canvas", "version": "one"}',
    '{"format": "diffusion-canvas", "version": 1, "kind": "painting"}',
    '{"format": "diffusion-canvas", "version": 1, "mask": {"blob": "mask", "encoding": "?"}}',
    '[1, 2]',
])
def test_hand_edited_json_gives_one_line_naming_the_file(tmp_path, doc):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(JSON_KEY, doc)
    save_png(tmp_path / "e.png", np.zeros((4, 4, 3), np.uint8), pnginfo=info)
    with pytest.raises(RequestError) as exc:
        read_metadata(tmp_path / "e.png")
    assert "e.png" in str(exc.value) and "\n" not in str(exc.value)


def test_oversized_float_mask_payload_is_refused(tmp_path):
    from PIL import PngImagePlugin

    doc = ('{"format": "diffusion-canvas", "version": 1, "kind": "text-to-image", "prompt": "p",'
           ' "regions": [{"words": "p", "mask": {"blob": "r", "encoding": "f32-zlib",'
           ' "shape": [4, 4]}}]}')
    info = PngImagePlugin.PngInfo()
    info.add_text(JSON_KEY, doc)
    info.add(b"dcAr", b"r\0" + zlib.compress(b"\0" * 50_000_000), after_idat=True)  # 50 MB
    save_png(tmp_path / "bomb.png", np.zeros((4, 4, 3), np.uint8), pnginfo=info)
    with pytest.raises(RequestError, match="bomb.png.*more data"):
        read_metadata(tmp_path / "bomb.png")


def _png_with(tmp_path, name: str, chunks: list[tuple[bytes, bytes]]):
    """A PNG with raw chunks before its pixels, as another tool might write them."""
    import io
    import struct
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    data = buf.getvalue()
    at = data.index(b"IDAT") - 4
    raw = b"".join(struct.pack(">I", len(body)) + ctype + body
                   + struct.pack(">I", zlib.crc32(ctype + body)) for ctype, body in chunks)
    path = tmp_path / name
    path.write_bytes(data[:at] + raw + data[at:])
    return path


SETTINGS_LINE = "Steps: 28, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x768"


def test_a1111_text_with_a_trailing_newline_or_windows_line_ends_keeps_its_settings():
    # A1111 strips the text before it splits it: a trailing newline put every setting into the
    # prompt and restored the defaults; "\r\n" left a "\r" on the prompt.
    for text in (f"a cat\nNegative prompt: dog\n{SETTINGS_LINE}\n",
                 f"a cat\r\nNegative prompt: dog\r\n{SETTINGS_LINE}\r\n"):
        prompt, negative, settings = parse_a1111(text)
        assert (prompt, negative) == ("a cat", "dog")
        assert settings["Steps"] == "28" and settings["Size"] == "512x768"


def test_a1111_samplers_named_with_their_schedule_and_unknown_ones(tmp_path):
    from PIL import PngImagePlugin

    from desktop_app.document.a1111 import request_from_a1111

    # A1111 before 1.9 wrote "DPM++ 2M Karras": it was restored as Euler.
    req = request_from_a1111(SETTINGS_LINE.replace("Euler a", "DPM++ 2M Karras"))
    assert req.sampler == "dpmpp_2m"
    assert req.extras["parameters"]["Schedule type"] == "Karras"
    # One this app does not have was Euler without a word.
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a\n" + SETTINGS_LINE.replace("Euler a", "UniPC"))
    save_png(tmp_path / "u.png", np.zeros((4, 4, 3), np.uint8), pnginfo=info)
    messages: list[str] = []
    assert read_metadata(tmp_path / "u.png", warn=messages.append).sampler == "euler"
    assert len(messages) == 1 and "'UniPC'" in messages[0]


def test_utf8_in_text_chunks_meant_for_latin1_reads_as_written(tmp_path):
    # Many tools write UTF-8 into tEXt/zTXt (Latin-1 by the spec): it came back as "cafÃ©".
    text = f"café ✓ 猫\n{SETTINGS_LINE}".encode()
    for ctype, body in ((b"tEXt", text), (b"zTXt", b"\0" + zlib.compress(text))):
        path = _png_with(tmp_path, f"{ctype.decode()}.png", [(ctype, b"parameters\0" + body)])
        assert read_metadata(path).prompt == "café ✓ 猫"
    latin1 = _png_with(tmp_path, "l.png", [(b"tEXt", b"parameters\0caf\xe9\n"
                                                      + SETTINGS_LINE.encode())])
    assert read_metadata(latin1).prompt == "café"


def test_a_zip_bomb_in_a_text_chunk_is_refused_before_it_fills_memory(tmp_path):
    bomb = zlib.compress(b"a" * (100 * 1024 * 1024), 9)  # 100 KB that inflate to 100 MB
    path = _png_with(tmp_path, "bomb.png", [(b"zTXt", b"parameters\0\0" + bomb)])
    with pytest.raises(RequestError, match="bomb.png.*implausibly large"):
        read_metadata(path)


def _array_png(array: np.ndarray, mode: str | None = None) -> bytes:
    import io

    img = Image.fromarray(array)
    buf = io.BytesIO()
    (img.convert(mode) if mode else img).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("ref,payload,why", [
    # An RGB "mask" passed every check and crashed the window (a segfault) when restored.
    ({"encoding": "png"}, _array_png(np.full((16, 16, 3), 255, np.uint8)), "mode RGB"),
    ({"encoding": "png"}, _array_png(np.full((16, 16), 65535, np.uint16)), "mode I;16"),
    ({"encoding": "png"}, _array_png(np.full((16, 16), 255, np.uint8), "1"), "mode 1"),
    ({"encoding": "f32-zlib", "shape": [16, 16]},
     zlib.compress(np.full((16, 16), np.nan, "<f4").tobytes()), "outside 0..1"),
], ids=["rgb", "16-bit", "1-bit", "float-nan"])
def test_a_mask_array_of_the_wrong_kind_is_refused(tmp_path, ref, payload, why):
    from PIL import PngImagePlugin

    doc = {"format": JSON_KEY, "version": 1, "kind": "text-to-image", "prompt": "p",
           "width": 16, "height": 16,
           "regions": [{"words": "p", "mask": {"blob": "r", **ref}}]}
    info = PngImagePlugin.PngInfo()
    info.add_text(JSON_KEY, json.dumps(doc))
    info.add(b"dcAr", b"r\0" + payload, after_idat=True)
    save_png(tmp_path / "m.png", np.zeros((4, 4, 3), np.uint8), pnginfo=info)
    with pytest.raises(RequestError, match=f"m.png.*{re.escape(why)}"):
        read_metadata(tmp_path / "m.png")


def test_an_init_image_over_the_size_limit_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    from PIL import PngImagePlugin

    doc = {"format": JSON_KEY, "version": 1, "kind": "image-to-image", "prompt": "p",
           "width": 16, "height": 16, "init_image": {"blob": "i", "encoding": "png"}}
    info = PngImagePlugin.PngInfo()
    info.add_text(JSON_KEY, json.dumps(doc))
    info.add(b"dcAr", b"i\0" + _array_png(np.zeros((4100, 8, 3), np.uint8)), after_idat=True)
    save_png(tmp_path / "big.png", np.zeros((4, 4, 3), np.uint8), pnginfo=info)
    decoded: list[object] = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or real_load(self))
    with pytest.raises(RequestError, match="big.png.*8x4100 is over 4096"):
        read_metadata(tmp_path / "big.png")
    assert decoded == []


def test_numbers_that_are_not_finite_are_refused(tmp_path):
    from PIL import PngImagePlugin

    from desktop_app.document.a1111 import request_from_a1111

    with pytest.raises(RequestError, match="CFG scale 'nan' is not a number"):
        request_from_a1111("a\n" + SETTINGS_LINE.replace("CFG scale: 7", "CFG scale: nan"))
    info = PngImagePlugin.PngInfo()
    info.add_text(JSON_KEY, '{"format": "diffusion-canvas", "version": 1, "prompt": "p", '
                            '"cfg_scale": Infinity}')
    save_png(tmp_path / "i.png", np.zeros((4, 4, 3), np.uint8), pnginfo=info)
    with pytest.raises(RequestError, match="cfg_scale"):
        read_metadata(tmp_path / "i.png")


@pytest.mark.parametrize("texts,tool", [
    ({"prompt": '{"3": {"class_type": "KSampler"}}', "workflow": "{}"}, "ComfyUI"),
    ({"invokeai_metadata": '{"positive_prompt": "a cat"}'}, "InvokeAI"),
    ({"Software": "NovelAI", "Comment": '{"prompt": "a cat"}'}, "NovelAI"),
    ({"parameters": '{"sui_image_params": {"prompt": "a cat"}}'}, "SwarmUI"),
])
def test_another_tools_parameters_are_named_not_called_missing(tmp_path, texts, tool):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    save_png(tmp_path / "o.png", np.zeros((4, 4, 3), np.uint8), pnginfo=info)
    with pytest.raises(RequestError, match=f"o.png: its parameters are .*{tool}") as exc:
        read_metadata(tmp_path / "o.png")
    assert "no generation parameters" not in str(exc.value)
    assert not has_parameters(tmp_path / "o.png")  # opening it does not offer to restore it


def test_a_request_whose_mask_is_not_one_channel_cannot_be_a_canvas():
    from desktop_app.document.history import request_input_state

    req = JobRequest(kind=JobKind.TEXT_TO_IMAGE, prompt="p", width=16, height=16,
                     mask=np.ones((16, 16, 3), np.float32))
    with pytest.raises(RequestError, match=r"the mask is an array of shape \(16, 16, 3\)"):
        request_input_state(req)
