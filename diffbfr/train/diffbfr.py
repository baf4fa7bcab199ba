"""Train one DiffBFR network:  python -m diffbfr.train irm64|irm128|tem128 --pack packs/train128.tar

Reads top to bottom: arguments -> data -> model/optimizer/EMA (resumed if a checkpoint
exists) -> loop with a wall-clock budget -> save resume state -> export EMA weights.

Training pairs (all in the canonical 128 px face frame, values in [-1, 1]):
  tem128  target: HQ face;                  no condition
  irm64   target: HQ face at 64 px;         condition: LQ face at 64 px
  irm128  target: HQ face at 128 px;        condition: [stage-1 stand-in upsampled, LQ at 128]
The stage-1 stand-in is the HQ face at 64 (or 32) px, upsampled and noised: the cascaded
diffusion trick ("conditioning augmentation") so stage 2 learns to trust but fix stage 1.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..diffusion import schedule as diffusion
from ..diffusion.unet import TINY_OVERRIDES, UNet, UNetConfig, build, param_count, save_unet
from ..frame import resize_square, to_tensor
from .data import PackDataset
from .degrade import random_degrade


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=["irm64", "irm128", "tem128"])
    p.add_argument("--pack", required=True, help="training pack written by `python -m diffbfr.data pack`")
    p.add_argument("--run-dir", default=None, help="resume checkpoints (default runs/<model>)")
    p.add_argument("--export", default="weights", help="folder for the fp16 EMA safetensors")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget; stops cleanly and saves")
    p.add_argument("--max-steps", type=int, default=10**9)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--save-every-min", type=float, default=5.0)
    p.add_argument("--base-channels", type=int, default=None, help="override the default width")
    p.add_argument("--tiny", action="store_true", help="a tiny network (tests and dry runs)")
    p.add_argument("--small-t-frac", type=float, default=None,
                   help="share of timesteps drawn from [0, --small-t-max] (default 0.5 for tem128, 0 for IRM)")
    p.add_argument("--small-t-max", type=float, default=150.0)
    p.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


# ---------------------------------------------------------------- data
def chw(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> float CxHxW in [-1, 1], exactly as the pipeline feeds the networks."""
    return to_tensor(img, "cpu")[0]


def area(img: np.ndarray, size: int) -> np.ndarray:
    return resize_square(img, size, cv2.INTER_AREA)


class PairDataset(torch.utils.data.Dataset):
    """Turns HQ faces from the pack into (target, condition) pairs for one network."""

    def __init__(self, pack: PackDataset, model: str, seed: int):
        self.pack, self.model, self.seed = pack, model, seed

    def __len__(self):
        return len(self.pack)

    def __getitem__(self, i):
        # torch's RNG differs per worker and per epoch, so each pass sees fresh degradations
        rng = np.random.default_rng([self.seed, i, int(torch.randint(2**31 - 1, (1,)))])
        hq = self.pack[i]
        if hq.shape[0] != 128:
            hq = area(hq, 128)
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


# ---------------------------------------------------------------- one step
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


@torch.no_grad()
def ema_update(ema, model, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1 - decay)


