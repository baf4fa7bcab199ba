"""load_image: every odd input gives RGB uint8 plus a notice, or an ImageError message; large
images are decoded in bands, one large decode at a time, with the same result as before."""
from __future__ import annotations

import io
import platform
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from diffbfr import imageio
from diffbfr.imageio import (
    MAX_DECODE_PIXELS,
    ImageError,
    LoadedImage,
    load_image,
    save_png,
    stage_strip,
    upscale_nearest,
)

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


# ---------------------------------------------------------------- large images: bands, slots, memory

def _smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Photo-like content (smooth shapes plus noise): downscaling it has something to average."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)).astype(int)
    return np.clip(big + rng.integers(-20, 21, big.shape), 0, 255).astype(np.uint8)


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _whole_image_reference(data: bytes, max_pixels: int) -> np.ndarray:
    """What load_image did before decoding in bands: the whole image decoded, rotated,
    converted, then Image.thumbnail."""
    im = Image.open(io.BytesIO(data))
    if im.format == "JPEG":
        im.draft(None, imageio._target_size(*im.size, max_pixels))
    im, _ = imageio._to_rgb(ImageOps.exif_transpose(im), [])
    im.thumbnail(imageio._target_size(im.width, im.height, max_pixels), Image.Resampling.LANCZOS)
    return np.asarray(im)


def _rotated(im: Image.Image, fmt: str, orientation: int) -> bytes:
    exif = im.getexif()
    exif[0x0112] = orientation
    return _encode(im, fmt, exif=exif.tobytes())


def _cases() -> dict[str, bytes]:
    rgb = Image.fromarray(_smooth(601, 903))
    alpha = Image.fromarray(np.where(np.random.default_rng(1).random((601, 903)) < 0.3, 0, 255).astype(np.uint8))
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    return {
        "png rgb": _encode(rgb, "PNG"),
        "png rgb level 0": _encode(rgb, "PNG", compress_level=0),
        "png rgba": _encode(rgba, "PNG"),
        "png la": _encode(Image.merge("LA", (rgb.convert("L"), alpha)), "PNG"),
        "png grey": _encode(rgb.convert("L"), "PNG"),
        "png palette": _encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64), "PNG", transparency=3),
        "png 16-bit": _encode(Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257), "PNG"),
        "jpeg": _encode(rgb, "JPEG", quality=92),
        "webp": _encode(rgb, "WEBP", quality=90),
        "webp rgba": _encode(rgba, "WEBP", lossless=True),
        "tiff": _encode(rgb, "TIFF"),
        "png exif 3": _rotated(rgb, "PNG", 3),
        "png exif 6": _rotated(rgb, "PNG", 6),
        "jpeg exif 8": _rotated(rgb, "JPEG", 8),
    }


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("band_bytes", [1, imageio.BAND_BYTES])
def test_downscale_in_bands_matches_whole_image(name, band_bytes, monkeypatch):
    """Decoding and downscaling band by band gives the old whole-image result: identical up
    to fixed-point rounding (1 level); EXIF-rotated ones resample their two axes in the other
    order, so a few levels at most."""
    monkeypatch.setattr(imageio, "BAND_BYTES", band_bytes)  # 1: eight output rows per band
    data = CASES[name]
    for max_pixels in (37_000, 100_000):
        res = load_image(data, max_pixels=max_pixels)
        ref = _whole_image_reference(data, max_pixels)
        assert res.rgb.shape == ref.shape and res.rgb.shape[0] * res.rgb.shape[1] <= max_pixels
        diff = np.abs(res.rgb.astype(int) - ref.astype(int))
        rotated = "exif 6" in name or "exif 8" in name
        assert diff.max() <= (4 if rotated else 1) and diff.mean() < (0.5 if rotated else 0.01), name
        w, h = Image.open(io.BytesIO(data)).size
        assert res.notices[-1].startswith(f"Downscaled from {w}x{h} to {res.rgb.shape[1]}x{res.rgb.shape[0]}")
        assert ("exif" in name) == any("EXIF" in n for n in res.notices)
        assert (name in ("png rgba", "png la", "png palette", "webp rgba")) == \
            any("white" in n for n in res.notices)
        assert ("16-bit" in name) == any("8 bits" in n for n in res.notices)
        assert res.was_grey == (name in ("png la", "png grey", "png 16-bit"))


def test_array_and_pil_inputs_downscale_alike():
    rgb = _smooth(601, 903)
    from_png = load_image(_encode(Image.fromarray(rgb), "PNG"), max_pixels=50_000)
    for src in (rgb, Image.fromarray(rgb)):
        res = load_image(src, max_pixels=50_000)
        assert np.array_equal(res.rgb, from_png.rgb) and res.notices == from_png.notices


def _png_with_exif_after_data(im: Image.Image, orientation: int) -> bytes:
    """A PNG whose eXIf chunk follows the image data (allowed, and what some tools write)."""
    data = _rotated(im, "PNG", orientation)
    chunks, pos = [], 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        chunks.append(data[pos:pos + 12 + length])
        pos += 12 + length
    exif = [c for c in chunks if c[4:8] == b"eXIf"]
    rest = [c for c in chunks if c[4:8] != b"eXIf"]
    return data[:8] + b"".join(rest[:-1] + exif + rest[-1:])  # ... IDAT, eXIf, IEND


