"""DiffBFR as a method: IRM stage 1 (64 px) -> IRM stage 2 (128 px) -> TEM.

IRM: two cascaded *conditional* diffusion models with truncated sampling: each starts from
its input face (stage 1: the LQ face at 64 px; stage 2: the upsampled stage-1 result) noised
to a chosen start step, not from pure noise, which keeps identity. TEM: an *unconditional*
model of clean faces; the IRM result is noised to a small, possibly fractional timestep and
denoised, which polishes texture and keeps identity.

Each stage seeds face k's generator from (seeds[k], stage index), so a stage's output depends
only on its inputs and settings: a cached rerun is bit-identical to a full run, and a face's
result does not depend on the other faces in its batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from ..diffusion.samplers import truncated_sample
from ..diffusion.schedule import T
from ..nets.unet import TINY_OVERRIDES, build
from ..frame import FRAME, HALF_FRAME, resize_square, to_batch, to_images
from ..settings import clamp_value, knob, knob_of, value_range
from .base import INPUT, Method, Model, SimpleControl, Stage


@dataclass(frozen=True)
class DiffBFRSettings:
    # Defaults chosen by bench.quality sweeps (weights/diffbfr/HISTORY.md, "Sweeps that chose the
    # default settings"): stage 2 repaints little (its start 100 beat 200 on PSNR and NIQE) and
    # TEM cleans more (20 beat 5 on both).
    irm_start: float = knob(200.0, 0, 1000, 10, "IRM start step",
                            "Noise put on the low-quality face before stage 1 (64 px). More noise: "
                            "more detail is invented, less identity is kept. 0 skips stage 1: stage 2 "
                            "then starts from your face at 128 px.", advanced=False)
    irm2_start: float = knob(100.0, 0, 1000, 10, "IRM stage-2 start step",
                             "Noise put on the upscaled stage-1 face before stage 2 (128 px) refines it. "
                             "Higher lets stage 2 repaint more.", advanced=False)
    tem_t: float = knob(20.0, 0, 1000, 0.5, "TEM timestep",
                        "How much fine texture TEM repaints (a timestep out of 1000; small values matter). "
                        "0 = off, 2-20 = skin and hair texture, >50 starts changing features.", ui_hi=100,
                        advanced=False)
    # Step counts end where the page's sliders end, for every caller (API, CLI, page): time grows
    # linearly with them (1000 stage-1 steps took 65 s per face through the API) for no visible
    # gain past a few tens. bench.speed builds its 1000-step baselines directly, unvalidated.
    # Stage 1's x0-L1 network is most faithful in few steps (each extra step re-noises it and moves
    # it toward the mean face); 2 is also ~100 ms faster than 10 (HISTORY.md's irm64_steps sweep).
    irm64_steps: int = knob(2, 1, 50, 1, "Sampling steps (stage 1)",
                            "Denoising steps of IRM stage 1: more gives finer texture but a little "
                            "less fidelity, and is slower (time grows linearly).")
    # Averaging stage-1 samples removes what the start noise alone decides: closer to the photo at
    # every level for a little texture, which TEM and the fidelity slider give back; 4 costs ~3
    # stage-1 passes (weights/diffbfr/HISTORY.md, "Session 4's probes").
    irm64_samples: int = knob(4, 1, 8, 1, "Stage-1 samples averaged",
                              "Stage 1 draws this many restorations (different noise) and hands stage 2 "
                              "their mean: closer to the photo, less invented; each costs one more stage-1 pass.")
    irm128_steps: int = knob(4, 1, 50, 1, "Sampling steps (stage 2)",
                             "Denoising steps of IRM stage 2 (128 px).")
    tem_steps: int = knob(2, 1, 20, 1, "Sampling steps (TEM)",
                          "Denoising steps of TEM; 1-2 suffice for small timesteps.")
    seed: int = knob(0, 0, 2**31 - 1, 1, "Seed",
                     "Picks the random noise. Same seed and settings give the same result; change it "
                     "to see another plausible restoration.", ui_hi=9999, advanced=False)
    eta: float = knob(0.0, 0, 1, 0.05, "Sampling randomness (eta)",
                      "IRM's sampler: 0 = deterministic DDIM; 1 = fresh noise at every step (ancestral-like).")
    # TEM alone samples with fresh noise: a deterministic few-step DDIM pass of an MSE-trained
    # model lands on the mean face of its noise level, which is the smooth face TEM must not return.
    tem_eta: float = knob(0.0, 0, 1, 0.05, "TEM randomness (eta)",
                          "TEM's sampler: 1 = fresh noise at every step, which lets TEM add texture "
                          "instead of returning to an average; 0 = deterministic.")


NETWORKS = ("irm64", "irm128", "tem128")


def denoiser(model: Model, net: str, cond: torch.Tensor | None = None) -> Callable:
    """The network as a sampler's model(x, t) -> v, with its condition bound."""
    module = model.nets[net]

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.autocast(model.device.type, dtype=torch.float16, enabled=model.autocast):
            return module(x, t, cond).float()
    return fn


