"""What both diffusion networks of DiffBFR are built from: their config (UNetConfig, whose
`arch` picks the class: "unet" is nets/unet.py's UNet, "shuffle" nets/shufflenet.py's
ShuffleUNet) and the sinusoidal timestep embedding both feed their FiLM layers. Its own module
so that each network imports it and neither imports the other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .config import ConfigMixin


@dataclass
class UNetConfig(ConfigMixin):
    image_size: int = 128
    in_channels: int = 3
    cond_channels: int = 0
    out_channels: int = 3
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 3, 4)
    blocks_per_level: int = 1
    attn_heads: int = 4
    groups: int = 8
    name: str = "unet"
    arch: str = "unet"      # "unet" (unet.py's UNet) or "shuffle" (shufflenet.py, shaped for CPUs)
    t_max: float = 1000.0   # the largest timestep it was trained at: samplers never start above it
    extra: dict = field(default_factory=dict)  # free-form notes saved with the weights


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of a float timestep (0..1000); fractional t is as valid as integer t."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)
