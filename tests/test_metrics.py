"""The metrics of diffbfr/metrics.py (PSNR with its cap, SSIM) and NIQE (diffbfr/niqe.py), on
constructed images."""
import math

import cv2
import numpy as np
import pytest
import torch

from diffbfr import metrics as M
from diffbfr import niqe as N


def rand_img(seed=0, lo=0, hi=256, size=64):
    return np.random.default_rng(seed).integers(lo, hi, (size, size, 3), dtype=np.uint8)


def smooth_face(seed=0):
    small = rand_img(seed, size=16)
    return np.ascontiguousarray(cv2.resize(small, (128, 128), interpolation=cv2.INTER_CUBIC))


# ---------------------------------------------------------------- metrics

def test_an_image_compared_with_itself_reaches_the_cap_and_means_stay_finite():
    a = rand_img(2)
    assert M.psnr(a, a.copy()) == M.PSNR_CAP and np.isfinite(np.mean([M.psnr(a, a), 30.0]))
    assert M.ssim(a, a.copy()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("shift", [1, 5, 20])
def test_constant_shift_gives_exact_psnr(shift):
    a = rand_img(3, lo=30, hi=200)
    b = a + np.uint8(shift)  # no wrap: values stay below 256
    assert M.mse(a, b) == shift**2
    assert M.psnr(a, b) == pytest.approx(20 * math.log10(255 / shift), abs=1e-9)


def test_ssim_drops_with_noise_and_checks_inputs():
    a = smooth_face(4)
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    assert 0 < M.ssim(a, noisy) < 0.9
    with pytest.raises(ValueError):
        M.psnr(a, a[:64])
    with pytest.raises(TypeError):
        M.psnr(a.astype(np.float32), a.astype(np.float32))


# ---------------------------------------------------------------- NIQE

@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_ggd_and_aggd_fits_recover_the_shape(beta):
    from scipy.stats import gennorm

    x = gennorm.rvs(beta, size=50_000, random_state=0)
    alpha, var = N.ggd_fit(x)
    assert alpha == pytest.approx(beta, rel=0.05) and var == pytest.approx(np.mean(x * x))
    a_alpha, mean, lvar, rvar = N.aggd_fit(x)
    assert a_alpha == pytest.approx(beta, rel=0.05)
    assert abs(mean) < 0.02 and lvar == pytest.approx(rvar, rel=0.05)


def _natural_crops():
    """128 px crops of skimage's bundled photos: a small stand-in pristine set."""
    import skimage.data as d

    crops = []
    for im in (d.astronaut(), d.coffee(), d.chelsea(), d.rocket()):
        im = cv2.resize(im, (256, 256), interpolation=cv2.INTER_AREA)
        crops += [np.ascontiguousarray(im[y:y + 128, x:x + 128]) for y in (0, 128) for x in (0, 128)]
    return crops


def test_niqe_finite_and_higher_for_blurred_noisy_image(tmp_path):
    import skimage.data as d

    model = N.fit(_natural_crops())
    assert model.mu.shape == (36,) and model.cov.shape == (36, 36)
    clean = cv2.resize(np.stack([d.camera()] * 3, -1), (128, 128), interpolation=cv2.INTER_AREA)
    bad = cv2.GaussianBlur(clean, (0, 0), 2.0)
    bad = np.clip(bad + np.random.default_rng(0).normal(0, 15, bad.shape), 0, 255).astype(np.uint8)
    q_clean, q_bad = N.niqe(clean, model), N.niqe(bad, model)
    assert math.isfinite(q_clean) and math.isfinite(q_bad)
    assert q_bad > q_clean + 1.0
    # the model file is plain JSON and round-trips exactly
    model.save(tmp_path / "m.json")
    again = N.NiqeModel.load(tmp_path / "m.json")
    assert np.array_equal(again.mu, model.mu) and np.array_equal(again.cov, model.cov)
    assert N.niqe(bad, again) == q_bad


def test_committed_niqe_model_loads_and_ranks_blur():
    model = N.NiqeModel.load()  # diffbfr/niqe_utk.json
    assert model.patch == 32 and model.meta["n_images"] >= 100
    assert np.allclose(model.cov, model.cov.T)
    face = cv2.resize(_natural_crops()[0], (128, 128))
    assert N.niqe(cv2.GaussianBlur(face, (0, 0), 2.5), model) > N.niqe(face, model)


def test_per_image_psnr_of_tensors_is_the_psnr_of_the_images():
    a, b = rand_img(5, lo=30, hi=200), rand_img(6, lo=30, hi=200)
    x = torch.from_numpy(np.stack([a, a])).permute(0, 3, 1, 2)
    y = torch.from_numpy(np.stack([b, a])).permute(0, 3, 1, 2)
    got = M.psnr_per_image(x, y)
    assert got[0].item() == pytest.approx(M.psnr(a, b), abs=1e-4) and got[1].item() == M.PSNR_CAP
    scaled = M.psnr_per_image(x / 127.5 - 1, y / 127.5 - 1, data_range=2.0)   # [-1, 1] images
    assert torch.allclose(scaled, got, atol=1e-3)
