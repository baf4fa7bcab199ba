"""Train the degradation estimator (diffbfr/nets/estimator.py, read by diffbfr/auto.py): supervised, because we degrade the clean
faces ourselves with diffbfr's training degradations (degrade.sample_params) and so know
every parameter.

    python -m diffbfr.train estimator [--backbone cnn|dre] [--minutes 12] [--threads 2]

It runs on loop.run like every trainer (--init-from scratch | resume | PATH, resume state in
runs/estimator, validation every --val-every steps and at the end, the loop's log and record).

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
from ..metrics import psnr
from ..nets.estimator import ESTIMATOR_FILE, FACTORS, EstimatorConfig, EstimatorNet, file_sha256, severity_from_psnr
from .data import iter_faces
from .degrade import DegradeParams, apply_params, sample_params
from .loop import Trainer, add_run_args, device_name, log, set_lr, train

NAME = "estimator"
SPAN = np.array([f.hi - f.lo for f in FACTORS], np.float32)
LO = np.array([f.lo for f in FACTORS], np.float32)
# The severity output drives the settings: weigh its error twice the others'.
WEIGHTS = torch.tensor([1.0, 1.0, 1.0, 1.0, 2.0])


# ---------------------------------------------------------------- labels
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
           severity_from_psnr(psnr(lq, colour_reference(clean, p)))]
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
    return (((pred - target) ** 2) * WEIGHTS.to(pred.device)).mean()


def mae(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {f.name: float(np.mean(np.abs(pred[:, i] - y[:, i]))) for i, f in enumerate(FACTORS)}


def predict_batches(net: EstimatorNet, lqs: list[np.ndarray], batch: int = 64, device="cpu") -> np.ndarray:
    net.eval()
    out = []
    with torch.inference_mode():
        for lo in range(0, len(lqs), batch):
            out.append(net(to_batch(lqs[lo:lo + batch]).to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(FACTORS)), np.float32)


# ---------------------------------------------------------------- the trainer
def dre_features(dre, lqs: list[np.ndarray], batch: int = 32) -> torch.Tensor:
    out = []
    with torch.inference_mode():
        for lo in range(0, len(lqs), batch):
            out.append(dre(to_batch(lqs[lo:lo + batch])).float())
    return torch.cat(out)


def epochs_of(n: int, batch: int, gen: torch.Generator):
    """Index batches of a fresh permutation of range(n), epoch after epoch."""
    while True:
        yield from torch.randperm(n, generator=gen).split(batch)


class EstimatorTrainer(Trainer):
    """The estimator for loop.run. cnn: ConvBody + head end to end, every batch freshly
    degraded, the learning rate decaying by cosine over the wall-clock budget (to 5 %). dre:
    the head alone on the frozen DRE's vectors of --samples degraded faces (computed once),
    --epochs passes at a constant learning rate. No EMA."""

    name = NAME
    warm_start = ("net",)
    log_first_step = False

    def __init__(self, args, device: torch.device):
        self.args, self.device = args, device
        torch.manual_seed(args.seed)
        self.faces, val_faces = load_faces(args.faces, args.val)
        val_rng = np.random.default_rng(10_000 + args.seed)
        val = [degraded_sample(f, val_rng) for f in val_faces]
        self.val_lqs, self.val_y = [v[0] for v in val], np.stack([v[1] for v in val])
        log(f"{len(self.faces)} training faces, {len(val_faces)} held out; backbone {args.backbone}")
        if args.backbone == "cnn":
            self.net = EstimatorNet(EstimatorConfig(backbone="cnn"))
            trained, decay, self.val_feats, every = self.net, 1e-4, None, 100
        else:
            self.net, self.feats, self.feat_y = self.dre_net()
            trained, decay = self.net.head, 1e-3
            self.val_feats = dre_features(self.net.dre, self.val_lqs)
            per_epoch = math.ceil(len(self.feats) / args.batch)
            if args.max_steps is None:
                args.max_steps = args.epochs * per_epoch
            every = per_epoch * max(args.epochs // 10, 1)   # a line every tenth of the epochs
        args.log_every = every if args.log_every is None else args.log_every
        args.val_every = every if args.val_every is None else args.val_every
        self.opt = torch.optim.AdamW(trained.parameters(), lr=args.lr, weight_decay=decay)
        self.config = self.net.config.to_dict()
        self.modules, self.optimizers = {"net": trained}, {"opt": self.opt}
        self.generators = {"batches": torch.Generator().manual_seed(args.seed)} if args.backbone == "dre" else {}
        self.val_mae: dict[str, float] = {}

    def dre_net(self) -> tuple[EstimatorNet, torch.Tensor, torch.Tensor]:
        """The head on the frozen DRE (input statistics set from the features) and the features
        and labels of --samples degraded training faces."""
        args, t0 = self.args, time.perf_counter()
        dre = load_network(args.dre)
        rng = np.random.default_rng(args.seed)
        lqs, y = [], []
        for k in range(args.samples):   # fixed set: the frozen features are computed once
            lq, lab = degraded_sample(self.faces[k % len(self.faces)], rng)
            lqs.append(lq)
            y.append(lab)
        feats = dre_features(dre, lqs)
        log(f"DRE features of {len(lqs)} degraded faces in {time.perf_counter() - t0:.0f} s")
        net = EstimatorNet(EstimatorConfig(backbone="dre", feature_dim=feats.shape[1],
                                           dre_sha256=file_sha256(args.dre)), dre)
        net.head.mean.copy_(feats.mean(0))
        net.head.std.copy_(feats.std(0).clamp_min(1e-6))
        return net, feats, torch.from_numpy(np.stack(y))

    def started(self, step: int, start: dict) -> None:
        self.net.to(self.device)
        if self.args.backbone == "cnn":  # resumed: a fresh stream of degradations, not a replay
            self.rng = np.random.default_rng(self.args.seed if step == 0 else [self.args.seed, step])
        else:
            self.feats, self.feat_y = self.feats.to(self.device), self.feat_y.to(self.device)
            self.batches = epochs_of(len(self.feats), self.args.batch, self.generators["batches"])

    def describe(self) -> str:
        a, params = self.args, sum(p.numel() for p in self.modules["net"].parameters())
        return (f"{NAME} ({a.backbone}): {params / 1e3:.0f} k params trained, batch {a.batch}, "
                f"device {device_name(self.device)}, lr {a.lr}")

    def learning_rate(self, step: int, args, clock) -> float:
        if args.backbone == "dre":
            return args.lr
        # the run's length is set in minutes, not steps: the cosine spans the wall-clock budget
        frac = min(clock.elapsed / clock.budget, 1.0)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    def train_step(self, step: int, lr: float) -> dict[str, torch.Tensor]:
        set_lr(self.opt, lr)
        self.net.train()
        if self.args.backbone == "cnn":
            lqs, y = make_batch(self.faces, self.rng, self.args.batch)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logits = self.net.head.logits(self.net.features(to_batch(lqs).to(self.device)))
            y = torch.from_numpy(y).to(self.device)
        else:
            idx = next(self.batches)
            logits, y = self.net.head.logits(self.feats[idx]), self.feat_y[idx]
        loss = loss_fn(self.net, logits.float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}

    def evaluate(self) -> dict[str, float]:
        if self.val_feats is None:
            pred = predict_batches(self.net, self.val_lqs, device=self.device)
        else:
            self.net.eval()
            pred = self.net.head(self.val_feats.to(self.device)).cpu().numpy()
        self.val_mae = mae(pred, self.val_y)
        return {f"val_mae_{k}": v for k, v in self.val_mae.items()}

    def val_line(self, v: dict[str, float]) -> str:
        return "val MAE " + " ".join(f"{k[8:]} {x:.3f}" for k, x in v.items())

    def record(self) -> dict:
        a = self.args
        return {"model": NAME, "config": self.config, "backbone": a.backbone, "batch": a.batch,
                "trained_on": f"UTKFace train split, first {len(self.faces)} faces by name with sharpness >= 30, "
                              "degraded with diffbfr.train.degrade.sample_params (DEFAULT_RANGES)",
                "val_faces": len(self.val_lqs),
                "params": sum(p.numel() for p in self.modules["net"].parameters()),   # the stored ones
                "factors": [dataclasses.asdict(f) for f in FACTORS],
                **({"samples": len(self.feats), "epochs": a.epochs} if a.backbone == "dre" else {})}

    def export(self, meta: dict) -> str:
        out = save_network(self.net.cpu(), Path(self.args.export) / ESTIMATOR_FILE, {**meta, "args": vars(self.args)})
        return (f"{meta['params']} params -> {out} ({out.stat().st_size / 2**20:.2f} MiB); held-out MAE "
                + " ".join(f"{k} {v:.3f}" for k, v in self.val_mae.items()))


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m diffbfr.train estimator", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", choices=[NAME], default=NAME, help=argparse.SUPPRESS)
    p.add_argument("--backbone", choices=("cnn", "dre"), default="cnn")
    p.add_argument("--dre", default="weights/panini/dre.safetensors", help="the DRE (backbone dre)")
    p.add_argument("--faces", type=int, default=3000, help="UTKFace train faces (sharpness >= 30)")
    p.add_argument("--val", type=int, default=200, help="of them, held out (one degradation each)")
    p.add_argument("--samples", type=int, default=4000, help="dre: degraded faces whose features are computed")
    p.add_argument("--epochs", type=int, default=200, help="dre: head epochs over those features (sets --max-steps)")
    # --ema, --warmup, --decay-steps and --lr-min-ratio are unused: no EMA, and the schedule is
    # EstimatorTrainer.learning_rate's. --log-every / --val-every default: cnn 100, dre a tenth of the epochs
    add_run_args(p, batch=32, lr=2e-3, minutes=12.0, warmup=0, export="weights/estimator")
    p.set_defaults(threads=2, log_every=None, val_every=None)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    return train(EstimatorTrainer, parse_args(argv))


if __name__ == "__main__":
    main()
