"""Robust image loading for the app and the CLI (writing and showing images: image_out.py).

load_image() turns whatever a user hands us (path, bytes, PIL image, array) into the
contract's uint8 HxWx3 RGB array, or raises ImageError with a message that can be shown
to the user as is. Odd-but-valid inputs (16-bit, alpha, greyscale, CMYK, EXIF rotation,
huge photos) are converted and described in `notices` instead of failing.

Memory: a photo larger than `max_pixels` is converted and downscaled one band of rows at a
time. An 8-bit PNG is also decoded band by band, a JPEG at reduced scale (draft); other formats
are decoded whole, once (WebP by OpenCV: Pillow would hold four copies). At most DECODE_SLOTS
such large decodes run at once in the process (app, CLI and API alike), only one of them holding
a whole image, and the memory they freed is handed back to the OS after each one. The PNG and
WebP band decoders, the decode slots and release_memory are in large_images.py; this module
decides which decodes are large and resamples the bands.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .grey import is_nearly_grey
from .jpeg_damage import damage

# The band decoders, decode slots and release_memory live in large_images; re-exported so that
# `from diffbfr.imageio import release_memory, DECODE_SLOTS` (app, tests) keeps working
from .large_images import (  # noqa: F401
    _DECODE_SLOTS,
    _MALLOC_TRIM,
    _WHOLE_DECODE,
    DECODE_SLOTS,
    _PngRows,
    _webp_rows,
    release_memory,
)

# Largest image (in pixels, as stated by the file header) we agree to decode at all.
# 150 MP admits a 12000x12000 photo; anything larger is treated as a decompression bomb.
MAX_DECODE_PIXELS = 150_000_000
# Pillow warns above MAX_IMAGE_PIXELS and raises above twice that. Setting it to half our
# limit makes every Pillow user in the process (Gradio's upload preprocessing included)
# refuse exactly what we refuse, instead of Pillow's default 179 MP.
Image.MAX_IMAGE_PIXELS = MAX_DECODE_PIXELS // 2

# What the pipeline works on after loading: big enough for any face the 128 px models can
# use, small enough that detection and paste-back stay interactive.
DEFAULT_MAX_PIXELS = 8_000_000
MIN_SIDE = 16  # a face needs at least this many pixels to mean anything
BAND_BYTES = 8 * 2**20     # source rows converted at once when downscaling: the working set

_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_HIGH_DEPTH_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
# ImageOps.exif_transpose's table: EXIF orientation -> the transpose that makes it upright
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


DAMAGED_NOTICE = ("The file is damaged (its JPEG data is corrupt in places); the result may be incomplete: "
                  "parts of the photo, and faces in them, may be missing or smeared.")
NEARLY_GREY_NOTICE = ("The photo is nearly black and white (its colour channels differ by a few levels, "
                      "as in a scan): it is treated as black and white, so every result stays grey.")


class ImageError(ValueError):
    """The input cannot be used; str(error) is a message meant for the user."""


@dataclass
class LoadedImage:
    rgb: np.ndarray                     # uint8 HxWx3, C-contiguous
    notices: list[str] = field(default_factory=list)
    was_grey: bool = False


def load_image(src, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = MIN_SIDE) -> LoadedImage:
    """Decode `src` (path, bytes, PIL.Image or numpy array) into RGB uint8."""
    if isinstance(src, np.ndarray):
        return _from_array(src, max_pixels, min_side)
    if isinstance(src, Image.Image):
        with _turn(src, max_pixels):  # the caller's image: used, never closed
            return _from_pil(src, max_pixels, min_side, notices=[])
    if isinstance(src, (bytes, bytearray, memoryview)):
        if len(src) == 0:
            raise ImageError("The file is empty.")
        fp, name = io.BytesIO(bytes(src)), "The uploaded file"
    elif isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.is_file():
            raise ImageError(f"File not found: {path.name}")
        if path.stat().st_size == 0:
            raise ImageError(f"{path.name} is empty.")
        fp, name = path, path.name
    else:
        raise ImageError(f"Unsupported input type {type(src).__name__}.")
    with warnings.catch_warnings():
        # We check the pixel count ourselves and give a clearer message than the warning.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        im = _open(fp, name)
        # leaving `with im` closes the image, which frees its pixels, before the turn ends
        with _turn(im, max_pixels), im:
            loaded = _from_pil(im, max_pixels, min_side, notices=[], name=name)
            if im.format == "JPEG" and damage(fp.getvalue() if isinstance(fp, io.BytesIO) else fp):
                loaded.notices.insert(0, DAMAGED_NOTICE)   # Pillow decodes a damaged JPEG without a word
            return loaded


def check_file(path, min_side: int = MIN_SIDE) -> None:
    """Raise the ImageError load_image would raise for what the file's header already shows
    (missing, empty, not an image, too large or too small), without decoding its pixels: the
    app refuses such an upload at once instead of after its turn in the queue."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise ImageError(f"File not found: {path.name}" if not path.is_file() else f"{path.name} is empty.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with _open(path, path.name) as im:
            _check_size(*im.size, min_side)


