import math

import pytest
import torch

from diffbfr.diffusion.samplers import ddim_timesteps, sample_ddim, truncated_sample
from diffbfr.diffusion.schedule import T, alpha_bar, q_sample


def oracle(x0):
    """A denoiser that knows x0: returns the exact v for any x_t."""
    def fn(x, t):
        a = alpha_bar(t[0]).item()
        return (math.sqrt(a) * x - x0) / math.sqrt(1 - a)
    return fn


def test_schedule_endpoints_and_monotone():
    assert alpha_bar(0.0).item() == 1.0
    assert alpha_bar(T).item() == pytest.approx(0.0, abs=1e-12)
    a = alpha_bar(torch.linspace(0, T, 101))
    assert torch.all(a[1:] <= a[:-1])
    # fractional timesteps are exact points of the continuous schedule, not rounded
    a37, a375, a38 = (alpha_bar(t).item() for t in (37.0, 37.5, 38.0))
    assert a37 > a375 > a38  # strictly between its integer neighbours: not rounded to either


@pytest.mark.parametrize("t", [1.0, 37.5, 250.0, 500.0, 900.0])
def test_q_sample_mean_and_variance(t):
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000,), 0.7, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    xt = q_sample(x0.view(1, 1, 1, -1), t, noise.view(1, 1, 1, -1)).flatten()
    a = alpha_bar(t).item()
    assert xt.mean().item() == pytest.approx(math.sqrt(a) * 0.7, abs=4e-3)
    assert xt.var().item() == pytest.approx(1 - a, rel=2e-2, abs=1e-5)


@pytest.mark.parametrize("t_start", [0.5, 2.5, 37.5, 300.0, 999.0, 1000.0 - 1e-3])
@pytest.mark.parametrize("steps", [1, 3, 10])
def test_ddim_with_oracle_reconstructs_x0(t_start, steps):
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    out = truncated_sample(oracle(x0), x0, t_start, steps, generators=torch.Generator().manual_seed(2))
    assert torch.allclose(out, x0, atol=1e-9)


def test_ddim_oracle_stochastic_eta_also_reconstructs():
    x0 = torch.rand(1, 3, 4, 4, dtype=torch.float64) * 2 - 1
    out = truncated_sample(oracle(x0), x0, 400.0, 5, eta=1.0, generators=torch.Generator().manual_seed(3))
    assert torch.allclose(out, x0, atol=1e-9)


def test_t_start_zero_is_identity():
    x = torch.rand(1, 3, 8, 8)
    out = truncated_sample(lambda x, t: torch.randn_like(x), x, 0.0, 5)
    assert torch.equal(out, x)


def test_timesteps_descend_to_zero_from_fraction():
    ts = ddim_timesteps(37.5, 3)
    assert ts[0] == 37.5 and ts[-1] == 0.0 and len(ts) == 4
    assert all(a > b for a, b in zip(ts, ts[1:]))


def test_seeded_sampling_is_reproducible():
    fn = lambda x, t: 0.1 * x  # noqa: E731 - any deterministic model
    x = torch.rand(1, 3, 8, 8)
    a = truncated_sample(fn, x, 300.0, 4, eta=0.5, generators=torch.Generator().manual_seed(7))
    b = truncated_sample(fn, x, 300.0, 4, eta=0.5, generators=torch.Generator().manual_seed(7))
    c = truncated_sample(fn, x, 300.0, 4, eta=0.5, generators=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_full_sampling_from_t_equals_T_starts_from_pure_noise():
    # at t = T the init is fully replaced by noise: two different inits give the same result
    fn = lambda x, t: 0.1 * x  # noqa: E731
    a = truncated_sample(fn, torch.zeros(1, 3, 4, 4), T, 3, generators=torch.Generator().manual_seed(0))
    b = truncated_sample(fn, torch.ones(1, 3, 4, 4), T, 3, generators=torch.Generator().manual_seed(0))
    assert torch.allclose(a, b, atol=1e-6)


def test_per_item_generators_make_results_independent_of_batch_mates():
    fn = lambda x, t: 0.1 * x  # noqa: E731
    faces = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(4)) * 2 - 1

    def gens(n):
        return [torch.Generator().manual_seed(11) for _ in range(n)]

    alone = truncated_sample(fn, faces[1:2], 400.0, 4, eta=1.0, generators=gens(1))
    batch = truncated_sample(fn, faces, 400.0, 4, eta=1.0, generators=gens(3))
    assert torch.allclose(batch[1:2], alone, atol=1e-6)
    # one shared generator instead: the middle face would get other noise than alone
    shared = truncated_sample(fn, faces, 400.0, 4, eta=1.0, generators=torch.Generator().manual_seed(11))
    assert not torch.allclose(shared[1:2], alone, atol=1e-3)
    with pytest.raises(ValueError, match="generators"):
        truncated_sample(fn, faces, 400.0, 2, generators=gens(2))


def test_callback_sees_every_step_with_the_denoised_estimate():
    x0 = torch.rand(1, 3, 4, 4, dtype=torch.float64) * 2 - 1
    seen = []
    out = sample_ddim(oracle(x0), q_sample(x0, 300.0, torch.randn_like(x0)), ddim_timesteps(300.0, 3),
                      callback=lambda d: seen.append((d["i"], d["t"], d["denoised"], d["x"])))
    assert [i for i, *_ in seen] == [0, 1, 2] and [t for _, t, *_ in seen] == pytest.approx([300.0, 200.0, 100.0])
    assert all(torch.allclose(d, x0, atol=1e-9) for _, _, d, _ in seen)  # the oracle knows x0
    assert torch.equal(seen[-1][3], out)
