"""Synthetic degradations for blind face restoration (numpy/OpenCV only, no torch).

All functions take and return uint8 RGB H x W x 3 images and keep the size: the
low-quality (LQ) face stays in the same canonical frame as the clean face, so the
restoration networks see LQ and target pixel-aligned.

Pixel-valued parameters (blur sigmas) are quoted for a **128 px frame** and scaled
by ``side / 128`` for other sizes (a 64 px stage-1 face gets half the sigma), so a
given parameter set means the same relative damage at every resolution.
Down-sampling factors are relative to the input side (the low-resolution side is
``max(2, round(side / factor))``).

Training: ``random_degrade(img, rng, ranges)``
    1. colour jitter (prob ``jitter_prob``: brightness, contrast, saturation), then
       greyscale (prob ``grey_prob``) -- old/faded photos;
    2. blur, resize (down + back up) and noise, each with its own probability, applied
       in a random order (a fresh permutation per call);
    3. JPEG (prob ``jpeg_prob``) last, as cameras/web pipelines do.
    Every choice comes from the ``np.random.Generator`` passed in, so a seeded
    generator gives byte-identical output. The ranges live in ``DegradeRanges``
    (``DEFAULT_RANGES`` is what training uses; the model card quotes it).

Evaluation: ``fixed_degrade(img, level, seed)`` -- the fixed protocol used by the
benchmarks and the model card. Order: Gaussian blur -> area down-sample -> bicubic
up-sample to the input size -> Gaussian colour noise -> JPEG (OpenCV libjpeg,
4:2:0 default). Sigmas below are for a 128 px frame (scaled by side/128):
    light : blur sigma 1.0, down 2x,                       no noise, no JPEG
    medium: blur sigma 1.5, down 4x, 6x or 8x (seeded choice), noise sigma 4/255,
            JPEG quality 60
    heavy : blur sigma 2.0, down 16x,                      noise sigma 8/255,
            JPEG quality 30
The noise comes from ``np.random.default_rng(seed)``: same image, level and seed ->
byte-identical output.

``python -m diffbfr.train.degrade --contact-sheet OUT.png`` writes a sheet of UTKFace
train faces with the fixed levels and random degradations, plus real low-quality
faces (../shared/data/real/cropped) resized to 128 px for comparison.
"""
from __future__ import annotations

import argparse
import math
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..frame import FRAME  # the reference side for pixel-valued parameters
from .data import default_data_dir, iter_faces

LEVELS = ("light", "medium", "heavy")

_DOWN_INTERP = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
_UP_INTERP = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


@dataclass(frozen=True)
class DegradeRanges:
    """Training degradation ranges (probabilities are per call, ranges uniform unless noted).

    Sigmas are in pixels of a 128 px frame; noise sigmas in 0..255 grey levels.
    """

    blur_prob: float = 0.8
    aniso_prob: float = 0.5            # share of blurs that are anisotropic (rotated ellipse)
    blur_sigma: tuple[float, float] = (0.3, 2.5)       # isotropic sigma
    aniso_sigma: tuple[float, float] = (0.3, 3.0)      # each axis of the ellipse
    down_prob: float = 0.9
    down_factor: tuple[float, float] = (1.0, 16.0)     # log-uniform
    down_interps: tuple[str, ...] = ("area", "bilinear", "bicubic")
    up_interps: tuple[str, ...] = ("bilinear", "bicubic")
    noise_prob: float = 0.5
    poisson_prob: float = 0.3          # share of noise draws that are Poisson (else Gaussian)
    gauss_sigma: tuple[float, float] = (1.0, 10.0)
    poisson_scale: tuple[float, float] = (0.05, 1.0)   # multiplies shot noise of a 255-photon image
    grey_noise_prob: float = 0.4       # share of noise draws that are grey (luma-only)
    jpeg_prob: float = 0.8
    jpeg_quality: tuple[int, int] = (20, 95)            # inclusive
    jitter_prob: float = 0.2
    brightness: float = 0.08           # additive shift, fraction of 255, +-
    contrast: float = 0.12             # factor 1 +- this, about the image mean
    saturation: float = 0.2            # factor 1 +- this
    grey_prob: float = 0.1

    def describe(self) -> dict:
        return asdict(self)


