"""Face detection and 5-point landmarks with the models that pip packages ship.

Backend: dlib's HOG frontal face detector (in `dlib-bin`) plus the 68-point shape
predictor from `face-recognition-models`. Nothing is downloaded at run time.

Any other detector (e.g. a facexlib RetinaFace backend where torchvision is
available) only has to implement `FaceDetector.detect(image) -> list[Face]` and can
be passed to `detect_faces(image, detector=...)`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import dlib
import numpy as np

from .models import hog_detector, load_once, shape_predictor_68

__all__ = [
    "Face",
    "FaceDetector",
    "DlibDetector",
    "detect_faces",
    "default_detector",
    "points5_from_68",
    "landmarks68_in_box",
    "landmarks68_upright",
]


@dataclass
class Face:
    """One face found in a photo, in photo pixel coordinates."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float  # detector confidence (dlib: SVM margin, > 0 means "face")
    points5: np.ndarray  # (5, 2) float32: left eye, right eye (as seen in the image),
    # nose tip, left mouth corner, right mouth corner
    landmarks68: np.ndarray | None = None  # (68, 2) float32 when the backend has them


@runtime_checkable
class FaceDetector(Protocol):
    """What the face layer needs from a detector backend."""

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 HxWx3 image, in that image's pixel coordinates."""
        ...


# dlib documents its object_detector as unsafe for concurrent use (the shape predictor
# is fine), and the app may serve two uploads at once: runs of it are serialised.
_hog_lock = threading.Lock()


def run_hog(image: np.ndarray, threshold: float):
    """(rects, scores) of dlib's HOG detector at the image's own scale."""
    detector = hog_detector()
    with _hog_lock:
        rects, scores, _ = detector.run(image, 0, threshold)
    return rects, scores


# --- landmarks ---------------------------------------------------------------------

# iBUG 68-point indices. 36-41 / 42-47 are the eye contours of the eye on the
# image's left / right; 30 is the nose tip; 48 / 54 the mouth corners.
_LEFT_EYE = slice(36, 42)
_RIGHT_EYE = slice(42, 48)
_NOSE_TIP = 30
_MOUTH_LEFT = 48
_MOUTH_RIGHT = 54


