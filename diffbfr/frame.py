"""The canonical face frame: its size, the conversions between images and tensors, and the
point mapping of the affine matrices that warp photos into it.

Every network sees faces in one frame (the UTKFace crop framing at 128 px; stage 1 of
DiffBFR the same frame at 64 px). Training and restoration both import this module, so a
face is resampled and normalised by one piece of code wherever it goes.

Images: numpy uint8 H x W x 3 RGB. Tensors: float32 N x C x H x W in [-1, 1].
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

FRAME = 128          # side of the canonical face frame, in pixels
HALF_FRAME = 64      # the same frame at DiffBFR's stage-1 resolution


def is_square(image: np.ndarray, tolerance: float = 0.01) -> bool:
    """Sides equal within `tolerance` of the longer side: the rule for 'an aligned crop'."""
    h, w = image.shape[:2]
    return abs(h - w) <= tolerance * max(h, w)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (..., 2) moved by a 2x3 affine matrix, as cv2.warpAffine moves pixel centres."""
    return np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]


def resize_matrix(sx: float, sy: float | None = None) -> np.ndarray:
    """3x3 matrix of a resize by (sx, sy) in cv2.resize's pixel-centre convention:
    x' = (x + 0.5) * sx - 0.5 (take [:2] for cv2's 2x3 form)."""
    sy = sx if sy is None else sy
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def as_rgb(image: np.ndarray) -> np.ndarray:
    """The photo as a C-contiguous HxWx3 uint8 array (what dlib and cv2 read), or ValueError."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {got}")
    return np.ascontiguousarray(image)


def check_face(image: np.ndarray, what: str = "the face") -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.shape[0] != image.shape[1]:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{what} must be a square HxWx3 uint8 RGB image, got {got}")


def resize_square(image: np.ndarray, size: int, interp: int = cv2.INTER_AREA) -> np.ndarray:
    """Square face -> size x size (unchanged when already that size)."""
    return image if image.shape[0] == size else cv2.resize(image, (size, size), interpolation=interp)


def frame_face(face: np.ndarray) -> np.ndarray:
    """An aligned face (checked: square uint8 RGB) at the FRAME px the methods read."""
    check_face(face, "an aligned face")
    return resize_square(face, FRAME)


def to_tensor(image: np.ndarray, device="cpu") -> torch.Tensor:
    """One uint8 HxWx3 image -> float 1x3xHxW in [-1, 1]."""
    # np.require copies only arrays torch cannot share (non-contiguous or read-only)
    return torch.from_numpy(np.require(image, requirements=["C", "W"])).to(device).permute(2, 0, 1)[None].float() / 127.5 - 1


def to_batch(images: Sequence[np.ndarray], device="cpu") -> torch.Tensor:
    """Same-size uint8 images -> float Nx3xHxW in [-1, 1]."""
    return torch.cat([to_tensor(im, device) for im in images])


def to_images(x: torch.Tensor) -> list[np.ndarray]:
    """Float Nx3xHxW in [-1, 1] -> N uint8 HxWx3 images."""
    arr = ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(a) for a in arr]
