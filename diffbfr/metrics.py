"""Image quality metrics, one definition each, for the benches and the trainers.

- psnr: 10 log10(255² / MSE) of two uint8 images, MSE over every pixel and channel, capped at
  PSNR_CAP; psnr_per_image: the same for a batch of float tensors (the trainers' validation).
- ssim: skimage.metrics.structural_similarity on RGB uint8 with the settings of Wang et al.
  2004 (11x11 Gaussian window, sigma 1.5, population covariance, data_range 255), computed per
  channel and averaged over R, G, B.
- niqe: no reference, lower = more natural / sharper; the recipe and its fitted model are
  diffbfr/niqe.py.

Light to import (numpy, torch): scikit-image and scipy are dev requirements, imported when
SSIM or NIQE is first computed.
"""
from __future__ import annotations

import math

import numpy as np
import torch

# An image compared with itself (an untouched degradation draw, a face left as it was) has
# no finite PSNR, and one inf makes every mean it enters inf. 60 dB is an RMS error of a quarter
# of a grey level, below anything a display shows. Faces score 20-47 dB (restorations, LQ
# inputs, the trainers' validation), so on a face only a (nearly) identical image reaches it;
# a whole photo in which one face changed can (bench.large_faces: 57-60.2 dB), and reads ">= 60"
# there. Every number the cards quote is below it, and it is the cap the shipped Auto
# calibration (weights/diffbfr/auto_calibration.json) was fitted with: one of its 60 faces
# drew no degradation at all. (Before: inf in the benches, 60 in the calibration, 100 in the
# estimator's labels, ~100 and ~148 dB in the trainers' validation.)
PSNR_CAP = 60.0


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
    """PSNR in dB of two uint8 images of one shape (peak 255), at most PSNR_CAP."""
    m = mse(a, b)
    return PSNR_CAP if m == 0 else min(PSNR_CAP, 10.0 * math.log10(255.0**2 / m))


def psnr_per_image(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """One PSNR per image of two N x C x H x W batches whose values span `data_range`
    ([-1, 1] images: 2), at most PSNR_CAP; computed on their device."""
    mse_ = (x.float() - y.float()).square().flatten(1).mean(1)
    return (10 * torch.log10(data_range**2 / mse_)).clamp_max(PSNR_CAP)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over the RGB channels (Gaussian window, Wang et al. 2004)."""
    from skimage.metrics import structural_similarity  # a dev requirement: imported when used

    a, b = _check(a, b)
    return float(structural_similarity(
        a, b, data_range=255, channel_axis=2 if a.ndim == 3 else None,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False))


def niqe(img: np.ndarray, model=None) -> float:
    """NIQE of one RGB uint8 image against `model` (a niqe.NiqeModel; default: the fitted
    diffbfr/niqe_utk.json)."""
    from .niqe import niqe as score  # scipy, a dev requirement: imported when used

    return score(img, model)
