"""Train the degradation estimator (diffbfr/nets/estimator.py, read by diffbfr/auto.py): supervised, because we degrade the clean
faces ourselves with diffbfr's training degradations (degrade.sample_params) and so know
every parameter.

    python -m diffbfr.train estimator [--backbone cnn|dre] [--minutes 12] [--threads 2]

Labels (nets/estimator.py: FACTORS) of one (clean, params) pair:
- log2_scale: log2 of the downscale factor (0 without a resize step);
- blur: sqrt(sigma_x * sigma_y) of the blur step (0 without);
- noise: the std of what the noise step left in the *final* image, measured by degrading once
  more without the noise step (noise applied before a downscale or JPEG is partly removed, and
  the parameter alone would over-state it);
- jpeg: (100 - quality) / 80 (0 without JPEG);
- severity: from PSNR(LQ, reference), with the reference = the clean face with only the
  degradation's colour changes (jitter, greyscale) applied: a brightness shift is not lost
  detail, and restoration cannot (and should not) undo it.

Backbones: "cnn" trains estimator.ConvBody + head end to end on fresh degradations every batch;
"dre" computes the frozen Panini-Net DRE's vectors of a fixed set of degraded faces once and
trains the head on them (the file's sha256 is stored so a retrained DRE is detected).
Faces: the UTKFace train split (sharpness >= 30, as the DiffBFR placeholders); the last
--val faces by name are held out for validation. The test split is never touched here: the
benches (bench/auto_vs_fixed.py) report accuracy on it.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_network, save_network
from ..frame import to_batch
from ..nets.estimator import ESTIMATOR_FILE, FACTORS, EstimatorConfig, EstimatorNet, file_sha256, severity_from_psnr
from .data import iter_faces
from .degrade import DegradeParams, apply_params, sample_params
from .loop import log

NAME = "estimator"
SPAN = np.array([f.hi - f.lo for f in FACTORS], np.float32)
LO = np.array([f.lo for f in FACTORS], np.float32)
# The severity output drives the settings: weigh its error twice the others'.
WEIGHTS = torch.tensor([1.0, 1.0, 1.0, 1.0, 2.0])


# ---------------------------------------------------------------- labels
def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def colour_reference(clean: np.ndarray, p: DegradeParams) -> np.ndarray:
    """The clean face with only the colour part of `p` (jitter, greyscale) applied."""
    if p.jitter is None and not p.grey:
        return clean
    return apply_params(clean, dataclasses.replace(p, blur=None, down_factor=None, noise_kind=None,
                                                   jpeg_quality=None))


def labels(clean: np.ndarray, p: DegradeParams, lq: np.ndarray | None = None) -> np.ndarray:
    """auto.FACTORS of one degradation, in their units (see the module doc)."""
    lq = apply_params(clean, p) if lq is None else lq
    noise = 0.0
    if p.noise_kind is not None:
        quiet = apply_params(clean, dataclasses.replace(p, noise_kind=None))
        noise = float(np.std(lq.astype(np.float32) - quiet.astype(np.float32)))
    out = [math.log2(p.down_factor) if p.down_factor else 0.0,
           math.sqrt(p.blur[0] * p.blur[1]) if p.blur else 0.0,
           noise,
           (100 - p.jpeg_quality) / 80.0 if p.jpeg_quality is not None else 0.0,
           severity_from_psnr(_psnr(lq, colour_reference(clean, p)))]
    return np.clip(np.array(out, np.float32), LO, LO + SPAN)


def degraded_sample(clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(LQ face, its labels) from one fresh draw of the training degradations."""
    p = sample_params(rng)
    lq = apply_params(clean, p)
    return lq, labels(clean, p, lq)


def load_faces(n: int, val: int, size: int = 128) -> tuple[list[np.ndarray], list[np.ndarray]]:
    faces = [f for _, f in iter_faces("train", min_sharpness=30, limit=n + val, size=size)]
    return faces[:len(faces) - val], faces[len(faces) - val:]


def make_batch(faces: list[np.ndarray], rng: np.random.Generator, n: int) -> tuple[list, np.ndarray]:
    idx = rng.integers(0, len(faces), n)
    lqs, ys = [], []
    for i in idx:
        face = faces[i][:, ::-1] if rng.random() < 0.5 else faces[i]   # mirror: free variety
        lq, y = degraded_sample(np.ascontiguousarray(face), rng)
        lqs.append(lq)
        ys.append(y)
    return lqs, np.stack(ys)


