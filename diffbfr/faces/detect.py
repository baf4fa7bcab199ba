"""Find the faces a person sees in a photo: boxes and 5-point landmarks, offline.

Backends are the models pip packages ship (nothing is downloaded at run time): dlib's HOG
frontal detector and its CNN (MMOD) detector, and the 68-point shape predictor
(scan.py runs one detector pass, landmarks.py fits the points).

DlibDetector runs passes in order of cost and stops early (CPU times on this project's
machine, `python -m bench.faces_speed`; HOG ~0.1 s and the CNN ~7 s per MP of working copy):
  A. HOG on a ~1 MP working copy (~0.1 s): every photo. Finds frontal faces >= 80 px / its
     scale (41 px in a 512 px photo).
  B. HOG on an upsampled copy of <= 4 MP (<= 0.4 s), down to MIN_FACE_PX (21 px in a 512 px
     photo): every photo A's copy does not already resolve that finely, keeping only faces
     under SMALL_PASS_MAX x A's limit. (It used to run only when A's faces were small;
     small faces beside a big one were then missed.)
  C. HOG on A's copy rotated by +-20 degrees (~0.3 s): when A found no face or found small
     ones (group photos, crowds), for heads tilted by 15-35 degrees. A portrait whose face
     A finds at a comfortable size skips it. +-20 finds more than +-30 (bench.detection:
     dlib's HOG model already covers about +-15 degrees of roll, upright).
  D. the CNN on a ~0.3 MP working copy (~2 s): only when HOG found nothing. It finds
     turned and soft faces (and grey ones HOG misses once colour edges are gone). For
     small faces it is poor value: at equal working scale its smallest face is ~0.7x
     HOG's, but HOG on a copy with 2x the pixels reaches as small for ~1/35 of the CPU,
     so B upsamples HOG instead.
Boxes of one face found by several passes are merged by overlap (IoU): one face, one Face.
Every pass is bounded by the pixels it processes, whatever the photo's shape (scan.py): a pass
whose working copy is thinner than any face it could find (scan.MIN_WORK_SIDE) is not run,
and C turns a long copy (a 10000x40 strip) a piece at a time instead of on one canvas grown to
hold it turned (81 MP for that strip's 1 MP copy: 16 s and 1 GB); bench.odd_shapes measures it.

Grey photos: HOG scores each pixel by its strongest colour channel's gradient, so a grey copy
loses the chroma edges (skin, hair, background) and scores ~0.1-0.3 lower; a soft face near
the threshold is then missed although found in colour. Retrying HOG after contrast
normalisation (CLAHE, histogram equalisation, percentile stretch) was measured and does not
bring such faces back reliably (it lowers as many scores as it raises); pass D does.

Any other detector only has to implement the FaceDetector protocol below and can be
passed to `detect_faces(image, detector=...)` / `find_faces`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..frame import as_rgb
from .landmarks import landmarks68_on_chip, points5_from_68
from .models import load_once
from .scan import (
    CNN_MIN_FACE,
    HOG_MIN_FACE,
    Detection,
    cnn_confirms,
    cnn_pass,
    hog_pass,
    merge_detections,
)

__all__ = [
    "Face",
    "FaceDetector",
    "DlibDetector",
    "MIN_FACE_PX",
    "detect_faces",
    "face_from_detection",
    "default_detector",
    "points5_from_68",
]

# Smallest face (box width, photo px) worth restoring: below it a face is a few blobs that
# a 128 px model would invent rather than restore (and the output would need > 8x upscaling
# to show it). Detectors are not asked to look for smaller faces, and smaller boxes are
# dropped.
MIN_FACE_PX = 16.0

# Pass B keeps only faces under this many times pass A's smallest face: a face bigger than
# that A sees at a comfortable size, so a box only B finds is a pattern that fires once
# upsampled (badges, logos and flags on a portrait's clothes). No face of the synthetic
# benchmark is lost by it (bench.detection).
SMALL_PASS_MAX = 1.2


@dataclass
class Face:
    """One face found in a photo, in photo pixel coordinates."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1 (HOG framing for every source)
    score: float  # detector confidence (HOG: SVM margin; CNN: MMOD confidence; > 0: a face)
    points5: np.ndarray  # (5, 2) float32: left eye, right eye (as seen in the image),
    # nose tip, left mouth corner, right mouth corner
    landmarks68: np.ndarray | None = None  # (68, 2) float32 when the backend has them
    source: str = "hog"  # which detector found it: "hog" or "cnn"


class FaceDetector(Protocol):
    """What the face layer needs from a detector backend."""

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 HxWx3 image, in that image's pixel coordinates."""
        ...

    def min_face_size(self, height: int, width: int) -> float:
        """Smallest face (box width, photo px) it can find in a photo of this size: what
        the user is told when no face is found."""
        ...


