"""Where is the model guessing? Restore one face K times with different seeds and look at how
much the samples disagree, pixel by pixel.

Diffusion restoration is stochastic: where the K samples agree, the LQ input constrains the
result; where they disagree, the model is inventing. The map is the per-pixel standard
deviation over the K samples, in grey levels (0-255 luma), at the 128 px frame; the face's one
number is its mean.

Which stage is measured: the first one that samples at the face's settings (DiffBFR: IRM 64,
or IRM 128 when Auto skips stage 1 for a lightly degraded face). The K copies run through it
(and what it reads) as one batch per step; the later stages, which refine what it drew, run
once, on the first copy, giving the result the map is drawn over. Why not K full restorations:
on a 2-core CPU batching saves almost nothing (K = 4 full restorations cost 4.3x one), while
this costs about 1.3x one, and its map ranks the pixels by error about as well (README's
measurements: `python -m bench.uncertainty_vs_error --auto [--stage tem]`). On a GPU the whole
K-batch costs little more than one sample either way.

Generic over methods: a stage is random when it reads the method's seed setting
(Method.seed). Randomness comes from the seeds (DiffBFR: the noise a truncated sampler starts
from) and from what the method's `uncertainty_settings` turn on (DiffBFR: fresh noise at every
step, eta = 1; `stochastic()` applies them). A method without a seed gives a zero map:
`Uncertainty.deterministic` says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from . import settings as S
from .frame import FRAME, frame_face, resize_square
from .methods.base import INPUT, Method, Model
from .face_stages import Runner, per_face, run_stages

K = 4              # samples per face
HEAT_MAX = 24.0    # grey levels at the top of the colour map: fixed, so maps compare across faces
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass
class Uncertainty:
    samples: list[np.ndarray]   # K images of the measured stage, uint8 RGB
    std: np.ndarray             # FRAME x FRAME float32: per-pixel std over the samples, grey levels
    heat: np.ndarray            # uint8 RGB heat map of `std`, same frame
    overlay: np.ndarray         # the heat map blended over the result
    score: float                # mean of `std`, grey levels
    deterministic: bool         # every sample identical: the method invents nothing at these settings
    result: np.ndarray | None = None   # the first sample carried through every stage
    stage: str = ""                    # label of the measured stage, e.g. "IRM 64"

    @property
    def words(self) -> str:
        if self.deterministic:
            return "the samples are identical: at these settings the method is deterministic (map is zero)"
        where = f" ({self.stage})" if self.stage else ""
        return f"mean disagreement between {len(self.samples)} samples{where}: {self.score:.1f} grey levels"


def stochastic(method: Method, s, overrides: dict | None = None):
    """`s` for the uncertainty run: the method's `uncertainty_settings` (samples that differ
    step by step, not only in their starting noise; single draws, not a mean), then `overrides`
    (a bench's other eta), each checked like any setting."""
    for name, value in {**method.uncertainty_settings, **(overrides or {})}.items():
        s = S.with_value(s, name, value)
    return s


def grey(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) @ LUMA


def pixel_std(images: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel standard deviation of the grey images over the samples (population std),
    at the 128 px frame (a 64 px stage's map is upsampled)."""
    std = np.std(np.stack([grey(im) for im in images]), axis=0).astype(np.float32)
    return std if std.shape[0] == FRAME else cv2.resize(std, (FRAME, FRAME), interpolation=cv2.INTER_CUBIC).clip(0)


def heat_map(std: np.ndarray, vmax: float = HEAT_MAX) -> np.ndarray:
    """Std (grey levels) -> uint8 RGB through the inferno colour map, 0 .. vmax (clipped)."""
    u8 = np.clip(std / vmax * 255.0, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB))


def overlay(face: np.ndarray, heat: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """The heat map over a face of the same size (e.g. the result the user sees)."""
    return cv2.addWeighted(heat, alpha, face, 1 - alpha, 0.0)


def from_samples(samples: Sequence[np.ndarray], result: np.ndarray | None = None, stage: str = "") -> Uncertainty:
    """The map of K samples of one stage, drawn over `result` (default: the first sample)."""
    std = pixel_std(samples)
    heat = heat_map(std)
    shown = resize_square(result if result is not None else samples[0], FRAME)
    return Uncertainty(list(samples), std, heat, overlay(shown, heat), float(std.mean()),
                       bool(all(np.array_equal(samples[0], x) for x in samples[1:])), shown, stage)


def first_sampling_stage(method: Method, s) -> str:
    """The first stage that draws random numbers at settings `s` (reads the seed and runs at
    least one step); the final stage when none does."""
    for st in method.stages:
        if method.seed in st.fields and st.nfe(s) > 0:
            return st.name
    return method.final


def uncertainties(model: Model, faces: Sequence[np.ndarray], s=None, k: int = K,
                  seeds: Sequence[int] | None = None, runner: Runner | None = None,
                  stage: str | None = None, over: Sequence[np.ndarray] | None = None) -> list[Uncertainty]:
    """K samples of each aligned face (seeds seed_i, seed_i + 1, ..., seed_i = `seeds[i]` or
    that face's settings' seed), measured at `stage` (default: each face's first sampling
    stage). The K copies of every face run through that stage and the stages it reads, one
    batch per step; then each face's first copy alone goes on through the later stages, giving
    the result the map is drawn over (the image a plain restore with seed_i gives). `over`:
    one image per face to draw the maps over instead (the app: the result on screen), and the
    later stages are not run.
    `s`: one settings object or one per face (e.g. Auto's), used as given (stochastic() gives
    the method's uncertainty settings). `runner`: run_stages or the app's GPU runner. No stage
    cache: a stage key holds the settings' seed field, not the per-call seeds, so the K copies
    would collide."""
    method = model.method
    per = per_face(s if s is not None else method.settings(), len(faces))
    faces = [frame_face(f) for f in faces]
    base = list(seeds) if seeds is not None else [method.seed_of(x) for x in per]
    measured = [stage or first_sampling_stage(method, x) for x in per]
    run = runner or run_stages
    samples: list[list[dict]] = [[] for _ in faces]
    for name in dict.fromkeys(measured):   # faces measured at the same stage: one call
        idx = [i for i, m in enumerate(measured) if m == name]
        jobs = [{INPUT: faces[i]} for i in idx for _ in range(k)]
        out = run(model, jobs, [per[i] for i in idx for _ in range(k)],
                  [base[i] + j for i in idx for j in range(k)], None, upto=name)
        for n, i in enumerate(idx):
            samples[i] = [o["images"] for o in out[n * k:(n + 1) * k]]
    if over is None:   # only what is missing runs
        over = [r["images"][method.final] for r in run(model, [dict(x[0]) for x in samples], per, base, None)]
    return [from_samples([x[name] for x in samples[i]], over[i], method.labels[name])
            for i, name in enumerate(measured)]

