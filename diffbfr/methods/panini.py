"""Panini-Net as a method: one stage, one network evaluation.

The LQ face goes through the degradation encoder (DRE: how is this face damaged?), the LQ
encoder (its features at 4..128 px and the generator's W+ latents) and the GAN prior, whose
feature map at 4, 8, 16, 32, 64 and 128 px is replaced by a DAFI blend of prior and input features,
channel by channel (and, with PaniniConfig.image_dafi, its output image by a blend with the LQ face). The generator's noise is the constant map saved with it, so restoration
is deterministic: no seed, no sampling steps.

`prior_shift` is the knob that falls out of DAFI: it is added to the prior's logit before the
two-way softmax, so each channel's share of the prior becomes sigmoid(l_gan - l_enc + shift):
0 = what the network learned for this degradation, large positive = all prior (invented
detail), large negative = all input (fidelity).

Weights: one file per part (PARTS), each well under 16 MiB in fp16, loaded like every network
(diffbfr/checkpoint.py: load_network, from the manifest's `networks` map). `dafi.json` carries the
assembly config (PaniniConfig + the DRE's config) that says how the parts fit together.
`assemble(parts)` (nets/panini_dafi.py) builds one PaniniNet whose submodules ARE the loaded
parts (no copy); `split(net)` is its inverse (what the trainer exports). The stage function
needs that PaniniNet: it is a component of the Model (`Model.assembled()`, from
`Method.assemble`), built on first use and again only if the Model's networks are swapped.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..frame import to_batch, to_images
from ..nets.panini_dafi import IMAGE, PARTS, TINY_PANINI, PaniniNet, assemble, split
from ..nets.panini_dre import DRE, TINY as TINY_DRE
from ..settings import clamp_value, knob, knob_of
from .base import INPUT, Method, Model, SimpleControl, Stage
from .panini_plot import prior_share_plot

SHIFT_LIMIT = 10.0  # +-10 overrides a learned logit gap of up to +-5 to within 1 % (sigmoid(5) = 0.993)


@dataclass(frozen=True)
class PaniniSettings:
    prior_shift: float = knob(0.0, -SHIFT_LIMIT, SHIFT_LIMIT, 0.5, "Prior strength",
                              "How much of each feature the network takes from its learned face prior "
                              "instead of from your photo. 0 = as trained for this kind of damage; higher "
                              "= more invented detail (a cleaner but more generic face); lower = closer "
                              "to your photo, defects included.", advanced=False)
    # no seed: Panini-Net draws nothing random (Method.seed is None), and a slider that changes
    # nothing would mislead


def prior_shares(masks: dict[int, torch.Tensor], image_share: torch.Tensor | None = None) -> list[dict[str, float]]:
    """Per face: {"4": mean share of the prior over that level's channels, ..., and with an image
    DAFI block "image": its mean over the colour channels} (JSON keys)."""
    means = {str(r): m.detach().float().mean(1).tolist() for r, m in sorted(masks.items())}
    if image_share is not None:
        means[IMAGE] = image_share.detach().float().mean(1).tolist()
    n = len(next(iter(means.values()))) if means else 0
    return [{r: round(v[k], 4) for r, v in means.items()} for k in range(n)]


def feature_levels(shares: dict[str, float]) -> dict[str, float]:
    """The feature levels of one face's shares (the paper's DAFI), without the image block."""
    return {r: v for r, v in shares.items() if r != IMAGE}


def run_panini(model: Model, inputs: dict, s: PaniniSettings, seeds, callback=None):
    """LQ faces -> restored faces, and per face {"prior_share": {level px: mean DAFI prior share}}."""
    net = model.assembled()
    lq = to_batch(inputs[INPUT], model.device)
    with torch.autocast(model.device.type, dtype=torch.float16, enabled=model.autocast):
        out = net(lq, prior_shift=float(s.prior_shift), noise_mode="const")
    image = out["image"].float()
    if callback is not None:  # the samplers' per-step hook, called once: progress reads "step 1/1"
        callback({"x": image, "i": 0, "t": 0.0, "denoised": image})
    return to_images(image), [{"prior_share": shares}
                              for shares in prior_shares(out["masks"], out.get("image_share"))]


def tiny_networks(seed: int) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    net = PaniniNet(TINY_PANINI, DRE(TINY_DRE))
    with torch.no_grad():
        # untrained DAFI MLPs and W+ head are zero (all shares 0.5, the average face): random
        # ones make the prior shares and the output depend on the input, as trained ones do
        for block in net.dafi.values():
            nn.init.normal_(block.mlp[-1].weight, std=0.5)
            nn.init.normal_(block.mlp[-1].bias, std=0.5)
        nn.init.normal_(net.encoder.head[-1].weight, std=0.02)
    return {name: module for name, (module, _) in split(net).items()}


def face_share_summary(info: dict) -> str:
    """'share from the face prior: 4 px 71 % · 8 px 64 % · ...' for one face (the stage's describe)."""
    shares = info.get("prior_share", {})
    levels = " · ".join(f"{r} px {100 * v:.0f} %" for r, v in sorted(feature_levels(shares).items(),
                                                                     key=lambda kv: int(kv[0])))
    if IMAGE in shares:
        levels += f" · final image {100 * shares[IMAGE]:.0f} %"
    return f"share taken from the learned face prior (0 % = from your photo): {levels}"


def prior_to_detail(position: float, limits: dict | None = None) -> dict:
    """0-100 -> prior_shift linearly over its whole range; 50 = as trained. (No network limits
    a Panini-Net setting: `limits` is accepted for the common signature and applied if given.)"""
    d = min(max(float(position), 0.0), 100.0) / 100.0
    return {"prior_shift": clamp_value(knob_of(PaniniSettings, "prior_shift"), round(SHIFT_LIMIT * (2 * d - 1), 2),
                                       limits)}


PANINI = Method(
    name="panini",
    title="Panini-Net",
    settings=PaniniSettings,
    stages=(
        Stage("panini", "Panini-Net", (INPUT,), ("prior_shift",), run_panini, lambda s: 1,
              "one pass: GAN face prior and LQ features blended per channel by the degradation",
              describe=face_share_summary, plot=prior_share_plot, plot_label="prior share per level"),
    ),
    networks=PARTS,
    assemble=assemble,
    tiny_networks=tiny_networks,
    drift_hint="try a lower prior strength",
    description="A face generator trained on clean faces (a GAN prior) redraws the face, while an "
                "encoder reads the low-quality photo. At every scale from 4 to 128 px the two are "
                "mixed feature by feature, and a last blend mixes the redrawn face with your photo, "
                "colour by colour; how much comes from the prior depends on how damaged the photo "
                "looks (a degradation encoder decides). One pass, no randomness.",
    simple=SimpleControl("Fidelity ↔ detail",
                         "Left: keep what is in your photo, defects included. Right: let the face prior "
                         "redraw more (cleaner, more generic). The middle is what the network learned.",
                         50.0, prior_to_detail),
)
