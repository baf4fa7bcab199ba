"""Train one DiffBFR diffusion network:  python -m diffbfr.train irm64|irm128|tem128 --pack packs/gpu128.tar --init-from scratch

Reads top to bottom: arguments -> data (train / held-out split) -> model, EMA, optimizer ->
initialisation (--init-from scratch | resume | PATH, never implicit) -> loop with warm-up +
cosine learning rate, EMA, wall-clock budget, periodic validation and resume saves -> final
validation, resume state, export of the EMA weights with every argument and the numbers.

Training pairs: diffbfr/train/pairs.py (target, condition, and the image sampling starts from).

The recipe (chosen by the probes in weights/diffbfr/README.md):
  * timesteps drawn uniformly from (0, --t-max]: only the range the app's truncated sampler
    visits. --t-max is stored in the network's config, and the app never starts above it.
  * --loss x0-l1: L1 between the clean face and the x0 the network's v implies (the sampler still
    reads v); v-mse is the classic loss. x0-l1 pulls towards the mean less than MSE and, on a
    short CPU budget, restores far better at the start steps the app uses.
  * --lq-start: the share of noisy inputs built from the sampler's start image (the LQ face,
    or the stage-1 result) rather than from the target, so the network learns the input its
    first sampling step really sees.
  * --arch shuffle: the CPU-shaped network of nets/shufflenet.py; --crop trains the 128 px
    nets on crops.

Validation: the faces of the pack whose names hash lowest (2 %, at least 16; loop.holdout)
are held out and never trained on, with fixed degradations (seeded by VAL_SEED, not by --seed).
Every --val-every steps and at the end: the training loss at the fixed timesteps VAL_T (those
within --t-max) with fixed noise, for the EMA (what is shipped) and the raw model; and the PSNR
of the EMA's truncated sampling (the app's sampler) from each of VAL_STARTS on the first
VAL_SAMPLED faces, beside the PSNR of the start image itself (for the IRM nets, the baseline
the network has to beat: the LQ face, or the stage-1 stand-in).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from ..diffusion import schedule as diffusion
from ..diffusion.samplers import truncated_sample
from ..metrics import psnr_per_image
from ..nets.unet import SHUFFLE_OVERRIDES, TINY_OVERRIDES, UNetConfig, build, network, param_count
from .data import PackDataset
from .loop import Trainer, add_run_args, device_name, export, holdout, log, set_lr, train
from .adversarial_x0 import AdversarialX0
from .pairs import NETS, PairDataset, stacked

VAL_T = (20.0, 100.0, 200.0, 400.0, 700.0)        # loss timesteps (those <= --t-max are used)
VAL_STARTS = {                                     # (start step, steps) of the sampled PSNR
    "irm64": ((50.0, 2), (200.0, 4), (400.0, 10)),
    "irm128": ((50.0, 2), (200.0, 4), (400.0, 10)),
    "tem128": ((5.0, 2), (20.0, 2), (50.0, 2)),
}
VAL_FACES = 128   # of the held-out faces, for the loss (validation is ~10 % of a CPU run's time at --val-every 1000)
VAL_SAMPLED = 64  # ... and for the sampled PSNR
VAL_SEED = 20240601                  # fixed: the validation set does not move with --seed
LOSSES = ("x0-l1", "v-mse", "x0-adv")  # x0-adv: x0-l1 + perceptual + adversarial (adversarial_x0.py)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=NETS)
    p.add_argument("--pack", required=True, help="training pack written by `python -m diffbfr.train.data pack`")
    p.add_argument("--arch", choices=("shuffle", "unet"), default="shuffle",
                   help="shuffle: the CPU-shaped net (nets/shufflenet.py); unet: nets/unet.py")
    p.add_argument("--t-max", type=float, default=None,
                   help="largest trained timestep, stored in the config (default 400 for IRM, 100 for TEM)")
    p.add_argument("--loss", choices=LOSSES, default="x0-l1")
    p.add_argument("--lq-start", type=float, default=0.5,
                   help="share of noisy inputs built from the sampler's start image (x0 losses only; not TEM)")
    p.add_argument("--crop", type=int, default=0, help="train on random crops of this side (128 px nets)")
    p.add_argument("--w-perc", type=float, default=0.05, help="x0-adv: Lite0 perceptual L1 weight")
    p.add_argument("--w-adv", type=float, default=0.02, help="x0-adv: adversarial (hinge) weight")
    p.add_argument("--d-lr", type=float, default=2e-4, help="x0-adv: the critic's learning rate")
    p.add_argument("--feature-size", type=int, default=128,
                   help="x0-adv: side Lite0 sees (crops are resized to it); 0 = the crop's own, 4x cheaper at 64")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--base-channels", type=int, default=None, help="override the default width")
    p.add_argument("--tiny", action="store_true", help="a tiny network (tests and dry runs)")
    add_run_args(p, batch=32, lr=2e-4, minutes=10.0, ema=0.999, warmup=200, export="weights/diffbfr")
    args = p.parse_args(argv)
    if args.t_max is None:
        args.t_max = 100.0 if args.model == "tem128" else 400.0
    if args.model == "tem128" or args.loss == "v-mse":
        args.lq_start = 0.0  # TEM starts from a (restored) clean face; v-mse's target needs x_t from x0
    return args


def sample_t(n: int, t_max: float, gen: torch.Generator) -> torch.Tensor:
    """Continuous timesteps, uniform in (0, t_max]."""
    return (torch.rand(n, generator=gen) * t_max).clamp_min(1e-3)


def noisy_input(x0, start, t, noise, lq_start: float, gen: torch.Generator) -> torch.Tensor:
    """x_t: from the target, or (a share lq_start of the batch) from the sampler's start image."""
    src = x0
    if lq_start > 0:
        pick = (torch.rand(x0.shape[0], generator=gen) < lq_start).view(-1, 1, 1, 1).to(x0.device)
        src = torch.where(pick, start, x0)
    return diffusion.q_sample(src, t, noise)


