"""One optimisation step of each Panini-Net training stage (diffbfr/train/panini_trainer.py drives them).

d_step: the discriminator, shared by both stages (logistic loss, lazy R1 on the reals);
prior_step: D then the unconditional generator (non-saturating loss, style mixing);
restore_step: D then the whole PaniniNet on (HQ, LQ) pairs (L1 + adversarial + feature matching);
projected_*: the same with the projected discriminator of projected_d.py (the default).
Each returns its losses as detached device tensors, so the caller can sum them without a sync.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nets.panini_prior import R1_INTERVAL, d_logistic_loss, feature_matching_loss, g_nonsaturating_loss, r1_penalty
from .projected_d import critic_step, g_hinge_loss, realism_terms, translate


def autocast(device: torch.device, bf16: bool):
    """bfloat16 autocast when bf16 is on (the trainer turns it on for CUDA), else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def d_step(d, d_opt, real, fake, step: int, gamma: float, bf16: bool) -> dict:
    """Logistic D loss on real vs (detached) fake; every R1_INTERVAL steps plus lazy R1 on the
    reals, weighted gamma / 2 * R1_INTERVAL, in float32 (a double backward)."""
    d.requires_grad_(True)
    with autocast(real.device, bf16):
        loss = d_logistic_loss(d(real), d(fake.detach()))
    total, out = loss, {"d_loss": loss.detach()}
    if gamma > 0 and step % R1_INTERVAL == 0:
        r1 = r1_penalty(d, real.float())
        total, out["r1"] = loss + r1 * (gamma / 2 * R1_INTERVAL), r1.detach()
    d_opt.zero_grad(set_to_none=True)
    total.backward()
    d_opt.step()
    d.requires_grad_(False)  # the G step only needs gradients through D, not for it
    return out


def prior_step(g, d, g_opt, d_opt, real, step: int, args, bf16: bool) -> dict:
    z = torch.randn(real.shape[0], g.z_dim, device=real.device)
    with torch.no_grad(), autocast(real.device, bf16):
        fake = g(z, mixing_prob=args.mixing)
    out = d_step(d, d_opt, real, fake, step, args.r1_gamma, bf16)
    with autocast(real.device, bf16):
        g_loss = g_nonsaturating_loss(d(g(torch.randn_like(z), mixing_prob=args.mixing)))
    g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    g_opt.step()
    return {**out, "loss": g_loss.detach()}


def restore_step(net, d, opt, d_opt, hq, lq, step: int, args, bf16: bool) -> dict:
    with autocast(hq.device, bf16):
        image = net(lq, noise_mode="const")["image"]
    out = d_step(d, d_opt, hq, image, step, args.r1_gamma, bf16)
    with autocast(hq.device, bf16):
        fake_logit, fake_feats = d(image, return_features=True)
        with torch.no_grad():
            _, real_feats = d(hq, return_features=True)
    l1 = F.l1_loss(image.float(), hq)
    adv, fm = g_nonsaturating_loss(fake_logit), feature_matching_loss(fake_feats, real_feats)
    loss = args.w_l1 * l1 + args.w_adv * adv + args.w_fm * fm
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    return {**out, "loss": loss.detach(), "l1": l1.detach(), "adv": adv.detach(), "fm": fm.detach()}


# ---------------------------------------------------------------- projected discriminator (--disc projected)
# D's heads judge frozen Lite0 features (projected_d.py: critic_step, realism_terms); the G side's
# perceptual term reads the same features as its adversarial term.
def reconstruction_loss(image, target, d, feats, args, bf16: bool) -> dict:
    """L1 + w_perc * Lite0 perceptual L1 + w_adv * hinge G loss of `image` against `target`."""
    perc, adv = realism_terms(d, feats, image, target, bf16, adversarial=args.w_adv > 0)
    l1 = F.l1_loss(image.float(), target)
    return {"l1": l1, "perc": perc, "adv": adv, "total": args.w_l1 * l1 + args.w_perc * perc + args.w_adv * adv}


def projected_prior_step(g, enc, d, feats, g_opt, d_opt, real, args, bf16: bool) -> dict:
    """D on reals vs samples of z; G on its samples (hinge), and with --ae-weight > 0 (the hybrid
    prior) also an autoencoder step: the encoder reads a clean face and G rebuilds it from W+
    (reconstruction_loss), so G learns faces from pixels as well as from D."""
    z = torch.randn(real.shape[0], g.z_dim, device=real.device)
    with torch.no_grad(), autocast(real.device, bf16):
        fake = g(z, mixing_prob=args.mixing)
    out = {"d_loss": critic_step(d, feats, d_opt, real, fake, bf16)}
    with autocast(real.device, bf16):
        adv = g_hinge_loss(d(feats(translate(g(torch.randn_like(z), mixing_prob=args.mixing)))))
    loss = args.w_gan * adv.float()
    if enc is not None and args.ae_weight > 0:
        with autocast(real.device, bf16):
            _, ws = enc(real, w_avg=g.w_avg)
            rec = g.synthesis(ws, noise_mode="const")
        rl = reconstruction_loss(rec, real, d, feats, args, bf16)
        loss = loss + args.ae_weight * rl["total"]
        out.update(rec_l1=rl["l1"].detach(), rec_perc=rl["perc"].detach())
    g_opt.zero_grad(set_to_none=True)
    loss.backward()
    g_opt.step()
    return {**out, "loss": adv.detach().float()}


def projected_restore_step(net, d, feats, opt, d_opt, hq, lq, args, bf16: bool) -> dict:
    with autocast(hq.device, bf16):
        image = net(lq, noise_mode="const")["image"]
    out = {"d_loss": critic_step(d, feats, d_opt, hq, image, bf16)}
    rl = reconstruction_loss(image, hq, d, feats, args, bf16)
    opt.zero_grad(set_to_none=True)
    rl["total"].backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    return {**out, "loss": rl["total"].detach(), "l1": rl["l1"].detach(), "perc": rl["perc"].detach(),
            "adv": rl["adv"].detach()}
