"""Faces in a photo -> 128 px faces in the models' canonical frame, and back.

The canonical frame is the UTKFace framing (200 px "aligned & cropped" faces resized
to 128 px). TEMPLATE_128 is where the 5 points of a typical face land in that frame;
it was measured on the training data by tools/fit_template.py, not guessed.

A face found in a photo is mapped onto the template by a least-squares similarity
transform (rotation, uniform scale, translation: no shear, so the face keeps its
proportions), and the transform is kept so that paste.py can put the restored face back.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..frame import FRAME, as_rgb, is_square, resize_matrix
from .detect import MIN_FACE_PX, Face, FaceDetector, default_detector, detect_faces

__all__ = [
    "FRAME",
    "TEMPLATE_128",
    "FACE_BOX_128",
    "FFHQ_TEMPLATE_512",
    "AlignedFace",
    "similarity_transform",
    "align_face",
    "align_crop",
    "crop_style",
    "find_faces",
    "warp_to_frame",
]

# Robust mean of the 5 points (left eye centre, right eye centre, nose tip, left and
# right mouth corner, as seen in the image) in 128 px frame coordinates (pixel
# centres), over UTKFace train crops where dlib's HOG detector found the face:
# 5,000 random train crops (seed 0), face found in 4,934 (98.7 %), 4,868 inliers
# averaged. Per-point sd: eyes ~2.1 x / 1.7 y px, nose 4.4 / 3.9, mouth 4.5 / 3.0
# (mostly head pose). Computed by `python tools/fit_template.py --n 5000 --seed 0`.
TEMPLATE_128 = np.array(
    [
        [37.80, 38.02],
        [87.44, 38.11],
        [62.48, 65.12],
        [40.03, 88.28],
        [85.34, 88.31],
    ],
    dtype=np.float64,
)

# Mean dlib HOG detection box (x0, y0, x1, y1; edges) of the same crops in the 128 px
# frame: where identity.py runs the shape predictor on an aligned face, no detection.
FACE_BOX_128 = (7.9, 5.9, 122.3, 121.2)

# The standard FFHQ 5-point template of 512 px crops (as used by facexlib/GFPGAN/
# CodeFormer to produce their aligned inputs); same point order as ours.
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.19360],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float64,
)


@dataclass
class AlignedFace:
    image: np.ndarray  # 128x128x3 uint8 RGB in the canonical frame
    matrix: np.ndarray  # 2x3 float64, photo -> aligned coordinates (pixel centres)
    face: Face | None  # None for aligned-input mode
    face_size: float  # photo pixels spanned by the 128 px frame
    larger_than_model: bool  # face_size > 128: restored at 128 px, say so in metadata


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform src -> dst (Umeyama 1991), as a 2x3 matrix.

    Plain least squares over all points (no RANSAC/LMEDS): with 5 good landmarks every
    point carries information, and outlier rejection would make the result jumpy.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need matching (N>=2, 2) point arrays, got {src.shape} {dst.shape}")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    sc, dc = src - mu_s, dst - mu_d
    var_s = (sc**2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("degenerate source points (all equal)")
    cov = dc.T @ sc / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ np.diag(d) @ vt  # d flips the last axis so we never return a mirror
    scale = float((sig * d).sum() / var_s)
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def _matrix_scale(matrix: np.ndarray) -> float:
    """Uniform scale of a similarity matrix (sqrt of |det| also covers plain resizes)."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def warp_to_frame(image: np.ndarray, matrix: np.ndarray, size: int = FRAME) -> np.ndarray:
    """Warp `image` by `matrix` (image -> frame) into a size x size frame, antialiased.

    A plain bilinear warp aliases when the face is much larger than the frame (it
    samples 1 of every k pixels). So for shrink factors >= 2 we warp to k times the
    size and then average k x k blocks (INTER_AREA), an exact box filter.
    Outside the photo we reflect: the model sees plausible texture instead of a black
    edge, and those pixels are never pasted back (they lie outside the photo).
    """
    shrink = 1.0 / max(_matrix_scale(matrix), 1e-9)
    k = int(min(8, np.floor(shrink))) if shrink >= 2.0 else 1
    m = np.asarray(matrix, dtype=np.float64)
    if k > 1:
        # frame pixel i averages supersampled pixels k*i .. k*i+k-1 (centre k*i+(k-1)/2)
        m = m * k
        m[:, 2] += (k - 1) / 2.0
    out = cv2.warpAffine(
        image, m, (size * k, size * k), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
    if k > 1:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(out)


def _aligned(image: np.ndarray, matrix: np.ndarray, face: Face | None) -> AlignedFace:
    face_size = FRAME / _matrix_scale(matrix)
    return AlignedFace(
        image=warp_to_frame(image, matrix),
        matrix=np.asarray(matrix, dtype=np.float64),
        face=face,
        face_size=float(face_size),
        larger_than_model=bool(face_size > FRAME),
    )


def align_face(image: np.ndarray, face: Face) -> AlignedFace:
    """Map one detected face onto the canonical 128 px frame."""
    image = as_rgb(image)
    matrix = similarity_transform(face.points5, TEMPLATE_128)
    return _aligned(image, matrix, face)


def crop_style(image: np.ndarray) -> str:
    """The "auto" rule of aligned-input mode.

    FFHQ-style if the crop is square (sides within 1%) and at least 256 px, because the
    FFHQ-aligned inputs of restoration papers are 512 (sometimes 256/1024) squares;
    otherwise "utk": UTKFace crops are 200 px and anything small is taken to be framed
    like our training data.
    """
    return "ffhq" if is_square(image) and min(image.shape[:2]) >= 256 else "utk"


def align_crop(image: np.ndarray, style: str = "auto") -> AlignedFace:
    """Aligned-input mode: the upload is already an aligned face crop; no detection.

    "utk": the crop is UTKFace-framed: plain resize to 128.
    "ffhq": the crop is FFHQ-framed: map the FFHQ 5-point template (scaled to the
    crop's size) onto TEMPLATE_128, i.e. use the fixed geometric relation between the
    two framings rather than assuming they are equal (FFHQ has far more margin).
    "auto": see crop_style().
    """
    image = as_rgb(image)
    if style == "auto":
        style = crop_style(image)
    h, w = image.shape[:2]
    if style == "utk":
        sx, sy = FRAME / w, FRAME / h
        matrix = resize_matrix(sx, sy)[:2]
        interp = cv2.INTER_AREA if min(h, w) >= FRAME else cv2.INTER_CUBIC
        out = cv2.resize(image, (FRAME, FRAME), interpolation=interp)
        face_size = FRAME / _matrix_scale(matrix)
        return AlignedFace(
            image=np.ascontiguousarray(out),
            matrix=matrix,
            face=None,
            face_size=float(face_size),
            larger_than_model=bool(face_size > FRAME),
        )
    if style == "ffhq":
        src = FFHQ_TEMPLATE_512 * np.array([w / 512.0, h / 512.0])
        return _aligned(image, similarity_transform(src, TEMPLATE_128), None)
    raise ValueError(f"unknown crop style {style!r}: use 'ffhq', 'utk' or 'auto'")


NO_FACE_REASON = (
    "No face found. The detectors look for faces at least about {min_px} px wide in this "
    "photo (frontal ones best; smaller faces cannot be restored); for an already cropped "
    "face use aligned-input mode."
)


def find_faces(
    image: np.ndarray, detector: FaceDetector | None = None
) -> tuple[list[AlignedFace], str | None]:
    """Detect and align every face in a photo, left to right.

    Returns (faces, None), or ([], reason) when there is nothing to restore: a photo
    without a face is an ordinary outcome, not an error.
    """
    image = as_rgb(image)
    h, w = image.shape[:2]
    if min(h, w) < MIN_FACE_PX:
        return [], f"Image too small to find a face ({w}x{h} px)."
    detector = detector or default_detector()
    faces = detect_faces(image, detector)
    if not faces:
        min_px = detector.min_face_size(h, w)
        return [], NO_FACE_REASON.format(min_px=int(np.ceil(min_px)))
    return [align_face(image, f) for f in faces], None
