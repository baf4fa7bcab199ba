"""Train one DiffBFR network:  python -m diffbfr.train irm64|irm128|tem128 --pack packs/gpu128.tar --init-from scratch

Reads top to bottom: arguments -> data (train / held-out split) -> model, EMA, optimizer ->
initialisation (--init-from scratch | resume | PATH, never implicit) -> loop with warm-up +
cosine learning rate, EMA, wall-clock budget, periodic validation and resume saves -> final
validation, resume state, export of the EMA weights with every argument and the numbers.

Training pairs (all in the canonical 128 px face frame, values in [-1, 1]):
  tem128  target: HQ face;                  no condition
  irm64   target: HQ face at 64 px;         condition: LQ face at 64 px
  irm128  target: HQ face at 128 px;        condition: [stage-1 stand-in upsampled, LQ at 128]
The stage-1 stand-in is the HQ face at 64 (or 32) px, upsampled and noised: the cascaded
diffusion trick ("conditioning augmentation") so stage 2 learns to trust but fix stage 1.

Validation: the faces of the pack whose names hash lowest (2 %, at least 16; loop.holdout)
are held out and never trained on. Their loss is measured at the fixed timesteps VAL_T with
fixed noise and fixed degradations (seeded by VAL_SEED, not by --seed), for the EMA (what is
shipped) and the raw model, every --val-every steps and at the end.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..diffusion import schedule as diffusion
from ..diffusion.unet import MODEL_CONFIGS, TINY_OVERRIDES, UNet, UNetConfig, build, param_count
from ..frame import resize_square, to_tensor
from .data import PackDataset
from .degrade import random_degrade
from .loop import (Clock, Meter, Validator, add_run_args, device_name, ema_update, export, holdout, log, lr_at,
                   run_record, set_lr, setup_device)
from .run_state import init_from, save_state

NETS = tuple(MODEL_CONFIGS)          # irm64, irm128, tem128
VAL_T = (20.0, 100.0, 300.0, 600.0, 900.0)
VAL_SEED = 20240601                  # fixed: the validation set does not move with --seed


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=NETS)
    p.add_argument("--pack", required=True, help="training pack written by `python -m diffbfr.train.data pack`")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--base-channels", type=int, default=None, help="override the default width")
    p.add_argument("--tiny", action="store_true", help="a tiny network (tests and dry runs)")
    p.add_argument("--small-t-frac", type=float, default=None,
                   help="share of timesteps drawn from [0, --small-t-max] (default 0.5 for tem128, 0 for IRM)")
    p.add_argument("--small-t-max", type=float, default=150.0)
    add_run_args(p, batch=32, lr=2e-4, minutes=10.0, ema=0.999, warmup=200, export="weights/diffbfr")
    return p.parse_args(argv)


# ---------------------------------------------------------------- data
def chw(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> float CxHxW in [-1, 1], exactly as the pipeline feeds the networks."""
    return to_tensor(img, "cpu")[0]


def area(img: np.ndarray, size: int) -> np.ndarray:
    return resize_square(img, size, cv2.INTER_AREA)


class PairDataset(torch.utils.data.Dataset):
    """Turns HQ faces of the pack (those in `indices`) into (target, condition) pairs for one network.

    Training (fixed=False): random flip and fresh degradations on every pass (torch's RNG differs
    per worker and per epoch). Validation (fixed=True): no flip, degradations seeded by (seed, i)
    only, so every evaluation sees exactly the same pairs.
    """

    def __init__(self, pack: PackDataset, model: str, seed: int, indices=None, fixed: bool = False):
        self.pack, self.model, self.seed, self.fixed = pack, model, seed, fixed
        self.indices = list(range(len(pack))) if indices is None else list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, j):
        i = self.indices[j]
        salt = [] if self.fixed else [int(torch.randint(2**31 - 1, (1,)))]
        rng = np.random.default_rng([self.seed, i, *salt])
        hq = self.pack[i]
        if hq.shape[0] != 128:
            hq = area(hq, 128)
        if not self.fixed and rng.random() < 0.5:
            hq = np.ascontiguousarray(hq[:, ::-1])
        if self.model == "tem128":
            return chw(hq), torch.zeros(0, 128, 128)
        lq = random_degrade(hq, rng)
        if self.model == "irm64":
            return chw(area(hq, 64)), chw(area(lq, 64))
        coarse = area(hq, 64 if rng.random() < 0.7 else 32)
        stage1 = chw(resize_square(coarse, 128, cv2.INTER_CUBIC))
        stage1 = stage1 + float(rng.uniform(0, 0.1)) * torch.from_numpy(rng.standard_normal(stage1.shape).astype(np.float32))
        return chw(hq), torch.cat([stage1.clamp(-1, 1), chw(lq)])


