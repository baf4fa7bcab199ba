"""Automatic truncation: estimate how degraded an aligned face is, say it in words, and map
that severity to the method's start steps.

    auto = Auto.load("weights", "diffbfr")          # weights/estimator/ + weights/diffbfr/auto_calibration.json
    for face in auto.faces(aligned_faces, settings):  # one AutoFace per face
        face.settings, face.words                     # per-face settings for restore_faces, and why

The estimator is a small network trained on diffbfr's own degradations
(diffbfr/train/estimator.py; the labels are known because we degrade the clean face
ourselves). It predicts the FACTORS below from the aligned 128 px LQ face. Its backbone is
either its own small CNN ("cnn", self-contained) or the frozen Panini-Net DRE ("dre": only
the head is stored here, and the DRE file it was trained on is pinned by its sha256, because a
retrained DRE would silently change the features the head reads).

The calibration (bench/auto.py calibrate) is data: severity breakpoints and, per calibrated
setting, one value per breakpoint, non-decreasing, so piecewise-linear interpolation between
them is monotone in severity.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from . import settings as S
from .checkpoint import load_into, read_config, save_module
from .frame import FRAME, check_face, resize_square, to_batch
from .methods import resolve_weights
from .panini.dre import load_dre


@dataclass(frozen=True)
class Factor:
    name: str
    lo: float
    hi: float
    help: str


# What the estimator predicts, each squashed into [lo, hi] by a sigmoid (so every output is
# inside its stated range, whatever the input).
FACTORS = (
    Factor("log2_scale", 0.0, 4.0, "log2 of the downscale factor (0: full resolution, 4: 16x)"),
    Factor("blur", 0.0, 3.0, "extra Gaussian blur, sigma in px of the 128 px frame (geometric mean of the axes)"),
    Factor("noise", 0.0, 20.0, "std of the noise left in the final image, grey levels"),
    Factor("jpeg", 0.0, 1.0, "JPEG strength (100 - quality) / 80: 0 = none, 1 = quality 20"),
    Factor("severity", 0.0, 1.0, "overall: (40 dB - PSNR(LQ, clean)) / 22 dB, clipped to [0, 1]"),
)
FACTOR_NAMES = tuple(f.name for f in FACTORS)
# Severity is PSNR-based because PSNR of the LQ face says how much of the clean face is gone,
# whatever mixture of blur, resolution, noise and JPEG removed it: 40 dB looks untouched,
# 18 dB is a 16x face with noise (the fixed "heavy" level scores about 20 dB).
SEVERITY_PSNR = (40.0, 18.0)

ESTIMATOR_FILE = "estimator.safetensors"
CALIBRATION_FILE = "auto_calibration.json"


def severity_from_psnr(psnr: float) -> float:
    hi, lo = SEVERITY_PSNR
    return float(np.clip((hi - psnr) / (hi - lo), 0.0, 1.0))


# ---------------------------------------------------------------- the network
@dataclass
class EstimatorConfig:
    backbone: str = "cnn"                                # "cnn" | "dre"
    widths: tuple[int, ...] = (32, 48, 64, 96)          # cnn: 64 px stage, then one stride-2 stage each
    feature_dim: int = 0                                 # dre: the DRE's output width (set by the trainer)
    hidden: int = 64
    dre_sha256: str = ""                                 # dre: the DRE file the head was trained on
    name: str = "estimator"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EstimatorConfig":
        known = set(cls.__dataclass_fields__)
        d = {k: v for k, v in d.items() if k in known}
        if "widths" in d:
            d["widths"] = tuple(d["widths"])
        return cls(**d)


class ConvBody(nn.Module):
    """N x 3 x 128 x 128 in [-1, 1] -> N x (2 * widths[-1]).

    The stem is a 2x2 space-to-depth (pixel unshuffle), not a strided conv: it keeps every
    pixel (JPEG blocks and noise live in single pixels) at a quarter of the cost of convolving
    at 128 px, which matters on a 2-core CPU. Then conv stages, each halving the size but the
    first, and the mean *and* standard deviation of each channel over the face (std pooling
    sees noise and ringing energy, which a mean alone averages away)."""

    def __init__(self, widths: Sequence[int]):
        super().__init__()
        layers, cin = [nn.PixelUnshuffle(2)], 12
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [nn.Conv2d(cin, w, 3, stride, 1, bias=False), nn.BatchNorm2d(w), nn.SiLU(),
                       nn.Conv2d(w, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.SiLU()]
            cin = w
        self.body = nn.Sequential(*layers)
        self.out_dim = 2 * cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return torch.cat([h.mean((2, 3)), h.std((2, 3))], 1)


class Head(nn.Module):
    """Features -> FACTORS in their units. The features are standardised with statistics
    stored as buffers (set once from training data): the DRE's raw vectors have arbitrary scale."""

    def __init__(self, cin: int, hidden: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(cin))
        self.register_buffer("std", torch.ones(cin))
        self.mlp = nn.Sequential(nn.Linear(cin, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, len(FACTORS)))
        self.register_buffer("lo", torch.tensor([f.lo for f in FACTORS]))
        self.register_buffer("hi", torch.tensor([f.hi for f in FACTORS]))

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        return self.mlp((feats.float() - self.mean) / self.std)

    def to_units(self, logits: torch.Tensor) -> torch.Tensor:
        return self.lo + (self.hi - self.lo) * torch.sigmoid(logits)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.to_units(self.logits(feats))


