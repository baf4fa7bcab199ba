"""NIQE (Mittal, Soundararajan & Bovik, 2013), written by hand for 128 px faces.

No-reference naturalness score: lower = closer to the statistics of the pristine
(sharp, clean) faces the model was fitted on. Recipe, per image:
  1. grey luminance in [0, 255] (ITU-R BT.601 weights, as MATLAB rgb2gray);
  2. MSCN coefficients: (I - mu) / (sigma + 1), mu/sigma local Gaussian-weighted
     (7x7, sigma 7/6) mean and deviation;
  3. per patch (PATCH x PATCH): GGD fit of the MSCN (alpha, variance) and an AGGD
     fit (alpha, mean, left var, right var) of the products of each coefficient
     with its right, lower, lower-right and upper-right neighbour -> 18 features;
  4. the same at half resolution (cv2.INTER_AREA, patches of PATCH / 2) -> 36;
  5. a multivariate Gaussian over the patches' features; the score is
     sqrt((mu_p - mu_d)^T pinv((S_p + S_d) / 2) (mu_p - mu_d)).
The original uses 96 px patches on large photos; a 128 px face would give one
patch, so we use 32 px (16 patches per face, 16 px at the coarse scale).
Fitting keeps, per image, the patches whose mean sigma exceeds 0.75 x the
sharpest patch's (the original's rule), so flat background does not count.

CLI:  python -m diffbfr.niqe fit   [--data-dir D] [--out diffbfr/niqe_utk.json] ...
      python -m diffbfr.niqe score IMAGE...
The model file is plain JSON (no pickle).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import correlate
from scipy.special import gamma as G

from .train.data import default_data_dir

PATCH = 32
SHARP_FRACTION = 0.75
MODEL_PATH = Path(__file__).with_name("niqe_utk.json")
FORMAT = "diffbfr-niqe-v1"

# Moment-matching lookup tables, shared by every fit (the grid of the original).
_ALPHAS = np.arange(0.2, 10.0, 0.001)
_GGD_RATIO = G(1 / _ALPHAS) * G(3 / _ALPHAS) / G(2 / _ALPHAS) ** 2
_AGGD_RATIO = G(2 / _ALPHAS) ** 2 / (G(1 / _ALPHAS) * G(3 / _ALPHAS))
_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))  # right, down, diagonal, anti-diagonal


def _window() -> np.ndarray:
    ax = np.arange(7) - 3.0
    g = np.exp(-(ax**2) / (2 * (7 / 6) ** 2))
    w = np.outer(g, g)
    return w / w.sum()


_WINDOW = _window()


def to_gray(img: np.ndarray) -> np.ndarray:
    """uint8 RGB (or grey) -> float64 luminance in [0, 255]."""
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 3:
        a = a[..., 0] * 0.2989 + a[..., 1] * 0.5870 + a[..., 2] * 0.1140
    return a


def mscn(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted contrast-normalised coefficients and the local sigma map."""
    mu = correlate(gray, _WINDOW, mode="nearest")
    var = correlate(gray * gray, _WINDOW, mode="nearest") - mu * mu
    sigma = np.sqrt(np.abs(var))
    return (gray - mu) / (sigma + 1.0), sigma


def ggd_fit(x: np.ndarray) -> tuple[float, float]:
    """Generalised Gaussian (zero mean): shape alpha and variance, by moment matching."""
    x = np.ravel(x)
    var = float(np.mean(x * x))
    e = float(np.mean(np.abs(x)))
    if e <= 0.0:
        return float("nan"), var  # flat patch: shape undefined, row dropped later
    rho = var / (e * e)
    alpha = float(_ALPHAS[np.argmin(np.abs(rho - _GGD_RATIO))])
    return alpha, var


