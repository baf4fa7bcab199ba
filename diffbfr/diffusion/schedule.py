"""The diffusion process itself: noise schedule, forward noising, v-prediction algebra.

Kept apart from the networks and the samplers: everything here is a function of images,
times and noise. Networks predict the "velocity"  v = sqrt(a) * eps - sqrt(1 - a) * x0,
a = alpha_bar(t); v-prediction keeps both x0 and eps well conditioned at every t, which
matters for truncated sampling from small (even fractional) timesteps.

Time is continuous: t in [0, T] with T = 1000, so a TEM timestep of 37.5 is exact.
alpha_bar(0) = 1 (no noise: starting at t = 0 returns the input) and alpha_bar(T) = 0
(pure noise: starting at t = T is ordinary sampling).
"""
from __future__ import annotations

import math

import torch

T = 1000.0
_COSINE_OFFSET = 0.008  # Nichol & Dhariwal's s: keeps the noise level at small t from being too tiny


def alpha_bar(t: torch.Tensor | float) -> torch.Tensor:
    """Cosine schedule over continuous t: the fraction of signal variance left at time t."""
    t = torch.as_tensor(t, dtype=torch.float64)
    s = _COSINE_OFFSET
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    return (f / f0).clamp(0.0, 1.0)


def coefs(t: torch.Tensor | float, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sqrt(alpha_bar), sqrt(1 - alpha_bar), shaped to broadcast against `like` (N, C, H, W)."""
    a = alpha_bar(t)
    sa, sb = a.sqrt(), (1 - a).sqrt()
    if sa.ndim == 1:
        sa, sb = sa.view(-1, 1, 1, 1), sb.view(-1, 1, 1, 1)
    return sa.to(like.dtype).to(like.device), sb.to(like.dtype).to(like.device)


def q_sample(x0: torch.Tensor, t: torch.Tensor | float, noise: torch.Tensor) -> torch.Tensor:
    """Forward process: x_t = sqrt(a) x0 + sqrt(1 - a) eps."""
    sa, sb = coefs(t, x0)
    return sa * x0 + sb * noise


def v_target(x0: torch.Tensor, t: torch.Tensor | float, noise: torch.Tensor) -> torch.Tensor:
    """The training target of a v-prediction network."""
    sa, sb = coefs(t, x0)
    return sa * noise - sb * x0


def split_v(x_t: torch.Tensor, t: float, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, eps) implied by a v prediction at time t."""
    sa, sb = coefs(t, x_t)
    return sa * x_t - sb * v, sb * x_t + sa * v