DEFAULT_RANGES = DegradeRanges()


@dataclass
class DegradeParams:
    """One concrete draw from ``DegradeRanges`` (None = step skipped)."""

    order: tuple[str, ...] = ("blur", "resize", "noise")
    blur: tuple[float, float, float] | None = None     # (sigma_x, sigma_y, angle_deg), 128 px frame
    down_factor: float | None = None
    down_interp: str = "area"
    up_interp: str = "bicubic"
    noise_kind: str | None = None                       # "gauss" | "poisson"
    noise_level: float = 0.0                            # gauss sigma or poisson scale
    noise_grey: bool = False
    jpeg_quality: int | None = None
    jitter: tuple[float, float, float] | None = None    # (brightness, contrast, saturation)
    grey: bool = False
    noise_seed: int = 0


def _uniform(rng: np.random.Generator, lo_hi) -> float:
    lo, hi = lo_hi
    return float(rng.uniform(lo, hi))


def sample_params(rng: np.random.Generator, ranges: DegradeRanges = DEFAULT_RANGES) -> DegradeParams:
    """Draw one set of degradation parameters; every value lies inside ``ranges``."""
    p = DegradeParams()
    p.order = tuple(str(s) for s in rng.permutation(["blur", "resize", "noise"]))
    if rng.random() < ranges.blur_prob:
        if rng.random() < ranges.aniso_prob:
            p.blur = (_uniform(rng, ranges.aniso_sigma), _uniform(rng, ranges.aniso_sigma),
                      float(rng.uniform(0.0, 180.0)))
        else:
            s = _uniform(rng, ranges.blur_sigma)
            p.blur = (s, s, 0.0)
    if rng.random() < ranges.down_prob:
        lo, hi = ranges.down_factor
        p.down_factor = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        p.down_interp = str(rng.choice(list(ranges.down_interps)))
        p.up_interp = str(rng.choice(list(ranges.up_interps)))
    if rng.random() < ranges.noise_prob:
        if rng.random() < ranges.poisson_prob:
            p.noise_kind, p.noise_level = "poisson", _uniform(rng, ranges.poisson_scale)
        else:
            p.noise_kind, p.noise_level = "gauss", _uniform(rng, ranges.gauss_sigma)
        p.noise_grey = bool(rng.random() < ranges.grey_noise_prob)
    if rng.random() < ranges.jpeg_prob:
        lo, hi = ranges.jpeg_quality
        p.jpeg_quality = int(rng.integers(lo, hi + 1))
    if rng.random() < ranges.jitter_prob:
        p.jitter = (float(rng.uniform(-ranges.brightness, ranges.brightness)),
                    float(rng.uniform(1 - ranges.contrast, 1 + ranges.contrast)),
                    float(rng.uniform(1 - ranges.saturation, 1 + ranges.saturation)))
    p.grey = bool(rng.random() < ranges.grey_prob)
    p.noise_seed = int(rng.integers(0, 2**31 - 1))
    return p


# ---------------------------------------------------------------- primitive ops
# They work on float32 RGB in 0..255 so that chained steps do not re-quantise.

