"""Panini-Net networks (diffbfr.nets.panini_prior / encoder / dafi) with tiny configs on CPU.

The DRE is a stand-in of the documented interface (N x 3 x H x W -> N x 256, out_dim = 256),
so these tests do not depend on diffbfr.nets.panini_dre."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from diffbfr.methods.panini import prior_shares
from diffbfr.nets.panini_dafi import TINY_PANINI, DAFIBlock, PaniniConfig, PaniniNet
from diffbfr.nets.panini_encoder import TINY_ENCODER, Encoder, EncoderConfig
from diffbfr.nets.panini_prior import (TINY_DISCRIMINATOR, TINY_GENERATOR, Discriminator, DiscriminatorConfig,
                                  Generator, GeneratorConfig, d_logistic_loss, feature_matching_loss,
                                  g_nonsaturating_loss, modulated_conv2d, r1_penalty)

RES = 128


class TinyDRE(nn.Module):
    """conv + BatchNorm + global average pool to 256-d: the DRE interface, cheaply."""

    out_dim = 256

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 256, 3, stride=4, padding=1)
        self.bn = nn.BatchNorm2d(256)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x))).mean((2, 3))


def lq(n=2, seed=0):
    return torch.rand(n, 3, RES, RES, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def tiny_panini(seed=0) -> PaniniNet:
    torch.manual_seed(seed)
    net = PaniniNet(TINY_PANINI, TinyDRE()).eval()
    with torch.no_grad():  # untrained DAFI MLPs give 0.5 everywhere; make the masks informative
        for blk in net.dafi.values():
            blk.mlp[-1].weight.normal_(0, 0.5)
            blk.mlp[-1].bias.normal_(0, 0.5)
    return net


# ---------------------------------------------------------------- shapes

def test_generator_every_resolution_and_sampling():
    torch.manual_seed(0)
    g = Generator(TINY_GENERATOR).eval()
    assert g.num_ws == 12 == TINY_GENERATOR.num_ws
    z = torch.randn(2, g.z_dim)
    ws = g.map(z)
    assert ws.shape == (2, g.num_ws, g.w_dim)
    seen = {}

    def hook(res, feat):
        seen[res] = tuple(feat.shape)
        return feat

    img = g.synthesis(ws, noise_mode="const", feature_hook=hook)
    assert img.shape == (2, 3, RES, RES) and torch.isfinite(img).all()
    assert seen == {r: (2, c, r, r) for r, c in zip((4, 8, 16, 32, 64, 128), TINY_GENERATOR.channels)}
    a = g.sample(3, torch.Generator().manual_seed(1), noise_mode="const")
    b = g.sample(3, torch.Generator().manual_seed(1), noise_mode="const")
    c = g.sample(3, torch.Generator().manual_seed(2), noise_mode="const")
    assert a.shape == (3, 3, RES, RES) and torch.equal(a, b) and not torch.allclose(a, c)
    with pytest.raises(ValueError):
        g.synthesis(ws[:, :-1])


def test_feature_hook_replaces_the_feature_map():
    torch.manual_seed(0)
    g = Generator(TINY_GENERATOR).eval()
    ws = g.map(torch.randn(1, g.z_dim))
    base = g.synthesis(ws, noise_mode="none")
    zeroed = g.synthesis(ws, noise_mode="none", feature_hook=lambda r, f: f * 0 if r == 16 else f)
    assert not torch.allclose(base, zeroed, atol=1e-4)


def test_discriminator_logit_and_features():
    torch.manual_seed(0)
    d = Discriminator(TINY_DISCRIMINATOR)
    x = lq(3)  # odd batch: the minibatch-std group must adapt
    logit, feats = d(x, return_features=True)
    assert logit.shape == (3, 1) and torch.isfinite(logit).all()
    chans = TINY_DISCRIMINATOR.channels[::-1]
    assert [tuple(f.shape) for f in feats] == [(3, c, RES >> i, RES >> i) for i, c in enumerate(chans)]
    assert torch.equal(d(x), logit)


def test_encoder_features_and_ws_start_at_w_avg():
    torch.manual_seed(0)
    enc = Encoder(TINY_ENCODER)
    w_avg = torch.randn(TINY_ENCODER.w_dim)
    feats, ws = enc(lq(2), w_avg)
    g = TINY_GENERATOR
    assert {r: tuple(f.shape) for r, f in feats.items()} == {
        r: (2, g.channels_at(r), r, r) for r in (128, 64, 32, 16, 8, 4)}
    assert ws.shape == (2, g.num_ws, g.w_dim)
    assert torch.equal(ws, w_avg.expand_as(ws))  # zero-initialised head: the average face
    with pytest.raises(ValueError):
        enc(torch.zeros(1, 3, 64, 64))


def test_panini_forward_shapes_and_masks():
    net = tiny_panini()
    out = net(lq(2))
    assert out["image"].shape == (2, 3, RES, RES) and torch.isfinite(out["image"]).all()
    assert out["ws"].shape == (2, 12, TINY_GENERATOR.w_dim)
    assert out["degradation"].shape == (2, 256)
    assert sorted(out["masks"]) == [4, 8, 16, 32, 64, 128]
    for r, m in out["masks"].items():
        assert m.shape == (2, TINY_GENERATOR.channels_at(r))
        assert ((m > 0) & (m < 1)).all()
    means = prior_shares(out["masks"])      # per face {level: mean share}, what the method reports
    assert [list(m) for m in means] == [["4", "8", "16", "32", "64", "128"]] * 2
    assert all(0 < v < 1 for m in means for v in m.values())
    # the shift moves every level towards the prior
    up = prior_shares(net(lq(2), prior_shift=3.0)["masks"])
    assert all(u[r] > m[r] for u, m in zip(up, means) for r in m)


def test_image_dafi_blends_the_output_with_the_input_face():
    torch.manual_seed(0)
    net = PaniniNet(dataclasses.replace(TINY_PANINI, image_dafi=True), TinyDRE()).eval()
    plain = PaniniNet(TINY_PANINI, net.dre).eval()   # the same network without the image block
    assert sorted(plain.load_state_dict(net.state_dict(), strict=False).unexpected_keys) == [
        f"dafi.image.mlp.{i}.{p}" for i in (0, 2) for p in ("bias", "weight")]
    x = lq(2)
    with torch.no_grad():
        out = net(x)
        g_only = plain(x)["image"]
        photo = net(x, prior_shift=-1e4)["image"]      # all input: the LQ face itself
    assert out["image_share"].shape == (2, 3)
    assert torch.allclose(out["image_share"], torch.full((2, 3), 0.5))  # fresh block: neither favoured
    assert torch.allclose(photo, x) and not torch.allclose(g_only, x)
    assert torch.allclose(out["image"], 0.5 * g_only + 0.5 * x, atol=1e-5)
    shares = prior_shares(out["masks"], out["image_share"])
    assert list(shares[0])[-1] == "image" and shares[0]["image"] == 0.5


# ---------------------------------------------------------------- DAFI

def _block(seed=0):
    torch.manual_seed(seed)
    blk = DAFIBlock(8, 256, 16)
    with torch.no_grad():
        blk.mlp[-1].weight.normal_(0, 1.0)
        blk.mlp[-1].bias.normal_(0, 1.0)
    gan, enc, deg = torch.randn(2, 8, 16, 16), torch.randn(2, 8, 16, 16), torch.randn(2, 256)
    return blk, gan, enc, deg


def test_dafi_mask_sums_to_one_per_channel():
    blk, gan, enc, deg = _block()
    for shift in (0.0, 2.5, -7.0):
        m = blk.masks(deg, shift)
        assert m.shape == (2, 2, 8)
        torch.testing.assert_close(m.sum(1), torch.ones(2, 8))
        assert m[:, 0].std() > 0.01  # channels really differ: the mask is per channel
    # prior_shift is m1 = sigmoid(l_gan - l_enc + shift)
    logits = blk.mlp(deg).reshape(2, 2, 8)
    torch.testing.assert_close(blk.masks(deg, 1.5)[:, 0], torch.sigmoid(logits[:, 0] - logits[:, 1] + 1.5))


def test_dafi_extremes_reproduce_each_source():
    blk, gan, enc, deg = _block()
    with torch.no_grad():
        all_prior, m_hi = blk(gan, enc, deg, prior_shift=50.0)
        all_input, m_lo = blk(gan, enc, deg, prior_shift=-50.0)
        learned, _ = blk(gan, enc, deg)
        conv_enc = blk.conv(enc)
    torch.testing.assert_close(all_prior, gan)
    torch.testing.assert_close(all_input, conv_enc)
    assert torch.allclose(m_hi, torch.ones_like(m_hi)) and torch.allclose(m_lo, torch.zeros_like(m_lo))
    assert not torch.allclose(learned, gan, atol=1e-3) and not torch.allclose(learned, conv_enc, atol=1e-3)
    out_inf, _ = blk(gan, enc, deg, prior_shift=math.inf)  # no inf - inf = nan
    torch.testing.assert_close(out_inf, gan)


# ---------------------------------------------------------------- modulated conv

def test_demodulation_gives_unit_std_and_paths_agree():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 64, 16, 16, generator=gen)
    weight = torch.randn(32, 64, 3, 3, generator=gen)
    styles = torch.exp(torch.randn(4, 64, generator=gen))  # scales spread over ~e^+-2
    with torch.no_grad():
        fused = modulated_conv2d(x, weight, styles * 20, demodulate=True, fused=True)
        unfused = modulated_conv2d(x, weight, styles * 20, demodulate=True, fused=False)
        raw = modulated_conv2d(x, weight, styles * 20, demodulate=False)
    torch.testing.assert_close(fused, unfused, rtol=1e-4, atol=1e-4)
    per_sample = fused.std(dim=(1, 2, 3))
    assert ((per_sample > 0.7) & (per_sample < 1.3)).all(), per_sample
    assert raw.std() > 10  # without demodulation the style scale goes straight through


# ---------------------------------------------------------------- losses

def test_r1_penalty_positive_with_gradients():
    torch.manual_seed(0)
    d = Discriminator(TINY_DISCRIMINATOR)
    pen = r1_penalty(d, lq(4))
    assert pen.ndim == 0 and pen.item() > 0
    pen.backward()
    grads = [p.grad for p in d.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_gan_losses_and_feature_matching():
    zeros = torch.zeros(4, 1)
    assert g_nonsaturating_loss(zeros).item() == pytest.approx(math.log(2))
    assert d_logistic_loss(zeros + 10, zeros - 10).item() < 1e-3
    assert d_logistic_loss(zeros - 10, zeros + 10).item() > 19
    torch.manual_seed(0)
    d = Discriminator(TINY_DISCRIMINATOR)
    fake = lq(2, seed=1).requires_grad_(True)
    _, real_f = d(lq(2), return_features=True)
    _, fake_f = d(fake, return_features=True)
    loss = feature_matching_loss(fake_f, real_f)
    assert loss.item() > 0
    loss.backward()
    assert fake.grad.abs().sum() > 0
    assert feature_matching_loss(real_f, real_f).item() == 0


def test_w_avg_tracks_training_only():
    torch.manual_seed(0)
    g = Generator(TINY_GENERATOR)
    z = torch.randn(4, g.z_dim)
    g.eval()
    g(z)
    assert torch.count_nonzero(g.w_avg) == 0
    g.train()
    with torch.no_grad():
        g(z, mixing_prob=1.0)
    assert torch.count_nonzero(g.w_avg) > 0


# ---------------------------------------------------------------- noise, configs, weights

def test_noise_modes():
    net = tiny_panini()
    with torch.no_grad():
        for conv in net.generator.synthesis.convs:  # untrained strengths are zero: noise invisible
            conv.noise_strength.fill_(0.5)
        x = lq(1)
        c1, c2 = net(x, noise_mode="const")["image"], net(x, noise_mode="const")["image"]
        r1, r2 = net(x, noise_mode="random")["image"], net(x, noise_mode="random")["image"]
        none = net(x, noise_mode="none")["image"]
    assert torch.equal(c1, c2)
    assert not torch.allclose(r1, r2, atol=1e-4)
    assert not torch.allclose(c1, none, atol=1e-4)
    with pytest.raises(ValueError):
        net(x, noise_mode="bogus")


@pytest.mark.parametrize("cfg,build", [
    (TINY_GENERATOR, Generator), (GeneratorConfig(), Generator),
    (TINY_DISCRIMINATOR, Discriminator), (DiscriminatorConfig(), Discriminator),
    (TINY_ENCODER, Encoder), (EncoderConfig(), Encoder),
    (TINY_PANINI, lambda c: PaniniNet(c, TinyDRE())), (PaniniConfig(), lambda c: PaniniNet(c, TinyDRE())),
])
def test_config_round_trip(cfg, build):
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain JSON types only: tuples already lists
    back = type(cfg).from_dict(json.loads(json.dumps(d)))
    assert back == cfg and isinstance(back.generator.channels if hasattr(back, "generator")
                                      else back.channels, tuple)
    a, b = build(cfg).state_dict(), build(back).state_dict()
    assert list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)


def test_config_mismatch_is_rejected():
    bad = dataclasses.replace(TINY_PANINI, encoder=dataclasses.replace(TINY_ENCODER, channels=(16, 16, 16, 8, 4, 8)))
    with pytest.raises(ValueError):
        PaniniNet(bad, TinyDRE())
    with pytest.raises(ValueError):
        GeneratorConfig(channels=(8, 8))


def test_safetensors_round_trip_is_bit_exact(tmp_path):
    net = tiny_panini()
    state = net.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "p.safetensors"))
    loaded = load_file(str(tmp_path / "p.safetensors"))
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) and loaded[k].dtype == state[k].dtype for k in state)
    fresh = PaniniNet(PaniniConfig.from_dict(json.loads(json.dumps(TINY_PANINI.to_dict()))), TinyDRE()).eval()
    fresh.load_state_dict(loaded)
    x = lq(1)
    with torch.no_grad():
        assert torch.equal(fresh(x)["image"], net(x)["image"])


def test_a_net_on_a_trained_prior_starts_at_its_w_avg_and_keeps_the_dre_frozen():
    torch.manual_seed(3)
    prior = Generator(TINY_GENERATOR)
    with torch.no_grad():
        prior.w_avg.normal_()
    half = {k: v.half() for k, v in prior.state_dict().items()}  # shipped weights are fp16
    net = PaniniNet(TINY_PANINI, TinyDRE())
    net.generator.load_state_dict(half)   # as the restoration trainer fills it (--prior)
    for k, v in net.generator.state_dict().items():
        torch.testing.assert_close(v, half[k].float())
    net.train()
    assert not net.dre.training and net.encoder.training
    assert not any(p.requires_grad for p in net.dre.parameters())
    out = net(lq(2))
    torch.testing.assert_close(out["ws"], half["w_avg"].float().expand_as(out["ws"]))  # starts at w_avg
    out["image"].mean().backward()
    assert net.encoder.stem.weight.grad is not None and net.generator.synthesis.const.grad is not None


def test_bf16_autocast_channels_last():
    net = tiny_panini()
    x = lq(1).to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    ref = net(lq(1))["image"]
    assert out["image"].shape == (1, 3, RES, RES) and torch.isfinite(out["image"].float()).all()
    assert (out["image"].float() - ref).abs().mean() < 0.1 * ref.abs().mean() + 0.05
