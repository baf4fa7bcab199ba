"""Pretrain Panini-Net's degradation representation encoder (DRE) by contrast.  The shipped CPU run:
    python -m diffbfr.train dre --minutes 30 --threads 2 --warmup 100 --decay-steps 1200 --momentum 0.99 --queue 1024
(add --init-from scratch | resume | PATH; the same trainer is python -m diffbfr.train dre ...)

Reads top to bottom: arguments -> faces (UTKFace train split, or a pack) split into train /
held-out -> MoCo (query DRE + head, momentum key copy, queue) and Adam -> initialisation
(--init-from scratch | resume | PATH) -> loop with warm-up, momentum update, wall-clock budget,
held-out validation, resume saves -> export of the *query* encoder without its head.

Positive pair (Panini-Net's variant of DASR): two DIFFERENT faces degraded with the SAME draw
of degrade.sample_params; the negatives are the queue's keys (other draws, other faces).  A
face is never its own positive, so the only thing a query can match on is the degradation.
The two faces get *independent noise realisations* (the same noise kind, level and colour,
a different noise_seed): the realisation is not part of the degradation (two photos from one
camera never share it), and a shared Gaussian noise field is pixel-identical in both images,
a fingerprint the encoder could match instead of learning the noise level.
Each face is degraded whole at 128 px (down-sampling, blur borders and JPEG see the frame they
see at inference), then a random crop (--crop, 48 px) is cut at a multiple of 16 px, so JPEG's
8 px luma blocks and 16 px chroma blocks line up with the crop as they do with a whole face.
Crops are for CPU speed (DASR trains on patches too); the global pool lets the DRE take whole
128 px faces at inference, and validation measures it on whole faces.

Momentum and queue: the queue must hold keys of (nearly) one encoder, i.e. span fewer steps
(queue / batch) than the key encoder's time constant 1 / (1 - momentum).  MoCo's defaults
(0.999, 8192 keys) do at large batches but learn slowly in a short run; the shipped CPU run used
--momentum 0.99 --queue 1024 (64 steps of batch 16 against a time constant of 100 steps).

Validation: the held-out faces (loop.holdout) in fixed pairs with fixed degradations (VAL_SEED),
whole 128 px faces, eval mode: val_top1 = how often a query's nearest DRE vector (cosine) among
all held-out keys is its positive (chance 1 / pairs), and val_loss = in-batch InfoNCE of the head.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..frame import FRAME, to_batch
from ..nets.panini_dre import TINY, DREConfig, MoCo
from .data import PackDataset, iter_faces
from .degrade import DEFAULT_RANGES, DegradeParams, DegradeRanges, apply_params, sample_params
from .loop import Trainer, add_run_args, device_name, export, holdout, log, set_lr, train

NAME = "dre"
CROP_GRID = 16        # crop offsets are multiples of this (JPEG 4:2:0 MCU)
VAL_SEED = 20240601   # fixed: the validation pairs do not move with --seed
VAL_PAIRS = 48


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", choices=[NAME], default=NAME, help=argparse.SUPPRESS)
    p.add_argument("--pack", default=None, help="training pack (default: read the UTKFace train split directly)")
    p.add_argument("--data-dir", default=None, help="default: $DIFFBFR_DATA or ../shared/data")
    p.add_argument("--limit", type=int, default=5000, help="faces read from the train split (0: all)")
    p.add_argument("--min-sharpness", type=float, default=30.0,
                   help="skip soft train faces: a face that is blurry before we degrade it blurs the label")
    p.add_argument("--crop", type=int, default=48, help="training crop side, cut from the degraded 128 px face")
    p.add_argument("--queue", type=int, default=8192, help="negatives kept in the MoCo queue")
    p.add_argument("--temperature", type=float, default=0.07)
    p.add_argument("--share-noise", action="store_true", help="both faces of a pair get the same noise realisation")
    p.add_argument("--tiny", action="store_true", help="the TINY DRE (tests and dry runs)")
    p.add_argument("--momentum", type=float, default=0.999,
                   help="MoCo momentum of the key encoder (constant, no warm-up: see MoCo.momentum_step)")
    # --ema is unused: the key encoder is the momentum copy, and the query encoder is shipped
    add_run_args(p, batch=16, lr=1e-3, minutes=30.0, ema=0.999, warmup=100, export="weights/panini")
    p.set_defaults(val_every=250, log_every=20)
    return p.parse_args(argv)


# ---------------------------------------------------------------- data
def load_faces(args) -> tuple[list[str], np.ndarray]:
    """(names, N x 128 x 128 x 3 uint8): the pack, or the train split read from the shards."""
    if args.pack:
        pack = PackDataset(args.pack, size=FRAME, hflip=False)
        return list(pack.names), np.stack([pack[i] for i in range(len(pack))])
    names, faces = [], []
    for name, face in iter_faces("train", args.data_dir, args.min_sharpness, args.limit or None, size=FRAME):
        names.append(name)
        faces.append(face)
    return names, np.stack(faces)


def crop_at(rng: np.random.Generator, img: np.ndarray, crop: int, grid: int = CROP_GRID) -> np.ndarray:
    """A crop x crop window whose top-left corner lies on the grid (the whole image if crop >= side)."""
    side = img.shape[0]
    if crop >= side:
        return img
    y, x = (int(rng.integers((side - crop) // grid + 1)) * grid for _ in range(2))
    return img[y:y + crop, x:x + crop]


@dataclass
class Pair:
    query: np.ndarray                    # degraded crop of face i
    key: np.ndarray                      # degraded crop of face j (j != i)
    faces: tuple[int, int]               # (i, j): indices into the sampler's face array
    params: tuple[DegradeParams, DegradeParams]


class PairSampler:
    """Positive pairs: one degradation draw applied to two different faces (see module docstring).

    ``indices``: the faces it may use (the training slice); ``crop`` None keeps whole faces.
    """

    def __init__(self, faces: np.ndarray, indices: Sequence[int] | None = None, crop: int | None = 48,
                 ranges: DegradeRanges = DEFAULT_RANGES, share_noise: bool = False, hflip: bool = True):
        self.faces = faces
        self.indices = np.arange(len(faces)) if indices is None else np.asarray(indices)
        if len(self.indices) < 2:
            raise ValueError("a positive pair needs at least two different faces")
        self.crop, self.ranges, self.share_noise, self.hflip = crop, ranges, share_noise, hflip

    def _view(self, i: int, p: DegradeParams, rng: np.random.Generator) -> np.ndarray:
        face = self.faces[i]
        if self.hflip and rng.random() < 0.5:
            face = face[:, ::-1]  # flip the clean face: the drawn blur angle stays as drawn
        lq = apply_params(np.ascontiguousarray(face), p)
        return lq if self.crop is None else crop_at(rng, lq, self.crop)

    def pair(self, rng: np.random.Generator) -> Pair:
        i, j = (int(v) for v in rng.choice(self.indices, size=2, replace=False))
        pq = sample_params(rng, self.ranges)
        pk = pq if self.share_noise else dataclasses.replace(pq, noise_seed=int(rng.integers(0, 2**31 - 1)))
        return Pair(self._view(i, pq, rng), self._view(j, pk, rng), (i, j), (pq, pk))

    def batch(self, n: int, rng: np.random.Generator) -> dict:
        """{"query", "key": float n x 3 x c x c in [-1, 1], "faces": long n x 2, "pairs": [Pair]}."""
        pairs = [self.pair(rng) for _ in range(n)]
        return {"query": to_batch([p.query for p in pairs]), "key": to_batch([p.key for p in pairs]),
                "faces": torch.tensor([p.faces for p in pairs]), "pairs": pairs}


class PairBatches(torch.utils.data.IterableDataset):
    """Endless batches; batch ``step`` is drawn from default_rng([seed, step]) alone, so a resumed
    run continues the same stream and DataLoader workers (round-robin over steps) keep the order."""

    def __init__(self, sampler: PairSampler, batch: int, seed: int, start_step: int):
        self.sampler, self.batch, self.seed, self.start_step = sampler, batch, seed, start_step

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        step = self.start_step + wid
        while True:
            b = self.sampler.batch(self.batch, np.random.default_rng([self.seed, step]))
            yield {"query": b["query"], "key": b["key"]}
            step += nw


# ---------------------------------------------------------------- one step, validation
def train_step(moco: MoCo, opt: torch.optim.Optimizer, xq: torch.Tensor, xk: torch.Tensor,
               bf16: bool = False) -> dict:
    """Momentum update of the key side, InfoNCE, one optimizer step.  Also returns top1 (the
    positive beats the whole queue) and q_sim, the mean cosine between the batch's queries:
    near 1 means every face maps to one vector (collapse), whatever the loss says."""
    moco.momentum_step()
    with torch.autocast(xq.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = moco(xq, xk)
    opt.zero_grad(set_to_none=True)
    out["loss"].backward()
    opt.step()
    with torch.no_grad():
        q, n = out["q"], len(out["q"])
        q_sim = ((q @ q.T).sum() - n) / max(n * (n - 1), 1)
        top1 = (out["logits"].argmax(1) == 0).float().mean()
    return {"loss": out["loss"].detach(), "top1": top1, "q_sim": q_sim}


def val_set(faces: np.ndarray, val_idx: Sequence[int], pairs: int = VAL_PAIRS) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed held-out pairs (faces val_idx[2m], val_idx[2m+1]), whole 128 px, VAL_SEED degradations."""
    idx = list(val_idx)[:2 * pairs]
    rng = np.random.default_rng(VAL_SEED)
    q, k = [], []
    for a, b in zip(idx[0::2], idx[1::2]):
        p = sample_params(rng)
        q.append(apply_params(faces[a], p))
        k.append(apply_params(faces[b], dataclasses.replace(p, noise_seed=p.noise_seed + 1)))
    return to_batch(q), to_batch(k)


