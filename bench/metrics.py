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
- realism (pdist, KID, hf of whole sets of faces): bench/realism.py.
Scorer: what bench.quality scores each face with, the per-image work cached.
"""
from __future__ import annotations

import math
import time

import numpy as np
from skimage.metrics import structural_similarity

from bench import realism as R
from diffbfr.train.niqe import NiqeModel, niqe  # niqe re-exported: one import for every metric
from diffbfr.faces.identity import face_embedding, identity_distance


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


class Scorer:
    """Metrics with the per-image work cached (NIQE of a target, its dlib embedding), and the
    realism scores of whole sets of faces."""

    def __init__(self, niqe_model: NiqeModel, identity: bool = True, realism: bool = True):
        self.niqe_model, self.use_id = niqe_model, identity
        # why the realism columns are off, or None when they are scored
        self.realism_off = "--no-realism" if not realism else R.available()
        self.realism_seconds = 0.0   # what the realism scores added to the run
        self._emb: dict[str, object] = {}
        self._embed = None
        if identity:
            # one embedding per image (the target's is cached) instead of two per pair;
            # every image here is in the canonical frame: no detection needed
            self._embed = lambda img: face_embedding(img, aligned=True)

    def niqe(self, img) -> float:
        return niqe(img, self.niqe_model)

    def identity(self, ref, img, ref_key=None) -> float | None:
        """Distance from ref to img; ref's embedding is cached under ref_key."""
        if not self.use_id:
            return None
        if ref_key is not None and ref_key in self._emb:
            e_ref = self._emb[ref_key]
        else:
            e_ref = self._embed(ref)
            if ref_key is not None:
                self._emb[ref_key] = e_ref
        e_img = self._embed(img)
        if e_ref is None or e_img is None:
            return None
        return float(np.linalg.norm(np.asarray(e_ref, np.float64) - np.asarray(e_img, np.float64)))

    def full(self, hq, img, key) -> dict:
        return {"psnr": psnr(hq, img), "ssim": ssim(hq, img),
                "id_dist": self.identity(hq, img, key), "niqe": self.niqe(img)}

    def realism(self, clean: list, stages: dict[str, list]) -> R.SetScores | None:
        """pdist, hf and KID of each stage's faces against the clean ones; None when off."""
        if self.realism_off or not clean:
            return None
        t0 = time.perf_counter()
        scores = R.score_stages(clean, stages)
        self.realism_seconds += time.perf_counter() - t0
        return scores