class DlibDetector:
    """dlib HOG (passes A-C) then dlib CNN (pass D), resolution-normalised; see the module doc.

    work_pixels / max_upsample: pass A's working copy (~1 MP; small photos upsampled at most
    max_upsample times, big ones downscaled: their faces are big anyway).
    small_pixels: pixel budget of pass B's working copy (0: no pass B); it is upsampled
    no further than needed to see MIN_FACE_PX faces.
    retry_rotations: pass C's angles. cnn_pixels / cnn_max_upsample: pass D's working copy
    (0: no CNN). threshold / cnn_threshold: detector margins (lower finds more, with more
    false hits). thorough: run every pass on every photo (not only when the earlier ones
    suggest it): finds small faces beside big ones and tilted/turned faces beside frontal
    ones, at several times the cost (bench.detection measures both).
    """

    def __init__(
        self,
        work_pixels: float = 1.0e6,
        max_upsample: float = 2.5,
        threshold: float = 0.0,
        retry_rotations: tuple[float, ...] = (20.0, -20.0),
        small_pixels: float = 4.0e6,
        cnn_pixels: float = 0.3e6,
        cnn_max_upsample: float = 2.5,
        cnn_threshold: float = 0.0,
        thorough: bool = False,
        verify_tilted: bool = True,
    ):
        self.work_pixels = float(work_pixels)
        self.max_upsample = float(max_upsample)
        self.threshold = float(threshold)
        self.retry_rotations = tuple(retry_rotations)
        self.small_pixels = float(small_pixels)
        self.cnn_pixels = float(cnn_pixels)
        self.cnn_max_upsample = float(cnn_max_upsample)
        self.cnn_threshold = float(cnn_threshold)
        self.thorough = bool(thorough)
        self.verify_tilted = bool(verify_tilted)

    # --- working scales of the passes (photo -> working copy factors) ---------------

    def work_scale(self, height: int, width: int) -> float:
        """Pass A: factor by which the photo is resized for detection."""
        scale = np.sqrt(self.work_pixels / float(height * width))
        return float(min(scale, self.max_upsample))

    def small_scale(self, height: int, width: int) -> float:
        """Pass B's factor (0 when there is no pass B)."""
        scale = np.sqrt(self.small_pixels / float(height * width))
        return float(max(min(scale, HOG_MIN_FACE / MIN_FACE_PX), 0.0))

    def cnn_scale(self, height: int, width: int) -> float:
        scale = np.sqrt(self.cnn_pixels / float(height * width))
        return float(min(scale, self.cnn_max_upsample, CNN_MIN_FACE / MIN_FACE_PX))

    def min_face_size(self, height: int, width: int) -> float:
        """Smallest face any pass that runs on a face-less photo can find (box width, px)."""
        hog = max(self.work_scale(height, width), self.small_scale(height, width))
        sizes = [HOG_MIN_FACE / hog]
        if self.cnn_pixels > 0:
            sizes.append(CNN_MIN_FACE / self.cnn_scale(height, width))
        return float(max(min(sizes), MIN_FACE_PX))

    # --- detection ------------------------------------------------------------------

    def detections(self, image: np.ndarray) -> list[Detection]:
        """Boxes of the passes that ran, merged, before landmarks (for benchmarks/tests)."""
        h, w = image.shape[:2]
        scale = self.work_scale(h, w)
        found = hog_pass(image, scale, self.threshold)
        tilted = self.thorough or self._small_faces_plausible(found, scale)
        small = self.small_scale(h, w)
        if small > 1.25 * scale:
            limit = SMALL_PASS_MAX * HOG_MIN_FACE / scale
            found = merge_detections(found, [d for d in hog_pass(image, small, self.threshold) if d.size < limit])
        upright = len(found)
        for angle in self.retry_rotations if tilted else ():
            found = merge_detections(found, hog_pass(image, scale, self.threshold, angle))
        if self.verify_tilted and self.cnn_pixels > 0:   # badges and logos fire tilted too
            found = found[:upright] + [d for d in found[upright:] if cnn_confirms(image, d)]
        if (self.thorough or not found) and self.cnn_pixels > 0:
            found = merge_detections(found, cnn_pass(image, self.cnn_scale(h, w),
                                                     self.cnn_threshold))
        return [d for d in found if d.size >= MIN_FACE_PX]

    @staticmethod
    def _small_faces_plausible(found: list[Detection], scale: float) -> bool:
        """None found, or the smallest found is under twice pass A's limit: faces of a photo
        tend to come in similar sizes, so faces near the limit suggest more faces nearby
        (of which some may be tilted)."""
        return not found or min(d.size for d in found) < 2.0 * HOG_MIN_FACE / scale

    def detect(self, image: np.ndarray) -> list[Face]:
        image = as_rgb(image)
        return [face_from_detection(image, d) for d in self.detections(image)]


def face_from_detection(image: np.ndarray, d: Detection) -> Face:
    """The Face of a detection: 68 landmarks fitted on an upright chip of the face."""
    lm = landmarks68_on_chip(image, d.centre, d.size, d.angle)
    return Face(box=d.box, score=d.score, points5=points5_from_68(lm), landmarks68=lm,
                source=d.source)


def default_detector() -> FaceDetector:
    return load_once("default_detector", DlibDetector)


def detect_faces(image: np.ndarray, detector: FaceDetector | None = None) -> list[Face]:
    """All faces in an RGB photo, sorted left to right; [] when there are none."""
    faces = (detector or default_detector()).detect(image)
    return sorted(faces, key=lambda f: (f.box[0] + f.box[2]) / 2.0)