def points5_from_68(landmarks68: np.ndarray) -> np.ndarray:
    """The 5 alignment points (eye centres, nose tip, mouth corners) from 68 points."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    return np.stack(
        [
            lm[_LEFT_EYE].mean(axis=0),
            lm[_RIGHT_EYE].mean(axis=0),
            lm[_NOSE_TIP],
            lm[_MOUTH_LEFT],
            lm[_MOUTH_RIGHT],
        ]
    ).astype(np.float32)


def landmarks68_in_box(image: np.ndarray, box) -> np.ndarray:
    """Run the 68-point predictor inside a given box (x0, y0, x1, y1) -> (68, 2).

    Also used without a detection (a fixed rectangle), e.g. for aligned crops.
    """
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    # box edges are exclusive at x1/y1; dlib rectangles are inclusive
    shape = shape_predictor_68()(_as_dlib_image(image), dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    # dlib parts are integer pixel indices, i.e. pixel centres as in cv2 coordinates
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def _as_dlib_image(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected HxWx3 uint8 RGB image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


# Above this roll the 68-point predictor drifts (measured: ~2 px at 35 deg, up to 20 px
# at 50 deg on UTK faces), so tilted faces get a second pass on an upright copy.
UPRIGHT_REFIT_DEG = 15.0


def landmarks68_upright(image: np.ndarray, box) -> np.ndarray:
    """68 points inside `box`; if the face is tilted, refit them on a derotated copy.

    The first fit gives the roll (eye line angle); the region around the face is then
    rotated upright, the predictor runs on a box of the same size there, and the
    points are mapped back. Costs one small warp, and only for tilted faces.
    """
    lm = landmarks68_in_box(image, box)
    eyes = points5_from_68(lm)[:2].astype(np.float64)
    dx, dy = eyes[1] - eyes[0]
    roll = float(np.degrees(np.arctan2(dy, dx)))  # eye line angle, image y points down
    if abs(roll) < UPRIGHT_REFIT_DEG:
        return lm
    x0, y0, x1, y1 = box
    size = max(x1 - x0, y1 - y0)
    side = int(np.ceil(2 * size))
    centre = ((x0 + x1) / 2.0 - 0.5, (y0 + y1) / 2.0 - 0.5)  # pixel-centre coordinates
    rot = cv2.getRotationMatrix2D(centre, roll, 1.0)  # undoes the roll
    rot[:, 2] += (side - 1) / 2.0 - np.asarray(centre)
    upright = cv2.warpAffine(image, rot, (side, side), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    c = side / 2.0
    lm_up = landmarks68_in_box(upright, (c - (x1 - x0) / 2, c - (y1 - y0) / 2,
                                         c + (x1 - x0) / 2, c + (y1 - y0) / 2))
    back = cv2.invertAffineTransform(rot)
    return (lm_up.astype(np.float64) @ back[:, :2].T + back[:, 2]).astype(np.float32)


# --- dlib HOG backend --------------------------------------------------------------

def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]


class DlibDetector:
    """dlib HOG frontal detector + 68-point landmarks, resolution-normalised.

    HOG's cost grows with pixel count and it only finds faces of roughly >= 80 px
    (its window size). So every photo is resized to about `work_pixels` before
    detection: big photos are downscaled (speed; their faces are big anyway) and
    small photos are upsampled (their faces are small), up to `max_upsample` times.
    Landmarks are computed on whichever of the photo / working copy has more pixels:
    the shape predictor returns whole pixels, so more pixels means finer points.

    HOG tolerates only ~20-25 degrees of in-plane tilt. When the upright pass finds
    nothing, the working copy is rotated by each of `retry_rotations` degrees in turn
    (tilted heads, crooked scans); that costs time only for photos with no upright face.
    """

    def __init__(
        self,
        work_pixels: float = 1.0e6,
        max_upsample: float = 2.5,
        threshold: float = 0.0,
        retry_rotations: tuple[float, ...] = (30.0, -30.0),
    ):
        self.work_pixels = float(work_pixels)
        self.max_upsample = float(max_upsample)
        self.threshold = float(threshold)  # dlib margin; lower finds more, with more false hits
        self.retry_rotations = tuple(retry_rotations)

    def work_scale(self, height: int, width: int) -> float:
        """Factor by which the photo is resized for detection."""
        scale = np.sqrt(self.work_pixels / float(height * width))
        return float(min(scale, self.max_upsample))

    def detect(self, image: np.ndarray) -> list[Face]:
        image = _as_dlib_image(image)
        h, w = image.shape[:2]
        scale = self.work_scale(h, w)
        if abs(scale - 1.0) < 1e-3:
            work, to_work = image, np.array([[1.0, 0, 0], [0, 1.0, 0]])
        else:
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            work = cv2.resize(image, size, interpolation=interp)
            sx, sy = size[0] / w, size[1] / h  # exact per-axis factors after rounding
            # cv2.resize maps pixel centres as x' = (x + 0.5) * s - 0.5
            to_work = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]])
        faces = self._detect_pass(image, work, to_work, rotated=False)
        for angle in self.retry_rotations if not faces else ():
            wh, ww = work.shape[:2]
            rot = cv2.getRotationMatrix2D(((ww - 1) / 2.0, (wh - 1) / 2.0), angle, 1.0)
            # grow the canvas so the rotated photo's corners (and faces there) stay in
            cos, sin = abs(rot[0, 0]), abs(rot[0, 1])
            nw, nh = int(np.ceil(ww * cos + wh * sin)), int(np.ceil(ww * sin + wh * cos))
            rot[:, 2] += ((nw - ww) / 2.0, (nh - wh) / 2.0)
            turned = cv2.warpAffine(work, rot, (nw, nh), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
            to_turned = rot @ np.vstack([to_work, [0.0, 0.0, 1.0]])
            faces = self._detect_pass(image, turned, to_turned, rotated=True)
            if faces:
                break
        return faces

    def _detect_pass(self, image, work, to_work, rotated: bool) -> list[Face]:
        """Detect in `work` (= photo mapped by the 2x3 `to_work`), return photo coords."""
        rects, scores = run_hog(work, self.threshold)
        to_photo = cv2.invertAffineTransform(to_work)
        upsampled = abs(np.linalg.det(to_work[:, :2])) > 1.0
        faces = []
        for rect, score in zip(rects, scores):
            x0, y0, x1, y1 = rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1
            # box edges -> pixel-centre coordinates (-0.5), map, back to edges (+0.5)
            corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64) - 0.5
            c = _apply(to_photo, corners) + 0.5
            box = (float(c[:, 0].min()), float(c[:, 1].min()),
                   float(c[:, 0].max()), float(c[:, 1].max()))
            if upsampled or rotated:  # finer (upsampled) / the face stands upright there
                lm = _apply(to_photo, landmarks68_upright(work, (x0, y0, x1, y1)))
            else:  # downscaled for detection: full-resolution landmarks are finer
                lm = landmarks68_upright(image, box)
            lm = np.asarray(lm, dtype=np.float32)
            faces.append(
                Face(box=box, score=float(score), points5=points5_from_68(lm), landmarks68=lm)
            )
        return faces


def default_detector() -> FaceDetector:
    return load_once("default_detector", DlibDetector)


def detect_faces(image: np.ndarray, detector: FaceDetector | None = None) -> list[Face]:
    """All faces in an RGB photo, sorted left to right; [] when there are none."""
    faces = (detector or default_detector()).detect(image)
    return sorted(faces, key=lambda f: (f.box[0] + f.box[2]) / 2.0)