def generators(model: Model, seeds: Sequence[int], stage: int, copy: int = 0) -> list[torch.Generator]:
    """Face k's generator for a stage; copy j > 0 (stage 1's extra samples) gets its own stream
    (torch seeds a CPU generator with 32 bits, so the offset stays small)."""
    return [torch.Generator(model.device).manual_seed(int(seed) * 3 + stage + copy * 1_000_003) for seed in seeds]


def run_irm64(model: Model, inputs: dict, s: DiffBFRSettings, seeds, callback=None) -> list[np.ndarray]:
    """Stage 1: truncated sampling at 64 px from the noised LQ, conditioned on the LQ; with
    irm64_samples > 1, the mean of that many samples (one batch), the estimate of the clean face
    that the noise does not decide."""
    n = max(int(s.irm64_samples), 1)
    lq64 = to_batch([resize_square(im, HALF_FRAME, cv2.INTER_AREA) for im in inputs[INPUT]], model.device)
    lqs = lq64.repeat(n, 1, 1, 1)
    gens = [g for copy in range(n) for g in generators(model, seeds, 0, copy)]
    out = truncated_sample(denoiser(model, "irm64", lqs), lqs, s.irm_start, s.irm64_steps, s.eta, gens, callback)
    return to_images(out.view(n, *lq64.shape).mean(0))


def run_irm128(model: Model, inputs: dict, s: DiffBFRSettings, seeds, callback=None) -> list[np.ndarray]:
    """Stage 2: truncated sampling at 128 px from the noised, upsampled stage-1 result,
    conditioned on it and on the LQ face. With stage 1 skipped (irm_start 0) it starts from the
    LQ face itself: a 64 px round trip would throw away the detail a light face still has."""
    lq = to_batch(inputs[INPUT], model.device)
    up = lq if s.irm_start <= 0 else to_batch(
        [resize_square(im, FRAME, cv2.INTER_CUBIC) for im in inputs["irm64"]], model.device)
    cond = torch.cat([up, lq], dim=1)
    out = truncated_sample(denoiser(model, "irm128", cond), up, s.irm2_start, s.irm128_steps, s.eta,
                           generators(model, seeds, 1), callback)
    return to_images(out)


def run_tem(model: Model, inputs: dict, s: DiffBFRSettings, seeds, callback=None) -> list[np.ndarray]:
    """TEM: noise the IRM result to a small timestep and denoise with the clean-faces model."""
    x = to_batch(inputs["irm128"], model.device)
    out = truncated_sample(denoiser(model, "tem128"), x, s.tem_t, s.tem_steps, s.tem_eta,
                           generators(model, seeds, 2), callback)
    return to_images(out)


def tiny_networks(seed: int) -> dict:
    torch.manual_seed(seed)
    nets = {n: build(n, **TINY_OVERRIDES) for n in NETWORKS}
    for net in nets.values():  # zero-initialised outputs would make every stage the identity
        torch.nn.init.normal_(net.out_conv.weight, std=0.02)
    return nets


# Where the fidelity <-> detail slider's right end puts each setting (further capped by the range
# the loaded network was trained on). Past the defaults the trade is TEM's: with the x0-L1 IRM
# networks more IRM noise only blurs, while TEM (v-loss, unconditional) at larger timesteps with
# more steps invents texture (weights/diffbfr/README.md, "Fidelity ↔ detail": the sweeps).
# Stage 1's averaging goes the other way: fewer samples, more of what the noise invents.
DETAIL_END = {"irm_start": 400.0, "irm2_start": 200.0, "tem_t": 100.0, "tem_steps": 10, "irm64_samples": 1}


