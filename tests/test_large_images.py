"""Large images: downscaled in bands (PNG rows, JPEG draft) exactly as a whole-image decode would
be, a few large decodes at a time while small ones never wait, and memory bounded
(diffbfr/imageio.py, diffbfr/large_images.py)."""
from __future__ import annotations

import io
import platform
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from diffbfr import imageio
from diffbfr.imageio import ImageError, load_image

ROOT = Path(__file__).resolve().parent.parent


def _noise(h=64, w=48, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


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