def test_png_exif_after_image_data_still_rotates():
    rgb = Image.fromarray(_smooth(300, 600))
    data = _png_with_exif_after_data(rgb, 6)
    assert data.index(b"eXIf") > data.index(b"IDAT")
    small = load_image(data)                       # whole-image path (Pillow finds it)
    big = load_image(data, max_pixels=40_000)      # band path (we find it)
    assert small.rgb.shape[:2] == (600, 300) and big.rgb.shape[0] > big.rgb.shape[1]
    assert any("EXIF" in n for n in small.notices) and any("EXIF" in n for n in big.notices)


def test_damaged_and_truncated_png_in_bands(monkeypatch):
    monkeypatch.setattr(imageio, "BAND_BYTES", 1)
    data = CASES["png rgb"]
    with pytest.raises(ImageError, match="truncated"):
        load_image(data[: len(data) * 2 // 3], max_pixels=50_000)
    idat = data.index(b"IDAT") + 4
    broken = data[:idat + 500] + bytes(4000) + data[idat + 4500:]
    with pytest.raises(ImageError, match="damaged|truncated"):
        load_image(broken, max_pixels=50_000)


def _track_concurrency(monkeypatch) -> dict:
    """Wrap the large-image decode so that it reports how many run at once."""
    seen = {"now": 0, "max": 0, "calls": 0}
    lock = threading.Lock()
    real = imageio._downscaled

    def counting(*args, **kw):
        with lock:
            seen["now"] += 1
            seen["calls"] += 1
            seen["max"] = max(seen["max"], seen["now"])
        try:
            time.sleep(0.05)  # long enough for the other threads to pile up
            return real(*args, **kw)
        finally:
            with lock:
                seen["now"] -= 1

    monkeypatch.setattr(imageio, "_downscaled", counting)
    return seen


@pytest.mark.parametrize("name, at_once", [("png rgba", imageio.DECODE_SLOTS), ("jpeg", imageio.DECODE_SLOTS),
                                            ("tiff", 1), ("webp", 1)])
def test_large_decodes_take_turns_and_give_the_same_result(name, at_once, monkeypatch):
    """DECODE_SLOTS large decodes at once; of them, one holding a whole image (no PNG bands,
    no JPEG draft)."""
    data = CASES[name]
    alone = load_image(data, max_pixels=50_000)
    seen = _track_concurrency(monkeypatch)
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: load_image(data, max_pixels=50_000), range(6)))
    assert seen["calls"] == 6 and seen["max"] == at_once
    for res in results:
        assert np.array_equal(res.rgb, alone.rgb) and res.notices == alone.notices


def test_small_images_never_wait_for_a_large_decode():
    small = _encode(Image.fromarray(_noise(64, 64)), "PNG")
    large = CASES["png rgb"]
    with ThreadPoolExecutor(2) as pool:
        for _ in range(imageio.DECODE_SLOTS):
            imageio._DECODE_SLOTS.acquire()  # as if large decodes were running
        try:
            assert pool.submit(load_image, small).result(timeout=10).rgb.shape == (64, 64, 3)
            waiting = pool.submit(load_image, large, max_pixels=50_000)
            time.sleep(0.3)
            assert not waiting.done()  # a large one waits for a slot
        finally:
            for _ in range(imageio.DECODE_SLOTS):
                imageio._DECODE_SLOTS.release()
        res = waiting.result(timeout=30)
    assert res.rgb.shape[0] * res.rgb.shape[1] <= 50_000


def test_release_memory_is_safe_everywhere():
    imageio.release_memory()
    if sys.platform.startswith("linux") and "glibc" in " ".join(platform.libc_ver()):
        assert imageio._MALLOC_TRIM is not None


_MEASURE_PNG = """
import sys
from diffbfr.imageio import load_image
def mb(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)) // 1024
before = mb("VmRSS")
res = load_image(sys.argv[1], max_pixels=1_000_000)
print(res.rgb.shape[0], res.rgb.shape[1], mb("VmHWM") - before, mb("VmRSS") - before - res.rgb.nbytes // 2**20)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_huge_png_is_decoded_in_bands_with_bounded_memory(tmp_path):
    """8000x6000 RGB PNG: Pillow alone holds it at 4 bytes per pixel (192 MB); in bands, a
    few tens of MB, and the memory goes back to the OS afterwards."""
    p = tmp_path / "huge.png"
    big = Image.new("RGB", (8000, 6000), (90, 120, 150))
    big.paste((200, 80, 40), (0, 0, 4000, 6000))
    big.save(p, compress_level=1)
    del big
    out = subprocess.run([sys.executable, "-c", _MEASURE_PNG, str(p)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    h, w, peak_mb, kept_mb = (int(v) for v in out)
    assert h * w <= 1_000_000 and abs(w / h - 4 / 3) < 0.01
    assert peak_mb < 80, f"decoding grew memory by {peak_mb} MB (a whole decode alone is 192 MB)"
    assert kept_mb < 30, f"{kept_mb} MB stayed allocated after the decode"
