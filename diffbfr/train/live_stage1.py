"""irm128's stage-1 input made by the real stage 1, during training (--stage1 PATH).

Why: the blended stand-ins of pairs.py (LQ and HQ mixed at 64 px, the mix drawn uniformly)
are mostly far better than what the shipped irm64 hands over: it gains about 0.6 dB over its
input at 64 px, which is a blend weight near 0.07. Stage 2 trained on them learns to trust
its stage-1 input, and at medium adds only ~0.15 dB on top of stage 1 in the app. Trained on
the real thing it should learn what stage 1 gets wrong, and to read the LQ face for it.
Measured (session 4, weights/diffbfr/README.md): 95 minutes of it from the shipped irm128 gave
0.05-0.06 dB *less* in the app's chain, so it is an option, not the recipe. (It draws one
stage-1 sample, where the app now averages 4: `irm64_samples`.)

The PairDataset (live=True) hands over uncropped items with the LQ face at 64 px and a flag
per item: replace its stand-in (stage 1 not skipped). Here, per batch: stage 1 runs as the
app runs it (truncated sampling from the noised LQ, a start step drawn from STARTS, its steps),
its result is rounded to uint8 and bicubically upsampled as the app does, given the same
conditioning noise as the blends, put in place of the stand-in, and then the batch is cropped.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checkpoint import load_network
from ..diffusion.samplers import truncated_sample
from .pairs import COND_SIGMA

STARTS = (200.0, 400.0)  # the app's default and Auto's heavy setting (weights/diffbfr/auto_calibration.json)
STEPS = 2                # the app's default irm64_steps


def quantize(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> the same image after a uint8 round trip (the app hands stages uint8)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


class LiveStage1:
    """Callable: (target, cond, start, lq64, replace) uncropped -> (target, cond, start) cropped."""

    def __init__(self, path, crop: int, gen: torch.Generator, device: torch.device):
        self.net = load_network(path, device).eval().requires_grad_(False)
        self.crop, self.gen, self.device = crop, gen, device
        self.noise_gen = torch.Generator(device).manual_seed(int(torch.randint(2**31 - 1, (1,), generator=gen)))

    @torch.no_grad()
    def stage1(self, lq64: torch.Tensor) -> torch.Tensor:
        start = STARTS[int(torch.randint(len(STARTS), (1,), generator=self.gen))]
        model = lambda x, t: self.net(x, t, lq64).float()  # noqa: E731
        x = truncated_sample(model, lq64, start, STEPS, generators=self.noise_gen)
        up = F.interpolate(quantize(x), scale_factor=2, mode="bicubic", align_corners=False)
        return quantize(up)

    def __call__(self, target, cond, start, lq64, replace):
        pick = replace.bool()
        if pick.any():
            s1 = self.stage1(lq64[pick].to(self.device))
            sigma = torch.rand(len(s1), 1, 1, 1, generator=self.gen).to(s1) * COND_SIGMA
            s1 = (s1 + sigma * torch.randn(s1.shape, generator=self.gen).to(s1)).clamp(-1, 1)
            cond, start = cond.clone(), start.clone()
            cond[pick, :3] = s1
            start[pick] = s1
        return crop_batch(self.crop, self.gen, target, cond, start)


def crop_batch(crop: int, gen: torch.Generator, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The same random crop x crop window of every tensor, a fresh window per batch item."""
    size = tensors[0].shape[-1]
    if not crop or crop >= size:
        return tensors
    ys, xs = (torch.randint(size - crop + 1, (tensors[0].shape[0],), generator=gen).tolist() for _ in range(2))
    return tuple(torch.stack([t[k, :, y:y + crop, x:x + crop] for k, (y, x) in enumerate(zip(ys, xs))])
                 for t in tensors)
