"""--loss x0-adv: a denoiser whose clean-face estimate is pushed towards *a* real face, not
the average of every face its noisy input could have come from (diffusion_trainer.py).

An MSE or L1 denoiser predicts the mean (or median) of p(x0 | x_t): at the noise levels TEM
visits that mean is smooth, which is why a few-step TEM returns the smooth face it was given.
Here the x0 that the network's v implies is trained with L1 (fidelity) + a perceptual L1 and an
adversarial term on frozen EfficientNet-Lite0 features (projected_d.py): the critic judges
clean faces against the denoiser's estimates, as in denoising diffusion GANs (Xiao et al.,
2022), so the estimate keeps the texture a real face has. Still a model of clean faces only:
it sees noised clean faces and nothing else. The bench scores with Lite2, never Lite0.
"""
from __future__ import annotations

import torch

from .projected_d import ProjectedConfig, ProjectedDiscriminator, critic_step, features_of, realism_terms


class AdversarialX0:
    """The critic, its optimizer and the two extra loss terms of --loss x0-adv."""

    def __init__(self, args, tiny: bool = False):
        self.args = args
        self.d = ProjectedDiscriminator(ProjectedConfig(width=16, features="tiny") if tiny
                                        else ProjectedConfig(feature_size=args.feature_size))
        self.feats = features_of(self.d.config)
        self.opt = torch.optim.Adam(self.d.parameters(), lr=args.d_lr, betas=(0.0, 0.99))

    def to(self, device):
        self.d.to(device)
        self.feats.to(device)
        return self

    def generator_terms(self, x0_hat: torch.Tensor, x0: torch.Tensor, bf16: bool) -> dict:
        """w_perc * perceptual L1 + w_adv * hinge G loss of the estimate (D frozen for this pass)."""
        perc, adv = realism_terms(self.d, self.feats, x0_hat, x0, bf16, adversarial=self.args.w_adv > 0)
        return {"perc": perc, "adv": adv, "total": self.args.w_perc * perc + self.args.w_adv * adv}

    def d_step(self, x0: torch.Tensor, x0_hat: torch.Tensor, bf16: bool) -> torch.Tensor:
        return critic_step(self.d, self.feats, self.opt, x0, x0_hat, bf16)
