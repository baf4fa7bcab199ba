"""The method registry: a plain mapping from name to Method (diffusers' auto-pipeline mapping
is the model; nothing registers itself at import time). Adding a method = one module in this
folder and one line here; the photo path, cache, CLI, app and benches need no change.

    from diffbfr import methods
    model = methods.load("weights/diffbfr")            # the folder's manifest names the method
    model = methods.tiny("diffbfr")                    # random tiny networks (tests, UI work)
"""
from __future__ import annotations

from pathlib import Path

import torch

from .base import INPUT, MANIFEST, Method, Model, SimpleControl, Stage, read_manifest
from .diffbfr_method import DIFFBFR, DiffBFRSettings
from .panini import PANINI

METHODS: dict[str, Method] = {
    DIFFBFR.name: DIFFBFR,
    PANINI.name: PANINI,
}

__all__ = ["INPUT", "MANIFEST", "METHODS", "Method", "Model", "SimpleControl", "Stage", "DiffBFRSettings",
           "get", "load", "resolve_weights", "tiny", "weights_folders"]


def get(name: str) -> Method:
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


def load(weights_dir: str | Path, device: str | torch.device | None = None) -> Model:
    """Load a weights folder (weights/<method>/); its manifest says which method it holds."""
    manifest = read_manifest(weights_dir)
    return Model.load(get(str(manifest.get("method"))), weights_dir, device)


def tiny(name: str, seed: int = 0, device: str | torch.device | None = "cpu") -> Model:
    return Model.tiny(get(name), seed, device)


def model_for(name: str, weights: str | Path, random_tiny: bool = False,
              device: str | torch.device | None = None) -> Model:
    """A method's shipped model (`weights`: its folder or the root of one per method), or,
    with random_tiny, random tiny networks for testing without weights."""
    if random_tiny:
        return tiny(name, seed=0, device=device or "cpu")
    return load(resolve_weights(weights, name), device=device)


def weights_folders(root: str | Path) -> dict[str, Path]:
    """method name -> its folder, for every registered method with a folder under `root`
    (weights/diffbfr, weights/panini, ...)."""
    root = Path(root)
    return {name: root / name for name in METHODS if (root / name / MANIFEST).is_file()}


def resolve_weights(path: str | Path, method: str) -> Path:
    """A method's weights folder from either that folder or the root holding one per method."""
    path = Path(path)
    return path if (path / MANIFEST).is_file() else path / method