def sample_t(n: int, small_frac: float, small_max: float, gen: torch.Generator) -> torch.Tensor:
    """Continuous timesteps in (0, T]; optionally a share concentrated at small t (TEM's range)."""
    u = torch.rand(n, generator=gen)
    t = u * diffusion.T
    if small_frac > 0:
        small = torch.rand(n, generator=gen) < small_frac
        t = torch.where(small, u * small_max, t)
    return t.clamp_min(1e-3)


# ---------------------------------------------------------------- one step, validation
def train_step(fwd, model, opt, x0, cond, t, noise, bf16: bool = False) -> torch.Tensor:
    """v-prediction MSE at times t; `fwd` is the (maybe compiled) model, `model` owns the params."""
    x_t = diffusion.q_sample(x0, t, noise)
    with torch.autocast(x0.device.type, dtype=torch.bfloat16, enabled=bf16):
        v = fwd(x_t, t, cond)
    loss = F.mse_loss(v.float(), diffusion.v_target(x0, t, noise))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.detach()


def val_set(pairs: PairDataset) -> tuple[torch.Tensor, torch.Tensor | None]:
    """All held-out pairs, built once (CPU): x0 (N,3,H,W) and the condition or None."""
    items = [pairs[j] for j in range(len(pairs))]
    x0 = torch.stack([a for a, _ in items])
    cond = torch.stack([c for _, c in items]) if items[0][1].shape[0] else None
    return x0, cond


@torch.no_grad()
def val_losses(nets: dict[str, UNet], x0: torch.Tensor, cond, device: torch.device, batch: int,
               bf16: bool = False) -> dict[str, float]:
    """v-MSE of each net on the held-out pairs at every t in VAL_T, with noise drawn from a fresh
    VAL_SEED generator: the same weights always give the same numbers. Keys: val_loss (mean over
    VAL_T of nets["ema"]), val_t{t} (EMA per timestep), val_loss_{name} for the other nets."""
    sums = {name: [0.0] * len(VAL_T) for name in nets}
    gen = torch.Generator().manual_seed(VAL_SEED)
    modes = {name: net.training for name, net in nets.items()}
    for net in nets.values():
        net.eval()
    for k, tv in enumerate(VAL_T):
        for s in range(0, len(x0), batch):
            xb = x0[s:s + batch]
            noise = torch.randn(xb.shape, generator=gen).to(device)
            xb = xb.to(device)
            cb = cond[s:s + batch].to(device) if cond is not None else None
            t = torch.full((len(xb),), tv, device=device)
            x_t, target = diffusion.q_sample(xb, t, noise), diffusion.v_target(xb, t, noise)
            for name, net in nets.items():
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    v = net(x_t, t, cb)
                sums[name][k] += F.mse_loss(v.float(), target, reduction="sum").item()
    for name, net in nets.items():
        net.train(modes[name])
    per = {name: [v / x0.numel() for v in s] for name, s in sums.items()}
    out = {"val_loss": sum(per["ema"]) / len(VAL_T)}
    out.update({f"val_t{int(tv)}": v for tv, v in zip(VAL_T, per["ema"])})
    out.update({f"val_loss_{name}": sum(v) / len(VAL_T) for name, v in per.items() if name != "ema"})
    return out


def batches(loader):
    while True:  # epochs run into each other; the budget or --max-steps ends training
        yield from loader


