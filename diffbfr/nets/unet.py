"""A compact UNet for diffusion: float-timestep embedding, GroupNorm residual blocks,
self-attention at the lowest resolution, optional conditioning by channel concatenation.

The three DiffBFR networks are this one class with different configs (MODEL_CONFIGS):
  irm64  - conditioned on the LQ face at 64 px                      (3 + 3 input channels)
  irm128 - conditioned on the upsampled stage-1 result + LQ at 128  (3 + 6 input channels)
  tem128 - unconditional, trained on high-quality faces only        (3 input channels)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .shufflenet import ShuffleUNet
from .unet_config import UNetConfig, timestep_embedding


# Sized so that each fp16 file is a few MiB and one evaluation is cheap on a 2-core CPU.
MODEL_CONFIGS = {
    # irm64: two blocks per level since 64 px is cheap and stage 1 does the most work.
    "irm64": UNetConfig(image_size=64, cond_channels=3, base_channels=32,
                        channel_mults=(1, 2, 2, 3), blocks_per_level=2, name="irm64"),
    # 128 px nets: thin at full resolution (where CPU time goes), wide at 8 px (attention).
    "irm128": UNetConfig(image_size=128, cond_channels=6, base_channels=32,
                         channel_mults=(1, 1, 2, 3, 4), blocks_per_level=1, name="irm128"),
    "tem128": UNetConfig(image_size=128, cond_channels=0, base_channels=32,
                         channel_mults=(1, 1, 2, 3, 4), blocks_per_level=1, name="tem128"),
}


# Random tiny networks with the real wiring, for tests and for UI work without weights.
TINY_OVERRIDES = dict(base_channels=8, channel_mults=(1, 2, 2, 2), blocks_per_level=1, attn_heads=2)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)  # scale and shift (FiLM) from the timestep
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity: stable early training
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    def __init__(self, ch: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.out = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        o = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(o.transpose(-1, -2).reshape(n, c, h, w))


class UNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        emb_dim = 4 * c.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(c.base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(c.in_channels + c.cond_channels, c.base_channels, 3, padding=1)

        chans = [c.base_channels * m for m in c.channel_mults]
        self.down = nn.ModuleList()
        skips, ch = [c.base_channels], c.base_channels
        for level, cout in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(c.blocks_per_level):
                blocks.append(ResBlock(ch, cout, emb_dim, c.groups))
                ch = cout
                skips.append(ch)
            down = nn.Conv2d(ch, ch, 3, stride=2, padding=1) if level < len(chans) - 1 else None
            if down is not None:
                skips.append(ch)
            self.down.append(nn.ModuleDict({"blocks": blocks, **({"down": down} if down else {})}))

        self.mid1 = ResBlock(ch, ch, emb_dim, c.groups)
        self.mid_attn = SelfAttention(ch, c.attn_heads, c.groups)
        self.mid2 = ResBlock(ch, ch, emb_dim, c.groups)

        self.up = nn.ModuleList()
        for level, cout in reversed(list(enumerate(chans))):
            blocks = nn.ModuleList()
            for _ in range(c.blocks_per_level + 1):
                blocks.append(ResBlock(ch + skips.pop(), cout, emb_dim, c.groups))
                ch = cout
            up = nn.Conv2d(ch, ch, 3, padding=1) if level > 0 else None
            self.up.append(nn.ModuleDict({"blocks": blocks, **({"up": up} if up else {})}))

        self.out_norm = nn.GroupNorm(c.groups, ch)
        self.out_conv = nn.Conv2d(ch, c.out_channels, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.config.cond_channels:
            if cond is None or cond.shape[1] != self.config.cond_channels:
                raise ValueError(f"{self.config.name} needs {self.config.cond_channels} conditioning channels")
            x = torch.cat([x, cond.to(x.dtype)], dim=1)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels).to(x.dtype))

        h = self.stem(x)
        hs = [h]
        for level in self.down:
            for block in level["blocks"]:
                h = block(h, emb)
                hs.append(h)
            if "down" in level:
                h = level["down"](h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for level in self.up:
            for block in level["blocks"]:
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            if "up" in level:
                h = level["up"](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out_conv(F.silu(self.out_norm(h)))


# The CPU-shaped variants (arch "shuffle", shufflenet.py): `build(name, **SHUFFLE_OVERRIDES[name])`.
SHUFFLE_OVERRIDES = {
    "irm64": dict(arch="shuffle", base_channels=64, channel_mults=(1, 2, 2), blocks_per_level=2),
    "irm128": dict(arch="shuffle", base_channels=32, channel_mults=(1, 2, 4, 4), blocks_per_level=2),
    "tem128": dict(arch="shuffle", base_channels=32, channel_mults=(1, 2, 4, 4), blocks_per_level=2),
}


def network(config: UNetConfig) -> nn.Module:
    """The network a config describes (its `arch`)."""
    if config.arch == "unet":
        return UNet(config)
    if config.arch == "shuffle":
        return ShuffleUNet(config)
    raise ValueError(f"unknown network arch {config.arch!r}")


def build(name: str, **overrides) -> nn.Module:
    """One of the three DiffBFR networks, optionally with config overrides (e.g. base_channels)."""
    return network(UNetConfig.from_dict({**MODEL_CONFIGS[name].to_dict(), **overrides}))


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
