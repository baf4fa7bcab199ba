import json

import cv2
import numpy as np
import pytest
import torch

from diffbfr.train import diffbfr as train
from diffbfr.train.data import PACK_FORMAT, PackDataset, write_pack_file
from diffbfr.diffusion.unet import TINY_OVERRIDES, build


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    """A synthetic 8-face pack in the real pack format (no dataset needed)."""
    rng = np.random.default_rng(0)
    names, blobs = [], []
    for i in range(8):
        img = cv2.GaussianBlur(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8), (9, 9), 3)
        names.append(f"face{i}.jpg")
        blobs.append(cv2.imencode(".jpg", img)[1].tobytes())
    path = tmp_path_factory.mktemp("pack") / "pack.tar"
    write_pack_file(path, {"format": PACK_FORMAT, "names": names, "sharpness": [50.0] * 8, "size": 128}, blobs)
    return path


@pytest.mark.parametrize("name", ["irm64", "irm128", "tem128"])
def test_pairs_have_the_right_shapes(pack, name):
    x0, cond = train.PairDataset(PackDataset(pack), name, seed=0)[0]
    size = 64 if name == "irm64" else 128
    assert x0.shape == (3, size, size) and x0.min() >= -1 and x0.max() <= 1
    assert cond.shape[0] == {"irm64": 3, "irm128": 6, "tem128": 0}[name]


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    model = build("irm64", **TINY_OVERRIDES)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    cond = x0 + 0.1 * torch.randn(x0.shape, generator=g)
    t = torch.tensor([50.0, 200.0, 400.0, 800.0])
    noise = torch.randn(x0.shape, generator=g)
    losses = [train.train_step(model, model, opt, x0, cond, t, noise).item() for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_stopped_and_resumed_run_continues(pack, tmp_path, capsys):
    common = ["tem128", "--pack", str(pack), "--tiny", "--batch", "2", "--run-dir", str(tmp_path / "run"),
              "--export", str(tmp_path / "w"), "--minutes", "5", "--log-every", "1"]
    first = train.main(common + ["--max-steps", "3"])
    assert first["steps"] == 3
    state = tmp_path / "run" / "state.json"
    assert json.loads(state.read_text())["step"] == 3
    ema_before = (tmp_path / "w" / "tem128.safetensors").read_bytes()

    second = train.main(common + ["--max-steps", "6"])
    assert "resumed tem128" in capsys.readouterr().out
    assert second["steps"] == 6 and json.loads(state.read_text())["step"] == 6
    assert (tmp_path / "w" / "tem128.safetensors").read_bytes() != ema_before  # it kept training
    assert (tmp_path / "w" / "tem128.json").exists()


def test_resume_restores_optimizer_and_ema_exactly(tmp_path):
    torch.manual_seed(0)
    model, ema = build("tem128", **TINY_OVERRIDES), build("tem128", **TINY_OVERRIDES)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x0 = torch.rand(2, 3, 32, 32) * 2 - 1
    train.train_step(model, model, opt, x0, None, torch.tensor([10.0, 500.0]), torch.randn_like(x0))
    train.ema_update(ema, model, 0.9)
    train.save_state(tmp_path, model, ema, opt, 1, {})
    m2, e2 = build("tem128", **TINY_OVERRIDES), build("tem128", **TINY_OVERRIDES)
    o2 = torch.optim.AdamW(m2.parameters(), lr=1e-3)
    assert train.load_state(tmp_path, m2, e2, o2)["step"] == 1
    for a, b in zip(list(model.state_dict().values()) + list(ema.state_dict().values()),
                    list(m2.state_dict().values()) + list(e2.state_dict().values())):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict()["state"], o2.state_dict()["state"]
    assert all(torch.equal(s1[k]["exp_avg_sq"], s2[k]["exp_avg_sq"]) for k in s1)