def _open(fp, name: str) -> Image.Image:
    """Image.open (reads the header only), its failures in words."""
    try:
        return Image.open(fp)
    except Image.DecompressionBombError:
        raise ImageError(_too_big_message(None)) from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image this app can read "
                         "(use PNG, JPEG, WebP, BMP, TIFF or GIF).") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _decode_error(name, exc) from None


def _check_size(w: int, h: int, min_side: int) -> None:
    if w * h > MAX_DECODE_PIXELS:
        raise ImageError(_too_big_message((w, h)))
    if min(w, h) < min_side:
        raise ImageError(f"The image is too small ({w}x{h} pixels); a face needs at least "
                         f"{min_side} pixels on each side, ideally 64 or more.")


def _decode_error(name: str, exc: Exception) -> ImageError:
    if "truncated" in str(exc).lower() or isinstance(exc, EOFError):
        return ImageError(f"{name} is truncated (the file ends early); please upload the complete file.")
    return ImageError(f"{name} is damaged and could not be decoded ({exc}).")


def _too_big_message(size) -> str:
    dims = f" ({size[0]}x{size[1]}, {size[0] * size[1] / 1e6:.0f} MP)" if size else ""
    return (f"The image is too large to decode safely{dims}; the limit is "
            f"{MAX_DECODE_PIXELS / 1e6:.0f} MP. Please downscale it first.")


def _target_size(w: int, h: int, max_pixels: int) -> tuple[int, int]:
    scale = math.sqrt(max_pixels / (w * h))
    return max(1, int(w * scale)), max(1, int(h * scale))


def _fit_size(w: int, h: int, box: tuple[int, int]) -> tuple[int, int]:
    """The size Image.thumbnail(box) gives a w x h image (its aspect-keeping rounding)."""
    x, y = box
    aspect = w / h
    if x / y >= aspect:
        x = max(min(math.floor(y * aspect), math.ceil(y * aspect), key=lambda n: abs(aspect - n / y)), 1)
    else:
        y = max(min(math.floor(x / aspect), math.ceil(x / aspect),
                    key=lambda n: 0 if n == 0 else abs(aspect - x / n)), 1)
    return x, y


def _from_pil(im: Image.Image, max_pixels: int, min_side: int, notices: list[str],
              name: str = "The image") -> LoadedImage:
    w, h = im.size
    _check_size(w, h, min_side)
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)
        notices.append("The file has several frames; only the first one is used.")
    if w * h <= max_pixels:  # decoded as it is
        orientation = _exif_orientation(im, notices)
        _load(im, name, w, h)
        return _result(*_to_rgb(_upright(im, orientation), notices), notices)
    out, was_grey = _downscaled(im, max_pixels, notices, name)
    if out.width * out.height < w * h:  # compare areas: EXIF rotation may swap w and h
        notices.append(f"Downscaled from {w}x{h} to {out.width}x{out.height} "
                       f"(limit {max_pixels / 1e6:.0f} MP) to keep memory and time bounded.")
    return _result(out, was_grey, notices)


@contextlib.contextmanager
def _turn(im: Image.Image, max_pixels: int):
    """A large decode's turn: one of the DECODE_SLOTS and, if the whole image will be decoded
    (not PNG bands, not JPEG draft), the whole-image lock; afterwards freed memory goes back to
    the OS. Large: any decode that must downscale, or above the default limit; smaller photos
    never wait behind a large one."""
    w, h = im.size
    if w * h <= min(max_pixels, DEFAULT_MAX_PIXELS) or w * h > MAX_DECODE_PIXELS:  # > : refused at once
        yield
        return
    whole = not (_PngRows.fits(im) or (im.format == "JPEG" and w * h > max_pixels))
    try:
        with _DECODE_SLOTS, _WHOLE_DECODE if whole else contextlib.nullcontext():
            yield
    finally:
        release_memory()


