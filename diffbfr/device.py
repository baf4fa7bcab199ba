"""The device a person asks for (--device on the CLI and the app), checked before anything
loads: a CPU-only PyTorch asked for CUDA answers with one sentence, not the traceback of
`Torch not compiled with CUDA enabled` from deep inside a model's .to()."""
from __future__ import annotations

import torch


class DeviceError(ValueError):
    """The device asked for cannot be used; str(error) is one sentence for people."""


def resolve_device(name: str | None) -> torch.device:
    """'cpu', 'cuda', 'cuda:1' or None (CUDA when available, else the CPU) -> a usable device,
    or DeviceError."""
    if name is None or not str(name).strip():
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    text = str(name).strip()
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise DeviceError(f"--device must be cpu, cuda or cuda:N (a GPU's number); got {text[:40]!r}.") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise DeviceError(f"--device {text[:40]} is not supported here: use cpu or cuda.")
    if not torch.cuda.is_available():
        why = "this PyTorch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise DeviceError(f"--device {text} asks for a GPU, but {why}: use --device cpu (or leave --device out).")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"--device {text}: there is no GPU number {device.index} "
                          f"({torch.cuda.device_count()} visible, numbered from 0).")
    return device