class EstimatorNet(nn.Module):
    """Aligned faces (N x 3 x 128 x 128, [-1, 1]) -> N x len(FACTORS) in their units.
    `body` is a ConvBody (trained with the head) or a frozen DRE (not stored with the head)."""

    def __init__(self, config: EstimatorConfig, body: nn.Module | None = None):
        super().__init__()
        self.config = config
        if config.backbone == "cnn":
            self.body = ConvBody(config.widths)
            dim = self.body.out_dim
        elif config.backbone == "dre":
            if body is None:
                raise ValueError("a 'dre' estimator needs the DRE module as its body")
            self.dre = body.eval().requires_grad_(False)   # frozen; not saved with the head
            dim = config.feature_dim
        else:
            raise ValueError(f"unknown estimator backbone {config.backbone!r}")
        self.head = Head(dim, config.hidden)

    def train(self, mode: bool = True) -> "EstimatorNet":
        super().train(mode)
        if self.config.backbone == "dre":
            self.dre.eval()   # frozen: its BatchNorm keeps the statistics it was trained with
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) if self.config.backbone == "cnn" else self.dre(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_estimator(net: EstimatorNet, path: str | Path, meta: dict | None = None) -> Path:
    """fp16 safetensors + JSON; a 'dre' estimator stores its head only (the DRE ships in
    weights/panini/, pinned by its hash)."""
    return save_module(net.head if net.config.backbone == "dre" else net, path, net.config.to_dict(), meta)


def load_estimator_net(path: str | Path, dre_path: str | Path | None = None) -> EstimatorNet:
    """The estimator at `path`; a 'dre' one also loads the DRE it was trained on (default:
    weights/panini/dre.safetensors beside the estimator's folder) and checks its hash."""
    path = Path(path)
    config = EstimatorConfig.from_dict(read_config(path)[0])
    body = None
    if config.backbone == "dre":
        dre_path = Path(dre_path) if dre_path else path.parent.parent / "panini" / "dre.safetensors"
        if not dre_path.is_file():
            raise FileNotFoundError(f"{path} is a head on the Panini-Net DRE, but {dre_path} is missing")
        if file_sha256(dre_path) != config.dre_sha256:
            raise ValueError(f"{dre_path} is not the DRE {path.name} was trained on (sha256 differs): "
                             "retrain with python -m diffbfr.train.estimator")
        body = load_dre(dre_path)
    net = EstimatorNet(config, body)
    load_into(net.head if config.backbone == "dre" else net, path)
    return net.eval()


# ---------------------------------------------------------------- estimates and words
@dataclass(frozen=True)
class Estimate:
    scale: float          # downscale factor, >= 1
    blur: float           # extra blur sigma, px of the 128 px frame
    noise: float          # grey levels
    jpeg_quality: int     # 20..100 (100: no visible JPEG)
    severity: float       # [0, 1]

    @classmethod
    def from_units(cls, v: Sequence[float]) -> "Estimate":
        d = dict(zip(FACTOR_NAMES, (float(x) for x in v)))
        return cls(scale=2.0 ** d["log2_scale"], blur=d["blur"], noise=d["noise"],
                   jpeg_quality=int(round(100 - 80 * d["jpeg"])), severity=d["severity"])

    def as_dict(self) -> dict:
        return asdict(self)


def severity_word(severity: float) -> str:
    return ("light" if severity < 0.25 else "moderate" if severity < 0.5
            else "heavy" if severity < 0.75 else "severe")


def describe(e: Estimate) -> str:
    """Plain words, e.g. 'heavy degradation (severity 0.66): about 6x downscaled, strong JPEG,
    little noise, little extra blur'. Thresholds: where the degradation starts to show at 128 px."""
    if e.scale < 1.5:
        scale = "full resolution"
    else:
        scale = f"about {e.scale:.1f}× downscaled" if e.scale < 3 else f"about {e.scale:.0f}× downscaled"
    jpeg = ("no visible JPEG" if e.jpeg_quality >= 90 else "mild JPEG" if e.jpeg_quality >= 70
            else "moderate JPEG" if e.jpeg_quality >= 45 else "strong JPEG")
    noise = "little noise" if e.noise < 2 else "some noise" if e.noise < 6 else "strong noise"
    blur = "little extra blur" if e.blur < 0.7 else "some blur" if e.blur < 1.6 else "strong blur"
    return f"{severity_word(e.severity)} degradation (severity {e.severity:.2f}): {scale}, {jpeg}, {noise}, {blur}"


class Estimator:
    """The estimator network on a device, over aligned faces (uint8 RGB, square)."""

    def __init__(self, net: EstimatorNet, device: str | torch.device = "cpu", card: dict | None = None):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.card = card or {}

    @classmethod
    def load(cls, folder: str | Path = "weights/estimator", device: str | torch.device = "cpu",
             dre_path: str | Path | None = None) -> "Estimator":
        path = Path(folder) / ESTIMATOR_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no estimator at {path}: train one with python -m diffbfr.train.estimator")
        return cls(load_estimator_net(path, dre_path), device, read_config(path)[1])

    @classmethod
    def tiny(cls, seed: int = 0) -> "Estimator":
        """Random tiny CNN estimator: outputs are in range but meaningless (tests, UI work)."""
        torch.manual_seed(seed)
        return cls(EstimatorNet(EstimatorConfig(widths=(4, 8), hidden=8)))

    def predict(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """N x len(FACTORS) in their units."""
        for f in faces:
            check_face(f, "an aligned face")
        if not len(faces):
            return np.zeros((0, len(FACTORS)), np.float32)
        x = to_batch([resize_square(f, FRAME) for f in faces], self.device)
        with torch.inference_mode():
            return self.net(x).float().cpu().numpy()

    def estimate(self, faces: Sequence[np.ndarray]) -> list[Estimate]:
        return [Estimate.from_units(v) for v in self.predict(faces)]


# ---------------------------------------------------------------- severity -> settings
@dataclass(frozen=True)
class Calibration:
    """Severity breakpoints -> one value per calibrated setting; piecewise linear between
    breakpoints, flat beyond the ends. Values are non-decreasing in severity (checked), so the
    interpolation is monotone."""
    method: str
    severity: tuple[float, ...]
    values: dict[str, tuple[float, ...]]
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        s = np.asarray(self.severity, float)
        if len(s) < 1 or np.any(np.diff(s) <= 0) or s.min() < 0 or s.max() > 1:
            raise ValueError(f"severity breakpoints must increase inside [0, 1]: {self.severity}")
        for name, v in self.values.items():
            if len(v) != len(s):
                raise ValueError(f"{name}: {len(v)} values for {len(s)} breakpoints")
            if np.any(np.diff(np.asarray(v, float)) < 0):
                raise ValueError(f"{name} must not decrease with severity: {v}")

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.values)

    def at(self, severity: float) -> dict[str, float]:
        s = float(np.clip(severity, 0.0, 1.0))
        return {name: float(np.interp(s, self.severity, v)) for name, v in self.values.items()}

    def to_dict(self) -> dict:
        return {"method": self.method, "severity": list(self.severity),
                "values": {k: list(v) for k, v in self.values.items()}, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        return cls(str(d["method"]), tuple(float(x) for x in d["severity"]),
                   {k: tuple(float(x) for x in v) for k, v in d["values"].items()}, dict(d.get("meta", {})))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        return cls.from_dict(json.loads(Path(path).read_text()))


def auto_settings(s, estimate: Estimate | float, calibration: Calibration, limits: S.Limits | None = None):
    """`s` with the calibrated fields set from the severity (an Estimate or a number): each
    value rounded to its knob's step (what the app's slider can show) and clamped to the
    knob's range, narrowed by `limits` (Model.knob_limits(): never a start step above the
    timesteps its network was trained at); every other field (steps, seed, eta) is kept.
    Deterministic."""
    severity = estimate.severity if isinstance(estimate, Estimate) else float(estimate)
    values = {}
    for name, v in calibration.at(severity).items():
        k = S.knob_of(type(s), name)
        values[name] = S.clamp_value(k, round(v / k.step) * k.step if k.step > 0 else v, limits)
    return dataclasses.replace(s, **values)


@dataclass
class AutoFace:
    settings: object      # the method's settings for this face
    estimate: Estimate
    words: str            # describe(estimate)


class Auto:
    """What an "Auto" toggle needs: the estimator and one method's calibration."""

    def __init__(self, estimator: Estimator, calibration: Calibration):
        self.estimator, self.calibration = estimator, calibration

    @classmethod
    def load(cls, weights_root: str | Path = "weights", method: str = "diffbfr",
             device: str | torch.device = "cpu") -> "Auto":
        """Raises FileNotFoundError without either file, and ValueError when the calibration
        was fitted on another estimator (its severity scale is not this one's)."""
        root = Path(weights_root)
        calibration = Calibration.load(root / method / CALIBRATION_FILE)
        pinned = calibration.meta.get("estimator_sha256", "")
        if pinned and pinned != file_sha256(root / "estimator" / ESTIMATOR_FILE):
            raise ValueError(f"{root / method / CALIBRATION_FILE} was fitted with another estimator: rerun "
                             "python -m bench.auto calibrate")
        return cls(Estimator.load(root / "estimator", device), calibration)

    @classmethod
    def for_method(cls, weights: str | Path, method: str, random_tiny: bool = False,
                   device: str | torch.device = "cpu") -> "Auto":
        """Auto for one method (`weights`: its folder or the root of one per method); with
        random_tiny, a random tiny estimator over the shipped calibration (testing)."""
        folder = resolve_weights(weights, method)
        if random_tiny:
            return cls(Estimator.tiny(), Calibration.load(folder / CALIBRATION_FILE))
        return cls.load(folder.parent, method, device)

    def faces(self, faces: Sequence[np.ndarray], s, limits: S.Limits | None = None) -> list[AutoFace]:
        """Per aligned face: settings from `s` with the calibrated fields set (inside `limits`,
        Model.knob_limits()), and the words."""
        return auto_faces(self.estimator, faces, s, self.calibration, limits)


def auto_face(s, estimate: Estimate, calibration: Calibration, limits: S.Limits | None = None) -> AutoFace:
    """One face's Auto result from its estimate: settings from `s` with the calibrated fields set
    (inside `limits`), and the words."""
    return AutoFace(auto_settings(s, estimate, calibration, limits), estimate, describe(estimate))


def auto_faces(estimator: Estimator, faces: Sequence[np.ndarray], s, calibration: Calibration,
               limits: S.Limits | None = None) -> list[AutoFace]:
    return [auto_face(s, e, calibration, limits) for e in estimator.estimate(faces)]