# ---------------------------------------------------------------- resume state
def save_state(run_dir: Path, model, ema, opt, step: int, info: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    opt_state = opt.state_dict()
    for pid, st in opt_state["state"].items():
        for k, v in st.items():
            tensors[f"opt.{pid}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tmp = run_dir / "state.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(run_dir / "state.safetensors")  # atomic: a run killed mid-save keeps the last state
    meta = {"step": step, "param_groups": opt_state["param_groups"], "config": model.config.to_dict(), **info}
    (run_dir / "state.json").write_text(json.dumps(meta, indent=2))


def load_state(run_dir: Path, model, ema, opt) -> dict:
    meta = json.loads((run_dir / "state.json").read_text())
    tensors = load_file(str(run_dir / "state.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, key = k.split(".", 2)
            state.setdefault(int(pid), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return meta


# ---------------------------------------------------------------- main
def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    run_dir = Path(args.run_dir or f"runs/{args.model}")
    small_frac = args.small_t_frac if args.small_t_frac is not None else (0.5 if args.model == "tem128" else 0.0)

    # data
    pairs = PairDataset(PackDataset(args.pack, hflip=True), args.model, args.seed)
    data_gen = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(pairs, batch_size=args.batch, shuffle=True, drop_last=True,
                                         num_workers=args.workers, generator=data_gen,
                                         persistent_workers=args.workers > 0, pin_memory=cuda)

    # model, EMA, optimizer
    overrides = dict(TINY_OVERRIDES) if args.tiny else {}
    if args.base_channels:
        overrides["base_channels"] = args.base_channels
    torch.manual_seed(args.seed)
    model = build(args.model, **overrides)
    ema = UNet(UNetConfig.from_dict(model.config.to_dict()))
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99))
    step, prior_seconds, history = 0, 0.0, []
    if (run_dir / "state.json").exists():
        meta = load_state(run_dir, model, ema, opt)
        step, prior_seconds, history = meta["step"], meta.get("train_seconds", 0.0), meta.get("history", [])
        print(f"resumed {args.model} from {run_dir} at step {step}", flush=True)
    model.to(device)
    ema.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if args.compile else model
    t_gen = torch.Generator().manual_seed(args.seed * 1000 + step)
    print(f"{args.model}: {param_count(model) / 1e6:.2f} M params, batch {args.batch}, device {device}", flush=True)

    # loop
    start = last_save = time.time()
    budget = args.minutes * 60
    loss_avg, seen, window_t, window_n = None, 0, time.time(), 0
    done = False
    while not done:
        for x0, cond in loader:
            x0 = x0.to(device, non_blocking=True)
            cond = cond.to(device, non_blocking=True) if cond.shape[1] else None
            if cuda:
                x0 = x0.contiguous(memory_format=torch.channels_last)
            t = sample_t(x0.shape[0], small_frac, args.small_t_max, t_gen).to(device)
            loss = train_step(fwd, model, opt, x0, cond, t, torch.randn_like(x0), bf16=cuda)
            step += 1
            ema_update(ema, model, min(args.ema, (1 + step) / (10 + step)))  # warm-up: early EMA follows
            loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
            seen += x0.shape[0]
            window_n += x0.shape[0]
            elapsed = time.time() - start
            if step % args.log_every == 0:
                ips = window_n / max(time.time() - window_t, 1e-9)
                window_t, window_n = time.time(), 0
                history.append({"step": step, "loss": round(loss_avg, 5), "img_per_s": round(ips, 1)})
                print(f"step {step} loss {loss_avg:.4f} {ips:.1f} img/s {elapsed / 60:.1f} min", flush=True)
            if elapsed >= budget or step >= args.max_steps:
                done = True
                break
            if time.time() - last_save > args.save_every_min * 60:
                save_state(run_dir, model, ema, opt, step, {"train_seconds": prior_seconds + elapsed, "history": history})
                last_save = time.time()

    wall = time.time() - start
    info = {
        "model": args.model, "steps": step, "batch": args.batch, "lr": args.lr, "ema": args.ema,
        "device": torch.cuda.get_device_name() if cuda else "cpu", "train_seconds": prior_seconds + wall,
        "img_per_s_this_run": seen / max(wall, 1e-9), "final_loss_ema": loss_avg, "pack": str(args.pack),
        "params": param_count(model), "history": history,
    }
    save_state(run_dir, model, ema, opt, step, info)
    out = save_unet(ema.cpu(), Path(args.export) / f"{args.model}.safetensors",
                     meta={k: v for k, v in info.items() if k != "history"})
    print(json.dumps({k: v for k, v in info.items() if k != "history"}), flush=True)
    print(f"exported EMA weights to {out}", flush=True)
    return info


if __name__ == "__main__":
    main()