def aggd_fit(x: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric GGD: (alpha, mean, left variance, right variance)."""
    x = np.ravel(x)
    left, right = x[x < 0], x[x > 0]
    lstd = float(np.sqrt(np.mean(left * left))) if left.size else 0.0
    rstd = float(np.sqrt(np.mean(right * right))) if right.size else 0.0
    m2 = float(np.mean(x * x))
    if rstd <= 0.0 or m2 <= 0.0:
        return float("nan"), float("nan"), lstd**2, rstd**2
    gh = lstd / rstd
    rhat = float(np.mean(np.abs(x))) ** 2 / m2
    rnorm = rhat * (gh**3 + 1) * (gh + 1) / (gh**2 + 1) ** 2
    alpha = float(_ALPHAS[np.argmin((_AGGD_RATIO - rnorm) ** 2)])
    mean = (rstd - lstd) * (G(2 / alpha) / G(1 / alpha)) * np.sqrt(G(1 / alpha) / G(3 / alpha))
    return alpha, float(mean), lstd**2, rstd**2


def _scale_features(gray: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    m, sigma = mscn(gray)
    # Products over the whole image (circular shift, as the original) then cut into patches.
    prods = [m * np.roll(m, s, axis=(0, 1)) for s in _SHIFTS]
    rows, cols = gray.shape[0] // p, gray.shape[1] // p
    feats = np.empty((rows * cols, 18))
    sharp = np.empty(rows * cols)
    k = 0
    for i in range(rows):
        for j in range(cols):
            sl = (slice(i * p, (i + 1) * p), slice(j * p, (j + 1) * p))
            f = list(ggd_fit(m[sl]))
            for pr in prods:
                f.extend(aggd_fit(pr[sl]))
            feats[k] = f
            sharp[k] = sigma[sl].mean()
            k += 1
    return feats, sharp


def features(img: np.ndarray, patch: int = PATCH) -> tuple[np.ndarray, np.ndarray]:
    """(n_patches, 36) features and the (n_patches,) patch sharpness of one image."""
    gray = to_gray(img)
    h, w = (gray.shape[0] // patch) * patch, (gray.shape[1] // patch) * patch
    if h == 0 or w == 0:
        raise ValueError(f"image {gray.shape} smaller than one {patch} px patch")
    gray = gray[:h, :w]
    f1, sharp = _scale_features(gray, patch)
    half = cv2.resize(gray.astype(np.float32), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    f2, _ = _scale_features(half.astype(np.float64), patch // 2)
    return np.hstack([f1, f2]), sharp


@dataclass
class NiqeModel:
    mu: np.ndarray  # (36,)
    cov: np.ndarray  # (36, 36)
    patch: int = PATCH
    meta: dict = field(default_factory=dict)

    def to_json(self) -> str:
        # One matrix row per line: small, diffable, exact (repr floats round-trip).
        head = json.dumps({"format": FORMAT, "patch": self.patch, "meta": self.meta}, indent=1)
        rows = ",\n  ".join(json.dumps(r) for r in self.cov.tolist())
        return f'{head[:-2]},\n "mu": {json.dumps(self.mu.tolist())},\n "cov": [\n  {rows}\n ]\n}}'


    @classmethod
    def from_json(cls, text: str) -> "NiqeModel":
        d = json.loads(text)
        if d.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} model file")
        return cls(np.asarray(d["mu"], np.float64), np.asarray(d["cov"], np.float64),
                   int(d["patch"]), d.get("meta", {}))

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike = MODEL_PATH) -> "NiqeModel":
        return cls.from_json(Path(path).read_text())


def fit(images, patch: int = PATCH, sharp_fraction: float = SHARP_FRACTION,
        meta: dict | None = None) -> NiqeModel:
    """Pristine MVG from an iterable of uint8 images (sharpest patches of each)."""
    rows, n_img = [], 0
    for img in images:
        f, sharp = features(img, patch)
        keep = sharp > sharp_fraction * sharp.max() if sharp.max() > 0 else np.zeros_like(sharp, bool)
        rows.append(f[keep])
        n_img += 1
    x = np.vstack(rows) if rows else np.empty((0, 36))
    x = x[np.all(np.isfinite(x), axis=1)]
    if len(x) < 2:
        raise ValueError("too few usable patches to fit a NIQE model")
    info = dict(meta or {}, n_images=n_img, n_patches=int(len(x)), patch=patch,
                sharp_fraction=sharp_fraction)
    return NiqeModel(x.mean(0), np.cov(x, rowvar=False), patch, info)


_DEFAULT: NiqeModel | None = None


def default_model() -> NiqeModel:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = NiqeModel.load(MODEL_PATH)
    return _DEFAULT


def niqe(img: np.ndarray, model: NiqeModel | None = None) -> float:
    """NIQE score of a uint8 image (lower = more natural). NaN if no patch is usable
    (e.g. a perfectly flat image)."""
    model = model or default_model()
    f, _ = features(img, model.patch)
    f = f[np.all(np.isfinite(f), axis=1)]
    if len(f) == 0:
        return float("nan")
    mu = f.mean(0)
    cov = np.cov(f, rowvar=False) if len(f) > 1 else np.zeros_like(model.cov)
    d = model.mu - mu
    return float(np.sqrt(max(0.0, d @ np.linalg.pinv((model.cov + cov) / 2) @ d)))


# ---------------------------------------------------------------- fitting CLI

def _data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    return Path(default_data_dir())


def select_fit_rows(manifest: Path, lo: float, hi_pct: float, min_sat: float, n: int) -> tuple[list[dict], float, int]:
    """Train rows with lo <= sharpness <= the hi_pct percentile (of train), colour
    photos only, then n of them evenly spaced in manifest (SHA-1) order."""
    rows = [r for r in csv.DictReader(open(manifest, newline="")) if r["split"] == "train"]
    hi = float(np.percentile([float(r["sharpness"]) for r in rows], hi_pct))
    ok = [r for r in rows if lo <= float(r["sharpness"]) <= hi and float(r["saturation"]) >= min_sat]
    n_candidates = len(ok)
    if n and len(ok) > n:
        ok = [ok[i] for i in np.linspace(0, len(ok) - 1, n).round().astype(int)]
    return ok, hi, n_candidates


def read_utk(data_dir: Path, rows: list[dict], size: int = 128):
    """Decode rows straight from the shards; the canonical frame is the UTKFace crop
    resized to 128 px with INTER_AREA (docs/ARCHITECTURE.md)."""
    by_shard: dict[str, list[dict]] = {}
    for r in rows:
        by_shard.setdefault(r["shard"], []).append(r)
    for shard, rs in sorted(by_shard.items()):
        with tarfile.open(data_dir / "utkface" / shard) as tf:
            names = {Path(m.name).name: m for m in tf.getmembers() if m.isfile()}
            for r in rs:
                buf = np.frombuffer(tf.extractfile(names[r["file"]]).read(), np.uint8)
                img = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                yield cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def _cmd_fit(a) -> int:
    data = _data_dir(a.data_dir)
    manifest = data / "utkface" / "manifest.csv"
    if not manifest.exists():
        print(f"no UTKFace manifest at {manifest}", file=sys.stderr)
        return 2
    rows, hi, n_cand = select_fit_rows(manifest, a.min_sharpness, a.max_sharpness_pct, a.min_saturation, a.images)
    t0 = time.time()
    meta = {"source": "UTKFace train split (../shared/data/utkface), 128 px canonical frame",
            "selection": f"sharpness >= {a.min_sharpness} and <= P{a.max_sharpness_pct} of train "
                         f"({hi:.1f}), saturation >= {a.min_saturation}: {n_cand} candidates, {len(rows)} evenly "
                         "spaced in SHA-1 order",
            "min_sharpness": a.min_sharpness, "max_sharpness": round(hi, 2)}
    model = fit(read_utk(data, rows), a.patch, SHARP_FRACTION, meta)
    model.save(a.out)
    print(f"fitted on {model.meta['n_images']} images, {model.meta['n_patches']} patches "
          f"(patch {a.patch}) in {time.time() - t0:.1f}s -> {a.out}")
    return 0


def _cmd_score(a) -> int:
    model = NiqeModel.load(a.model)
    for p in a.images:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        if img is None:
            print(f"{p}\tunreadable")
            continue
        print(f"{p}\t{niqe(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), model):.3f}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m diffbfr.niqe", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="fit the pristine model on sharp UTKFace train crops")
    f.add_argument("--data-dir", default=None, help="default: diffbfr.train.data.default_data_dir()")
    f.add_argument("--out", default=str(MODEL_PATH))
    f.add_argument("--images", type=int, default=1000, help="how many images (0 = all selected)")
    f.add_argument("--min-sharpness", type=float, default=100.0,
                   help="manifest sharpness (Laplacian variance at 200 px) lower bound")
    f.add_argument("--max-sharpness-pct", type=float, default=99.0,
                   help="drop the sharpest tail (noise, text, watermarks) above this percentile")
    f.add_argument("--min-saturation", type=float, default=8.0, help="skip grey photos")
    f.add_argument("--patch", type=int, default=PATCH)
    s = sub.add_parser("score", help="NIQE of image files")
    s.add_argument("images", nargs="+")
    s.add_argument("--model", default=str(MODEL_PATH))
    a = ap.parse_args(argv)
    return _cmd_fit(a) if a.cmd == "fit" else _cmd_score(a)


if __name__ == "__main__":
    sys.exit(main())
