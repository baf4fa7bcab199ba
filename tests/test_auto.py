"""Automatic truncation (diffbfr/auto.py, diffbfr/nets/estimator.py, diffbfr/train/auto_calibration.py, bench/auto_vs_fixed.py): the estimator's outputs and words,
severity -> settings (deterministic, clamped, rounded), the calibration file, the monotone fit,
and the bench commands in --quick mode."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from bench import auto_vs_fixed as B
from diffbfr.train import auto_calibration as K
from diffbfr import settings as S
from diffbfr.auto import (CALIBRATION_FILE, ESTIMATOR_FILE, FACTORS, Auto, AutoFace, Calibration, Estimate,
                          Estimator, EstimatorConfig, EstimatorNet, auto_settings, describe, file_sha256)
from diffbfr.checkpoint import save_network
from diffbfr.faces.align import find_faces
from diffbfr.methods import DiffBFRSettings
from diffbfr.nets.panini_dre import DRE, TINY
from diffbfr.train.__main__ import main as train_cli
from diffbfr.train.degrade import fixed_degrade

ROOT = Path(__file__).resolve().parent.parent
FACE = np.asarray(Image.open(ROOT / "examples" / "astronaut_face_aligned.png").convert("RGB").resize((128, 128)))
SHIPPED = ROOT / "weights" / "estimator" / ESTIMATOR_FILE
SHIPPED_CAL = ROOT / "weights" / "diffbfr" / CALIBRATION_FILE
CAL = Calibration("diffbfr", (0.2, 0.5, 0.8), {"irm_start": (0.0, 100.0, 400.0), "irm2_start": (50.0, 50.0, 250.0),
                                               "tem_t": (2.0, 5.0, 7.3)})


@pytest.fixture(scope="module", autouse=True)
def threads():
    torch.set_num_threads(2)


def extreme_faces():
    rng = np.random.default_rng(0)
    return [np.zeros((128, 128, 3), np.uint8), np.full((128, 128, 3), 255, np.uint8),
            rng.integers(0, 256, (128, 128, 3), dtype=np.uint8), FACE, FACE[::2, ::2]]   # last: 64 px


def test_estimator_outputs_are_finite_and_in_range():
    est = Estimator.tiny()
    pred = est.predict(extreme_faces())
    assert pred.shape == (5, len(FACTORS)) and np.isfinite(pred).all()
    for i, f in enumerate(FACTORS):
        assert (pred[:, i] >= f.lo).all() and (pred[:, i] <= f.hi).all(), f.name
    for e in est.estimate(extreme_faces()):
        assert 1 <= e.scale <= 16 and 20 <= e.jpeg_quality <= 100 and 0 <= e.severity <= 1
    assert est.predict([]).shape == (0, len(FACTORS))
    with pytest.raises(ValueError):
        est.predict([FACE[:, :100]])   # not square: not an aligned face


def test_words_for_extreme_estimates():
    worst = describe(Estimate(scale=16, blur=3, noise=20, jpeg_quality=20, severity=1.0))
    best = describe(Estimate(scale=1, blur=0, noise=0, jpeg_quality=100, severity=0.0))
    assert worst.startswith("severe") and "16× downscaled" in worst and "strong JPEG" in worst
    assert "strong noise" in worst and "strong blur" in worst
    assert best.startswith("light") and "full resolution" in best and "no visible JPEG" in best
    assert "little noise" in best and "little extra blur" in best
    assert "about 6× downscaled" in describe(Estimate(6.2, 0.5, 1, 40, 0.6))


@pytest.mark.skipif(not SHIPPED.is_file(), reason="no shipped estimator")
def test_shipped_estimator_is_small_and_orders_levels():
    assert SHIPPED.stat().st_size <= 2 * 2**20
    # a sharp face (examples/astronaut_face_aligned.png is already degraded "medium")
    sharp = find_faces(np.asarray(Image.open(ROOT / "examples" / "astronaut.jpg").convert("RGB")))[0][0].image
    est = Estimator.load(SHIPPED.parent)
    clean, light, heavy = est.estimate([sharp, fixed_degrade(sharp, "light", 0), fixed_degrade(sharp, "heavy", 0)])
    assert clean.severity < light.severity < heavy.severity - 0.2
    assert clean.scale < light.scale < heavy.scale and heavy.scale > 6


def test_auto_settings_deterministic_rounded_and_clamped():
    base = DiffBFRSettings(irm64_steps=3, seed=11, eta=0.5)
    est = Estimator.tiny()
    a, b = (auto_settings(base, e, CAL) for e in (est.estimate([FACE])[0], est.estimate([FACE.copy()])[0]))
    assert a == b
    assert (a.irm64_steps, a.seed, a.eta) == (3, 11, 0.5)          # fields not calibrated are kept
    s = auto_settings(base, 0.8, CAL)
    assert (s.irm_start, s.irm2_start, s.tem_t) == (400.0, 250.0, 7.5)   # 7.3 -> slider step 0.5
    wild = Calibration("diffbfr", (0.1, 0.9), {"irm_start": (-300.0, 5000.0), "tem_t": (-1.0, 1e6)})
    for sev in (0.0, 0.5, 1.0):
        s = auto_settings(base, sev, wild)
        for name in ("irm_start", "tem_t"):
            k = S.knob_of(DiffBFRSettings, name)
            assert k.lo <= getattr(s, name) <= k.hi
    assert auto_settings(base, 1.0, wild).irm_start == 1000.0


def test_auto_helper_gives_settings_and_words_per_face():
    out = Auto(Estimator.tiny(), CAL).faces([FACE, FACE[:, ::-1].copy()], DiffBFRSettings())
    assert len(out) == 2 and all(isinstance(x, AutoFace) for x in out)
    assert all(isinstance(x.settings, DiffBFRSettings) and "severity" in x.words for x in out)
    assert out[0].settings == auto_settings(DiffBFRSettings(), out[0].estimate, CAL)


def test_calibration_round_trip_and_monotone_interpolation(tmp_path):
    path = CAL.save(tmp_path / CALIBRATION_FILE)
    back = Calibration.load(path)
    assert back == CAL and json.loads(path.read_text())["method"] == "diffbfr"
    assert back.at(0.35) == pytest.approx({"irm_start": 50.0, "irm2_start": 50.0, "tem_t": 3.5})
    assert back.at(0.0) == back.at(0.2) and back.at(1.0) == back.at(0.8)   # flat beyond the ends
    grid = [back.at(s) for s in np.linspace(0, 1, 101)]
    for name in back.fields:
        assert all(x[name] <= y[name] for x, y in zip(grid, grid[1:])), name
    with pytest.raises(ValueError):
        Calibration("diffbfr", (0.2, 0.5), {"irm_start": (300.0, 100.0)})      # decreasing
    with pytest.raises(ValueError):
        Calibration("diffbfr", (0.5, 0.5), {"irm_start": (100.0, 300.0)})      # breakpoints not increasing


@pytest.mark.skipif(not SHIPPED_CAL.is_file(), reason="no shipped calibration")
def test_shipped_calibration_is_valid():
    cal = Calibration.load(SHIPPED_CAL)
    assert cal.method == "diffbfr" and set(cal.fields) == set(K.FIELDS)
    assert auto_settings(DiffBFRSettings(), 0.0, cal).irm_start <= auto_settings(DiffBFRSettings(), 1.0, cal).irm_start


def test_monotone_path_is_the_best_monotone_choice():
    grid = list(itertools.product((0, 1, 2), (0, 1)))
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.normal(size=(3, len(grid)))
        path = K.monotone_path(scores, grid)
        ok = [p for p in itertools.product(range(len(grid)), repeat=3)
              if all(all(x <= y for x, y in zip(grid[p[i]], grid[p[i + 1]])) for i in range(2))]
        best = max(sum(scores[b, g] for b, g in enumerate(p)) for p in ok)
        assert tuple(path) in ok and sum(scores[b, g] for b, g in enumerate(path)) == pytest.approx(best)
    scores = np.full((3, len(grid)), -1.0)
    for b, g in enumerate((0, 3, 5)):     # per-bucket best already monotone: taken as is
        scores[b, g] = 1.0
    assert K.monotone_path(scores, grid) == [0, 3, 5]


def test_do_no_harm_keeps_light_buckets_near_bicubic():
    # 4 faces in 2 buckets, 3 settings: setting 0 restores nothing (bicubic), 1 trades 1 dB for
    # texture, 2 helps the heavy bucket only
    psnrs = np.array([[34.0, 33.0, 33.5], [34.2, 33.2, 33.7], [25.0, 24.5, 26.0], [25.2, 24.7, 26.2]])
    bicubic = np.array([34.0, 34.2, 25.0, 25.2])
    groups = [np.array([0, 1]), np.array([2, 3])]
    allowed = K.do_no_harm(psnrs, bicubic, groups, 0.3)
    assert allowed.tolist() == [[True, False, False], [True, False, True]]
    worse = psnrs - 2.0   # nothing within 0.3 dB: the bucket's highest-PSNR setting alone
    assert K.do_no_harm(worse, bicubic, groups, 0.3).tolist() == [[True, False, False], [False, False, True]]
    assert K.do_no_harm(psnrs, bicubic, groups, float("inf")).all()


def test_bench_commands_quick(tmp_path, capsys):
    out = tmp_path / CALIBRATION_FILE
    fast = ["--irm64-steps", "2", "--irm128-steps", "1", "--tem-steps", "1"]
    assert train_cli(["auto-calibration", "--quick", "--faces", "3", "--out", str(out), *fast]) == 0
    cal = Calibration.load(out)
    assert set(cal.fields) == set(K.FIELDS) and len(cal.meta["faces"]) == 3
    assert B.main(["--quick", "--faces", "2", "--acc-faces", "3", "--calibration", str(out), *fast]) == 0
    text = capsys.readouterr().out
    assert "auto beats every fixed irm_start" in text and "Spearman" in text


def test_dre_backbone_stores_the_head_only_and_pins_the_dre(tmp_path):
    dre_path = save_network(DRE(TINY).eval(), tmp_path / "panini" / "dre.safetensors")
    net = EstimatorNet(EstimatorConfig(backbone="dre", feature_dim=TINY.out_dim, hidden=8,
                                       dre_sha256=file_sha256(dre_path)), DRE(TINY))
    save_network(net, tmp_path / "estimator" / ESTIMATOR_FILE)
    assert set(load_file(str(tmp_path / "estimator" / ESTIMATOR_FILE))) == set(net.head.state_dict())
    pred = Estimator.load(tmp_path / "estimator").predict([FACE])
    assert pred.shape == (1, len(FACTORS)) and np.isfinite(pred).all()
    save_network(DRE(TINY).eval(), dre_path)      # a retrained DRE: the head no longer fits it
    with pytest.raises(ValueError, match="sha256"):
        Estimator.load(tmp_path / "estimator")


@pytest.mark.skipif(not (SHIPPED.is_file() and SHIPPED_CAL.is_file()), reason="no shipped estimator/calibration")
def test_auto_load_refuses_a_calibration_of_another_estimator(tmp_path):
    (tmp_path / "estimator").mkdir()
    (tmp_path / "diffbfr").mkdir()
    for src, dst in ((SHIPPED, tmp_path / "estimator" / ESTIMATOR_FILE),
                     (SHIPPED.with_suffix(".json"), tmp_path / "estimator" / "estimator.json"),
                     (SHIPPED_CAL, tmp_path / "diffbfr" / CALIBRATION_FILE)):
        dst.write_bytes(src.read_bytes())
    assert Auto.load(tmp_path, "diffbfr").calibration == Calibration.load(SHIPPED_CAL)
    cal = Calibration.load(SHIPPED_CAL)
    Calibration(cal.method, cal.severity, cal.values, {**cal.meta, "estimator_sha256": "0" * 64}).save(
        tmp_path / "diffbfr" / CALIBRATION_FILE)
    with pytest.raises(ValueError, match="another estimator"):
        Auto.load(tmp_path, "diffbfr")


@pytest.mark.parametrize("backbone", ["cnn", "dre"])
def test_estimator_trainer_runs_on_the_loop_and_exports_what_auto_loads(backbone, tmp_path, monkeypatch):
    from diffbfr.train import estimator_trainer as ET
    faces = [np.ascontiguousarray(np.roll(FACE, 5 * k, axis=1)) for k in range(8)]
    monkeypatch.setattr(ET, "load_faces", lambda n, val: (faces[:6], faces[6:]))   # no dataset needed
    dre = save_network(DRE(TINY).eval(), tmp_path / "panini" / "dre.safetensors")
    argv = ["--backbone", backbone, "--dre", str(dre), "--batch", "4", "--threads", "2", "--run-dir",
            str(tmp_path / "run"), "--export", str(tmp_path / "estimator")]
    meta = ET.main(argv + (["--max-steps", "3", "--log-every", "2"] if backbone == "cnn" else
                           ["--samples", "8", "--epochs", "2"]))   # dre: 2 epochs of 2 batches, a line each
    assert meta["steps"] == (3 if backbone == "cnn" else 4) and meta["train"]["loss"] > 0
    assert [v["step"] for v in meta["val_history"]] == ([3] if backbone == "cnn" else [2, 4])
    assert all(meta[f"val_mae_{f.name}"] >= 0 for f in FACTORS)
    pred = Estimator.load(tmp_path / "estimator").predict([FACE])
    assert pred.shape == (1, len(FACTORS)) and np.isfinite(pred).all()
