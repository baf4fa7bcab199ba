"""The LQ image encoder of Panini-Net: multi-scale features of the degraded face (which DAFI
blends into the generator at 4..128 px) and the generator's W+ latents.

A full-resolution stem, then residual stride-2 levels 128 -> 64 -> 32 -> 16 -> 8 -> 4 px whose channel counts equal the
generator's at the same resolution, so a DAFI block can mix the two feature maps channel by
channel.  The W+ head predicts an *offset* from the generator's w_avg with a zero-initialised
last layer: an untrained encoder drives the prior with its average face, a valid image,
instead of random latents.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigMixin
from .panini_prior import GeneratorConfig


@dataclass
class EncoderConfig(ConfigMixin):
    resolution: int = 128
    # channels at 4, 8, ..., resolution px (same order as GeneratorConfig.channels); the last
    # one is the stem at full resolution, the others must equal the generator's
    channels: tuple[int, ...] = (256, 256, 256, 128, 64, 32)
    blocks_per_level: int = 1  # residual blocks per level; the first one downsamples
    num_ws: int = 12
    w_dim: int = 256
    head_dim: int = 512

    def __post_init__(self):
        if 4 * 2 ** (len(self.channels) - 1) != self.resolution:
            raise ValueError(f"resolution {self.resolution} does not match {len(self.channels)} levels")
        if self.blocks_per_level < 1:
            raise ValueError("blocks_per_level must be >= 1")

    @classmethod
    def for_generator(cls, g: GeneratorConfig, **overrides) -> "EncoderConfig":
        """The encoder that fits generator `g` (channels, num_ws, w_dim taken from it)."""
        kw = dict(resolution=g.resolution, channels=tuple(g.channels), num_ws=g.num_ws, w_dim=g.w_dim)
        kw.update(overrides)
        return cls(**kw)

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(4 * 2 ** i for i in range(len(self.channels)))


TINY_ENCODER = EncoderConfig(channels=(16, 16, 16, 8, 8, 8), num_ws=12, w_dim=32, head_dim=32)


class ResBlock(nn.Module):
    """Pre-activation residual block (leaky ReLU, no normalisation: the batch is often one
    face at inference and statistics of a single LQ face would wash out its degradation)."""

    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2 if down else 1, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if (cin != cout or down) else None
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.leaky_relu(self.conv1(F.leaky_relu(x, 0.2)), 0.2))
        s = F.avg_pool2d(x, 2) if self.down else x
        if self.skip is not None:
            s = self.skip(s)
        return s + h


class Encoder(nn.Module):
    def __init__(self, config: EncoderConfig | None = None):
        super().__init__()
        self.config = cfg = config or EncoderConfig()
        ch = cfg.channels[::-1]  # full resolution first
        self.stem = nn.Conv2d(3, ch[0], 3, padding=1)
        levels = []
        for cin, cout in zip(ch[:-1], ch[1:]):
            blocks = [ResBlock(cin, cout, down=True)]
            blocks += [ResBlock(cout, cout, down=False) for _ in range(cfg.blocks_per_level - 1)]
            levels.append(nn.Sequential(*blocks))
        self.levels = nn.ModuleList(levels)
        self.head = nn.Sequential(nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(ch[-1] * 16, cfg.head_dim),
                                  nn.LeakyReLU(0.2), nn.Linear(cfg.head_dim, cfg.num_ws * cfg.w_dim))
        nn.init.zeros_(self.head[-1].weight)  # start exactly at w_avg: the prior's average face
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor, w_avg: torch.Tensor | None = None):
        """x: N x 3 x R x R in [-1, 1] -> (features {res: N x C_res x res x res} for every
        resolution from R (the stem's map) down to 4 px, ws N x num_ws x w_dim = w_avg + predicted offset)."""
        cfg = self.config
        if x.shape[-1] != cfg.resolution or x.shape[-2] != cfg.resolution:
            raise ValueError(f"encoder expects {cfg.resolution} px input, got {tuple(x.shape[-2:])}")
        h = self.stem(x)
        feats = {cfg.resolution: h}  # full resolution: the path by which fine input detail survives
        for level in self.levels:
            h = level(h)
            feats[h.shape[-1]] = h
        ws = self.head(h).reshape(x.shape[0], cfg.num_ws, cfg.w_dim)
        if w_avg is not None:
            ws = ws + w_avg.to(ws.dtype)
        return feats, ws