def _gauss_kernel(sx: float, sy: float, angle_deg: float) -> np.ndarray:
    """Normalised rotated-elliptical Gaussian kernel (isotropic when sx == sy)."""
    radius = max(1, int(math.ceil(3.0 * max(sx, sy))))
    ax = np.arange(-radius, radius + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    t = math.radians(angle_deg)
    u = math.cos(t) * xx + math.sin(t) * yy
    v = -math.sin(t) * xx + math.cos(t) * yy
    k = np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return (k / k.sum()).astype(np.float32)


def blur(x: np.ndarray, sx: float, sy: float, angle_deg: float = 0.0) -> np.ndarray:
    """Blur with sigmas given for a 128 px frame (scaled to the image side)."""
    scale = x.shape[0] / FRAME
    sx, sy = max(sx * scale, 0.05), max(sy * scale, 0.05)
    return cv2.filter2D(x, -1, _gauss_kernel(sx, sy, angle_deg), borderType=cv2.BORDER_REFLECT_101)


def resize_down_up(x: np.ndarray, factor: float, down: str = "area", up: str = "bicubic") -> np.ndarray:
    h, w = x.shape[:2]
    lh, lw = max(2, round(h / factor)), max(2, round(w / factor))
    if (lh, lw) == (h, w):
        return x
    small = cv2.resize(x, (lw, lh), interpolation=_DOWN_INTERP[down])
    return cv2.resize(small, (w, h), interpolation=_UP_INTERP[up])


def add_noise(x: np.ndarray, kind: str, level: float, grey: bool, rng: np.random.Generator) -> np.ndarray:
    h, w = x.shape[:2]
    if kind == "gauss":
        shape = (h, w, 1) if grey else (h, w, 3)
        n = rng.normal(0.0, level, size=shape).astype(np.float32)
    elif kind == "poisson":
        # Shot noise of an image with 255 photons at full scale, scaled by ``level``.
        base = x.mean(axis=2, keepdims=True) if grey else x
        lam = np.clip(base, 0.0, 255.0).astype(np.float64)
        n = ((rng.poisson(lam) - lam) * level).astype(np.float32)
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    return x + n  # (h, w, 1) broadcasts: the same offset on all channels = grey noise


def jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    u8 = _to_u8(x)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32)


def _grey(x: np.ndarray) -> np.ndarray:
    return (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]


def color_jitter(x: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    x = x + brightness * 255.0
    x = (x - x.mean()) * contrast + x.mean()
    g = _grey(x)
    return g + (x - g) * saturation


def to_grey(x: np.ndarray) -> np.ndarray:
    return np.repeat(_grey(x), 3, axis=2)


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))


def _check(img: np.ndarray) -> None:
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected uint8 HxWx3 RGB, got {img.dtype} {img.shape}")


# ---------------------------------------------------------------- public API

def apply_params(img: np.ndarray, p: DegradeParams) -> np.ndarray:
    """Apply one concrete parameter set (deterministic given ``p``)."""
    _check(img)
    x = img.astype(np.float32)
    if p.jitter is not None:
        x = np.clip(color_jitter(x, *p.jitter), 0, 255)
    if p.grey:
        x = to_grey(x)
    noise_rng = np.random.default_rng(p.noise_seed)
    for step in p.order:
        if step == "blur" and p.blur is not None:
            x = blur(x, *p.blur)
        elif step == "resize" and p.down_factor is not None:
            x = resize_down_up(x, p.down_factor, p.down_interp, p.up_interp)
        elif step == "noise" and p.noise_kind is not None:
            x = add_noise(x, p.noise_kind, p.noise_level, p.noise_grey, noise_rng)
        x = np.clip(x, 0, 255)
    if p.jpeg_quality is not None:
        x = jpeg(x, p.jpeg_quality)
    return _to_u8(x)


def random_degrade(img: np.ndarray, rng: np.random.Generator,
                   ranges: DegradeRanges = DEFAULT_RANGES) -> np.ndarray:
    """Random training degradation; same shape, uint8 RGB. Seeded entirely by ``rng``."""
    return apply_params(img, sample_params(rng, ranges))


