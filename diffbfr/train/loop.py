"""What every trainer shares: flags, device, learning-rate schedule, EMA, wall-clock budget,
held-out validation, export. The run's state on disk (resume, --init-from) is run_state.py.

A trainer (diffbfr.py, and the Panini-Net ones) reads top to bottom like nanoGPT's train.py
and calls these (and run_state's init_from, save_state, usage) in order:

    p = argparse.ArgumentParser(); add_run_args(p, batch=32, lr=2e-4); args = p.parse_args(argv)
    device = setup_device(args)
    train_idx, val_idx = holdout(pack.names)                     # fixed, never trained on
    ... build modules / optimizers ...
    step, start = init_from(args, run_dir, modules, optimizers, config)   # scratch | resume | PATH
    clock, meter, validator = Clock(args.minutes, args.save_every_min), Meter(), Validator(args.val_every, fn)
    while step < max_steps and not clock.out_of_time():
        set_lr(opt, lr_at(step, args)); ...; step += 1; ema_update(ema, model, args.ema, step); meter.tick(n)
        if validator.due(step): validator(step)
        if clock.save_due(): save_state(run_dir, step, modules, optimizers, {..., **usage(start, clock.elapsed, device)})
    export(ema, path, config, args, {..., **validator.last, **usage(start, clock.elapsed, device)})

"""
from __future__ import annotations

import argparse
import hashlib
import math
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from ..checkpoint import save_module
from .run_state import usage

# The held-out slice: the faces whose names hash lowest, so the same face is held out whatever
# the pack's order, seed or flags, and (mostly) across packs built from the same split.
HOLDOUT_FRAC = 0.02
HOLDOUT_MIN = 16


# ---------------------------------------------------------------- flags
def add_run_args(parser: argparse.ArgumentParser, *, batch: int, lr: float, minutes: float = 10.0,
                 ema: float = 0.999, warmup: int = 200, export: str = "weights") -> argparse.ArgumentParser:
    """The flags every trainer shares; the defaults that differ per trainer are keywords."""
    g = parser.add_argument_group("run (shared by every trainer)")
    g.add_argument("--run-dir", default=None, help="resume state lives here (default runs/<name>)")
    g.add_argument("--export", default=export, help="folder for the exported fp16 EMA weights + JSON")
    g.add_argument("--init-from", default="scratch", metavar="scratch|resume|PATH",
                   help="scratch: fresh weights (refuses a run dir that holds a run, see --force); "
                        "resume: continue run-dir/state.json (fails without it); "
                        "PATH: warm-start model and EMA from shipped weights NAME.safetensors (+ NAME.json)")
    g.add_argument("--force", action="store_true",
                   help="with --init-from scratch|PATH: delete the run dir's old state instead of refusing")
    g.add_argument("--minutes", type=float, default=minutes, help="wall-clock budget; stops cleanly, saves, exports")
    g.add_argument("--max-steps", type=int, default=None, help="stop at this step (counted across resumes)")
    g.add_argument("--batch", type=int, default=batch)
    g.add_argument("--lr", type=float, default=lr, help="peak learning rate")
    g.add_argument("--warmup", type=int, default=warmup, help="linear warm-up steps")
    g.add_argument("--decay-steps", type=int, default=0,
                   help="cosine decay from --lr to --lr * --lr-min-ratio over this many steps after "
                        "warm-up, then constant; 0 = constant --lr after warm-up")
    g.add_argument("--lr-min-ratio", type=float, default=0.1)
    g.add_argument("--ema", type=float, default=ema, help="EMA decay (warmed up as min(ema, (1+s)/(10+s)))")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    g.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    g.add_argument("--log-every", type=int, default=50)
    g.add_argument("--val-every", type=int, default=500, help="held-out validation loss every N steps (0: only at the end)")
    g.add_argument("--save-every-min", type=float, default=5.0, help="resume state every N minutes")
    g.add_argument("--compile", action="store_true", help="torch.compile the trained module")
    return parser


def setup_device(args) -> torch.device:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        # tf32 matmuls/convs where bf16 autocast does not reach; fixed shapes -> let cudnn pick kernels
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