def _load(im: Image.Image, name: str, w: int, h: int) -> None:
    try:
        im.load()
    except Image.DecompressionBombError:
        raise ImageError(_too_big_message((w, h))) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _decode_error(name, exc) from None


def _result(im: Image.Image, was_grey: bool, notices: list[str]) -> LoadedImage:
    rgb = np.ascontiguousarray(np.asarray(im, dtype=np.uint8))
    if not was_grey:
        was_grey = is_nearly_grey(rgb)
        if was_grey and not _channels_equal(rgb):
            notices.append(NEARLY_GREY_NOTICE)
    if was_grey:  # exactly equal channels: downstream (paste-back) keeps such photos grey
        rgb = np.ascontiguousarray(np.repeat(np.asarray(im.convert("L"))[..., None], 3, axis=2))
    return LoadedImage(rgb=rgb, notices=notices, was_grey=was_grey)


def _downscaled(im: Image.Image, max_pixels: int, notices: list[str], name: str) -> tuple[Image.Image, bool]:
    """A too-large image decoded, converted to RGB and downscaled band by band; the same
    result (to rounding) as converting the whole image and calling Image.thumbnail on it.
    The EXIF rotation, a mere transpose, is applied last, to the small result."""
    w, h = im.size
    orientation = _exif_orientation(im, notices)
    if im.format == "JPEG":
        # JPEG can decode at 1/2, 1/4 or 1/8 scale directly: a 12000x12000 photo never
        # exists at full size in memory. Draft keeps at least the requested size.
        im.draft(None, _target_size(w, h, max_pixels))
    try:
        if _PngRows.fits(im):
            rows, extrema = _PngRows(im).rows, None
        elif im.format == "WEBP" and getattr(im, "n_frames", 1) == 1:
            rows, extrema = _webp_rows(im), None
        else:
            _load(im, name, w, h)
            extrema = im.getextrema() if im.mode in _HIGH_DEPTH_MODES else None
            rows = lambda y0, y1: im.crop((0, y0, im.width, y1))  # noqa: E731
        sw, sh = im.size  # after draft
        swap = _UPRIGHT.get(orientation) in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE,
                                             Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270)
        uw, uh = (sh, sw) if swap else (sw, sh)  # upright, as the size limit sees it
        fw, fh = _fit_size(uw, uh, _target_size(uw, uh, max_pixels)) if uw * uh > max_pixels else (uw, uh)
        out, was_grey = _resample_bands(rows, (sw, sh), (fh, fw) if swap else (fw, fh), notices, extrema)
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as exc:
        if isinstance(exc, ImageError):
            raise
        raise _decode_error(name, exc) from None
    return _upright(out, orientation), was_grey


def _resample_bands(rows, size: tuple[int, int], out_size: tuple[int, int], notices: list[str],
                    extrema=None) -> tuple[Image.Image, bool]:
    """rows(y0, y1) gives that band of the source (any mode) -> (RGB image of out_size, was_grey).
    Image.thumbnail's maths (reduce by the integer factor its reducing_gap=2 picks, then
    Lanczos over the box), computed one band of output rows at a time from the source rows it
    reads plus the filter's reach, so that only a band of the source is ever converted."""
    (w, h), (ow, oh) = size, out_size
    fx, fy = int(w / ow / 2) or 1, int(h / oh / 2) or 1
    resample = (ow, oh) != (w, h)
    rh, scale = math.ceil(h / fy), h / fy / oh                    # rows after reduce; per output row
    reach = 3.0 * max(scale, 1.0) + 2 if resample else 0         # Lanczos: 3 (scaled) rows each side
    step = max(8, int(BAND_BYTES / (4 * w) / (scale * fy)))     # output rows per band
    out, band_notices, was_grey = Image.new("RGB", out_size), [], False
    for oy0 in range(0, oh, step):
        oy1 = min(oh, oy0 + step)
        top, bottom = oy0 * scale, oy1 * scale
        ry0, ry1 = max(0, int(top - reach)), min(rh, math.ceil(bottom + reach))
        band, was_grey = _to_rgb(rows(ry0 * fy, min(h, ry1 * fy)), band_notices, extrema)
        if fx > 1 or fy > 1:
            band = band.reduce((fx, fy))
        if resample:
            band = band.resize((ow, oy1 - oy0), Image.Resampling.LANCZOS,
                               box=(0, top - ry0, w / fx, bottom - ry0))
        out.paste(band, (0, oy0))
    notices += dict.fromkeys(band_notices)  # each band reports its conversions: once each
    return out, was_grey