@torch.no_grad()
def val_metrics(moco: MoCo, xq: torch.Tensor, xk: torch.Tensor, device: torch.device, bf16: bool = False) -> dict:
    enc, head = moco.encoder_q, moco.head_q
    modes = (enc.training, head.training)
    enc.eval(), head.eval()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        fq, fk = enc(xq.to(device)).float(), enc(xk.to(device)).float()
        hq, hk = F.normalize(head(fq).float(), dim=1), F.normalize(head(fk).float(), dim=1)
    enc.train(modes[0]), head.train(modes[1])
    sim = F.normalize(fq, dim=1) @ F.normalize(fk, dim=1).T
    labels = torch.arange(len(xq), device=device)
    return {"val_top1": (sim.argmax(1) == labels).float().mean().item(),
            "val_loss": F.cross_entropy(hq @ hk.T / moco.temperature, labels).item()}


# ---------------------------------------------------------------- the trainer
class DRETrainer(Trainer):
    """The contrastive DRE pretraining for loop.run. No EMA: the key encoder is the momentum
    copy, and the query encoder is shipped."""

    name = NAME
    warm_start = ("encoder_q", "encoder_k")
    log_first_step = False
    unit = "pairs"

    def __init__(self, args, device: torch.device):
        self.args, self.device = args, device
        self.cuda = device.type == "cuda"
        # data: every face in memory (5,000 x 48 KiB); a fixed held-out slice never trained on
        names, faces = load_faces(args)
        self.train_idx, self.val_idx = holdout(names)
        self.val_q, self.val_k = val_set(faces, self.val_idx)
        self.sampler = PairSampler(faces, self.train_idx, args.crop, share_noise=args.share_noise)
        log(f"{len(self.train_idx)} training faces, {len(self.val_idx)} held out ({len(self.val_q)} validation pairs)")

        # model and optimizer: only the query side learns; the key side follows by momentum
        torch.manual_seed(args.seed)
        cfg = TINY if args.tiny else DREConfig()
        self.config = cfg.to_dict()
        self.moco = MoCo(cfg, queue_size=args.queue, momentum=args.momentum, temperature=args.temperature)
        self.opt = torch.optim.Adam(self.moco.query_parameters(), lr=args.lr)
        self.modules, self.optimizers = self.moco.parts(), {"opt": self.opt}

    def started(self, step: int, start: dict) -> None:
        args = self.args
        self.moco.to(self.device)
        if self.cuda:
            self.moco.to(memory_format=torch.channels_last)
        self.params = sum(p.numel() for p in self.moco.encoder_q.parameters())
        loader = torch.utils.data.DataLoader(PairBatches(self.sampler, args.batch, args.seed, step), batch_size=None,
                                             num_workers=args.workers, persistent_workers=args.workers > 0,
                                             pin_memory=self.cuda)
        self.data = iter(loader)  # endless; the budget or --max-steps ends training

    def describe(self) -> str:
        a = self.args
        return (f"{NAME}: {self.params / 1e6:.3f} M params (query encoder), batch {a.batch} pairs of {a.crop} px crops, "
                f"queue {a.queue}, device {device_name(self.device)}, lr {a.lr} warm-up {a.warmup}")

    def speed_probe(self, bf16: bool) -> None:
        xq = self.val_q[:self.args.batch].to(self.device)  # the query side: what backward runs through
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = self.moco.head_q(self.moco.encoder_q(xq))
        out.float().square().mean().backward()
        self.moco.zero_grad(set_to_none=True)

    def evaluate(self) -> dict[str, float]:
        return val_metrics(self.moco, self.val_q, self.val_k, self.device, bf16=self.bf16)

    def val_line(self, v: dict) -> str:
        return f"val_top1 {v['val_top1']:.3f} val_loss {v['val_loss']:.4f}"

    def train_step(self, step: int, lr: float) -> dict[str, torch.Tensor]:
        b = next(self.data)
        xq, xk = b["query"].to(self.device, non_blocking=True), b["key"].to(self.device, non_blocking=True)
        if self.cuda:
            xq, xk = (x.contiguous(memory_format=torch.channels_last) for x in (xq, xk))
        set_lr(self.opt, lr)
        return train_step(self.moco, self.opt, xq, xk, bf16=self.bf16)

    def record(self) -> dict:
        a = self.args
        return {"model": NAME, "config": self.config, "batch": a.batch, "crop": a.crop, "queue": a.queue,
                "temperature": a.temperature, "momentum": a.momentum, "share_noise": a.share_noise,
                "val_pairs": len(self.val_q), "val_faces": len(self.val_idx), "train_faces": len(self.train_idx),
                "data": str(a.pack or f"utkface train, min_sharpness {a.min_sharpness}, limit {a.limit}"),
                "params": self.params}

    def export(self, meta: dict) -> str:
        # the query encoder (no head) is the shipped DRE
        out = export(self.moco.encoder_q.cpu(), Path(self.args.export) / f"{NAME}.safetensors", self.config,
                     self.args, meta)
        return f"exported the query encoder to {out}"


def main(argv=None) -> dict:
    return train(DRETrainer, parse_args(argv))


if __name__ == "__main__":
    main()
