"""The GAN prior of Panini-Net: a narrow StyleGAN2-style generator and residual discriminator
at the 128 px face frame, plus the adversarial loss helpers.

The prior is trained first, unconditionally, on clean faces; PaniniNet (panini_dafi.py) then
fine-tunes the generator with an encoder supplying W+ latents and DAFI blocks replacing its
feature maps at 4..128 px (through `Synthesis.forward(..., feature_hook=...)`).

Everything is plain F.conv2d / F.linear / F.interpolate (no custom ops) so that it runs on
CPU and under CUDA bf16 autocast with channels_last.  Weights use the equalized learning
rate of StyleGAN (weights stored at unit variance, scaled at run time) so that one Adam
learning rate suits every layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigMixin

SQRT2 = math.sqrt(2.0)
NOISE_MODES = ("const", "random", "none")
R1_INTERVAL = 16  # lazy R1: apply r1_penalty every 16 D steps, weighted by gamma/2 * 16


# ---------------------------------------------------------------- configs

@dataclass
class GeneratorConfig(ConfigMixin):
    resolution: int = 128
    z_dim: int = 256
    w_dim: int = 256
    mapping_layers: int = 4
    mapping_lr_mul: float = 0.01  # StyleGAN2: the mapping net learns 100x slower, keeps W stable
    # channels at 4, 8, 16, 32, 64, 128 px: wide where pixels are few, thin at 64/128 px where
    # CPU time goes (see bench/panini_speed.py for the measured cost)
    channels: tuple[int, ...] = (256, 256, 256, 128, 64, 32)
    w_avg_beta: float = 0.995

    def __post_init__(self):
        levels = int(math.log2(self.resolution)) - 1
        if 2 ** (levels + 1) != self.resolution or len(self.channels) != levels:
            raise ValueError(f"resolution {self.resolution} needs {levels} channel counts (4 px .. "
                             f"{self.resolution} px), got {len(self.channels)}")

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(4 * 2 ** i for i in range(len(self.channels)))

    def channels_at(self, res: int) -> int:
        return self.channels[self.resolutions.index(res)]

    @property
    def num_ws(self) -> int:
        # StyleGAN2 indexing: one w per modulated 3x3 conv, each toRGB shares the w of the next
        # conv, and the last toRGB has its own: 1 + 2 per upsampling level + 1.
        return 2 * len(self.channels)


@dataclass
class DiscriminatorConfig(ConfigMixin):
    resolution: int = 128
    channels: tuple[int, ...] = (256, 256, 256, 128, 64, 32)  # at 4 .. 128 px, like G
    mbstd_group: int = 4

    def __post_init__(self):
        if 4 * 2 ** (len(self.channels) - 1) != self.resolution:
            raise ValueError(f"resolution {self.resolution} does not match {len(self.channels)} levels")


TINY_GENERATOR = GeneratorConfig(z_dim=32, w_dim=32, mapping_layers=2, channels=(16, 16, 16, 8, 8, 8))
TINY_DISCRIMINATOR = DiscriminatorConfig(channels=(16, 16, 16, 8, 8, 8), mbstd_group=2)


# ---------------------------------------------------------------- equalized-lr layers

def lrelu_bias(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    # StyleGAN's fused bias + leaky ReLU; the gain sqrt(2) keeps activations at unit variance.
    return F.leaky_relu(x + bias.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2))), 0.2) * SQRT2


class EqualLinear(nn.Module):
    def __init__(self, cin: int, cout: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.act = lr_mul / math.sqrt(cin), lr_mul, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias * self.lr_mul
        if self.act:
            return lrelu_bias(F.linear(x, self.weight * self.scale), b)
        return F.linear(x, self.weight * self.scale, b)


class EqualConv2d(nn.Module):
    """3x3 / 1x1 conv with equalized lr; `down=True` average-pools 2x first (a box blur and
    subsample: cheaper than a strided conv at full size, and alias-safe enough here)."""

    def __init__(self, cin: int, cout: int, k: int, bias: bool = True, act: bool = True, down: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale, self.act, self.down, self.pad = 1 / math.sqrt(cin * k * k), act, down, k // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = F.avg_pool2d(x, 2)
        x = F.conv2d(x, self.weight * self.scale, padding=self.pad)
        if self.act:
            return lrelu_bias(x, self.bias if self.bias is not None else x.new_zeros(x.shape[1]))
        return x if self.bias is None else x + self.bias.reshape(1, -1, 1, 1).to(x.dtype)


# ---------------------------------------------------------------- generator

def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool,
                     fused: bool | None = None) -> torch.Tensor:
    """StyleGAN2 modulated conv: weight[o, i] * styles[n, i], divided (demodulation) by the
    norm of each output filter so that unit-variance input gives unit-variance output.

    weight: Cout x Cin x k x k (already lr-scaled), styles: N x Cin.  Two equivalent paths:
    fused (one grouped conv with per-sample weights: the cheapest for batch 1 / inference) and
    unfused (scale activations, shared-weight conv, scale again: cuDNN-friendly for training
    batches).  Default: fused for N == 1 (one conv either way, and no activation-sized
    multiplies), unfused for batches (one ordinary conv beats N-group convs on CPU and GPU).
    """
    n, cin, h, w = x.shape
    cout, k = weight.shape[0], weight.shape[-1]
    styles = styles.to(x.dtype)
    weight = weight.to(x.dtype)
    dcoefs = None
    if demodulate:
        # sum over i,k,k of (w[o,i] s[n,i])^2 = s^2 @ (sum_kk w^2)^T : N x Cout, no N x Cout x Cin tensor
        dcoefs = torch.rsqrt(styles.square() @ weight.square().sum((2, 3)).t() + 1e-8)
    if fused is None:
        fused = n == 1
    if not fused:
        x = F.conv2d(x * styles.reshape(n, cin, 1, 1), weight, padding=k // 2)
        return x if dcoefs is None else x * dcoefs.reshape(n, cout, 1, 1)
    wn = weight.unsqueeze(0) * styles.reshape(n, 1, cin, 1, 1)
    if dcoefs is not None:
        wn = wn * dcoefs.reshape(n, cout, 1, 1, 1)
    out = F.conv2d(x.reshape(1, n * cin, h, w), wn.reshape(n * cout, cin, k, k), padding=k // 2, groups=n)
    return out.reshape(n, cout, h, w)


class StyledConv(nn.Module):
    """Modulated 3x3 conv (+ optional 2x bilinear upsample first), per-pixel noise with a
    learned per-channel strength, bias, leaky ReLU."""

    def __init__(self, cin: int, cout: int, w_dim: int, res: int, up: bool):
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)  # styles start at 1: plain conv
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.noise_strength = nn.Parameter(torch.zeros(cout))  # zero: noise is learned in, not imposed
        self.register_buffer("noise_const", torch.randn(1, 1, res, res))  # saved: "const" is reproducible
        self.scale, self.up, self.res = 1 / math.sqrt(cin * 9), up, res

    def forward(self, x, w, noise_mode: str = "random", noise: torch.Tensor | None = None):
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = modulated_conv2d(x, self.weight * self.scale, self.affine(w), demodulate=True)
        if noise is None and noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.res, self.res, device=x.device, dtype=x.dtype)
        elif noise is None and noise_mode == "const":
            noise = self.noise_const
        elif noise is None and noise_mode != "none":
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if noise is not None:
            x = x + noise.to(x.dtype) * self.noise_strength.reshape(1, -1, 1, 1).to(x.dtype)
        return lrelu_bias(x, self.bias)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB without demodulation (colour scale must stay free)."""

    def __init__(self, cin: int, w_dim: int):
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(3, cin, 1, 1))
        self.bias = nn.Parameter(torch.zeros(3))
        self.scale = 1 / math.sqrt(cin)

    def forward(self, x, w):
        x = modulated_conv2d(x, self.weight * self.scale, self.affine(w), demodulate=False)
        return x + self.bias.reshape(1, 3, 1, 1).to(x.dtype)


