"""Auto's degradation estimator network.

It predicts the FACTORS below from the aligned 128 px LQ face. Its backbone is either its own
small CNN ("cnn", self-contained) or the frozen Panini-Net DRE ("dre": only the head is stored,
and the DRE file it was trained on is pinned by its sha256, because a retrained DRE would
silently change the features the head reads; diffbfr/auto.py checks it on load). Trained by
diffbfr/train/estimator_trainer.py (`python -m diffbfr.train estimator`); read at run time by
diffbfr/auto.py (Estimator, Auto); saved and loaded like every network (diffbfr/checkpoint.py).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .config import ConfigMixin


@dataclass(frozen=True)
class Factor:
    name: str
    lo: float
    hi: float
    help: str


# What the estimator predicts, each squashed into [lo, hi] by a sigmoid (so every output is
# inside its stated range, whatever the input).
FACTORS = (
    Factor("log2_scale", 0.0, 4.0, "log2 of the downscale factor (0: full resolution, 4: 16x)"),
    Factor("blur", 0.0, 3.0, "extra Gaussian blur, sigma in px of the 128 px frame (geometric mean of the axes)"),
    Factor("noise", 0.0, 20.0, "std of the noise left in the final image, grey levels"),
    Factor("jpeg", 0.0, 1.0, "JPEG strength (100 - quality) / 80: 0 = none, 1 = quality 20"),
    Factor("severity", 0.0, 1.0, "overall: (40 dB - PSNR(LQ, clean)) / 22 dB, clipped to [0, 1]"),
)
FACTOR_NAMES = tuple(f.name for f in FACTORS)
# Severity is PSNR-based because PSNR of the LQ face says how much of the clean face is gone,
# whatever mixture of blur, resolution, noise and JPEG removed it: 40 dB looks untouched,
# 18 dB is a 16x face with noise (the fixed "heavy" level scores about 20 dB).
SEVERITY_PSNR = (40.0, 18.0)

ESTIMATOR_FILE = "estimator.safetensors"


def severity_from_psnr(psnr: float) -> float:
    hi, lo = SEVERITY_PSNR
    return float(min(max((hi - psnr) / (hi - lo), 0.0), 1.0))


# ---------------------------------------------------------------- the network
@dataclass
class EstimatorConfig(ConfigMixin):
    backbone: str = "cnn"                                # "cnn" | "dre"
    widths: tuple[int, ...] = (32, 48, 64, 96)          # cnn: 64 px stage, then one stride-2 stage each
    feature_dim: int = 0                                 # dre: the DRE's output width (set by the trainer)
    hidden: int = 64
    dre_sha256: str = ""                                 # dre: the DRE file the head was trained on
    name: str = "estimator"


class ConvBody(nn.Module):
    """N x 3 x 128 x 128 in [-1, 1] -> N x (2 * widths[-1]).

    The stem is a 2x2 space-to-depth (pixel unshuffle), not a strided conv: it keeps every
    pixel (JPEG blocks and noise live in single pixels) at a quarter of the cost of convolving
    at 128 px, which matters on a 2-core CPU. Then conv stages, each halving the size but the
    first, and the mean *and* standard deviation of each channel over the face (std pooling
    sees noise and ringing energy, which a mean alone averages away)."""

    def __init__(self, widths: Sequence[int]):
        super().__init__()
        layers, cin = [nn.PixelUnshuffle(2)], 12
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [nn.Conv2d(cin, w, 3, stride, 1, bias=False), nn.BatchNorm2d(w), nn.SiLU(),
                       nn.Conv2d(w, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.SiLU()]
            cin = w
        self.body = nn.Sequential(*layers)
        self.out_dim = 2 * cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return torch.cat([h.mean((2, 3)), h.std((2, 3))], 1)


class Head(nn.Module):
    """Features -> FACTORS in their units. The features are standardised with statistics
    stored as buffers (set once from training data): the DRE's raw vectors have arbitrary scale."""

    def __init__(self, cin: int, hidden: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(cin))
        self.register_buffer("std", torch.ones(cin))
        self.mlp = nn.Sequential(nn.Linear(cin, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, len(FACTORS)))
        self.register_buffer("lo", torch.tensor([f.lo for f in FACTORS]))
        self.register_buffer("hi", torch.tensor([f.hi for f in FACTORS]))

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        return self.mlp((feats.float() - self.mean) / self.std)

    def to_units(self, logits: torch.Tensor) -> torch.Tensor:
        return self.lo + (self.hi - self.lo) * torch.sigmoid(logits)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.to_units(self.logits(feats))


class EstimatorNet(nn.Module):
    """Aligned faces (N x 3 x 128 x 128, [-1, 1]) -> N x len(FACTORS) in their units.
    `body` is a ConvBody (trained with the head) or a frozen DRE (not stored with the head)."""

    def __init__(self, config: EstimatorConfig, body: nn.Module | None = None):
        super().__init__()
        self.config = config
        if config.backbone == "cnn":
            self.body = ConvBody(config.widths)
            dim = self.body.out_dim
        elif config.backbone == "dre":
            if body is None:
                raise ValueError("a 'dre' estimator needs the DRE module as its body")
            self.dre = body.eval().requires_grad_(False)   # frozen; not saved with the head
            dim = config.feature_dim
        else:
            raise ValueError(f"unknown estimator backbone {config.backbone!r}")
        self.head = Head(dim, config.hidden)

    def train(self, mode: bool = True) -> "EstimatorNet":
        super().train(mode)
        if self.config.backbone == "dre":
            self.dre.eval()   # frozen: its BatchNorm keeps the statistics it was trained with
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) if self.config.backbone == "cnn" else self.dre(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
