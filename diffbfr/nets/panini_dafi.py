"""DAFI (degradation-aware feature interpolation) and the full restoration network PaniniNet.

At 4, 8, 16, 32, 64 and 128 px a DAFI block mixes, channel by channel, the generator's own feature
map (the face prior) with the encoder's feature map of the LQ face (the input), with weights
that depend on how degraded the input is (the DRE vector): a clean input should be copied, a
ruined one replaced by the prior.  `prior_shift` lets the user move that balance at inference.

PaniniNet = DRE (degradation vector) + Encoder (features + W+) + Generator (prior) + DAFI.
The generator is trained first on its own (panini_prior.py); the restoration trainer fills the
net's generator from that prior's file (diffbfr/train/panini_trainer.py, --prior). The DRE is
trained separately (panini_dre.py, another module) and is frozen here by default, as in the paper.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .panini_encoder import TINY_ENCODER, Encoder, EncoderConfig
from .config import ConfigMixin
from .panini_dre import DRE, DREConfig
from .panini_prior import TINY_GENERATOR, Generator, GeneratorConfig


class DAFIBlock(nn.Module):
    """out = m1 * gan + m2 * conv3x3(enc), (m1, m2) = softmax(l_gan + prior_shift, l_enc) per
    channel, logits from an MLP of the degradation vector (constant over space: the
    degradation is global to the face, the per-channel choice is what the paper learns)."""

    def __init__(self, channels: int, dre_dim: int = 256, hidden: int = 128):
        super().__init__()
        self.channels = channels
        self.mlp = nn.Sequential(nn.Linear(dre_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 2 * channels))
        # zero last layer: both sources weigh 0.5 at the start of fine-tuning, neither is favoured
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        # aligns encoder features (different statistics) to the generator's feature space
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def masks(self, degradation: torch.Tensor, prior_shift: float | torch.Tensor = 0.0) -> torch.Tensor:
        """N x 2 x C softmax weights: [:, 0] on the GAN feature, [:, 1] on the encoder's."""
        logits = self.mlp(degradation).reshape(-1, 2, self.channels).float()
        shift = torch.as_tensor(prior_shift, dtype=logits.dtype, device=logits.device).reshape(-1, 1)
        shift = shift.clamp(-1e4, 1e4)  # +-inf would give inf - inf = nan inside the softmax
        logits = torch.stack([logits[:, 0] + shift, logits[:, 1]], 1)
        return torch.softmax(logits, 1)

    def forward(self, gan_feat: torch.Tensor, enc_feat: torch.Tensor, degradation: torch.Tensor,
                prior_shift: float | torch.Tensor = 0.0):
        """-> (blended feature N x C x H x W, m1 N x C: the share of the prior per channel)."""
        m = self.masks(degradation, prior_shift).to(gan_feat.dtype)
        enc = self.conv(enc_feat)
        out = m[:, 0, :, None, None] * gan_feat + m[:, 1, :, None, None] * enc
        return out, m[:, 0]


class ImageDAFIBlock(DAFIBlock):
    """DAFI on the finished image: out = m1 * G's RGB + m2 * the LQ face itself, per colour
    channel, steered by the degradation vector like the feature blocks. Beyond the paper: a
    feature blend cannot copy a lightly damaged face back pixel for pixel, and the two estimates
    average better than either alone (on the first restorer leg a fixed half-half blend was
    +0.9 dB at light and +0.2 at medium over its own output)."""

    def __init__(self, dre_dim: int = 256, hidden: int = 128):
        super().__init__(3, dre_dim, hidden)
        self.conv = nn.Identity()  # the input is already an image: nothing to align


IMAGE = "image"  # the image block's key among the DAFI blocks (the others are resolutions)


def dafi_blocks(cfg: "PaniniConfig") -> nn.ModuleDict:
    blocks = {str(r): DAFIBlock(cfg.generator.channels_at(r), cfg.dre_dim, cfg.dafi_hidden)
              for r in cfg.dafi_resolutions}
    if cfg.image_dafi:
        blocks[IMAGE] = ImageDAFIBlock(cfg.dre_dim, cfg.dafi_hidden)
    return nn.ModuleDict(blocks)


@dataclass
class PaniniConfig(ConfigMixin):
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    dre_dim: int = 256
    dafi_hidden: int = 128
    # every scale of G, its output resolution included: without a full-resolution block a
    # lightly degraded face can only come back through G's 64 px features, i.e. softened
    dafi_resolutions: tuple[int, ...] = (4, 8, 16, 32, 64, 128)
    image_dafi: bool = False  # one more block on the output image (ImageDAFIBlock)
    freeze_dre: bool = True  # the DRE is pre-trained (contrastive) and kept fixed, as in the paper
    name: str = "panini"


TINY_PANINI = PaniniConfig(generator=TINY_GENERATOR, encoder=TINY_ENCODER, dafi_hidden=16, name="panini-tiny")


def _check(cfg: PaniniConfig) -> None:
    g, e = cfg.generator, cfg.encoder
    if (e.resolution, e.num_ws, e.w_dim) != (g.resolution, g.num_ws, g.w_dim):
        raise ValueError("encoder resolution/num_ws/w_dim must match the generator's")
    for r in cfg.dafi_resolutions:
        if r not in g.resolutions:
            raise ValueError(f"DAFI resolution {r} must be one of {g.resolutions}")
        if e.channels[e.resolutions.index(r)] != g.channels_at(r):
            raise ValueError(f"encoder and generator channels differ at {r} px")


