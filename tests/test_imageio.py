"""load_image: every odd input gives RGB uint8 plus a notice, or an ImageError message, and
check_file gives that message from the header alone; the PNG and strip helpers (image_out).
Large images, in bands: test_large_images.py."""
from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from diffbfr.imageio import (
    MAX_DECODE_PIXELS,
    ImageError,
    LoadedImage,
    check_file,
    load_image,
)
from diffbfr.image_out import save_png, stage_strip, upscale_nearest

ROOT = Path(__file__).resolve().parent.parent


def _png_bytes(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _jpeg_bytes(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", **kw)
    return buf.getvalue()


def _noise(h=64, w=48, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _check(res: LoadedImage, h: int, w: int) -> None:
    assert res.rgb.dtype == np.uint8 and res.rgb.shape == (h, w, 3)
    assert res.rgb.flags["C_CONTIGUOUS"]


def test_plain_rgb_path_and_bytes(tmp_path):
    rgb = _noise()
    p = tmp_path / "a.png"
    Image.fromarray(rgb).save(p)
    for src in (p, str(p), p.read_bytes(), rgb, Image.fromarray(rgb)):
        res = load_image(src)
        _check(res, 64, 48)
        assert np.array_equal(res.rgb, rgb) and res.notices == [] and not res.was_grey


@pytest.mark.parametrize("data", [b"hello, not an image", b"%PDF-1.4\n" + bytes(200)])
def test_not_an_image(data, tmp_path):
    p = tmp_path / "photo.jpg"
    p.write_bytes(data)
    with pytest.raises(ImageError, match="not an image"):
        load_image(p)
    with pytest.raises(ImageError, match="not an image"):
        load_image(data)


def test_empty_and_missing(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_check_file_refuses_from_the_header_as_load_image_does(tmp_path):
    """What the app answers before the queue: the same words as load_image, without decoding."""
    good = tmp_path / "good.png"
    Image.fromarray(_noise()).save(good)
    check_file(good)   # no error
    cases = {"notes.png": b"hello, not an image", "empty.jpg": b"", "tiny.png": _png_bytes(Image.new("RGB", (8, 8))),
             "bomb.png": _bomb_png(13_000, 13_000)}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageError) as loaded:
            load_image(tmp_path / name)
        with pytest.raises(ImageError) as checked:
            check_file(tmp_path / name)
        assert str(checked.value) == str(loaded.value), name
    with pytest.raises(ImageError, match="not found"):
        check_file(tmp_path / "missing.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated(fmt):
    im = Image.fromarray(_noise(200, 200))
    data = _png_bytes(im) if fmt == "PNG" else _jpeg_bytes(im, quality=95)
    with pytest.raises(ImageError, match="truncated"):
        load_image(data[: len(data) // 2])


def test_16bit_grey_png():
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    ramp[0, 0], ramp[0, 1] = 0, 65535
    res = load_image(_png_bytes(Image.fromarray(ramp)))
    _check(res, 64, 64)
    assert res.was_grey and any("8 bits" in n for n in res.notices)
    assert res.rgb[0, 0, 0] == 0 and res.rgb[0, 1, 0] == 255
    assert np.array_equal(res.rgb[..., 0], res.rgb[..., 2])
    expect = np.rint(ramp / 257.0).astype(np.uint8)
    assert np.abs(res.rgb[..., 0].astype(int) - expect).max() <= 1


def test_16bit_rgb_png(tmp_path):
    rgb16 = (_noise().astype(np.uint16) * 257)
    p = tmp_path / "deep.png"
    assert cv2.imwrite(str(p), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    res = load_image(p)
    _check(res, 64, 48)
    assert np.abs(res.rgb.astype(int) - _noise().astype(int)).max() <= 1


def test_16bit_array_input():
    res = load_image((_noise().astype(np.uint16) * 257))
    assert np.array_equal(res.rgb, _noise()) and any("8 bits" in n for n in res.notices)


def test_rgba_composited_on_white():
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:16, :, 3] = 255          # top half opaque red-ish, bottom half fully transparent
    res = load_image(_png_bytes(Image.fromarray(rgba)))
    _check(res, 32, 32)
    assert tuple(res.rgb[0, 0]) == (200, 0, 0)
    assert tuple(res.rgb[31, 31]) == (255, 255, 255)
    assert any("white" in n for n in res.notices)
    opaque = rgba.copy()
    opaque[..., 3] = 255            # alpha present but unused: silently dropped
    assert load_image(_png_bytes(Image.fromarray(opaque))).notices == []


def test_palette_with_transparency():
    im = Image.fromarray(_noise(32, 32)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    res = load_image(_png_bytes(im, transparency=0))
    _check(res, 32, 32)


def test_greyscale_and_grey_rgb():
    grey = _noise()[..., 0]
    res = load_image(_png_bytes(Image.fromarray(grey)))
    assert res.was_grey and np.array_equal(res.rgb[..., 0], grey)
    assert np.array_equal(res.rgb[..., 0], res.rgb[..., 1])
    # a grey photo stored as RGB JPEG: tiny chroma noise, still grey, channels made equal
    res = load_image(_jpeg_bytes(Image.fromarray(np.repeat(grey[..., None], 3, 2)), quality=90))
    assert res.was_grey and np.array_equal(res.rgb[..., 0], res.rgb[..., 2])
    assert not load_image(_noise()).was_grey


def test_cmyk_jpeg():
    im = Image.fromarray(np.full((40, 40, 3), (255, 0, 0), np.uint8)).convert("CMYK")
    res = load_image(_jpeg_bytes(im, quality=95))
    _check(res, 40, 40)
    assert any("CMYK" in n for n in res.notices)
    r, g, b = res.rgb[20, 20].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_exif_rotation():
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = (255, 0, 0)      # left half red, right half blue
    rgb[:, 20:] = (0, 0, 255)
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6                # "rotate 90 degrees clockwise to display"
    res = load_image(_jpeg_bytes(im, quality=95, exif=exif.tobytes()))
    _check(res, 40, 20)            # now portrait
    assert res.rgb[2, 10, 0] > 200 and res.rgb[37, 10, 2] > 200   # red on top after rotation
    assert any("EXIF" in n for n in res.notices)


def test_too_small():
    for size in [(1, 1), (8, 300)]:
        with pytest.raises(ImageError, match="too small"):
            load_image(_png_bytes(Image.new("RGB", size)))


def test_multiframe_gif_uses_first_frame():
    frames = [Image.fromarray(np.full((32, 32, 3), v, np.uint8)) for v in (10, 250)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    res = load_image(buf.getvalue())
    _check(res, 32, 32)
    assert res.rgb.mean() < 50 and any("frames" in n for n in res.notices)


def test_downscale_to_max_pixels():
    res = load_image(_png_bytes(Image.fromarray(_noise(600, 900))), max_pixels=100_000)
    h, w = res.rgb.shape[:2]
    assert h * w <= 100_000 and abs(w / h - 1.5) < 0.02
    assert any("Downscaled from 900x600" in n for n in res.notices)


def _bomb_png(w: int, h: int) -> bytes:
    """A small valid PNG whose header claims w x h pixels (what a decompression bomb does)."""
    data = bytearray(_png_bytes(Image.new("L", (8, 8))))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4: ihdr + 12] = struct.pack(">II", w, h)
    crc = zlib.crc32(bytes(data[ihdr: ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17: ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


@pytest.mark.parametrize("side", [13_000, 40_000])
def test_decompression_bomb_refused(side):
    assert side * side > MAX_DECODE_PIXELS
    with pytest.raises(ImageError, match="too large"):
        load_image(_bomb_png(side, side))


_MEASURE = """
import resource, sys
from diffbfr.imageio import load_image
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
res = load_image(sys.argv[1], max_pixels=1_000_000)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(res.rgb.shape[0], res.rgb.shape[1], (after - before) // 1024, "|".join(res.notices))
"""


def test_huge_jpeg_is_downscaled_with_bounded_memory(tmp_path):
    """12000x12000: decoded at reduced scale (JPEG draft), never at full size."""
    p = tmp_path / "huge.jpg"
    big = Image.new("L", (12_000, 12_000), 90)
    big.paste(200, (0, 0, 6000, 12_000))
    big.save(p, quality=80)
    del big
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(p)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split(maxsplit=3)
    h, w, grew_mb, notices = int(out[0]), int(out[1]), int(out[2]), out[3]
    assert h * w <= 1_000_000 and h == w
    assert "Downscaled from 12000x12000" in notices
    assert grew_mb < 60, f"decoding grew memory by {grew_mb} MB (a full decode alone is 144 MB)"


def test_png_and_strip_helpers(tmp_path):
    p = save_png(tmp_path / "sub" / "x.png", _noise())
    assert np.array_equal(np.asarray(Image.open(p)), _noise())
    assert upscale_nearest(_noise(64, 64), 256).shape == (256, 256, 3)
    strip = stage_strip([_noise(128, 128), _noise(64, 64), _noise(128, 128), _noise(128, 128)], 128, gap=4)
    assert strip.shape == (128, 4 * 128 + 3 * 4, 3)
    assert np.array_equal(strip[:, 132:260], upscale_nearest(_noise(64, 64), 128))