def fixed_params(level: str, seed: int) -> DegradeParams:
    """The evaluation protocol of the module docstring as a ``DegradeParams``."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    rng = np.random.default_rng(seed)
    order = ("blur", "resize", "noise")
    if level == "light":
        return DegradeParams(order=order, blur=(1.0, 1.0, 0.0), down_factor=2.0,
                             down_interp="area", up_interp="bicubic")
    if level == "medium":
        factor = float(rng.choice([4.0, 6.0, 8.0]))
        return DegradeParams(order=order, blur=(1.5, 1.5, 0.0), down_factor=factor,
                             down_interp="area", up_interp="bicubic", noise_kind="gauss",
                             noise_level=4.0, jpeg_quality=60,
                             noise_seed=int(rng.integers(0, 2**31 - 1)))
    return DegradeParams(order=order, blur=(2.0, 2.0, 0.0), down_factor=16.0,
                         down_interp="area", up_interp="bicubic", noise_kind="gauss",
                         noise_level=8.0, jpeg_quality=30,
                         noise_seed=int(rng.integers(0, 2**31 - 1)))


def fixed_degrade(img: np.ndarray, level: str, seed: int = 0) -> np.ndarray:
    """Fixed evaluation degradation (see module docstring); byte-identical for a seed."""
    return apply_params(img, fixed_params(level, seed))



def face_seed(seed: int, name: str) -> int:
    """Degradation seed of one face: depends only on the seed and the face's name, so a face is
    degraded identically whatever the face count or order (the benches and the calibration)."""
    return zlib.crc32(f"{seed}:{name}".encode()) & 0x7FFFFFFF


# ---------------------------------------------------------------- contact sheet

def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.putText(tile, text, (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(tile, text, (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def real_faces(data_dir: Path) -> list[Path]:
    return sorted((Path(data_dir) / "real" / "cropped").glob("*.png"))


def _real_face(path: Path, size: int, utk_crop: bool) -> np.ndarray:
    """A real FFHQ-aligned 512 px face at ``size`` px; ``utk_crop`` approximates the tighter
    UTKFace framing (eye distance ~0.375 of the side instead of ~0.25, i.e. a 340 px window)
    so the blur scale can be compared with training faces. Rough: align.py does it properly."""
    im = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if utk_crop:
        s = im.shape[0] / 512
        y0, x0, w = int(92 * s), int(86 * s), int(340 * s)
        im = im[y0:y0 + w, x0:x0 + w]
    return cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)


def contact_sheet(out_path: str | Path, n_faces: int = 6, n_random: int = 6, seed: int = 0,
                  data_dir: str | Path | None = None, size: int = FRAME) -> Path:
    """Clean | light | medium | heavy | random x n_random per UTKFace train face, then real faces."""
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    rng = np.random.default_rng(seed)
    # Spread the picks over the sorted train list instead of the first few names.
    faces = [f for i, (_, f) in enumerate(iter_faces("train", data_dir, min_sharpness=20,
                                                     limit=n_faces * 400, size=size)) if i % 400 == 0]
    rows = []
    for face in faces:
        tiles = [_label(face, "clean")]
        tiles += [_label(fixed_degrade(face, lv, seed), lv) for lv in LEVELS]
        for _ in range(n_random):
            p = sample_params(rng)
            d = f"x{p.down_factor:.1f}" if p.down_factor else "x1"
            q = f"q{p.jpeg_quality}" if p.jpeg_quality else ""
            tiles.append(_label(apply_params(face, p), f"{d} {q}"))
        rows.append(np.hstack(tiles))
    width = rows[0].shape[1] if rows else size * (4 + n_random)
    per_row = width // size
    for tag, crop in (("real", False), ("utk~", True)):
        tiles = [_label(_real_face(f, size, crop), f"{tag} {f.stem[:7]}") for f in real_faces(data_dir)]
        tiles += [np.zeros((size, size, 3), np.uint8)] * (-len(tiles) % per_row)
        rows += [np.hstack(tiles[i:i + per_row]) for i in range(0, len(tiles), per_row)]
    sheet = np.vstack(rows)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return out_path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m diffbfr.train.degrade", description=__doc__.split("\n")[0])
    ap.add_argument("--contact-sheet", metavar="OUT.png", help="write a degradation contact sheet")
    ap.add_argument("--faces", type=int, default=6)
    ap.add_argument("--random", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show-ranges", action="store_true", help="print DEFAULT_RANGES")
    args = ap.parse_args(argv)
    if args.show_ranges or not args.contact_sheet:
        for k, v in DEFAULT_RANGES.describe().items():
            print(f"{k:16s} {v}")
    if args.contact_sheet:
        print(contact_sheet(args.contact_sheet, args.faces, args.random, args.seed))


if __name__ == "__main__":
    main()
