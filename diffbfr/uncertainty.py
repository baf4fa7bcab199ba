"""Where is the model guessing? Restore one face K times with different seeds and look at how
much the samples disagree, pixel by pixel.

Diffusion restoration is stochastic: where the K samples agree, the LQ input constrains the
result; where they disagree, the model is inventing. The map is the per-pixel standard
deviation, over the K samples, of the final stage in grey levels (0-255 luma); the face's one
number is its mean.

The K copies of a face go through the photo path as K faces of one batch
(`restore_faces(model, [face] * K, s, seeds=[seed, seed + 1, ...])`): every stage runs one
network call per step for all K while K <= model.max_batch (4 on CPU, 32 on CUDA), so K = 4
costs far less than 4 restorations (bench/uncertainty.py measures it).

Generic over methods: it only needs the method's final stage. Randomness comes from the seeds
(DiffBFR: the noise a truncated sampler starts from) and, where the method has an `eta` knob,
from fresh noise at every step (`stochastic(s)` sets eta = 1 for the uncertainty run). A
method that ignores its seed gives a zero map: `Uncertainty.deterministic` says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from . import settings as S
from .methods.base import Model
from .photo import Runner, restore_faces

K = 4              # samples per face
ETA = 1.0          # DDIM eta for the uncertainty run: fresh noise at every step
HEAT_MAX = 24.0    # grey levels at the top of the colour map: fixed, so maps compare across faces
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass
class Uncertainty:
    samples: list[np.ndarray]   # K final-stage images, uint8 RGB
    std: np.ndarray             # H x W float32: per-pixel std over the samples, grey levels
    heat: np.ndarray            # uint8 RGB heat map of `std`, same frame
    overlay: np.ndarray         # the heat map blended over the first sample
    score: float                # mean of `std`, grey levels
    deterministic: bool         # every sample identical: the method invents nothing at these settings

    @property
    def words(self) -> str:
        if self.deterministic:
            return "the samples are identical: at these settings the method is deterministic (map is zero)"
        return f"mean disagreement between {len(self.samples)} samples: {self.score:.1f} grey levels"


def stochastic(s, eta: float = ETA):
    """`s` with eta set where the method's settings have such a knob (samples then differ
    step by step, not only in their starting noise); otherwise `s` unchanged."""
    names = {k.name for k in S.knobs(type(s))}
    return S.with_value(s, "eta", eta) if "eta" in names else s


def grey(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) @ LUMA


def pixel_std(images: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel standard deviation of the grey images over the samples (population std)."""
    return np.std(np.stack([grey(im) for im in images]), axis=0).astype(np.float32)


def heat_map(std: np.ndarray, vmax: float = HEAT_MAX) -> np.ndarray:
    """Std (grey levels) -> uint8 RGB through the inferno colour map, 0 .. vmax (clipped)."""
    u8 = np.clip(std / vmax * 255.0, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB))


def overlay(face: np.ndarray, heat: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """The heat map over a face of the same size (e.g. the result the user sees)."""
    return cv2.addWeighted(heat, alpha, face, 1 - alpha, 0.0)


def from_samples(samples: Sequence[np.ndarray]) -> Uncertainty:
    std = pixel_std(samples)
    heat = heat_map(std)
    return Uncertainty(list(samples), std, heat, overlay(samples[0], heat), float(std.mean()),
                       bool(all(np.array_equal(samples[0], x) for x in samples[1:])))


def uncertainties(model: Model, faces: Sequence[np.ndarray], s=None, k: int = K,
                  seeds: Sequence[int] | None = None, runner: Runner | None = None) -> list[Uncertainty]:
    """K samples of each aligned face (seeds seed_i, seed_i + 1, ..., seed_i = `seeds[i]` or
    that face's settings' seed), all faces' copies in one restore_faces call. `s`: one settings
    object or one per face (e.g. Auto's), used as given (stochastic(s) for eta = 1).
    `runner`: as restore_faces' (the app's GPU runner). No stage cache: a stage key holds the
    settings' seed field, not the per-call seeds, so the K copies would collide."""
    per = list(s) if isinstance(s, (list, tuple)) else [s if s is not None else model.method.settings()] * len(faces)
    if len(per) != len(faces):
        raise ValueError(f"{len(per)} settings for {len(faces)} faces")
    base = list(seeds) if seeds is not None else [x.seed for x in per]
    copies = [f for f in faces for _ in range(k)]
    sample_seeds = [b + j for b in base for j in range(k)]
    stages = restore_faces(model, copies, [x for x in per for _ in range(k)], runner=runner, seeds=sample_seeds)
    return [from_samples([st.result for st in stages[i * k:(i + 1) * k]]) for i in range(len(faces))]


def uncertainty(model: Model, face: np.ndarray, s=None, k: int = K) -> Uncertainty:
    """One face: K samples at stochastic(s) (eta = 1 where the method has it)."""
    s = stochastic(s if s is not None else model.method.settings())
    return uncertainties(model, [face], s, k)[0]