# ---------------------------------------------------------------- loss and metrics
def loss_fn(net: EstimatorNet, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Weighted MSE of the outputs in [0, 1] units of each factor's range."""
    pred = torch.sigmoid(logits)
    target = (y - net.head.lo) / (net.head.hi - net.head.lo)
    return (((pred - target) ** 2) * WEIGHTS).mean()


def mae(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {f.name: float(np.mean(np.abs(pred[:, i] - y[:, i]))) for i, f in enumerate(FACTORS)}


def predict_batches(net: EstimatorNet, lqs: list[np.ndarray], batch: int = 64) -> np.ndarray:
    net.eval()
    out = []
    with torch.inference_mode():
        for lo in range(0, len(lqs), batch):
            out.append(net(to_batch(lqs[lo:lo + batch])).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(FACTORS)), np.float32)


# ---------------------------------------------------------------- the two trainers
def train_cnn(args, faces, val_lqs, val_y) -> tuple[EstimatorNet, dict]:
    net = EstimatorNet(EstimatorConfig(backbone="cnn"))
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    rng = np.random.default_rng(args.seed)
    t0, step, seen = time.perf_counter(), 0, 0
    budget = args.minutes * 60
    while time.perf_counter() - t0 < budget and (args.max_steps is None or step < args.max_steps):
        # cosine decay over the wall-clock budget: the run length is set in minutes, not steps
        frac = min((time.perf_counter() - t0) / budget, 1.0)
        for g in opt.param_groups:
            g["lr"] = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        lqs, y = make_batch(faces, rng, args.batch)
        net.train()
        loss = loss_fn(net, net.head.logits(net.features(to_batch(lqs))), torch.from_numpy(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step, seen = step + 1, seen + len(lqs)
        if step % args.log_every == 0:
            err = mae(predict_batches(net, val_lqs), val_y)
            log(f"step {step} loss {loss.item():.4f} val MAE " + " ".join(f"{k} {v:.3f}" for k, v in err.items())
                + f"  {seen / (time.perf_counter() - t0):.1f} faces/s {(time.perf_counter() - t0) / 60:.1f} min")
    return net, {"steps": step, "samples": seen, "minutes": round((time.perf_counter() - t0) / 60, 2)}


def dre_features(dre, lqs: list[np.ndarray], batch: int = 32) -> torch.Tensor:
    out = []
    with torch.inference_mode():
        for lo in range(0, len(lqs), batch):
            out.append(dre(to_batch(lqs[lo:lo + batch])).float())
    return torch.cat(out)


def train_dre(args, faces, val_lqs, val_y) -> tuple[EstimatorNet, dict]:
    t0 = time.perf_counter()
    dre = load_network(args.dre)
    rng = np.random.default_rng(args.seed)
    lqs, y = [], []
    for k in range(args.samples):   # fixed set: the frozen features are computed once
        lq, lab = degraded_sample(faces[k % len(faces)], rng)
        lqs.append(lq)
        y.append(lab)
    feats, y = dre_features(dre, lqs), torch.from_numpy(np.stack(y))
    log(f"DRE features of {len(lqs)} degraded faces in {time.perf_counter() - t0:.0f} s")
    net = EstimatorNet(EstimatorConfig(backbone="dre", feature_dim=feats.shape[1],
                                       dre_sha256=file_sha256(args.dre)), dre)
    net.head.mean.copy_(feats.mean(0))
    net.head.std.copy_(feats.std(0).clamp_min(1e-6))
    val_feats = dre_features(dre, val_lqs)
    opt = torch.optim.AdamW(net.head.parameters(), lr=args.lr, weight_decay=1e-3)
    g = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        net.train()
        for idx in torch.randperm(len(feats), generator=g).split(args.batch):
            loss = loss_fn(net, net.head.logits(feats[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if (epoch + 1) % max(args.epochs // 10, 1) == 0:
            with torch.inference_mode():
                err = mae(net.head(val_feats).numpy(), val_y)
            log(f"epoch {epoch + 1} loss {loss.item():.4f} val MAE " + " ".join(f"{k} {v:.3f}" for k, v in err.items()))
    return net, {"samples": len(lqs), "epochs": args.epochs, "minutes": round((time.perf_counter() - t0) / 60, 2)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m diffbfr.train estimator", description=__doc__.split("\n")[0])
    ap.add_argument("name", nargs="?", choices=[NAME], default=NAME, help=argparse.SUPPRESS)
    ap.add_argument("--backbone", choices=("cnn", "dre"), default="cnn")
    ap.add_argument("--dre", default="weights/panini/dre.safetensors", help="the DRE (backbone dre)")
    ap.add_argument("--faces", type=int, default=3000, help="UTKFace train faces (sharpness >= 30)")
    ap.add_argument("--val", type=int, default=200, help="of them, held out (one degradation each)")
    ap.add_argument("--minutes", type=float, default=12.0, help="cnn: wall-clock budget")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--samples", type=int, default=4000, help="dre: degraded faces whose features are computed")
    ap.add_argument("--epochs", type=int, default=200, help="dre: head epochs over those features")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--export", default="weights/estimator")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    faces, val_faces = load_faces(args.faces, args.val)
    val_rng = np.random.default_rng(10_000 + args.seed)
    val = [degraded_sample(f, val_rng) for f in val_faces]
    val_lqs, val_y = [v[0] for v in val], np.stack([v[1] for v in val])
    log(f"{len(faces)} training faces, {len(val_faces)} held out; backbone {args.backbone}")
    net, run = (train_cnn if args.backbone == "cnn" else train_dre)(args, faces, val_lqs, val_y)
    err = mae(predict_batches(net, val_lqs), val_y)
    params = sum(p.numel() for p in (net.head if args.backbone == "dre" else net).parameters())   # stored ones
    meta = {"trained_on": f"UTKFace train split, first {len(faces)} faces by name with sharpness >= 30, "
                          "degraded with diffbfr.train.degrade.sample_params (DEFAULT_RANGES)",
            "val_mae": err, "params": params, "factors": [dataclasses.asdict(f) for f in FACTORS],
            "cpu_minutes_total": round((time.perf_counter() - t0) / 60, 2), **run, "args": vars(args)}
    out = save_network(net, Path(args.export) / ESTIMATOR_FILE, meta)
    log(f"{params} params -> {out} ({out.stat().st_size / 2**20:.2f} MiB); held-out MAE "
        + " ".join(f"{k} {v:.3f}" for k, v in err.items()))


if __name__ == "__main__":
    main()