class Synthesis(nn.Module):
    """ws (N x num_ws x w_dim) -> image.  Layer i of `convs` uses ws[:, i]; `to_rgbs[j]`
    (at resolution 4 * 2**j) uses ws[:, 2j + 1], shared with the next level's first conv."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        ch = cfg.channels
        self.cfg = cfg
        self.const = nn.Parameter(torch.randn(1, ch[0], 4, 4))
        convs, rgbs = [StyledConv(ch[0], ch[0], cfg.w_dim, 4, up=False)], [ToRGB(ch[0], cfg.w_dim)]
        for j in range(1, len(ch)):
            res = 4 * 2 ** j
            convs += [StyledConv(ch[j - 1], ch[j], cfg.w_dim, res, up=True),
                      StyledConv(ch[j], ch[j], cfg.w_dim, res, up=False)]
            rgbs.append(ToRGB(ch[j], cfg.w_dim))
        self.convs, self.to_rgbs = nn.ModuleList(convs), nn.ModuleList(rgbs)

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", noise: list | None = None,
                feature_hook=None) -> torch.Tensor:
        """feature_hook(res, feat) -> feat, called after the convs of every resolution (before
        its toRGB): DAFI replaces the feature map there and the generator continues from it.
        noise: optional list (one per conv, None entries allowed) overriding noise_mode."""
        if ws.shape[1] != self.cfg.num_ws:
            raise ValueError(f"expected {self.cfg.num_ws} ws, got {ws.shape[1]}")
        noise = noise if noise is not None else [None] * len(self.convs)
        x = self.const.expand(ws.shape[0], -1, -1, -1).to(ws.dtype)
        img = None
        for j, to_rgb in enumerate(self.to_rgbs):
            layers = [0] if j == 0 else [2 * j - 1, 2 * j]
            for i in layers:
                x = self.convs[i](x, ws[:, i], noise_mode, noise[i])
            if feature_hook is not None:
                x = feature_hook(4 * 2 ** j, x)
            rgb = to_rgb(x, ws[:, 2 * j + 1])
            # skip architecture: every resolution adds its RGB to the upsampled coarser image
            img = rgb if img is None else rgb + F.interpolate(img, scale_factor=2, mode="bilinear",
                                                              align_corners=False)
        return img


class Mapping(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        dims = [cfg.z_dim] + [cfg.w_dim] * cfg.mapping_layers
        self.layers = nn.Sequential(*[EqualLinear(a, b, lr_mul=cfg.mapping_lr_mul, act=True)
                                      for a, b in zip(dims[:-1], dims[1:])])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)  # pixel norm: |z| irrelevant
        return self.layers(z)


class Generator(nn.Module):
    def __init__(self, config: GeneratorConfig | None = None):
        super().__init__()
        self.config = cfg = config or GeneratorConfig()
        self.num_ws, self.w_dim, self.z_dim = cfg.num_ws, cfg.w_dim, cfg.z_dim
        self.mapping = Mapping(cfg)
        self.synthesis = Synthesis(cfg)
        # running mean of w: the truncation centre, and where PaniniNet's encoder starts from
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))

    def map(self, z: torch.Tensor, truncation_psi: float = 1.0, update_w_avg: bool = False) -> torch.Tensor:
        """z (N x z_dim) -> ws (N x num_ws x w_dim), all layers the same w."""
        w = self.mapping(z)
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.config.w_avg_beta))
        if truncation_psi != 1.0:
            w = self.w_avg.to(w.dtype).lerp(w, truncation_psi)
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def forward(self, z: torch.Tensor, noise_mode: str = "random", truncation_psi: float = 1.0,
                mixing_prob: float = 0.0, update_w_avg: bool | None = None, return_ws: bool = False):
        """The prior-training path.  update_w_avg defaults to self.training; mixing_prob is
        StyleGAN2's style-mixing regularisation (a second z takes over from a random layer)."""
        upd = self.training if update_w_avg is None else update_w_avg
        ws = self.map(z, truncation_psi, update_w_avg=upd)
        if mixing_prob > 0 and torch.rand(()) < mixing_prob:
            cut = int(torch.randint(1, self.num_ws, ()))
            ws2 = self.map(torch.randn_like(z), truncation_psi)
            ws = torch.cat([ws[:, :cut], ws2[:, cut:]], 1)
        img = self.synthesis(ws, noise_mode=noise_mode)
        return (img, ws) if return_ws else img

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, noise_mode: str = "random") -> torch.Tensor:
        """n unconditional, truncation-free samples (N x 3 x R x R, roughly [-1, 1], unclamped).
        `generator` seeds z; with noise_mode "random" the noise comes from the global RNG."""
        dev = self.w_avg.device
        z = torch.randn(n, self.z_dim, generator=generator, device=generator.device if generator is not None else dev)
        return self.synthesis(self.map(z.to(dev)), noise_mode=noise_mode)


