"""The diffusion process: noise schedule, forward noising and reverse (DDIM) steps.

Kept apart from the networks: everything here works with any `model_fn(x, t) -> v`,
where v is the "velocity" target  v = sqrt(a) * eps - sqrt(1 - a) * x0  and
a = alpha_bar(t).  v-prediction keeps both x0 and eps well conditioned at every t,
which matters for truncated sampling from small (even fractional) timesteps.

Time is continuous: t in [0, T] with T = 1000, so a TEM timestep of 37.5 is exact.
alpha_bar(0) = 1 (no noise, t_start = 0 returns the input) and alpha_bar(T) = 0
(pure noise, t_start = T is ordinary sampling).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

T = 1000.0
_COSINE_OFFSET = 0.008  # Nichol & Dhariwal's s: keeps the noise level at small t from being too tiny

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def alpha_bar(t: torch.Tensor | float) -> torch.Tensor:
    """Cosine schedule over continuous t: the fraction of signal variance left at time t."""
    t = torch.as_tensor(t, dtype=torch.float64)
    s = _COSINE_OFFSET
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    return (f / f0).clamp(0.0, 1.0)


def _coefs(t: torch.Tensor | float, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sqrt(alpha_bar), sqrt(1 - alpha_bar), shaped to broadcast against `like` (N, C, H, W)."""
    a = alpha_bar(t)
    sa, sb = a.sqrt(), (1 - a).sqrt()
    if sa.ndim == 1:
        sa, sb = sa.view(-1, 1, 1, 1), sb.view(-1, 1, 1, 1)
    return sa.to(like.dtype).to(like.device), sb.to(like.dtype).to(like.device)


def q_sample(x0: torch.Tensor, t: torch.Tensor | float, noise: torch.Tensor) -> torch.Tensor:
    """Forward process: x_t = sqrt(a) x0 + sqrt(1 - a) eps."""
    sa, sb = _coefs(t, x0)
    return sa * x0 + sb * noise


def v_target(x0: torch.Tensor, t: torch.Tensor | float, noise: torch.Tensor) -> torch.Tensor:
    """The training target for a v-prediction network."""
    sa, sb = _coefs(t, x0)
    return sa * noise - sb * x0


def split_v(x_t: torch.Tensor, t: float, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, eps) implied by a v prediction at time t."""
    sa, sb = _coefs(t, x_t)
    return sa * x_t - sb * v, sb * x_t + sa * v


def ddim_step(
    x_t: torch.Tensor,
    t: float,
    s: float,
    v: torch.Tensor,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip: bool = True,
) -> torch.Tensor:
    """One reverse step from time t down to time s < t (DDIM; eta = 1 is ancestral-like)."""
    x0, eps = split_v(x_t, t, v)
    if clip:  # images live in [-1, 1]; clipping x0 keeps few-step sampling from drifting
        x0 = x0.clamp(-1, 1)
        sa_t, sb_t = _coefs(t, x_t)
        if float(sb_t.max()) > 0:
            eps = (x_t - sa_t * x0) / sb_t
    a_t, a_s = float(alpha_bar(t)), float(alpha_bar(s))
    if s <= 0:
        return x0
    sigma = 0.0
    if eta > 0 and a_t < 1:
        sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))
    dir_coef = math.sqrt(max(1 - a_s - sigma**2, 0.0))
    x_s = math.sqrt(a_s) * x0 + dir_coef * eps
    if sigma > 0:
        z = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        x_s = x_s + sigma * z
    return x_s


def ddim_timesteps(t_start: float, steps: int) -> list[float]:
    """Evenly spaced descending times t_start = t_0 > t_1 > ... > t_steps = 0."""
    steps = max(int(steps), 1)
    return [t_start * (1 - i / steps) for i in range(steps + 1)]


def sample_ddim(
    model_fn: ModelFn,
    x: torch.Tensor,
    timesteps: Sequence[float],
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Denoise x (at time timesteps[0]) along the given descending times down to timesteps[-1]."""
    for t, s in zip(timesteps[:-1], timesteps[1:]):
        tt = torch.full((x.shape[0],), float(t), device=x.device, dtype=torch.float32)
        x = ddim_step(x, t, s, model_fn(x, tt), eta=eta, generator=generator)
    return x


def truncated_sample(
    model_fn: ModelFn,
    init: torch.Tensor,
    t_start: float,
    steps: int,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DiffBFR's truncated sampling: noise `init` to t_start, then denoise to t = 0.

    Starting from the (noised) LQ face rather than pure noise keeps its identity; the start
    step chooses how much the model may invent.  t_start = 0 returns `init` unchanged.
    """
    t_start = float(min(max(t_start, 0.0), T))
    if t_start <= 0:
        return init.clone()
    noise = torch.randn(init.shape, generator=generator, device=init.device, dtype=init.dtype)
    x = q_sample(init, t_start, noise)
    return sample_ddim(model_fn, x, ddim_timesteps(t_start, steps), eta=eta, generator=generator)