def loss_of(v, x_t, x0, t, noise, kind: str) -> torch.Tensor:
    if kind in ("x0-l1", "x0-adv"):  # the clean face the prediction implies, against the real one
        x0_hat, _ = diffusion.split_v(x_t, t, v)
        return (x0_hat - x0).abs().mean()
    return F.mse_loss(v, diffusion.v_target(x0, t, noise))


# ---------------------------------------------------------------- one step, validation
def train_step(fwd, model, opt, batch, t, noise, args, gen, bf16: bool = False, adv=None) -> torch.Tensor:
    """One optimizer step; `fwd` is the (maybe compiled) model, `model` owns the params. With
    `adv` (an AdversarialX0, --loss x0-adv) the implied x0 also gets its perceptual and
    adversarial terms, and the critic then takes its own step. Returns the pixel loss."""
    x0, cond, start = batch
    x_t = noisy_input(x0, start, t, noise, args.lq_start, gen)
    with torch.autocast(x0.device.type, dtype=torch.bfloat16, enabled=bf16):
        v = fwd(x_t, t, cond)
    loss = loss_of(v.float(), x_t, x0, t, noise, args.loss)
    total, x0_hat = loss, None
    if adv is not None:
        x0_hat = diffusion.split_v(x_t, t, v.float())[0]
        total = loss + adv.generator_terms(x0_hat, x0, bf16)["total"]
    opt.zero_grad(set_to_none=True)
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if adv is not None:
        adv.d_step(x0, x0_hat, bf16)
    return loss.detach()