def fidelity_to_detail(position: float, limits: dict | None = None) -> dict:
    """0 = keep the input (no noise, no texture pass), 25 = the defaults, 100 = invent the most:
    start steps linear from 0 to the default, then linear to DETAIL_END, each stopping where its
    network's training stopped (`limits`: Model.knob_limits()); counts (steps, stage-1 samples)
    keep their default up to 25, then move to DETAIL_END (more texture). Along this line PSNR
    falls and NIQE improves (the card's plot)."""
    d = min(max(float(position), 0.0), 100.0) / 100.0
    out = {}
    for name, end in DETAIL_END.items():
        k = knob_of(DiffBFRSettings, name)
        end = min(end, value_range(k, limits)[1])
        if d > 0.25:
            v = k.default + (end - k.default) * (d - 0.25) / 0.75
        else:
            v = k.default if k.kind is int else k.default * d / 0.25
        out[name] = clamp_value(k, round(v, 1), limits)
    return out


_SAMPLING = ("seed", "eta")
# One face's network evaluation on the 2-core CPU, in seconds (README's speed table, bench.speed
# --repeats 5: IRM 64 27 ms for 2 steps of one sample, 60 ms of 4; IRM 128 68 ms for 4 steps; TEM,
# the shuffle net, 46 ms for 2): what the app's budget of work per request adds
# up (diffbfr/work_budget.py).
IRM64_CALL_S, IRM64_SAMPLE_S, IRM128_EVAL_S, TEM_EVAL_S = 0.008, 0.0055, 0.017, 0.023
DIFFBFR = Method(
    name="diffbfr",
    title="DiffBFR",
    settings=DiffBFRSettings,
    stages=(
        Stage("irm64", "IRM 64", (INPUT,), ("irm_start", "irm64_steps", "irm64_samples") + _SAMPLING, run_irm64,
              lambda s: s.irm64_steps if s.irm_start > 0 else 0,  # steps (calls): the samples share each call
              "conditional diffusion at 64 px from the noised LQ face",
              eval_s=lambda s: IRM64_CALL_S + IRM64_SAMPLE_S * s.irm64_samples,
              counts=("irm64_steps", "irm64_samples")),
        Stage("irm128", "IRM 128", (INPUT, "irm64"), ("irm_start", "irm2_start", "irm128_steps") + _SAMPLING,
              run_irm128,
              lambda s: s.irm128_steps if s.irm2_start > 0 else 0,
              "conditional diffusion at 128 px from the noised, upsampled stage-1 face",
              eval_s=lambda s: IRM128_EVAL_S, counts=("irm128_steps",)),
        Stage("tem", "TEM", ("irm128",), ("tem_t", "tem_steps", "tem_eta") + _SAMPLING, run_tem,
              lambda s: s.tem_steps if s.tem_t > 0 else 0,
              "unconditional clean-face model from a small timestep: texture",
              eval_s=lambda s: TEM_EVAL_S, counts=("tem_steps",)),
    ),
    networks=NETWORKS,
    tiny_networks=tiny_networks,
    seed="seed",
    # the uncertainty map: IRM's sampler with fresh noise at every step, and single stage-1 draws
    # (the 4-sample mean left a spread of ~1 grey level instead of 2-5)
    uncertainty_settings={"eta": 1.0, "irm64_samples": 1},
    auto_words=("start steps", "a start step"),
    drift_hint="try a lower IRM start step",
    description="Two cascaded conditional diffusion models (IRM, 64 then 128 px) with truncated "
                "sampling from the noised low-quality face, then an unconditional clean-face model "
                "(TEM) that repaints fine texture from a small timestep.",
    simple=SimpleControl("Fidelity ↔ detail",
                         "Left: stay close to the photo (little noise, little invented). Right: let the "
                         "model invent more fine texture (slower), at the risk of changing the face.",
                         25, fidelity_to_detail),
    # bench.speed: the same networks sampled from pure noise, for the truncation speed-up
    timestep_networks={"irm_start": "irm64", "irm2_start": "irm128", "tem_t": "tem128"},
    speed_baselines={
        "ddim-from-T": dict(irm_start=T, irm2_start=T),
        "ancestral-1000": dict(irm_start=T, irm2_start=T, irm64_steps=1000, irm128_steps=1000, eta=1.0),
    },
)
