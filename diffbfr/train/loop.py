"""The training loop, written once, and what every trainer shares: flags, device,
learning-rate schedule, EMA, wall-clock budget, loss averaging and logging, held-out
validation, export. The run's state on disk (resume, --init-from) is run_state.py.

A trainer is a `Trainer`: its data and networks (`__init__`: `modules`, `optimizers`,
`config`, optionally `ema`/`model` and named `generators`), its step (`train_step`, which
returns its losses), its evaluation (`evaluate`) and its export (`export`). `run(trainer)` is
the loop every trainer goes through, like nanoGPT's train.py:

    step, start = init_from(args, run_dir, modules, optimizers, config)   # scratch | resume | PATH
    trainer.started(step, start)                                          # warm start, device, loader
    while step < max_steps and not clock.out_of_time():
        losses.add(trainer.train_step(step, trainer.learning_rate(step, args, clock))); step += 1
        ema_update(ema, model, args.ema, step)
        every --log-every: the mean losses since the last log line -> a history entry and a log line
        every --val-every: validation;  every --save-every-min: save_state(run_dir, step, ...)
    final validation (unless this step was just validated), resume state, trainer.export(meta)

A trainer's main is `train(TrainerClass, parse_args(argv))`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from ..checkpoint import save_module
from .meters import Clock, LossMeans, Meter
from .run_state import init_from, save_state, usage

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
    g.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                   help="bf16 autocast. auto: time one fp32 and one bf16 training step at start and keep "
                        "the faster (CPUs without bf16 units run bf16 convolutions ~90x slower); always "
                        "on for CUDA")
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


def step_seconds(probe: Callable[[bool], None], bf16: bool, repeats: int = 2) -> float:
    """Seconds of the fastest of `repeats` calls of probe(bf16) (the first pays for setup)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        probe(bf16)
        best = min(best, time.perf_counter() - t0)
    return best


def pick_bf16(probe: Callable[[bool], None] | None, mode: str, device: torch.device) -> bool:
    """Whether to train in bf16: CUDA always (unless --bf16 off); on a CPU, --bf16 auto times one
    fp32 and one bf16 forward + backward (`probe`, which must not step an optimizer) and keeps
    the faster; auto and on say in the log what they measured (on warns when bf16 is slower),
    so a run on a CPU where bf16 crawls never crawls silently."""
    if device.type == "cuda" or probe is None:
        return mode != "off" and device.type == "cuda"
    if mode == "off":  # nothing to decide: timing bf16 would cost a minute where it crawls
        log("precision: fp32 (--bf16 off)")
        return False
    fp32, bf16 = step_seconds(probe, False), step_seconds(probe, True)
    use = mode == "on" or bf16 < fp32
    log(f"precision: one step takes {fp32:.2f} s in fp32, {bf16:.2f} s in bf16 ({fp32 / bf16:.2f}x) "
        f"-> {'bf16' if use else 'fp32'} (--bf16 {mode})"
        + (" WARNING: bf16 is slower on this CPU" if use and bf16 > fp32 else ""))
    return use


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
    """Every parameter group at lr, times the group's "lr_mul" where it has one."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mul", 1.0)


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


# ---------------------------------------------------------------- validation, export
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
    """A line of the training log, on stdout: the log is a trainer's output (its weights and
    resume state are files), where a tool's progress lines go to stderr (console.log)."""
    print(msg, flush=True)


