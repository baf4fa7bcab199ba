"""Training pairs of the DiffBFR networks, in the canonical face frame, values in [-1, 1].

    net     target            condition                                 start (what sampling noises)
    tem128  HQ face           none                                      the HQ face
    irm64   HQ face at 64 px  LQ face at 64 px                          the LQ face at 64 px
    irm128  HQ face           [stage-1 stand-in upsampled, LQ at 128]   the stage-1 stand-in

The *start* is the image the app's truncated sampler noises before its first step. Training
part of the noisy inputs from it (instead of from the target) teaches the network the input it
actually meets at the start step; see diffbfr/train/diffusion_trainer.py.

The stage-1 stand-in for irm128 is what stage 1 hands over in the app. A quarter of the time it
is the LQ face itself at 128 px: stage 1 skipped (Auto does that for light faces, and stage 2
then starts from the LQ face, so that a nearly clean face keeps the detail a 64 px round trip
would lose). Otherwise it lies between a poor and a perfect stage 1: a random blend of the LQ
and HQ faces at 64 px, bicubically upsampled. Both get a little Gaussian noise (the
cascaded-diffusion "conditioning augmentation").

Each training item draws a fresh degradation (and flip, blend, crop) from a generator salted by
torch's RNG, so every epoch sees new LQ faces; validation items (fixed=True) are seeded by
(seed, index) only and never change.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..frame import FRAME, HALF_FRAME, resize_square, to_tensor
from .data import PackDataset
from .degrade import random_degrade

NETS = ("irm64", "irm128", "tem128")


def chw(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> float CxHxW in [-1, 1], exactly as the pipeline feeds the networks."""
    return to_tensor(img, "cpu")[0]


def area(img: np.ndarray, size: int) -> np.ndarray:
    return resize_square(img, size, cv2.INTER_AREA)


SKIPPED_SHARE = 0.25  # of irm128's stand-ins that are the LQ face itself (stage 1 skipped)


COND_SIGMA = 0.05     # largest conditioning-augmentation noise on a stage-1 input


def cond_noised(up: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A stage-1 input plus Gaussian noise of a random sigma <= COND_SIGMA."""
    sigma = float(rng.uniform(0.0, COND_SIGMA))
    return (up + sigma * torch.from_numpy(rng.standard_normal(up.shape).astype(np.float32))).clamp(-1, 1)


def stage1_standin(hq: np.ndarray, lq: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """A stage-1 result as irm128 meets it: the LQ face (stage 1 skipped) or a blend of LQ and
    HQ at 64 px, upsampled; noised."""
    if rng.random() < SKIPPED_SHARE:
        up = chw(lq)
    else:
        u = float(rng.uniform(0.0, 1.0))
        coarse = (1 - u) * area(lq, HALF_FRAME).astype(np.float32) + u * area(hq, HALF_FRAME).astype(np.float32)
        up = chw(resize_square(np.clip(coarse + 0.5, 0, 255).astype(np.uint8), FRAME, cv2.INTER_CUBIC))
    return cond_noised(up, rng)


class PairDataset(torch.utils.data.Dataset):
    """(target, condition, start) for one network from the HQ faces `indices` of a pack.

    `crop` > 0 cuts the same random crop x crop window from all three (128 px nets are fully
    convolutional, so they can learn on crops at a quarter of the cost); validation never crops.
    """

    def __init__(self, pack: PackDataset, model: str, seed: int, indices=None, fixed: bool = False,
                 crop: int = 0):
        self.pack, self.model, self.seed, self.fixed, self.crop = pack, model, seed, fixed, crop
        self.indices = list(range(len(pack))) if indices is None else list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, j):
        i = self.indices[j]
        salt = [] if self.fixed else [int(torch.randint(2**31 - 1, (1,)))]
        rng = np.random.default_rng([self.seed, i, *salt])
        hq = self.pack[i]
        if hq.shape[0] != FRAME:
            hq = area(hq, FRAME)
        if not self.fixed and rng.random() < 0.5:
            hq = np.ascontiguousarray(hq[:, ::-1])
        if self.model == "tem128":
            target = chw(hq)
            return self._crop(rng, target, torch.zeros(0, FRAME, FRAME), target)
        lq = random_degrade(hq, rng)
        if self.model == "irm64":
            lq64 = chw(area(lq, HALF_FRAME))
            return chw(area(hq, HALF_FRAME)), lq64, lq64
        stage1 = stage1_standin(hq, lq, rng)
        return self._crop(rng, chw(hq), torch.cat([stage1, chw(lq)]), stage1)

    def _crop(self, rng, target, cond, start):
        if self.fixed or not self.crop or self.crop >= target.shape[-1]:
            return target, cond, start
        y, x = (int(v) for v in rng.integers(0, target.shape[-1] - self.crop + 1, size=2))
        win = (..., slice(y, y + self.crop), slice(x, x + self.crop))
        return target[win], cond[win], start[win]


def stacked(pairs: PairDataset) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """All items of a (validation) PairDataset at once: target, condition or None, start."""
    items = [pairs[j] for j in range(len(pairs))]
    target = torch.stack([a for a, _, _ in items])
    cond = torch.stack([c for _, c, _ in items]) if items[0][1].shape[0] else None
    return target, cond, torch.stack([s for _, _, s in items])
