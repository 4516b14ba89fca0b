"""Reading pictures and masks the way a user means them, and writing PNGs without losing data."""

from __future__ import annotations

import os
import struct
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from desktop_app.document.image_io import (
    flatten_onto_white,
    load_image,
    load_mask,
    resize_image,
    save_png,
)
from desktop_app.document.job import RequestError


def _collect():
    messages: list[str] = []
    return messages, messages.append


def _png16_rgb(path, rgb16: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG, written by hand because Pillow cannot write one."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\0" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_rgb_png_round_trips_exactly(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    save_png(tmp_path / "a.png", img)
    got = load_image(tmp_path / "a.png")
    assert got.dtype == np.uint8 and got.shape == (12, 20, 3)
    np.testing.assert_array_equal(got, img)


def test_rgba_is_flattened_onto_white_with_a_warning(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0] = 200  # reddish everywhere
    rgba[0, 0, 3] = 255  # opaque
    rgba[0, 1, 3] = 0  # fully transparent
    rgba[0, 2, 3] = 128  # half
    rgba[1, :, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    messages, warn = _collect()
    got = load_image(tmp_path / "a.png", warn=warn)
    assert got.shape == (2, 3, 3)
    assert tuple(got[0, 0]) == (200, 0, 0)
    assert tuple(got[0, 1]) == (255, 255, 255)
    assert tuple(got[0, 2]) == (227, 127, 127)  # 128/255 of the colour, 127/255 of white
    assert len(messages) == 1 and "a.png" in messages[0] and "white" in messages[0]


def test_opaque_rgba_loads_silently(tmp_path):
    rgba = np.full((4, 4, 4), 255, np.uint8)
    rgba[..., 1] = 10
    Image.fromarray(rgba).save(tmp_path / "o.png")
    messages, warn = _collect()
    got = load_image(tmp_path / "o.png", warn=warn)
    assert messages == []
    assert tuple(got[0, 0]) == (255, 10, 255)


def test_grey_and_palette_images_become_rgb(tmp_path):
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    Image.fromarray(grey).save(tmp_path / "l.png")
    got = load_image(tmp_path / "l.png")
    assert got.shape == (4, 4, 3)
    np.testing.assert_array_equal(got[..., 0], grey)
    np.testing.assert_array_equal(got[..., 2], grey)

    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "p.png")
    got = load_image(tmp_path / "p.png")
    assert tuple(got[0, 0]) == (0, 0, 255) and tuple(got[0, 1]) == (0, 255, 0)


def test_palette_transparency_is_flattened(tmp_path):
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pt.png", transparency=0)
    messages, warn = _collect()
    got = load_image(tmp_path / "pt.png", warn=warn)
    assert tuple(got[0, 0]) == (255, 255, 255) and tuple(got[0, 1]) == (255, 0, 0)
    assert messages


def test_flattening_a_big_transparent_picture_is_exact_and_lean(tmp_path):
    # Every colour over every alpha, against the exact composite over white.
    c, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    rgba = np.stack([c, c, c, a], axis=-1).astype(np.uint8)
    want = np.round((c * a + 255 * (255 - a)) / 255)
    np.testing.assert_array_equal(flatten_onto_white(rgba)[..., 0], want)
    # A transparent photo costs a few bytes a pixel to flatten, not ~50 (gigabytes for a big one).
    big = np.zeros((600, 800, 4), np.uint8)
    big[..., 3] = np.arange(800) % 256
    Image.fromarray(big).save(tmp_path / "big.png")
    tracemalloc.start()
    try:
        got = load_image(tmp_path / "big.png")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert tuple(got[0, 0]) == (255, 255, 255) and tuple(got[0, 255]) == (0, 0, 0)
    assert peak < 24 * 600 * 800


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    # Pillow's own convert("L") would turn all three of these into 255.
    a = np.array([[0, 128 * 257, 65535]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    messages, warn = _collect()
    got = load_image(tmp_path / "g16.png", warn=warn)
    assert got[0, :, 0].tolist() == [0, 128, 255]
    assert any("16-bit" in m for m in messages)


def test_16_bit_rgb_png_keeps_its_colours(tmp_path):
    rgb = np.array([[[65535, 0, 32896], [0, 65535, 0]]], dtype=np.uint16)
    _png16_rgb(tmp_path / "c16.png", rgb)
    got = load_image(tmp_path / "c16.png").astype(int)
    assert np.abs(got - np.array([[[255, 0, 128], [0, 255, 0]]])).max() <= 1


def test_cmyk_converts_to_rgb(tmp_path):
    cmyk = Image.new("CMYK", (2, 1), (0, 0, 0, 0))
    cmyk.putpixel((1, 0), (0, 255, 255, 0))  # no cyan, full magenta + yellow = red
    cmyk.save(tmp_path / "c.tif")
    got = load_image(tmp_path / "c.tif")
    assert tuple(got[0, 0]) == (255, 255, 255)
    assert tuple(got[0, 1]) == (255, 0, 0)


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((2, 4, 3), np.uint8)
    stored[0, 0] = (255, 0, 0)  # red at the stored top-left
    img = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    img.save(tmp_path / "r.png", exif=exif.tobytes())
    got = load_image(tmp_path / "r.png")
    assert got.shape == (4, 2, 3)
    assert tuple(got[0, 1]) == (255, 0, 0)  # now at the displayed top-right


def test_a_photo_with_a_broken_exif_block_loads_as_stored_and_silently(tmp_path):
    # Pillow's "Corrupt EXIF data" / "Tag data larger than file" warnings came out on stderr,
    # multi-line, even with the CLI's --quiet.
    stored = np.zeros((2, 4, 3), np.uint8)
    stored[0, 0] = (255, 0, 0)
    # An orientation entry (tag 274) whose value points past the end of the block.
    exif = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\xff\xff\xff\xff" + bytes(4)
    Image.fromarray(stored).save(tmp_path / "photo.jpg", exif=exif, quality=100, subsampling=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = load_image(tmp_path / "photo.jpg")
        assert load_mask(tmp_path / "photo.jpg").shape == (2, 4)
    assert got.shape == (2, 4, 3) and got[0, 0, 0] > 150


def test_a_phone_photo_with_a_gain_map_opens_upright_and_says_nothing_of_frames(tmp_path):
    # Phones save HDR photos as MPO: the photo, then a gain map (or depth map) as a second image.
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:4, :4] = (255, 0, 0)  # red at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "IMG_0001.jpg", format="MPO", save_all=True,
                                 append_images=[Image.new("RGB", (8, 4))], exif=exif.tobytes())
    with Image.open(tmp_path / "IMG_0001.jpg") as saved:
        assert saved.format == "MPO"
    messages, warn = _collect()
    got = load_image(tmp_path / "IMG_0001.jpg", warn=warn)
    assert got.shape == (16, 8, 3)
    assert got[1, 6, 0] > 200 and got[1, 6, 1] < 60  # red at the displayed top-right
    assert messages == []


def test_animated_gif_uses_first_frame_with_warning(tmp_path):
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    messages, warn = _collect()
    got = load_image(tmp_path / "a.gif", warn=warn)
    assert got[0, 0, 0] > 200 and got[0, 0, 2] < 50
    assert any("frames" in m for m in messages)


@pytest.mark.parametrize("make, words", [
    (lambda p: None, "not found"),
    (lambda p: p.mkdir(), "folder"),
    (lambda p: p.write_bytes(b""), "the file is empty (0 bytes)"),
    (lambda p: p.write_bytes(b"hello, I am text"), "not an image"),
    (lambda p: p.write_bytes(os.urandom(300)), "not an image"),
])
def test_unreadable_files_give_one_line_naming_the_file(tmp_path, make, words):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(RequestError) as info:
        load_image(path)
    msg = str(info.value)
    assert str(path) in msg and words in msg and "\n" not in msg
    with pytest.raises(RequestError):
        load_mask(path)


def test_truncated_png_is_reported(tmp_path):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "f.png")
    data = (tmp_path / "f.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(RequestError, match="t.png"):
        load_image(tmp_path / "t.png")


def test_a_big_photo_loads_without_pillows_bomb_warning(tmp_path, monkeypatch):
    # Pillow warns (a multi-line Python warning on stderr) between its pixel limit and twice it;
    # past twice it refuses, and so do we, in one line.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("RGB", (40, 40)).save(tmp_path / "big.png")  # 1,600 pixels
    Image.new("RGB", (50, 50)).save(tmp_path / "huge.png")  # 2,500 pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(tmp_path / "big.png").shape == (40, 40, 3)
    with pytest.raises(RequestError, match="huge.png: image is too large to open safely"):
        load_image(tmp_path / "huge.png")


def test_mask_white_means_repaint(tmp_path):
    m = np.zeros((4, 6), np.uint8)
    m[1:3, 2:5] = 255
    m[0, 0] = 51
    Image.fromarray(m).save(tmp_path / "m.png")
    got = load_mask(tmp_path / "m.png")
    assert got.dtype == np.float32 and got.shape == (4, 6)
    assert got[1, 2] == 1.0 and got[3, 5] == 0.0
    assert got[0, 0] == pytest.approx(0.2)


def test_colour_mask_uses_luminance(tmp_path):
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 0] = (255, 255, 255)
    rgb[0, 1] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    got = load_mask(tmp_path / "c.png")
    assert got[0, 0] == 1.0 and got[0, 2] == 0.0
    assert got[0, 1] == pytest.approx(0.299, abs=0.01)


def test_alpha_only_mask_uses_alpha(tmp_path):
    # One flat colour (black) with the strokes in alpha: what an editor's mask layer exports.
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[1, 1, 3] = 255
    rgba[0, 0, 3] = 128
    Image.fromarray(rgba).save(tmp_path / "a.png")
    got = load_mask(tmp_path / "a.png")
    assert got[1, 1] == 1.0 and got[2, 2] == 0.0
    assert got[0, 0] == pytest.approx(128 / 255)


def test_white_strokes_on_transparent_white_do_not_repaint_everything(tmp_path):
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., :3] = 255  # transparent pixels stored as white, as many editors do
    rgba[0, 0, :3] = 0  # an opaque black pixel: keep
    rgba[0, 0, 3] = 255
    rgba[1, 1, 3] = 255  # an opaque white pixel: repaint
    Image.fromarray(rgba).save(tmp_path / "s.png")
    got = load_mask(tmp_path / "s.png")
    assert got[1, 1] == 1.0
    assert got[0, 0] == 0.0 and got[2, 2] == 0.0


def test_an_opaque_one_colour_mask_with_alpha_uses_its_colour(tmp_path):
    # Fully opaque, the alpha says nothing: an all-black mask saved as RGBA repaints nothing
    # (it used to count as all alpha, and so repaint the whole picture).
    for value, want in ((0, 0.0), (255, 1.0), (128, 128 / 255)):
        Image.new("RGBA", (4, 3), (value, value, value, 255)).save(tmp_path / "o.png")
        np.testing.assert_allclose(load_mask(tmp_path / "o.png"), want, atol=1e-6)
    Image.new("LA", (4, 3), (0, 255)).save(tmp_path / "la.png")
    assert load_mask(tmp_path / "la.png").max() == 0.0


def test_masks_in_unusual_colour_modes_read_as_their_luminance(tmp_path):
    Image.new("RGB", (4, 2), (255, 255, 255)).convert("LAB").save(tmp_path / "lab.tif")
    assert load_mask(tmp_path / "lab.tif").min() > 0.95  # white: repaint (Pillow has no LAB->L)
    Image.new("CMYK", (4, 2), (0, 0, 0, 255)).save(tmp_path / "k.tif")
    assert load_mask(tmp_path / "k.tif").max() == 0.0  # black ink: keep


def test_16_bit_mask_is_scaled(tmp_path):
    Image.fromarray(np.array([[0, 32768, 65535]], np.uint16)).save(tmp_path / "m16.png")
    got = load_mask(tmp_path / "m16.png")
    assert got.tolist()[0] == pytest.approx([0.0, 0.5, 1.0], abs=1e-4)


def test_mask_of_another_size_is_resized_with_warning(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[:, 4:] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    messages, warn = _collect()
    got = load_mask(tmp_path / "m.png", size=(16, 4), warn=warn)
    assert got.shape == (4, 16)
    assert got.min() >= 0.0 and got.max() <= 1.0
    assert got[:, :6].max() == 0.0 and got[:, 10:].min() == 1.0  # halves stay where they were
    assert len(messages) == 1 and "8x8" in messages[0] and "16x4" in messages[0]
    messages.clear()
    load_mask(tmp_path / "m.png", size=(8, 8), warn=warn)
    assert messages == []


def test_resize_image_keeps_size_when_equal_and_resizes_otherwise():
    img = np.full((10, 12, 3), 90, np.uint8)
    assert resize_image(img, 12, 10) is img
    out = resize_image(img, 8, 16)
    assert out.shape == (16, 8, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - 90).max() <= 1


def test_save_png_is_atomic_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    old = np.zeros((4, 4, 3), np.uint8)
    save_png(target, old)
    before = target.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_png(target, np.full((4, 4, 3), 255, np.uint8))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


@pytest.mark.parametrize("hard_links", [True, False])
def test_save_png_without_replace_keeps_an_existing_file(tmp_path, monkeypatch, hard_links):
    if not hard_links:  # e.g. a FAT stick: the fallback checks, then renames
        def no_link(src, dst):
            raise PermissionError(1, "Operation not permitted", str(src))
        monkeypatch.setattr(os, "link", no_link)
    target = tmp_path / "out.png"
    save_png(target, np.zeros((4, 4, 3), np.uint8), replace=False)
    assert load_image(target).max() == 0
    before = target.read_bytes()
    with pytest.raises(FileExistsError):
        save_png(target, np.full((4, 4, 3), 255, np.uint8), replace=False)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temp file left


def test_save_png_honours_umask_and_rejects_missing_folder(tmp_path):
    old = os.umask(0o022)
    try:
        save_png(tmp_path / "x.png", np.zeros((2, 2, 3), np.uint8))
    finally:
        os.umask(old)
    assert (tmp_path / "x.png").stat().st_mode & 0o777 == 0o644
    with pytest.raises(RequestError, match="does not exist"):
        save_png(tmp_path / "nope" / "x.png", np.zeros((2, 2, 3), np.uint8))


def test_a_folder_without_write_permission_is_named_not_the_temp_file(tmp_path, monkeypatch):
    import desktop_app.document.image_io as image_io

    def refuse(path, mode="r", *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(image_io, "open", refuse, raising=False)  # tests run as root here
    target = tmp_path / "out.png"
    with pytest.raises(RequestError, match=r"out\.png: no permission to write in ") as err:
        save_png(target, np.zeros((8, 8, 3), np.uint8))
    assert ".tmp" not in str(err.value)
    assert list(tmp_path.iterdir()) == []
