"""Image quality metrics used by the benchmarks.

All take numpy uint8 RGB images of the same shape (the aligned 128 px face).
- psnr: 10 log10(255^2 / MSE), MSE over every pixel and all three RGB channels.
  Identical images -> +inf.
- ssim: skimage.metrics.structural_similarity on RGB uint8 with the settings of
  Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, population covariance,
  data_range 255), computed per channel and averaged over R, G, B.
- niqe: see diffbfr/train/niqe.py (no reference, lower = more natural / sharper).
- identity: dlib 128-D embedding distance through diffbfr.faces.identity
  (< 0.6 is dlib's "same person"), computed in the canonical frame's known face box;
  None when dlib cannot compute an embedding.
"""
from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

from diffbfr.train.niqe import niqe  # noqa: F401  (re-exported: one import for every metric)
from diffbfr.faces.identity import identity_distance


def _check(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise TypeError("metrics expect uint8 images")
    return a, b


def mse(a: np.ndarray, b: np.ndarray) -> float:
    a, b = _check(a, b)
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over RGB uint8 (peak 255); +inf for identical images."""
    m = mse(a, b)
    return math.inf if m == 0 else 10.0 * math.log10(255.0**2 / m)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over the RGB channels (Gaussian window, Wang et al. 2004)."""
    a, b = _check(a, b)
    return float(structural_similarity(
        a, b, data_range=255, channel_axis=2 if a.ndim == 3 else None,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False))


def identity(a: np.ndarray, b: np.ndarray, aligned: bool | None = True) -> float | None:
    """dlib identity distance (faces layer) of two faces in the canonical frame
    (aligned=True: landmarks inside the frame's known face box, no detection); None
    if no embedding can be computed."""
    d = identity_distance(a, b, aligned=aligned)
    return None if d is None else float(d)