def as_saved(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images on the 0..255 grid the app saves them on (uint8), still float."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round()


@torch.no_grad()
def val_metrics(nets: dict, val, device, args, bf16: bool = False) -> dict[str, float]:
    """Loss of each net at every t in VAL_T (<= t_max) with noise from a fresh VAL_SEED generator,
    and the EMA's sampled PSNR: the same weights always give the same numbers. Keys: val_loss
    (mean over t of nets["ema"]), val_t{t}, val_loss_{name} for the other nets, val_psnr_start,
    val_psnr_s{start}."""
    x0, cond, start = (v[:VAL_FACES] if v is not None else None for v in val)
    times = [t for t in VAL_T if t <= args.t_max]
    sums = {name: [0.0] * len(times) for name in nets}
    gen = torch.Generator().manual_seed(VAL_SEED)
    modes = {name: net.training for name, net in nets.items()}
    for net in nets.values():
        net.eval()
    chunks = [(s, s + args.batch) for s in range(0, len(x0), args.batch)]
    for k, tv in enumerate(times):
        for lo, hi in chunks:
            xb = x0[lo:hi].to(device)
            noise = torch.randn(xb.shape, generator=gen).to(device)
            cb = cond[lo:hi].to(device) if cond is not None else None
            t = torch.full((len(xb),), tv, device=device)
            x_t = diffusion.q_sample(xb, t, noise)
            for name, net in nets.items():
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    v = net(x_t, t, cb)
                sums[name][k] += loss_of(v.float(), x_t, xb, t, noise, args.loss).item() * len(xb)
    per = {name: [v / len(x0) for v in s] for name, s in sums.items()}
    out = {"val_loss": sum(per["ema"]) / len(times)}
    out.update({f"val_t{int(tv)}": v for tv, v in zip(times, per["ema"])})
    out.update({f"val_loss_{name}": sum(v) / len(times) for name, v in per.items() if name != "ema"})
    n = min(VAL_SAMPLED, len(x0))
    xb, sb = x0[:n].to(device), start[:n].to(device)
    cb = cond[:n].to(device) if cond is not None else None
    if args.model != "tem128":  # TEM starts from the target itself
        out["val_psnr_start"] = psnr_per_image(as_saved(sb), as_saved(xb)).mean().item()
    model = lambda x, t: nets["ema"](x, t, cb).float()  # noqa: E731
    for ts, steps in VAL_STARTS[args.model]:
        if ts <= args.t_max:
            y = truncated_sample(model, sb, ts, steps, generators=torch.Generator(device).manual_seed(VAL_SEED))
            out[f"val_psnr_s{int(ts)}"] = psnr_per_image(as_saved(y), as_saved(xb)).mean().item()
    for name, net in nets.items():
        net.train(modes[name])
    return out


def batches(loader):
    while True:  # epochs run into each other; the budget or --max-steps ends training
        yield from loader


# ---------------------------------------------------------------- the trainer
class DiffusionTrainer(Trainer):
    """One DiffBFR network (irm64, irm128 or tem128) for loop.run."""

    def __init__(self, args, device: torch.device):
        self.args, self.device, self.name = args, device, args.model
        self.cuda = device.type == "cuda"
        self.bf16 = False  # loop.run decides (--bf16: timed at start on a CPU)

        # data: a fixed held-out slice of the pack, never trained on
        pack = PackDataset(args.pack, hflip=False)  # PairDataset flips training faces itself
        self.train_idx, self.val_idx = holdout(pack.names)
        self.pairs = PairDataset(pack, args.model, args.seed, self.train_idx, crop=args.crop)
        self.val = stacked(PairDataset(pack, args.model, VAL_SEED, self.val_idx, fixed=True))
        log(f"{args.pack}: {len(self.train_idx)} training faces, {len(self.val_idx)} held out for validation")

        # model, EMA, optimizer
        overrides = {"t_max": args.t_max, **(SHUFFLE_OVERRIDES[args.model] if args.arch == "shuffle" else {})}
        if args.tiny:
            overrides.update(TINY_OVERRIDES)
            if args.arch == "shuffle":
                overrides["channel_mults"] = (1, 2)
        if args.base_channels:
            overrides["base_channels"] = args.base_channels
        torch.manual_seed(args.seed)
        self.model = build(args.model, **overrides)
        self.config = self.model.config.to_dict()
        self.ema = network(UNetConfig.from_dict(self.config))
        self.ema.load_state_dict(self.model.state_dict())
        self.ema.requires_grad_(False)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                                     betas=(0.9, 0.99))
        self.t_gen = torch.Generator().manual_seed(args.seed)
        # initialisation (loop.run): exactly what --init-from says (resume restores model, EMA, AdamW, RNGs)
        self.modules, self.optimizers = {"model": self.model, "ema": self.ema}, {"opt": self.opt}
        self.adv = AdversarialX0(args, tiny=args.tiny) if args.loss == "x0-adv" else None
        if self.adv is not None:  # the critic resumes with the run; it is never exported
            self.modules["critic"], self.optimizers["critic_opt"] = self.adv.d, self.adv.opt
        self.generators = {"t": self.t_gen}

    def started(self, step: int, start: dict) -> None:
        args, device = self.args, self.device
        self.model.to(device)
        self.ema.to(device)
        if self.adv is not None:
            self.adv.to(device)
        if self.cuda:
            self.model.to(memory_format=torch.channels_last)
        self.fwd = torch.compile(self.model) if args.compile else self.model
        # data order restarts from (seed, step) on resume: a fresh shuffle, not a replay
        loader = torch.utils.data.DataLoader(self.pairs, batch_size=args.batch, shuffle=True, drop_last=True,
                                             num_workers=args.workers, persistent_workers=args.workers > 0,
                                             generator=torch.Generator().manual_seed(args.seed * 100003 + step),
                                             pin_memory=self.cuda)
        self.data = batches(loader)

    def speed_probe(self, bf16: bool) -> None:
        x0 = self.val[0][:self.args.batch].to(self.device)
        if self.args.crop:
            x0 = x0[..., :self.args.crop, :self.args.crop]
        cond = self.val[1]
        cond = None if cond is None or cond.shape[1] == 0 else cond[:len(x0), :, :x0.shape[-2], :x0.shape[-1]].to(self.device)
        t = torch.full((len(x0),), self.args.t_max / 2, device=self.device)
        noise = torch.randn_like(x0)
        x_t = diffusion.q_sample(x0, t, noise)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            v = self.fwd(x_t, t, cond)
        loss_of(v.float(), x_t, x0, t, noise, self.args.loss).backward()
        self.model.zero_grad(set_to_none=True)

    def describe(self) -> str:
        a = self.args
        return (f"{a.model}: {param_count(self.model) / 1e6:.2f} M params ({a.arch}), batch {a.batch}, crop {a.crop}, "
                f"t <= {a.t_max:g}, loss {a.loss}, lq-start {a.lq_start}, bf16 {self.bf16}, "
                f"device {device_name(self.device)}, lr {a.lr} warm-up {a.warmup} decay {a.decay_steps}")

    def evaluate(self) -> dict[str, float]:
        return val_metrics({"ema": self.ema, "raw": self.model}, self.val, self.device, self.args, self.bf16)

    def val_line(self, v: dict) -> str:
        return "val " + " ".join(f"{k[4:]} {x:.4f}" if "psnr" not in k else f"{k[4:]} {x:.2f}" for k, x in v.items())

    def train_step(self, step: int, lr: float) -> dict[str, torch.Tensor]:
        device = self.device
        batch = [b.to(device, non_blocking=True) for b in next(self.data)]
        if batch[1].shape[1] == 0:
            batch[1] = None
        if self.cuda:
            batch[0] = batch[0].contiguous(memory_format=torch.channels_last)
        set_lr(self.opt, lr)
        t = sample_t(batch[0].shape[0], self.args.t_max, self.t_gen).to(device)
        loss = train_step(self.fwd, self.model, self.opt, batch, t, torch.randn_like(batch[0]), self.args, self.t_gen,
                          bf16=self.bf16, adv=self.adv)
        return {"loss": loss}

    def record(self) -> dict:
        a = self.args
        return {"model": a.model, "config": self.config, "batch": a.batch, "loss": a.loss, "lq_start": a.lq_start,
                "crop": a.crop, "t_max": a.t_max, "val_t": [t for t in VAL_T if t <= a.t_max],
                "val_faces": len(self.val_idx), "train_faces": len(self.train_idx), "pack": str(a.pack),
                "params": param_count(self.model)}

    def export(self, meta: dict) -> str:
        out = export(self.ema.cpu(), Path(self.args.export) / f"{self.args.model}.safetensors", self.config, self.args,
                     meta)
        return f"exported EMA weights to {out}"


def main(argv=None) -> dict:
    return train(DiffusionTrainer, parse_args(argv))


if __name__ == "__main__":
    main()