def _exif_orientation(im: Image.Image, notices: list[str]) -> int:
    """The EXIF orientation (1: upright), with the notice saying what is done about it."""
    try:
        if _PngRows.fits(im) and "exif" not in im.info:
            # Pillow's PNG getexif decodes the whole image in case an eXIf chunk follows the
            # image data: find that chunk by skipping over the data instead
            if exif := _PngRows.exif_after_data(im):
                im.info["exif"] = exif
            orientation = Image.Image.getexif(im).get(0x0112, 1)
        else:
            orientation = im.getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF must not stop an otherwise good photo
        notices.append("Ignored unreadable EXIF metadata.")
        return 1
    if orientation in (None, 1):
        return 1
    if not isinstance(orientation, int):
        notices.append("Ignored a broken EXIF orientation tag.")
        return 1
    notices.append(f"Rotated upright using the EXIF orientation tag ({orientation}).")
    return orientation


def _upright(im: Image.Image, orientation: int) -> Image.Image:
    return im.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else im


def _to_rgb(im: Image.Image, notices: list[str], extrema=None) -> tuple[Image.Image, bool]:
    """`extrema`: (min, max) of the whole image when `im` is one band of it (16-bit scaling)."""
    mode = im.mode
    was_grey = mode in _GREY_MODES
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in _HIGH_DEPTH_MODES:
        im = Image.fromarray(_to_uint8(np.asarray(im), extrema))  # 2-D uint8 -> mode "L"
        notices.append("Converted a high bit-depth image to 8 bits per channel.")
        mode = "L"
    if mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            rgba = Image.alpha_composite(white, rgba)
            notices.append("Transparent areas were filled with white.")
        return rgba.convert("RGB"), was_grey
    if mode == "CMYK":
        notices.append("Converted a CMYK image to RGB; colours may shift slightly.")
    if mode != "RGB":
        im = im.convert("RGB")
    return im, was_grey


def _to_uint8(arr: np.ndarray, extrema=None) -> np.ndarray:
    """Map 16-bit / 32-bit / float samples to 0..255 (16-bit: full range 0..65535)."""
    arr = arr.astype(np.float64)
    if arr.size == 0:
        return arr.astype(np.uint8)
    lo, hi = (float(v) for v in extrema) if extrema is not None else (float(arr.min()), float(arr.max()))
    if arr.dtype.kind == "f" and hi <= 1.0 and lo >= 0.0:
        arr = arr * 255.0
    elif hi > 65535.0:
        arr = arr * (255.0 / hi)
    elif hi > 255.0:
        arr = arr / 257.0
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _channels_equal(rgb: np.ndarray) -> bool:
    # A grey photo saved as RGB (JPEG chroma noise included) counts as grey.
    small = rgb[:: max(1, rgb.shape[0] // 256), :: max(1, rgb.shape[1] // 256)].astype(np.int16)
    return bool(np.abs(small[..., 0] - small[..., 1]).max() <= 2
                and np.abs(small[..., 1] - small[..., 2]).max() <= 2)


def _from_array(arr: np.ndarray, max_pixels: int, min_side: int) -> LoadedImage:
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ImageError(f"Expected an HxW or HxWx3 image array, got shape {arr.shape}.")
    notices: list[str] = []
    if arr.dtype != np.uint8:
        arr = _to_uint8(arr)
        notices.append("Converted a high bit-depth image to 8 bits per channel.")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    # uint8 HxW / HxWx3 / HxWx4 map to L / RGB / RGBA by shape.
    im = Image.fromarray(np.ascontiguousarray(arr))
    with _turn(im, max_pixels), im:
        return _from_pil(im, max_pixels, min_side, notices)
