"""Panini-Net training's validation and sample sheets (panini_trainer.py runs them).

prior: D's mean logit on held-out reals, on as many training reals (a gap = D memorising) and on
EMA samples of fixed latents; the hybrid prior also rebuilds the held-out faces through its
encoder. restore: L1, PSNR and mean DAFI prior share per level of degrade.fixed_degrade.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..frame import to_images
from ..image_out import stage_strip
from ..metrics import psnr_per_image
from ..nets.panini_prior import d_logistic_loss
from .panini_steps import autocast

def in_batches(fn, x: torch.Tensor, batch: int, device) -> list:
    return [fn(x[s:s + batch].to(device)) for s in range(0, len(x), batch)]


def d_score(d, feats):
    """Images -> one logit per image, for either discriminator (projected: mean of its patch logits)."""
    if feats is None:
        return lambda x: d(x).float().flatten()
    return lambda x: torch.stack([o.float().flatten(1).mean(1) for o in d(feats(x))]).mean(0)


@torch.no_grad()
def prior_val(g_ema, d, feats, enc, held, train_real, z, device, batch: int, bf16: bool) -> dict:
    """D's mean logit on held-out reals, training reals (a gap = D memorising) and EMA samples;
    for the hybrid prior also the PSNR of held-out faces rebuilt through the encoder and G's EMA."""
    score = d_score(d, feats)
    with autocast(device, bf16):
        fake = torch.cat(in_batches(lambda zb: g_ema(zb, noise_mode="const", update_w_avg=False).float(),
                                    z, batch, device))
        logit = {k: torch.cat(in_batches(score, x, batch, device))
                 for k, x in (("held", held), ("train", train_real), ("fake", fake))}
    out = {"val_loss": d_logistic_loss(logit["held"], logit["fake"]).item(),
           "val_d_real": logit["held"].mean().item(), "val_d_train": logit["train"].mean().item(),
           "val_d_fake": logit["fake"].mean().item()}
    if enc is not None:
        with autocast(device, bf16):
            rec = torch.cat(in_batches(lambda x: g_ema.synthesis(enc(x, w_avg=g_ema.w_avg)[1], noise_mode="const")
                                       .float().clamp(-1, 1), held, batch, device))
        out["val_rec_psnr"] = psnr_per_image(rec, held.to(device), 2.0).mean().item()
    return out


@torch.no_grad()
def restore_val(nets: dict, hq, lqs: dict, device, batch: int, bf16: bool) -> dict:
    out, modes = {}, {k: n.training for k, n in nets.items()}
    for name, net in nets.items():
        net.eval()
        for level, lq in lqs.items():
            l1 = psnr = share = image_share = 0.0
            for s in range(0, len(hq), batch):
                with autocast(device, bf16):
                    o = net(lq[s:s + batch].to(device), noise_mode="const")
                image, target = o["image"].float().clamp(-1, 1), hq[s:s + batch].to(device)
                l1 += (image - target).abs().mean((1, 2, 3)).sum().item()
                psnr += psnr_per_image(image, target, 2.0).sum().item()
                share += sum(m.float().mean(1) for m in o["masks"].values()).sum().item() / len(o["masks"])
                if "image_share" in o:
                    image_share += o["image_share"].float().mean(1).sum().item()
            tag = "" if name == "ema" else f"_{name}"
            out[f"val_l1_{level}{tag}"] = l1 / len(hq)
            if name == "ema":
                out[f"val_psnr_{level}"], out[f"val_prior_{level}"] = psnr / len(hq), share / len(hq)
                if image_share:
                    out[f"val_image_prior_{level}"] = image_share / len(hq)
                # the LQ face itself (the degraded face brought back to 128 px): the bar to beat
                out[f"val_psnr_{level}_lq"] = psnr_per_image(lq.float().clamp(-1, 1), hq, 2.0).mean().item()
        net.train(modes[name])
    out["val_loss"] = sum(out[f"val_l1_{lv}"] for lv in lqs) / len(lqs)
    out["val_loss_raw"] = sum(out[f"val_l1_{lv}_raw"] for lv in lqs) / len(lqs)
    return out



def sample_sheet(b: dict, prior: bool, val, path: Path, device, n: int = 16) -> Path:
    """prior: n EMA samples of fixed latents, 8 a row (the hybrid prior: then 8 held-out faces
    and their rebuilds through the encoder); restore: per held-out face, (LQ, EMA result) per
    evaluation level, then HQ."""
    with torch.no_grad():
        if prior:
            g = b["ema"]
            imgs = to_images(g(val["z"][:n].to(device), noise_mode="const", update_w_avg=False))
            rows = [imgs[i:i + 8] for i in range(0, len(imgs), 8)]
            if b.get("enc") is not None:
                held = val["hq"][:8].to(device)
                rows += [to_images(held), to_images(g.synthesis(b["enc"](held, w_avg=g.w_avg)[1], noise_mode="const"))]
        else:
            net, hq = b["ema"].eval(), to_images(val["hq"][:6])
            outs = {lv: to_images(net(lq[:6].to(device), noise_mode="const")["image"]) for lv, lq in val["lqs"].items()}
            rows = [sum(([to_images(val["lqs"][lv][k:k + 1])[0], outs[lv][k]] for lv in outs), []) + [hq[k]]
                    for k in range(len(hq))]
    path.parent.mkdir(parents=True, exist_ok=True)
    strips = [stage_strip(r, r[0].shape[0]) for r in rows]
    width = max(s.shape[1] for s in strips)  # a short row (few held-out faces) is padded with white
    strips = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips]
    Image.fromarray(np.concatenate(strips)).save(path, format="PNG", compress_level=1)
    return path
