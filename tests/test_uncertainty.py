"""Uncertainty maps (diffbfr/uncertainty.py) with random tiny DiffBFR networks: zero for
identical samples, positive with eta > 0, K copies in one network call per step, the images,
and bench.uncertainty_vs_error in --quick mode."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench import uncertainty_vs_error as BU
from diffbfr import methods
from diffbfr.methods import DiffBFRSettings
from diffbfr.photo import restore_faces
from diffbfr.uncertainty import K, first_sampling_stage, from_samples, heat_map, stochastic, uncertainties

ROOT = Path(__file__).resolve().parent.parent
FACE = np.asarray(Image.open(ROOT / "examples" / "astronaut_face_aligned.png").convert("RGB").resize((128, 128)))
FAST = DiffBFRSettings(irm64_steps=3, irm128_steps=2, tem_steps=1)


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(2)
    return methods.tiny("diffbfr")


def test_identical_samples_give_zero_uncertainty(model):
    same = restore_faces(model, [FACE] * K, replace(FAST, eta=0.0), seeds=[7] * K)
    u = from_samples([st.result for st in same])
    assert u.deterministic and u.score == 0.0 and not u.std.any()
    assert "deterministic" in u.words


def test_eta_gives_positive_uncertainty_and_images(model):
    (u,) = uncertainties(model, [FACE], stochastic(model.method, FAST))
    assert len(u.samples) == K and not u.deterministic and u.score > 0
    assert u.std.shape == (128, 128) and u.std.dtype == np.float32 and (u.std >= 0).all()
    for img in (u.heat, u.overlay):
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    # the colour map is monotone in brightness: more disagreement, brighter heat
    ramp = heat_map(np.tile(np.linspace(0, 30, 128, dtype=np.float32), (4, 1))).astype(float).sum(2)[0]
    assert ramp[-1] > ramp[len(ramp) // 2] > ramp[0]


def test_skipped_stages_are_deterministic(model):
    off = stochastic(model.method, DiffBFRSettings(irm_start=0, irm2_start=0, tem_t=0))
    assert off.eta == 1.0
    # single draws: the stage-1 mean would hide the disagreement the map measures
    assert DiffBFRSettings().irm64_samples > 1 and stochastic(model.method, DiffBFRSettings()).irm64_samples == 1
    u = uncertainties(model, [FACE], off)[0]
    assert u.deterministic and u.score == 0.0


def test_k_samples_use_one_network_call_per_step(model):
    calls = {"stage": 0, "net": 0}
    original = model.run_stage

    def counted(*args, **kwargs):
        calls["stage"] += 1
        return original(*args, **kwargs)

    hooks = [net.register_forward_pre_hook(lambda *_: calls.__setitem__("net", calls["net"] + 1))
             for net in model.nets.values()]
    model.run_stage = counted
    try:
        assert K <= model.max_batch
        uncertainties(model, [FACE], stochastic(model.method, FAST), K)
    finally:
        del model.run_stage
        for h in hooks:
            h.remove()
    assert calls["stage"] == len(model.method.stages)           # one batch per stage, not K
    assert calls["net"] == sum(model.method.nfe(FAST).values())  # one forward per step for all K


def test_k_copies_run_the_first_sampling_stage_and_the_result_is_a_plain_restore(model):
    s = stochastic(model.method, FAST)
    assert first_sampling_stage(model.method, s) == "irm64"
    skip1 = replace(s, irm_start=0)   # Auto's choice for light faces: stage 1 skipped
    assert first_sampling_stage(model.method, skip1) == "irm128"
    assert first_sampling_stage(model.method, replace(skip1, irm2_start=0, tem_t=0)) == "tem"
    batches = []
    original = model.run_stage

    def sized(name, inputs, *args, **kwargs):
        batches.append((name, len(next(iter(inputs.values())))))
        return original(name, inputs, *args, **kwargs)
    model.run_stage = sized
    try:
        u, v = uncertainties(model, [FACE, FACE], [s, skip1], K, seeds=[3, 9])
    finally:
        del model.run_stage
    # face 1: K copies through IRM 64; face 2: K copies through IRM 128; then each face once
    assert ("irm64", K) in batches and ("irm128", K) in batches and ("tem", 2) in batches
    assert u.stage == "IRM 64" and v.stage == "IRM 128" and len(u.samples) == K
    assert u.samples[0].shape[0] == 64 and u.std.shape == (128, 128)
    plain = restore_faces(model, [FACE], s, seeds=[3])[0].result
    assert np.array_equal(u.result, plain)   # the map is drawn over what a restore gives
    batches.clear()
    model.run_stage = sized
    try:
        (w,) = uncertainties(model, [FACE], s, K, seeds=[3], over=[FACE])
    finally:
        del model.run_stage
    assert batches == [("irm64", K)] and np.array_equal(w.result, FACE) and np.array_equal(w.std, u.std)


def test_bench_uncertainty_quick(capsys):
    assert BU.main(["--quick", "--faces", "1", "--repeats", "1", "--irm64-steps", "2", "--irm128-steps", "1",
                    "--tem-steps", "1"]) == 0
    text = capsys.readouterr().out
    assert "ρ pooled" in text and "K = 4 samples in one batch" in text and "first sampling stage" in text
