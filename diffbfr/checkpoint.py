"""Weights on disk: `name.safetensors` for the tensors, `name.json` beside it for the network's
class, its config and free-form metadata (the training arguments, the card numbers).

The one way to load a network: `load_network(path)` rebuilds whatever class the JSON names
(nets/catalog.py) from its stored config and fills it; `save_network` writes what it reads
back. `save_module` / `load_into` are the tensor-level halves under them, which trainers also
use to export and to fill modules they build themselves. Nothing here ever unpickles: shipped
weights are safetensors only (fp16), and training resume state is safetensors + JSON as well.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .nets.catalog import NETWORK_CLASSES, class_of


def config_path(weights_path: str | Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_module(module: nn.Module, path: str | Path, config: dict, meta: dict | None = None,
                dtype: torch.dtype | None = torch.float16, network_class: str | None = None) -> Path:
    """Write the module's state (floating tensors cast to `dtype`) and {class, config, meta} as
    JSON; the class is the module's own unless `network_class` names the network it is part of."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous().cpu()
               for k, v in module.state_dict().items()}
    save_file(tensors, str(path), metadata={"name": str(config.get("name", path.stem))})
    payload = {"class": network_class or type(module).__name__, "config": config, "meta": meta or {}}
    config_path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")
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


def save_network(net: nn.Module, path: str | Path, meta: dict | None = None,
                 dtype: torch.dtype | None = torch.float16) -> Path:
    """Write a network of nets/catalog.py (fp16 by default; dtype None keeps fp32) so that
    load_network rebuilds it."""
    name = type(net).__name__
    kind = NETWORK_CLASSES[name]
    return save_module(kind.stored(net), path, kind.config(net), meta, dtype, network_class=name)


def load_network(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 **components: nn.Module) -> nn.Module:
    """The network stored at `path`, rebuilt from the class and config in the JSON beside it,
    floating tensors in `dtype`, in eval mode. `components`: networks it is built on that its
    file does not hold (a 'dre' estimator's `body`)."""
    payload = json.loads(config_path(path).read_text())
    kind = NETWORK_CLASSES[class_of(payload)]
    net = kind.build(payload["config"], **components)
    load_into(kind.stored(net), path, dtype)
    return net.to(device).eval()