class PaniniNet(nn.Module):
    def __init__(self, config: PaniniConfig | None = None, dre: nn.Module | None = None):
        super().__init__()
        self.config = cfg = config or PaniniConfig()
        _check(cfg)
        if dre is None:
            raise ValueError("PaniniNet needs a degradation encoder module (N x 3 x H x W -> N x dre_dim)")
        if dre.out_dim != cfg.dre_dim:
            raise ValueError(f"DRE gives {dre.out_dim}-d vectors, config expects {cfg.dre_dim}")
        self.dre = dre
        self.encoder = Encoder(cfg.encoder)
        self.generator = Generator(cfg.generator)
        self.dafi = dafi_blocks(cfg)
        if cfg.freeze_dre:
            self.dre.requires_grad_(False)
            self.dre.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.config.freeze_dre:
            self.dre.eval()  # frozen BatchNorm statistics must not drift with fine-tuning batches
        return self

    def forward(self, lq: torch.Tensor, prior_shift: float | torch.Tensor = 0.0, noise_mode: str = "const",
                noise: list | None = None) -> dict:
        """lq: N x 3 x R x R in [-1, 1].  prior_shift: logits added towards the prior (float, or
        one per sample); +inf -> all prior, -inf -> all input.  noise_mode "const" (default,
        deterministic), "random" or "none".  Returns {"image": N x 3 x R x R (unclamped),
        "masks": {res: N x C share of the prior}, "ws": N x num_ws x w_dim, "degradation", and
        with config.image_dafi "image_share": N x 3, the prior's share of the final image}."""
        if self.config.freeze_dre:
            with torch.no_grad():
                deg = self.dre(lq)
        else:
            deg = self.dre(lq)
        feats, ws = self.encoder(lq, self.generator.w_avg)
        masks = {}

        def hook(res: int, gan_feat: torch.Tensor) -> torch.Tensor:
            block = self.dafi[str(res)] if str(res) in self.dafi else None
            if block is None:
                return gan_feat
            out, masks[res] = block(gan_feat, feats[res], deg, prior_shift)
            return out

        image = self.generator.synthesis(ws, noise_mode=noise_mode, noise=noise, feature_hook=hook)
        out = {"masks": masks, "ws": ws, "degradation": deg}
        if IMAGE in self.dafi:
            # in float32: under bf16 autocast the blend would round a light face's fine detail away
            image, out["image_share"] = self.dafi[IMAGE](image.float(), lq.float(), deg, prior_shift)
        return {"image": image, **out}


# ---------------------------------------------------------------- the shipped parts
# Weights ship as one file per part, each well under 16 MiB in fp16; `dafi.json` carries the
# assembly config (PaniniConfig + the DRE's config) that says how the parts fit together.
PARTS = ("generator", "encoder", "dafi", "dre")


class DAFIBlocks(nn.Module):
    """The `dafi` part: PaniniNet's DAFI blocks, with the configs that wire the four parts."""

    def __init__(self, config: PaniniConfig, dre_config: DREConfig, blocks: nn.ModuleDict | None = None):
        super().__init__()
        self.config, self.dre_config = config, dre_config
        self.blocks = blocks if blocks is not None else dafi_blocks(config)



def assembly_config(config: PaniniConfig, dre_config: DREConfig) -> dict:
    """What dafi.json holds (and the restoration trainer's config): the PaniniConfig plus the
    DRE's config under "dre" (PaniniConfig.from_dict ignores that key)."""
    return {**config.to_dict(), "dre": dre_config.to_dict()}


def split(net: PaniniNet) -> dict[str, tuple[nn.Module, dict]]:
    """part name -> (module sharing the net's tensors, the config stored beside its file)."""
    if not isinstance(net.dre, DRE):
        raise TypeError(f"a shipped PaniniNet has a diffbfr.nets.panini_dre.DRE, not {type(net.dre).__name__}")
    cfg = net.config
    dafi = DAFIBlocks(cfg, net.dre.config, net.dafi)
    return {"generator": (net.generator, cfg.generator.to_dict()), "encoder": (net.encoder, cfg.encoder.to_dict()),
            "dafi": (dafi, assembly_config(cfg, net.dre.config)), "dre": (net.dre, net.dre.config.to_dict())}


def assemble(parts: dict[str, nn.Module]) -> PaniniNet:
    """One PaniniNet made of the given parts (their tensors, not copies), in eval mode."""
    gen, enc, dafi, dre = (parts[name] for name in PARTS)
    if not (isinstance(gen, Generator) and isinstance(enc, Encoder) and isinstance(dafi, DAFIBlocks)
            and isinstance(dre, DRE)):
        raise TypeError("Panini-Net parts must be a Generator, an Encoder, DAFIBlocks and a DRE")
    cfg = dafi.config
    for name, have, want in (("generator", gen.config, cfg.generator), ("encoder", enc.config, cfg.encoder),
                             ("dre", dre.config, dafi.dre_config)):
        if have != want:
            raise ValueError(f"the {name} part does not fit the DAFI blocks: it has {have}, dafi.json expects {want}")
    # PaniniNet builds its own encoder and generator; they are replaced by the parts at once
    # (a one-off ~0.2 s at full size: why methods.base.Model keeps the result)
    net = PaniniNet(cfg, dre)
    net.generator, net.encoder, net.dafi = gen, enc, dafi.blocks
    return net.eval()
