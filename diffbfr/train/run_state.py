"""A training run's state on disk, and how a run starts.

save_state / load_state: everything a killed run needs to go on (resume). init_from: what
--init-from asks for: scratch (refusing to overwrite a run that is there), resume (refusing a
different config), or PATH (warm start from shipped weights, counting the steps and GPU/CPU
minutes they already had). usage: those minutes so far, for the next save or export.

Nothing here unpickles: resume state is safetensors (tensors) + JSON (everything else).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..checkpoint import config_path, read_config

STATE_JSON = "state.json"


class InitError(RuntimeError):
    """A run cannot start as asked (missing state, config mismatch, run dir in use)."""


# ---------------------------------------------------------------- resume state
def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)


def save_state(run_dir, step: int, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               meta: dict, generators: dict[str, torch.Generator] | None = None) -> Path:
    """Full resume state: every module (fp32), every optimizer, torch RNG (+ named generators).

    Atomic: tensors go to state.STEP.safetensors (via a temp file), then state.json, which names
    that file, replaces the old one; a run killed at any moment leaves a consistent last state.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for k, v in module.state_dict().items():
            tensors[f"module/{name}/{k}"] = v.detach().cpu().contiguous()
    optim_json = {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        extras = {}  # non-tensor per-parameter state (rare: ints, None) stays in JSON
        for pid, st in sd["state"].items():
            for k, v in st.items():
                if isinstance(v, torch.Tensor):
                    tensors[f"optim/{name}/{pid}/{k}"] = v.detach().cpu().contiguous()
                else:
                    extras.setdefault(str(pid), {})[k] = v
        optim_json[name] = {"param_groups": sd["param_groups"], "extras": extras}
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s
    for name, gen in (generators or {}).items():
        tensors[f"rng/gen/{name}"] = gen.get_state()

    tensor_file = f"state.{step:09d}.safetensors"
    tmp = run_dir / (tensor_file + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(run_dir / tensor_file)
    _write_json(run_dir / STATE_JSON, {**meta, "step": step, "state": {
        "file": tensor_file, "modules": sorted(modules), "optimizers": optim_json,
        "generators": sorted(generators or {})}})
    for old in run_dir.glob("state.*.safetensors"):  # only after the new state.json is in place
        if old.name != tensor_file:
            old.unlink()
    return run_dir / STATE_JSON


def load_state(run_dir, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               generators: dict[str, torch.Generator] | None = None) -> dict:
    """Fill modules/optimizers/RNG from save_state's files (strict: names must match); returns meta
    (with "step")."""
    run_dir = Path(run_dir)
    payload = json.loads((run_dir / STATE_JSON).read_text())
    info = payload.pop("state")
    if sorted(modules) != info["modules"] or sorted(optimizers) != sorted(info["optimizers"]):
        raise InitError(f"{run_dir}: state holds modules {info['modules']} and optimizers "
                        f"{sorted(info['optimizers'])}, the trainer has {sorted(modules)} and {sorted(optimizers)}")
    tensors = load_file(str(run_dir / info["file"]))
    for name, module in modules.items():
        prefix = f"module/{name}/"
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    for name, opt in optimizers.items():
        prefix, saved = f"optim/{name}/", info["optimizers"][name]
        state: dict = {int(pid): dict(extra) for pid, extra in saved["extras"].items()}
        for k, v in tensors.items():
            if k.startswith(prefix):
                pid, key = k[len(prefix):].split("/", 1)
                state.setdefault(int(pid), {})[key] = v
        opt.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    torch.set_rng_state(tensors["rng/torch"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda/")]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[:torch.cuda.device_count()])
    for name, gen in (generators or {}).items():
        gen.set_state(tensors[f"rng/gen/{name}"])
    return payload


# ---------------------------------------------------------------- how a run starts
def _normalise(config: dict) -> dict:
    return json.loads(json.dumps(config, default=str))  # tuples -> lists, as stored


# Config keys that describe how a network is trained, not its shape: a run may change them.
TRAINING_KEYS = frozenset({"t_max"})
# Config keys that switch on a module added to a network after weights of it shipped: a warm
# start from weights without it (the key absent or off in their config) gives the new module
# its own initialisation, and the trainer loads the rest (panini_trainer.warm_start).
ADDED_MODULE_KEYS = frozenset({"image_dafi"})


def check_config(stored: dict, wanted: dict, where: str) -> None:
    stored, wanted = _normalise(stored), _normalise(wanted)
    diff = sorted(k for k in (set(stored) | set(wanted)) - TRAINING_KEYS if stored.get(k) != wanted.get(k)
                  and not (k in ADDED_MODULE_KEYS and not stored.get(k)))
    if diff:
        detail = "; ".join(f"{k}: stored {stored.get(k)!r} vs training {wanted.get(k)!r}" for k in diff)
        raise InitError(f"{where} was trained with a different config ({detail})")


def _clear_run_dir(run_dir: Path, force: bool) -> None:
    """scratch/PATH start a new run: refuse to overwrite one that is there, unless --force."""
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return
    if not force:
        held = ""
        if (run_dir / STATE_JSON).exists():
            held = f" (state.json at step {json.loads((run_dir / STATE_JSON).read_text()).get('step')})"
        raise InitError(f"{run_dir} is not empty{held}: pass --init-from resume to continue that run, "
                        f"or --force to start a new run and overwrite its state, or another --run-dir")
    for f in [run_dir / STATE_JSON, *run_dir.glob("state.*.safetensors*"), run_dir / (STATE_JSON + ".tmp")]:
        if f.exists():
            f.unlink()


def prior_usage(meta: dict) -> dict:
    """gpu/cpu minutes and optimizer steps that shipped weights already had (older files only
    have train_seconds + device: attribute them to the device they name)."""
    gpu, cpu = meta.get("gpu_minutes"), meta.get("cpu_minutes")
    if gpu is None and cpu is None:
        minutes = float(meta.get("train_seconds", 0.0)) / 60
        on_cpu = str(meta.get("device", "cpu")).startswith("cpu")
        gpu, cpu = (0.0, minutes) if on_cpu else (minutes, 0.0)
    steps = meta.get("total_steps", meta.get("steps", 0))
    return {"gpu_minutes": float(gpu or 0.0), "cpu_minutes": float(cpu or 0.0), "prior_steps": int(steps or 0)}


def init_from(args, run_dir, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
              config: dict, *, warm_start: Sequence[str] = ("model", "ema"),
              generators: dict[str, torch.Generator] | None = None) -> tuple[int, dict]:
    """Start the run as --init-from says; returns (step, meta of what came before).

    meta always has gpu_minutes, cpu_minutes (totals before this run), prior_steps (optimizer
    steps the weights had before this run's step 0) and init_from; pass it to `usage`.
    PATH fills the modules named in `warm_start` (e.g. G and G_ema for a GAN) from the file;
    the others and the optimizers start fresh, and the step counter (hence warm-up) restarts at 0.
    """
    run_dir, mode = Path(run_dir), args.init_from
    if mode == "resume":
        if not (run_dir / STATE_JSON).exists():
            raise InitError(f"--init-from resume: no {run_dir / STATE_JSON}; start with --init-from scratch "
                            f"or --init-from PATH/TO/weights.safetensors (or fix --run-dir)")
        stored = json.loads((run_dir / STATE_JSON).read_text())
        if "config" in stored:
            check_config(stored["config"], config, f"the run in {run_dir}")
        meta = load_state(run_dir, modules, optimizers, generators)
        return int(meta["step"]), meta
    _clear_run_dir(run_dir, getattr(args, "force", False))
    if mode == "scratch":
        return 0, {"init_from": "scratch", "gpu_minutes": 0.0, "cpu_minutes": 0.0, "prior_steps": 0}

    path = Path(mode)
    if not path.is_file() or not config_path(path).is_file():
        raise InitError(f"--init-from {mode}: expected 'scratch', 'resume' or a weights file with its .json "
                        f"beside it ({path} exists: {path.is_file()}, {config_path(path)} exists: "
                        f"{config_path(path).is_file()})")
    stored_config, stored_meta = read_config(path)
    check_config(stored_config, config, str(path))
    missing = [n for n in warm_start if n not in modules]
    if missing:
        raise InitError(f"warm_start names {missing}, not among the modules {sorted(modules)}")
    weights = load_file(str(path))
    for name in warm_start:
        module = modules[name]
        ref = module.state_dict()
        module.load_state_dict({k: v.to(ref[k].dtype) if k in ref else v for k, v in weights.items()})
    return 0, {"init_from": str(path), **prior_usage(stored_meta)}


def usage(start_meta: dict, seconds: float, device: torch.device) -> dict:
    """Totals so far: what came before this run (init_from's meta) plus this run's seconds."""
    gpu = float(start_meta.get("gpu_minutes", 0.0))
    cpu = float(start_meta.get("cpu_minutes", 0.0))
    if device.type == "cuda":
        gpu += seconds / 60
    else:
        cpu += seconds / 60
    return {"gpu_minutes": round(gpu, 3), "cpu_minutes": round(cpu, 3)}