# ---------------------------------------------------------------- main
def main(argv=None) -> dict:
    args = parse_args(argv)
    device = setup_device(args)
    cuda = device.type == "cuda"
    run_dir = Path(args.run_dir or f"runs/{args.model}")
    small_frac = args.small_t_frac if args.small_t_frac is not None else (0.5 if args.model == "tem128" else 0.0)

    # data: a fixed held-out slice of the pack, never trained on
    pack = PackDataset(args.pack, hflip=False)  # PairDataset flips training faces itself
    train_idx, val_idx = holdout(pack.names)
    pairs = PairDataset(pack, args.model, args.seed, train_idx)
    val_x0, val_cond = val_set(PairDataset(pack, args.model, VAL_SEED, val_idx, fixed=True))
    log(f"{args.pack}: {len(train_idx)} training faces, {len(val_idx)} held out for validation")

    # model, EMA, optimizer
    overrides = dict(TINY_OVERRIDES) if args.tiny else {}
    if args.base_channels:
        overrides["base_channels"] = args.base_channels
    torch.manual_seed(args.seed)
    model = build(args.model, **overrides)
    config = model.config.to_dict()
    ema = UNet(UNetConfig.from_dict(config))
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99))
    t_gen = torch.Generator().manual_seed(args.seed)

    # initialisation: exactly what --init-from says (resume restores model, EMA, AdamW, RNGs)
    step, start = init_from(args, run_dir, {"model": model, "ema": ema}, {"opt": opt}, config,
                            generators={"t": t_gen})
    log(f"{args.model}: --init-from {args.init_from} -> step {step} "
        f"(before: {start['prior_steps']} steps, {start['gpu_minutes']:.1f} GPU-min, {start['cpu_minutes']:.1f} CPU-min)")
    model.to(device)
    ema.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if args.compile else model

    # data order restarts from (seed, step) on resume: a fresh shuffle, not a replay
    loader = torch.utils.data.DataLoader(pairs, batch_size=args.batch, shuffle=True, drop_last=True,
                                         num_workers=args.workers, persistent_workers=args.workers > 0,
                                         generator=torch.Generator().manual_seed(args.seed * 100003 + step),
                                         pin_memory=cuda)
    validator = Validator(args.val_every, lambda: val_losses({"ema": ema, "raw": model}, val_x0, val_cond,
                                                             device, args.batch, bf16=cuda),
                          start.get("val_history", []))
    history = list(start.get("history", []))
    max_steps = args.max_steps if args.max_steps is not None else float("inf")
    log(f"{args.model}: {param_count(model) / 1e6:.2f} M params, batch {args.batch}, device {device_name(device)}, "
        f"lr {args.lr} warm-up {args.warmup} decay {args.decay_steps}")

    def run_meta(final: bool) -> dict:
        wall = clock.elapsed
        meta = {
            "model": args.model, "config": config, "batch": args.batch, "img_per_s_this_run": round(meter.rate, 2),
            "train_loss": train_loss, "val_t": list(VAL_T), "val_faces": len(val_idx), "train_faces": len(train_idx),
            "pack": str(args.pack), "params": param_count(model), "lr_last": lr,
            **run_record(step, start, wall, device, validator),
        }
        return meta if final else {**meta, "history": history}

    # loop
    clock, meter = Clock(args.minutes, args.save_every_min), Meter()
    data = batches(loader)
    lr, train_loss = lr_at(step, args), None
    loss_sum, loss_n = torch.zeros((), device=device), 0  # summed on the device: no sync per step
    while step < max_steps and not clock.out_of_time():
        x0, cond = next(data)
        x0 = x0.to(device, non_blocking=True)
        cond = cond.to(device, non_blocking=True) if cond.shape[1] else None
        if cuda:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        lr = lr_at(step, args)
        set_lr(opt, lr)
        t = sample_t(x0.shape[0], small_frac, args.small_t_max, t_gen).to(device)
        loss_sum += train_step(fwd, model, opt, x0, cond, t, torch.randn_like(x0), bf16=cuda)
        loss_n += 1
        step += 1
        ema_update(ema, model, args.ema, step)
        meter.tick(x0.shape[0])
        if step % args.log_every == 0 or loss_n == 1 and step == 1:
            train_loss, loss_sum, loss_n = loss_sum.item() / loss_n, loss_sum.zero_(), 0
            ips = meter.window_rate()
            history.append({"step": step, "loss": round(train_loss, 5), "lr": lr, "img_per_s": round(ips, 1)})
            log(f"step {step} loss {train_loss:.4f} lr {lr:.2e} {ips:.1f} img/s {clock.elapsed / 60:.1f} min")
        if validator.due(step):
            v = validator(step)
            log(f"step {step} val_loss {v['val_loss']:.4f} (raw {v['val_loss_raw']:.4f}) "
                + " ".join(f"t{int(tv)} {v[f'val_t{int(tv)}']:.4f}" for tv in VAL_T))
            meter.pause()
        if clock.save_due():
            save_state(run_dir, step, {"model": model, "ema": ema}, {"opt": opt}, {**run_meta(False), "args": vars(args)},
                       generators={"t": t_gen})
            meter.pause()

    # the end: the last losses, a final validation, the resume state, the shipped EMA weights
    if loss_n:
        train_loss = loss_sum.item() / loss_n
    if not validator.history or validator.history[-1]["step"] != step:
        v = validator(step)
        log(f"step {step} val_loss {v['val_loss']:.4f} (raw {v['val_loss_raw']:.4f})")
    if args.decay_steps and step < args.warmup + args.decay_steps:
        log(f"note: stopped at step {step}, before the cosine decay ended (step {args.warmup + args.decay_steps})")
    meta = run_meta(True)
    save_state(run_dir, step, {"model": model, "ema": ema}, {"opt": opt}, {**meta, "history": history, "args": vars(args)},
               generators={"t": t_gen})
    out = export(ema.cpu(), Path(args.export) / f"{args.model}.safetensors", config, args, meta)
    log(json.dumps({k: v for k, v in meta.items() if k not in ("config", "val_history")}))
    log(f"exported EMA weights to {out}")
    return meta


if __name__ == "__main__":
    main()
