"""Degradations: determinism, shapes, sampled ranges, fixed-level ordering."""
import math

import numpy as np
import pytest

from diffbfr.train import degrade as D


def _face(size: int, seed: int = 0) -> np.ndarray:
    # Smooth synthetic "face-like" image: gradients plus a few blobs, so blur/resize matter.
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([200 * xx + 30, 180 * yy + 40, 120 + 60 * np.sin(6 * xx * yy)], axis=2)
    for _ in range(12):
        cy, cx, r = rng.uniform(0, 1, 3)
        img += 50 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.002 + 0.01 * r))[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [64, 128])
def test_random_degrade_shape_dtype_determinism(size):
    img = _face(size)
    for seed in range(8):
        a = D.random_degrade(img, np.random.default_rng(seed))
        b = D.random_degrade(img, np.random.default_rng(seed))
        assert a.shape == img.shape and a.dtype == np.uint8 and a.flags.c_contiguous
        assert a.tobytes() == b.tobytes()
    outs = {D.random_degrade(img, np.random.default_rng(s)).tobytes() for s in range(8)}
    assert len(outs) == 8


def test_input_not_modified_and_bad_input_rejected():
    img = _face(128)
    before = img.copy()
    D.random_degrade(img, np.random.default_rng(0))
    D.fixed_degrade(img, "heavy", 0)
    assert np.array_equal(img, before)
    with pytest.raises(ValueError):
        D.random_degrade(img.astype(np.float32), np.random.default_rng(0))
    with pytest.raises(ValueError):
        D.fixed_degrade(img, "extreme", 0)


def test_sample_params_within_ranges():
    r = D.DEFAULT_RANGES
    rng = np.random.default_rng(123)
    seen = {"blur": 0, "aniso": 0, "down": 0, "noise": 0, "poisson": 0, "jpeg": 0, "jitter": 0, "grey": 0}
    orders = set()
    n = 3000
    for _ in range(n):
        p = D.sample_params(rng, r)
        orders.add(p.order)
        assert sorted(p.order) == ["blur", "noise", "resize"]
        if p.blur is not None:
            seen["blur"] += 1
            sx, sy, ang = p.blur
            if sx != sy:
                seen["aniso"] += 1
                assert r.aniso_sigma[0] <= sx <= r.aniso_sigma[1] and r.aniso_sigma[0] <= sy <= r.aniso_sigma[1]
                assert 0 <= ang <= 180
            else:
                assert r.blur_sigma[0] <= sx <= r.blur_sigma[1]
        if p.down_factor is not None:
            seen["down"] += 1
            assert r.down_factor[0] <= p.down_factor <= r.down_factor[1]
            assert p.down_interp in r.down_interps and p.up_interp in r.up_interps
        if p.noise_kind == "gauss":
            seen["noise"] += 1
            assert r.gauss_sigma[0] <= p.noise_level <= r.gauss_sigma[1]
        elif p.noise_kind == "poisson":
            seen["noise"] += 1
            seen["poisson"] += 1
            assert r.poisson_scale[0] <= p.noise_level <= r.poisson_scale[1]
        if p.jpeg_quality is not None:
            seen["jpeg"] += 1
            assert r.jpeg_quality[0] <= p.jpeg_quality <= r.jpeg_quality[1]
        if p.jitter is not None:
            seen["jitter"] += 1
            b, c, s = p.jitter
            assert abs(b) <= r.brightness and abs(c - 1) <= r.contrast and abs(s - 1) <= r.saturation
        seen["grey"] += p.grey
    assert len(orders) == 6  # all permutations of blur/resize/noise occur
    # Frequencies match the documented probabilities (loose 4-sigma-ish bounds).
    def near(count, prob, of=n):
        return abs(count / of - prob) < 4 * math.sqrt(prob * (1 - prob) / of) + 0.01
    assert near(seen["blur"], r.blur_prob) and near(seen["down"], r.down_prob)
    assert near(seen["noise"], r.noise_prob) and near(seen["jpeg"], r.jpeg_prob)
    assert near(seen["jitter"], r.jitter_prob) and near(seen["grey"], r.grey_prob)
    assert near(seen["aniso"], r.aniso_prob, seen["blur"])
    assert near(seen["poisson"], r.poisson_prob, seen["noise"])


def test_down_factor_log_uniform():
    rng = np.random.default_rng(7)
    f = [p.down_factor for p in (D.sample_params(rng) for _ in range(3000)) if p.down_factor]
    med = float(np.median(f))
    lo, hi = D.DEFAULT_RANGES.down_factor
    assert abs(math.log(med) - 0.5 * (math.log(lo) + math.log(hi))) < 0.2  # geometric mid, not arithmetic


@pytest.mark.parametrize("size", [64, 128])
def test_fixed_degrade_deterministic(size):
    img = _face(size, 3)
    for level in D.LEVELS:
        a = D.fixed_degrade(img, level, 5)
        assert a.shape == img.shape and a.dtype == np.uint8
        assert a.tobytes() == D.fixed_degrade(img, level, 5).tobytes()
    # Noise (medium/heavy) depends on the seed.
    assert D.fixed_degrade(img, "heavy", 5).tobytes() != D.fixed_degrade(img, "heavy", 6).tobytes()


def test_fixed_medium_factor_choice_is_seeded():
    factors = {D.fixed_params("medium", s).down_factor for s in range(40)}
    assert factors == {4.0, 6.0, 8.0}
    assert D.fixed_params("light", 0).down_factor == 2.0 and D.fixed_params("heavy", 0).down_factor == 16.0


def _mae(a, b):
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def test_levels_progressively_worse_on_real_face():
    from diffbfr.train.data import default_data_dir, iter_faces

    if not (default_data_dir() / "utkface" / "manifest.csv").exists():
        pytest.skip("shared data not available")
    faces = [f for _, f in iter_faces("train", min_sharpness=60, limit=3, size=128)]
    for face in faces:
        errs = [_mae(face, D.fixed_degrade(face, lv, 0)) for lv in D.LEVELS]
        assert 0 < errs[0] < errs[1] < errs[2], errs
        assert _mae(face, D.fixed_degrade(face, "light", 0)) < 8


def test_grey_option_gives_grey_output():
    img = _face(128)
    p = D.DegradeParams(grey=True)
    out = D.apply_params(img, p)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