# ---------------------------------------------------------------- schedule, EMA
def lr_at(step: int, args) -> float:
    """Linear warm-up over --warmup steps, cosine to lr * lr_min_ratio over --decay-steps, then flat."""
    if args.warmup > 0 and step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    if args.decay_steps <= 0:
        return args.lr
    progress = min(1.0, (step - args.warmup) / args.decay_steps)
    lo = args.lr * args.lr_min_ratio
    return lo + 0.5 * (1.0 + math.cos(math.pi * progress)) * (args.lr - lo)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """ema <- d * ema + (1 - d) * model with d = min(decay, (1+step)/(10+step)): early on the
    EMA follows the model closely instead of averaging in the random initialisation."""
    d = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach().to(pe.dtype), 1 - d)
    for be, bm in zip(ema.buffers(), model.buffers()):  # e.g. BatchNorm statistics: copied, not averaged
        be.copy_(bm)


def run_record(step: int, start: dict, wall: float, device: torch.device, validator) -> dict:
    """What every export records about its run, beside the trainer's own fields: steps (this
    run and in total), device, wall time, the latest validation, how the run started, and the
    GPU/CPU minutes the weights have had in total."""
    return {"steps": step, "total_steps": start["prior_steps"] + step, "device": device_name(device),
            "wall_minutes_this_run": round(wall / 60, 3), **validator.last, "init_from": start["init_from"],
            "prior_steps": start["prior_steps"], **usage(start, wall, device), "val_history": validator.history}


# ---------------------------------------------------------------- budget, validation, export
class Clock:
    """Wall-clock budget of this run and the periodic resume saves."""

    def __init__(self, minutes: float, save_every_min: float):
        self.budget, self.save_every = minutes * 60, save_every_min * 60
        self.start = self.last_save = time.time()

    @property
    def elapsed(self) -> float:
        return time.time() - self.start

    def out_of_time(self) -> bool:
        return self.elapsed >= self.budget

    def save_due(self) -> bool:
        """True at most once per --save-every-min (it restarts the interval when it says so)."""
        if time.time() - self.last_save < self.save_every:
            return False
        self.last_save = time.time()
        return True


class Meter:
    """Training images per second: the time between consecutive tick()s. The first step of a
    run (compilation, cudnn autotuning) and any step after pause() (validation, saving) only
    restart the clock, so neither counts. tick() does not synchronise: on CUDA, call it where
    the step already synchronised (e.g. after loss.item()) or read it over many steps."""

    def __init__(self):
        self.images, self.seconds, self._window = 0, 0.0, [0, 0.0]
        self._last: float | None = None

    def tick(self, n: int) -> None:
        now = time.time()
        if self._last is not None:
            self.images += n
            self.seconds += now - self._last
            self._window[0] += n
            self._window[1] += now - self._last
        self._last = now

    def pause(self) -> None:
        self._last = None

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    def window_rate(self) -> float:
        """Rate since the last call (for the log line)."""
        n, s = self._window
        self._window = [0, 0.0]
        return n / s if s else 0.0


def holdout(names: Sequence[str], frac: float = HOLDOUT_FRAC, min_count: int = HOLDOUT_MIN) -> tuple[list[int], list[int]]:
    """(train indices, held-out indices): the max(min_count, frac * n) names with the lowest SHA-1
    (capped at half of a tiny pack). Deterministic; the held-out faces are never trained on."""
    n = len(names)
    k = min(max(min_count, math.ceil(frac * n)), n // 2)
    order = sorted(range(n), key=lambda i: hashlib.sha1(names[i].encode()).hexdigest())
    held = sorted(order[:k])
    held_set = set(held)
    return [i for i in range(n) if i not in held_set], held


class Validator:
    """Held-out validation every `every` steps. `evaluate()` is the model-specific part: it
    returns {name: value} (e.g. val_loss, per-timestep losses) and must be deterministic; it
    runs under no_grad. Results are kept in .history (continuing `history`, a resumed run's)
    and the latest in .last."""

    def __init__(self, every: int, evaluate: Callable[[], dict[str, float]], history=()):
        self.every, self.evaluate = every, evaluate
        self.history: list[dict] = list(history)
        self.last: dict[str, float] = {}

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def __call__(self, step: int) -> dict[str, float]:
        with torch.no_grad():
            self.last = {k: round(float(v), 6) for k, v in self.evaluate().items()}
        self.history.append({"step": step, **self.last})
        return self.last


def export(module: nn.Module, path, config: dict, args, meta: dict) -> Path:
    """fp16 safetensors + JSON (config, meta, and every command-line argument under meta.args)."""
    return save_module(module, path, config, {**meta, "args": vars(args)}, dtype=torch.float16)


def log(msg: str) -> None:
    print(msg, flush=True)
