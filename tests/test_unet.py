import pickle

import pytest
import torch

from diffbfr import checkpoint
from diffbfr.nets import unet
from diffbfr.nets.unet_config import timestep_embedding


def tiny(name):
    return unet.build(name, **unet.TINY_OVERRIDES)


@pytest.mark.parametrize("name,size,cond", [("irm64", 64, 3), ("irm128", 128, 6), ("tem128", 128, 0)])
def test_output_shapes(name, size, cond):
    net = tiny(name).eval()
    x = torch.randn(2, 3, size, size)
    c = torch.randn(2, cond, size, size) if cond else None
    with torch.no_grad():
        out = net(x, torch.tensor([3.5, 700.0]), c)
    assert out.shape == x.shape
    assert net.config.cond_channels == cond


def test_missing_condition_is_a_clear_error():
    with pytest.raises(ValueError, match="conditioning"):
        tiny("irm64")(torch.randn(1, 3, 64, 64), torch.tensor([1.0]))


def test_fractional_timesteps_give_different_embeddings():
    e = timestep_embedding(torch.tensor([37.0, 37.5]), 32)
    assert not torch.allclose(e[0], e[1])


def test_default_configs_fit_the_8_mib_fp16_budget():
    for name in unet.MODEL_CONFIGS:
        assert unet.param_count(unet.build(name)) * 2 <= 8 * 2**20, name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_safetensors_round_trip_is_bit_exact(tmp_path, monkeypatch, dtype):
    net = tiny("irm128")
    for p in net.parameters():  # zero-initialised layers would hide a broken load
        torch.nn.init.normal_(p)
    path = checkpoint.save_module(net, tmp_path / "irm128.safetensors", net.config.to_dict(), dtype=dtype)  # as export
    assert checkpoint.config_path(path).exists()

    def no_pickle(*a, **k):
        raise AssertionError("pickle must never be loaded")
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    loaded = checkpoint.load_network(path, dtype=dtype)
    assert loaded.config == net.config
    for (k, a), (k2, b) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a.to(dtype), b), k
