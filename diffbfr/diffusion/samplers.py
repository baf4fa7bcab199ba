"""Samplers: small pure functions of (model, x, timesteps, ..., callback).

`model(x, t) -> v` is any v-prediction function (diffusion/schedule.py). Randomness comes
from `generators`: one torch.Generator, or one per batch item, so that a face's result
does not depend on which other faces share its batch. `callback`, when given, is called
after every step with {"x", "i", "t", "denoised"} (k-diffusion's convention): progress
bars and per-step views hook in there instead of writing new loops.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .schedule import T, alpha_bar, coefs, q_sample, split_v

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[dict], None]
Generators = torch.Generator | Sequence[torch.Generator] | None


def randn(shape: Sequence[int], like: torch.Tensor, generators: Generators) -> torch.Tensor:
    """Standard normal noise of `shape`; with a list of generators, item k uses generators[k]."""
    if generators is None or isinstance(generators, torch.Generator):
        return torch.randn(tuple(shape), generator=generators, device=like.device, dtype=like.dtype)
    if len(generators) != shape[0]:
        raise ValueError(f"{len(generators)} generators for a batch of {shape[0]}")
    return torch.cat([torch.randn((1, *shape[1:]), generator=g, device=like.device, dtype=like.dtype)
                      for g in generators])


def ddim_step(x_t: torch.Tensor, t: float, s: float, v: torch.Tensor, eta: float = 0.0,
              generators: Generators = None, clip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One reverse step from time t down to time s < t (DDIM; eta = 1 is ancestral-like).
    Returns (x_s, the denoised estimate x0)."""
    x0, eps = split_v(x_t, t, v)
    if clip:  # images live in [-1, 1]; clipping x0 keeps few-step sampling from drifting
        x0 = x0.clamp(-1, 1)
        sa_t, sb_t = coefs(t, x_t)
        if float(sb_t.max()) > 0:
            eps = (x_t - sa_t * x0) / sb_t
    a_t, a_s = float(alpha_bar(t)), float(alpha_bar(s))
    if s <= 0:
        return x0, x0
    sigma = 0.0
    if eta > 0 and a_t < 1:
        sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))
    dir_coef = math.sqrt(max(1 - a_s - sigma**2, 0.0))
    x_s = math.sqrt(a_s) * x0 + dir_coef * eps
    if sigma > 0:
        x_s = x_s + sigma * randn(x_t.shape, x_t, generators)
    return x_s, x0


def ddim_timesteps(t_start: float, steps: int) -> list[float]:
    """Evenly spaced descending times t_start = t_0 > t_1 > ... > t_steps = 0."""
    steps = max(int(steps), 1)
    return [t_start * (1 - i / steps) for i in range(steps + 1)]


def sample_ddim(model: ModelFn, x: torch.Tensor, timesteps: Sequence[float], eta: float = 0.0,
                generators: Generators = None, callback: Callback | None = None) -> torch.Tensor:
    """Denoise x (at time timesteps[0]) along the given descending times down to timesteps[-1]."""
    for i, (t, s) in enumerate(zip(timesteps[:-1], timesteps[1:])):
        tt = torch.full((x.shape[0],), float(t), device=x.device, dtype=torch.float32)
        x, x0 = ddim_step(x, t, s, model(x, tt), eta=eta, generators=generators)
        if callback is not None:
            callback({"x": x, "i": i, "t": float(t), "denoised": x0})
    return x


def truncated_sample(model: ModelFn, init: torch.Tensor, t_start: float, steps: int, eta: float = 0.0,
                     generators: Generators = None, callback: Callback | None = None) -> torch.Tensor:
    """DiffBFR's truncated sampling: noise `init` to t_start, then denoise to t = 0.

    Starting from the (noised) LQ face rather than pure noise keeps its identity; the start
    step chooses how much the model may invent. t_start = 0 returns `init` unchanged.
    """
    t_start = float(min(max(t_start, 0.0), T))
    if t_start <= 0:
        return init.clone()
    x = q_sample(init, t_start, randn(init.shape, init, generators))
    return sample_ddim(model, x, ddim_timesteps(t_start, steps), eta=eta, generators=generators,
                       callback=callback)
