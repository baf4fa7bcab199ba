"""A diffusion UNet shaped for a 2-core CPU (config arch="shuffle").

Where the CPU's time goes in diffbfr/nets/unet.py: full-resolution 3x3 convolutions and
GroupNorm. This net works at half resolution from the start: pixel-unshuffle x2 folds each 2x2
block of pixels into channels (lossless), the levels run at 1/2, 1/4, 1/8 ... of the image, and
pixel-shuffle unfolds the output. Its residual blocks have no normalisation (the residual branch
starts at zero, so the net starts as the identity and stays well scaled), and the timestep enters
by FiLM. No attention: it is fully convolutional, so a 128 px net can be trained on 64 px crops.

Same interface as UNet: forward(x, t, cond) -> v prediction; built from the same UNetConfig
(base_channels * channel_mults are the widths of the levels, blocks_per_level per level).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .unet_config import UNetConfig, timestep_embedding


class FiLMBlock(nn.Module):
    """x + conv(silu(FiLM(conv(silu(x))))), the second conv zero-initialised."""

    def __init__(self, cin: int, cout: int, emb_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(x))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(h * (1 + scale) + shift))
        return self.skip(x) + h


class ShuffleUNet(nn.Module):
    FOLD = 2  # pixel-unshuffle factor of the stem

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        emb_dim = 4 * c.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(c.base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        fold2 = self.FOLD ** 2
        widths = [c.base_channels * m for m in c.channel_mults]
        self.stem = nn.Conv2d((c.in_channels + c.cond_channels) * fold2, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        ch = widths[0]
        for level, w in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(c.blocks_per_level):
                blocks.append(FiLMBlock(ch, w, emb_dim))
                ch = w
            self.down.append(blocks)
            if level < len(widths) - 1:
                self.downsample.append(nn.Conv2d(ch, widths[level + 1], 3, stride=2, padding=1))
                ch = widths[level + 1]
        self.mid = FiLMBlock(ch, ch, emb_dim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(widths))):
            w = widths[level]
            if level < len(widths) - 1:
                self.upsample.append(nn.Conv2d(ch, w, 3, padding=1))
                ch = w
            blocks = nn.ModuleList()
            for i in range(c.blocks_per_level):
                blocks.append(FiLMBlock(ch + (w if i == 0 else 0), w, emb_dim))  # skip joins the first block
                ch = w
            self.up.append(blocks)
        self.out = nn.Conv2d(ch, c.out_channels * fold2, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        if c.cond_channels:
            if cond is None or cond.shape[1] != c.cond_channels:
                raise ValueError(f"{c.name} needs {c.cond_channels} conditioning channels")
            x = torch.cat([x, cond.to(x.dtype)], dim=1)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, c.base_channels).to(x.dtype))
        h = self.stem(F.pixel_unshuffle(x, self.FOLD))
        skips = []
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self.mid(h, emb)
        for i, blocks in enumerate(self.up):
            if i > 0:
                h = self.upsample[i - 1](F.interpolate(h, scale_factor=2.0, mode="nearest"))
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:
                h = block(h, emb)
        return F.pixel_shuffle(self.out(F.silu(h)), self.FOLD)