# ---------------------------------------------------------------- the loop
class Trainer:
    """One family of networks: its data, its networks, its step, its evaluation, its export.

    `__init__(args, device)` reads the data and builds `modules` / `optimizers` / `config`
    (what init_from fills and checks); `run` does the rest. Attributes `run` reads:
    name (runs/<name>, log lines), modules, optimizers, config, warm_start (the modules
    --init-from PATH fills), generators (named RNGs kept in the resume state), model and ema
    (ema_update after every step when ema is set), log_first_step, unit (what a step's --batch
    counts: the log's rate is in units/s). `run` sets `bf16` (pick_bf16) before the first step."""

    name = "trainer"
    warm_start: Sequence[str] = ("model", "ema")
    generators: dict[str, torch.Generator] = {}
    model: nn.Module | None = None
    ema: nn.Module | None = None
    log_first_step = True   # also log step 1 (besides every --log-every steps)
    unit = "img"

    def started(self, step: int, start: dict) -> None:
        """After init_from: warm start the rest, move to the device, build the loader."""

    def speed_probe(self, bf16: bool) -> None:
        """One forward + backward of a training batch, without an optimizer step (gradients
        cleared after): what --bf16 auto times. A trainer without one trains in fp32 on a CPU."""
        raise NotImplementedError

    def describe(self) -> str:
        """The log line before the first step (size, batch, device, ...)."""
        return ""

    def learning_rate(self, step: int, args, clock: Clock) -> float:
        """The learning rate of this step: lr_at's warm-up and cosine over steps."""
        return lr_at(step, args)

    def train_step(self, step: int, lr: float) -> dict[str, torch.Tensor]:
        """One optimizer step at learning rate `lr` on --batch units; returns its losses as
        detached tensors on the device (never .item(): that would sync every step)."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        raise NotImplementedError

    def val_line(self, v: dict[str, float]) -> str:
        return " ".join(f"{k} {x:.4f}" for k, x in v.items())

    def record(self) -> dict:
        """The trainer's own fields of the run's record (run adds the losses, speed and run_record's)."""
        return {}

    def export(self, meta: dict) -> str:
        """Write what ships; returns the closing log line."""
        raise NotImplementedError


def train(trainer_class: Callable[..., Trainer], args) -> dict:
    """A trainer's main: build it on the device for the parsed `args` and run it (its run
    folder is --run-dir, by default runs/<its name>)."""
    device = setup_device(args)
    trainer = trainer_class(args, device)
    return run(trainer, args, device, Path(args.run_dir or f"runs/{trainer.name}"))


def run(trainer: Trainer, args, device: torch.device, run_dir: Path) -> dict:
    """The loop (see the module doc); returns the exported run record."""
    t = trainer
    step, start = init_from(args, run_dir, t.modules, t.optimizers, t.config, warm_start=t.warm_start,
                            generators=t.generators or None)
    t.started(step, start)
    has_probe = type(t).speed_probe is not Trainer.speed_probe
    t.bf16 = pick_bf16(t.speed_probe if has_probe else None, args.bf16, device)
    log(f"{t.name}: --init-from {args.init_from} -> step {step} (before: {start['prior_steps']} steps, "
        f"{start['gpu_minutes']:.1f} GPU-min, {start['cpu_minutes']:.1f} CPU-min)")
    validator = Validator(args.val_every, t.evaluate, start.get("val_history", []))
    history = list(start.get("history", []))
    max_steps = args.max_steps if args.max_steps is not None else float("inf")
    log(t.describe())

    def run_meta(final: bool) -> dict:
        wall = clock.elapsed
        meta = {**t.record(), "train": {k: round(v, 5) for k, v in train.items()},
                f"{t.unit}_per_s_this_run": round(meter.rate, 2), "lr_last": lr,
                **run_record(step, start, wall, device, validator)}
        return meta if final else {**meta, "history": history}

    def save(meta: dict) -> None:
        save_state(run_dir, step, t.modules, t.optimizers, {**meta, "args": vars(args)},
                   generators=t.generators or None)

    clock, meter, losses = Clock(args.minutes, args.save_every_min), Meter(), LossMeans()
    train: dict[str, float] = {}   # the mean losses of the latest log window
    lr = t.learning_rate(step, args, clock)
    while step < max_steps and not clock.out_of_time():
        lr = t.learning_rate(step, args, clock)
        losses.add(t.train_step(step, lr))
        step += 1
        if t.ema is not None:
            ema_update(t.ema, t.model, args.ema, step)
        meter.tick(args.batch)
        if step % args.log_every == 0 or t.log_first_step and step == 1:
            train, rate = losses.take(), meter.window_rate()
            history.append({"step": step, **{k: round(v, 5) for k, v in train.items()}, "lr": lr,
                            f"{t.unit}_per_s": round(rate, 1)})
            log(f"step {step} " + " ".join(f"{k} {v:.4f}" for k, v in train.items())
                + f" lr {lr:.2e} {rate:.1f} {t.unit}/s {clock.elapsed / 60:.1f} min")
        if validator.due(step):
            log(f"step {step} " + t.val_line(validator(step)))
            meter.pause()
        if clock.save_due():
            save(run_meta(False))
            meter.pause()

    # the end: the losses not yet logged, a final validation, the resume state, what ships
    if losses:
        train = losses.take()
    if not validator.history or validator.history[-1]["step"] != step:
        log(f"step {step} " + t.val_line(validator(step)))
    if args.decay_steps and step < args.warmup + args.decay_steps:
        log(f"note: stopped at step {step}, before the cosine decay ended (step {args.warmup + args.decay_steps})")
    meta = run_meta(True)
    save({**meta, "history": history})
    done = t.export(meta)
    log(json.dumps({k: v for k, v in meta.items() if k not in ("config", "val_history")}))
    log(done)
    return meta
