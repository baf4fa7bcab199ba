"""Weights on disk: `name.safetensors` for the tensors, `name.json` beside it for the config.

Generic over networks: any module whose constructor takes a config dataclass is saved with
that config (as a dict) and free-form metadata (the training arguments, the card numbers).
Nothing here ever unpickles: shipped weights are safetensors only (fp16), and training
resume state is safetensors + JSON as well.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def config_path(weights_path: str | Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_module(module: nn.Module, path: str | Path, config: dict, meta: dict | None = None,
                dtype: torch.dtype | None = torch.float16) -> Path:
    """Write the module's state (floating tensors cast to `dtype`) and {config, meta} as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous().cpu()
               for k, v in module.state_dict().items()}
    save_file(tensors, str(path), metadata={"name": str(config.get("name", path.stem))})
    config_path(path).write_text(json.dumps({"config": config, "meta": meta or {}}, indent=2, default=str) + "\n")
    return path


def read_config(path: str | Path) -> tuple[dict, dict]:
    """(config, meta) stored beside a weights file."""
    payload = json.loads(config_path(path).read_text())
    return payload["config"], payload.get("meta", {})


def load_into(module: nn.Module, path: str | Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Fill `module` from a safetensors file (floating tensors cast to `dtype`); strict."""
    state = load_file(str(path), device="cpu")
    module.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()})
    return module.eval()
