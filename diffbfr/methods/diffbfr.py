"""Restoration: LQ face -> IRM stage 1 (64 px) -> IRM stage 2 (128 px) -> TEM, and the
photo-level path  load -> detect + align -> restore each face -> paste back.

Each stage is its own method so that a UI can cache stage results and rerun only what a
changed setting affects.  Each stage seeds its own generator from (seed, stage), so a
stage's output depends only on its inputs and settings, never on what ran before it.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from .checkpoint import load_model
from .diffusion import truncated_sample
from .unet import TINY_OVERRIDES, UNet, build

STAGE_NAMES = ("irm64", "irm128", "tem128")


@dataclass(frozen=True)
class RestoreSettings:
    # Defaults chosen from `python -m bench.quality --limit 40 --sweep irm_start=... --sweep tem_t=...`
    # with the shipped weights (weights/README.md): the lowest NIQE at the least PSNR cost.
    irm_start: float = 200.0   # stage-1 start step: noise put on the LQ face (more: more invented, less identity)
    irm2_start: float = 200.0  # stage-2 start step: noise put on the upsampled stage-1 result
    tem_t: float = 5.0         # TEM timestep (fractional): how much texture is repainted
    irm64_steps: int = 10
    irm128_steps: int = 4
    tem_steps: int = 2
    seed: int = 0
    eta: float = 0.0           # 0: deterministic DDIM; 1: ancestral-like

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FaceStages:
    lq: np.ndarray      # 128x128x3 uint8, the aligned input
    irm64: np.ndarray   # 64x64x3
    irm128: np.ndarray  # 128x128x3
    tem: np.ndarray     # 128x128x3, the final face
    timings: dict = field(default_factory=dict)  # seconds per stage
    nfe: dict = field(default_factory=dict)      # network evaluations per stage


def to_tensor(img: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).to(device).permute(2, 0, 1)[None].float() / 127.5 - 1


def to_image(x: torch.Tensor) -> np.ndarray:
    return ((x[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def resize_square(img: np.ndarray, size: int, interp: int) -> np.ndarray:
    """Square face -> size x size (unchanged when already that size). Training uses it too, so
    the LQ and stage-1 inputs are resampled the same way in training and in restoration."""
    return img if img.shape[0] == size else cv2.resize(img, (size, size), interpolation=interp)


def _check_face(img: np.ndarray, what: str) -> None:
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != img.shape[1]:
        raise ValueError(f"{what} must be a square HxWx3 uint8 RGB image, got {img.dtype} {img.shape}")


class DiffBFR:
    """The three networks and the stage functions that use them."""

    def __init__(self, nets: dict[str, UNet], device: str | torch.device | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.nets = {k: v.to(self.device).eval() for k, v in nets.items()}
        # Half precision only where it is fast: CUDA. CPU fp16 convolutions are slow.
        self.autocast = self.device.type == "cuda"

    @classmethod
    def load(cls, weights_dir: str | Path = "weights", device: str | torch.device | None = None) -> "DiffBFR":
        weights_dir = Path(weights_dir)
        missing = [n for n in STAGE_NAMES if not (weights_dir / f"{n}.safetensors").exists()]
        if missing:
            raise FileNotFoundError(f"missing weights in {weights_dir}: {', '.join(m + '.safetensors' for m in missing)}")
        return cls({n: load_model(weights_dir / f"{n}.safetensors") for n in STAGE_NAMES}, device)

    @classmethod
    def tiny(cls, seed: int = 0, device: str | None = "cpu") -> "DiffBFR":
        """Random tiny networks with the real wiring: for tests and UI work without weights."""
        torch.manual_seed(seed)
        nets = {n: build(n, **TINY_OVERRIDES) for n in STAGE_NAMES}
        for net in nets.values():  # zero-initialised outputs would make every stage the identity
            torch.nn.init.normal_(net.out_conv.weight, std=0.02)
        return cls(nets, device)

    # ------------------------------------------------------------ stages
    def model_fn(self, name: str, cond: torch.Tensor | None = None) -> Callable:
        net = self.nets[name]

        def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            c = None if cond is None else cond.expand(x.shape[0], -1, -1, -1)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.autocast):
                return net(x, t, c).float()
        return fn

    def _generator(self, seed: int, stage: int) -> torch.Generator:
        return torch.Generator(self.device).manual_seed(int(seed) * 3 + stage)

    @torch.inference_mode()
    def run_irm64(self, lq128: np.ndarray, s: RestoreSettings) -> np.ndarray:
        """Stage 1: truncated sampling at 64 px from the noised LQ, conditioned on the LQ."""
        _check_face(lq128, "the LQ face")
        lq64 = to_tensor(resize_square(lq128, 64, cv2.INTER_AREA), self.device)
        out = truncated_sample(self.model_fn("irm64", lq64), lq64, s.irm_start, s.irm64_steps,
                               s.eta, self._generator(s.seed, 0))
        return to_image(out)

    @torch.inference_mode()
    def run_irm128(self, lq128: np.ndarray, irm64: np.ndarray, s: RestoreSettings) -> np.ndarray:
        """Stage 2: truncated sampling at 128 px from the noised, upsampled stage-1 result."""
        _check_face(irm64, "the stage-1 face")
        up = to_tensor(resize_square(irm64, 128, cv2.INTER_CUBIC), self.device)
        cond = torch.cat([up, to_tensor(lq128, self.device)], dim=1)
        out = truncated_sample(self.model_fn("irm128", cond), up, s.irm2_start, s.irm128_steps,
                               s.eta, self._generator(s.seed, 1))
        return to_image(out)

    @torch.inference_mode()
    def run_tem(self, irm128: np.ndarray, s: RestoreSettings) -> np.ndarray:
        """TEM: noise the IRM result to a small timestep and denoise with the HQ-only prior."""
        _check_face(irm128, "the IRM face")
        x = to_tensor(irm128, self.device)
        out = truncated_sample(self.model_fn("tem128"), x, s.tem_t, s.tem_steps, s.eta, self._generator(s.seed, 2))
        return to_image(out)

    def restore_face(self, lq128: np.ndarray, settings: RestoreSettings | None = None, **overrides) -> FaceStages:
        s = settings or RestoreSettings()
        if overrides:
            s = RestoreSettings(**{**s.to_dict(), **overrides})
        lq128 = resize_square(lq128, 128, cv2.INTER_AREA)
        t0 = time.perf_counter()
        irm64 = self.run_irm64(lq128, s)
        t1 = time.perf_counter()
        irm128 = self.run_irm128(lq128, irm64, s)
        t2 = time.perf_counter()
        tem = self.run_tem(irm128, s)
        t3 = time.perf_counter()
        timings = {"irm64": t1 - t0, "irm128": t2 - t1, "tem": t3 - t2}
        return FaceStages(lq128, irm64, irm128, tem, timings, nfe_for(s))


def nfe_for(s: RestoreSettings) -> dict[str, int]:
    """Network evaluations per stage (a stage with start 0 is skipped: 0 evaluations)."""
    return {"irm64": s.irm64_steps if s.irm_start > 0 else 0,
            "irm128": s.irm128_steps if s.irm2_start > 0 else 0,
            "tem": s.tem_steps if s.tem_t > 0 else 0}


# ---------------------------------------------------------------- whole photos
@dataclass
class FaceResult:
    aligned: object               # diffbfr.align.AlignedFace
    stages: FaceStages
    identity_distance: float | None


@dataclass
class PhotoResult:
    image: np.ndarray
    faces: list[FaceResult]
    notices: list[str]
    timings: dict


def restore_photo(model: DiffBFR, image: np.ndarray, settings: RestoreSettings | None = None,
                  aligned: bool = False, progress: Callable[[float, str], None] | None = None,
                  identity: bool = True) -> PhotoResult:
    """load -> detect + align -> IRM 1 -> IRM 2 -> TEM -> paste back, for every face."""
    from .align import (  # the face layer pulls in dlib: import when needed
        align_crop,
        find_faces,
    )
    from .identity import identity_distance
    from .paste import paste_back

    s = settings or RestoreSettings()
    report = progress or (lambda f, m: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    report(0.0, "detecting faces")
    if aligned:
        faces, reason = [align_crop(image, "auto")], None
    else:
        faces, reason = find_faces(image)
    timings["detect_align"] = time.perf_counter() - t0
    if not faces:
        return PhotoResult(image.copy(), [], [reason or "No face found in the photo."], timings)

    notices = []
    results = []
    for i, face in enumerate(faces):
        base, span = 0.05 + 0.85 * i / len(faces), 0.85 / len(faces)
        label = f"face {i + 1}/{len(faces)}"
        report(base, f"{label}: IRM stage 1")
        ta = time.perf_counter()
        irm64 = model.run_irm64(face.image, s)
        report(base + span / 3, f"{label}: IRM stage 2")
        irm128 = model.run_irm128(face.image, irm64, s)
        report(base + 2 * span / 3, f"{label}: TEM")
        tem = model.run_tem(irm128, s)
        stages = FaceStages(face.image, irm64, irm128, tem, {"total": time.perf_counter() - ta}, nfe_for(s))
        dist = identity_distance(face.image, tem) if identity else None
        results.append(FaceResult(face, stages, dist))
        if getattr(face, "larger_than_model", False):
            notices.append(f"Face {i + 1} spans {face.face_size:.0f} px in the photo; the models restore at "
                           "128 px, so it was upsampled when pasted back.")
    timings["restore"] = time.perf_counter() - t0 - timings["detect_align"]
    report(0.92, "pasting back")
    tp = time.perf_counter()
    # aligned crops go back into the crop the same way: their transform is known too
    out = paste_back(image, faces, [r.stages.tem for r in results])
    timings["paste"] = time.perf_counter() - tp
    timings["total"] = time.perf_counter() - t0
    report(1.0, f"done: {len(results)} face(s)")
    return PhotoResult(out, results, notices, timings)