# ---------------------------------------------------------------- discriminator

class DBlock(nn.Module):
    """StyleGAN2 residual D block: conv3x3, conv3x3 down, 1x1 down skip, sum / sqrt(2)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv0 = EqualConv2d(cin, cin, 3)
        self.conv1 = EqualConv2d(cin, cout, 3, down=True)
        self.skip = EqualConv2d(cin, cout, 1, bias=False, act=False, down=True)

    def forward(self, x):
        return (self.skip(x) + self.conv1(self.conv0(x))) / SQRT2


def minibatch_std(x: torch.Tensor, group: int) -> torch.Tensor:
    """Append the std over groups of samples as one extra channel: lets D see the lack of
    variety of a collapsing G.  The group is the largest divisor of N not above `group`."""
    n, c, h, w = x.shape
    g = max(d for d in range(1, min(group, n) + 1) if n % d == 0)
    y = x.float().reshape(g, n // g, c, h, w)
    y = (y.var(0, unbiased=False) + 1e-8).sqrt().mean((1, 2, 3))  # n/g values
    y = y.reshape(1, n // g, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)
    return torch.cat([x, y.to(x.dtype)], 1)


class Discriminator(nn.Module):
    def __init__(self, config: DiscriminatorConfig | None = None):
        super().__init__()
        self.config = cfg = config or DiscriminatorConfig()
        ch = cfg.channels[::-1]  # from full resolution down to 4 px
        self.from_rgb = EqualConv2d(3, ch[0], 1)
        self.blocks = nn.ModuleList([DBlock(a, b) for a, b in zip(ch[:-1], ch[1:])])
        self.conv = EqualConv2d(ch[-1] + 1, ch[-1], 3)
        self.fc = EqualLinear(ch[-1] * 16, ch[-1], act=True)
        self.out = EqualLinear(ch[-1], 1)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """x: N x 3 x R x R -> logit N x 1 (and the per-sample feature maps, full resolution
        down to 4 px, taken before the minibatch-std layer mixes samples: for feature matching)."""
        x = self.from_rgb(x)
        feats = [x]
        for blk in self.blocks:
            x = blk(x)
            feats.append(x)
        x = self.conv(minibatch_std(x, self.config.mbstd_group))
        logit = self.out(self.fc(x.flatten(1)))
        return (logit, feats) if return_features else logit


# ---------------------------------------------------------------- losses

def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logits.float()).mean()


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(fake_logits.float()).mean() + F.softplus(-real_logits.float()).mean()


def r1_penalty(d: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of |dD(real)/dreal|^2.  Differentiable (create_graph) so it can be
    minimised; lazy use: every R1_INTERVAL steps with weight gamma / 2 * R1_INTERVAL."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(real).float().sum(), real, create_graph=True)
    return grad.float().square().sum((1, 2, 3)).mean()


def feature_matching_loss(fake_feats: list, real_feats: list) -> torch.Tensor:
    """Mean L1 between D's features of restored and real faces (stands in for the paper's VGG
    perceptual loss, whose weights we cannot fetch offline).  Real features are targets only."""
    if len(fake_feats) != len(real_feats):
        raise ValueError("feature lists differ in length")
    losses = [F.l1_loss(f.float(), r.detach().float()) for f, r in zip(fake_feats, real_feats)]
    return torch.stack(losses).mean()
