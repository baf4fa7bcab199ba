"""Weights on disk: safetensors for tensors, a JSON file beside them for the config.

`name.safetensors` + `name.json`.  Nothing here ever unpickles: shipped weights are
safetensors only, and training resume state is safetensors + JSON as well.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .unet import UNet, UNetConfig


def config_path(weights_path: str | Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_model(model: UNet, path: str | Path, dtype: torch.dtype | None = torch.float16, meta: dict | None = None) -> Path:
    """Write the model's weights (fp16 by default) and its config (+ free-form metadata)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous().cpu()
               for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"name": model.config.name})
    payload = {"config": model.config.to_dict(), "meta": meta or {}}
    config_path(path).write_text(json.dumps(payload, indent=2) + "\n")
    return path


def read_config(path: str | Path) -> tuple[UNetConfig, dict]:
    payload = json.loads(config_path(path).read_text())
    return UNetConfig.from_dict(payload["config"]), payload.get("meta", {})


def load_model(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> UNet:
    """Rebuild the network from its JSON config and fill it from safetensors."""
    config, _ = read_config(path)
    model = UNet(config)
    state = load_file(str(path), device="cpu")
    model.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()})
    return model.to(device).eval()
