"""One detector pass: a working copy of the photo (resized, maybe rotated), one of dlib's two
face detectors run on it, and the boxes mapped back to photo coordinates.

- HOG (dlib's frontal face detector, built into dlib): an 80 px sliding window over an image
  pyramid; 75-105 ms of CPU per megapixel of working copy here. Frontal faces, about
  +-25 degrees of roll.
- CNN (dlib's MMOD detector, `mmod_human_face_detector.dat`): finds turned, tilted and soft
  faces HOG misses, at 6.5-7.3 s of CPU per megapixel here (~70x HOG; dlib-bin has no BLAS),
  so detect.py only runs it on a small working copy. Its boxes are framed differently from HOG's (measured by
  `tools/fit_template.py --cnn-boxes`) and are mapped to HOG framing here, because the
  landmark predictor was trained on HOG boxes.

The smallest face either detector finds is fixed in working-copy pixels (its window), so
a pass at scale s finds faces down to WINDOW / s photo pixels: that is how detect.py trades
time for small faces.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from ..frame import resize_matrix, transform_points
from .models import cnn_detector, hog_detector

__all__ = ["Detection", "HOG_MIN_FACE", "CNN_MIN_FACE", "MIN_WORK_SIDE", "CNN_TO_HOG", "working_copy",
           "work_size", "turn_pieces", "upright_chip", "hog_pass", "cnn_pass", "cnn_confirms", "iou",
           "merge_detections"]

# Smallest face (box width, px of the working copy) each detector finds: HOG's window is
# 80 px (on blurred, noisy, JPEG'd composites it finds ~70 % of faces of 80-96 px and few
# under 64); the MMOD network finds ~30 % at 48-64 px and nearly all above 64, so ~55.
HOG_MIN_FACE = 80.0
CNN_MIN_FACE = 55.0

# Shortest side (working-copy px) in which either detector can find anything: a face cut to a
# band of 50-56 px (eyes to mouth) is still found, at a low score, by HOG or the CNN; at 45 px
# never (measured on examples/two_people.jpg's faces at 80-140 px). A pass whose working copy
# is thinner (a thin strip, mostly) is not run: it would scan the whole strip for nothing.
MIN_WORK_SIDE = 48

# A tilted pass turns its working copy on a canvas grown to hold every corner: 1.64x the
# copy's pixels for a square at 20 degrees, 2.4x at 4:1, but for a strip nearly all of it is
# filler (a 10000x40 photo's 1 MP copy turned by 20 degrees: an 81 MP canvas, 16 s of HOG and
# 1 GB). So a long copy is cut along its long side into pieces of TURN_PIECE x its short side,
# overlapping by TURN_OVERLAP x it (a face spans at most ~1.3x the short side, cut by the
# border), each turned on its own, whenever that turns fewer pixels than the whole: from
# ~8:1 on, where the pieces keep every tilted pass under ~4x its copy's pixels.
TURN_PIECE = 4.0
TURN_OVERLAP = 1.5

# MMOD box -> HOG-like box, relative to the MMOD box side: HOG centre = CNN centre +
# (dx, dy) * side, HOG side = scale * side. MMOD boxes sit ~6 % of their side higher (they
# include more forehead, less chin). Measured on 594 face/scale pairs (300 UTKFace train
# crops at ~180 and ~90 px) where both detectors found the face: dx, dy medians (IQR
# 0.00..0.07, 0.01..0.08); scale the geometric mean (HOG sides come in x1.2 pyramid steps,
# so the ratio is bimodal, 0.92 / 1.10). `python tools/fit_template.py --cnn-boxes 300`.
CNN_TO_HOG = (0.021, 0.061, 0.989)


@dataclass
class Detection:
    """A face box in photo coordinates, HOG framing, before landmarks."""

    centre: tuple[float, float]  # box centre, pixel-centre coordinates
    size: float  # side of the (square) box, photo pixels
    score: float  # HOG: SVM margin; CNN: MMOD confidence (both: > 0 means face)
    source: str  # "hog" or "cnn"
    angle: float = 0.0  # the face stood upright in the photo rotated by this (degrees)

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Axis-aligned box edges (x0, y0, x1, y1) of the unrotated square."""
        x, y, h = self.centre[0] + 0.5, self.centre[1] + 0.5, self.size / 2.0
        return (x - h, y - h, x + h, y + h)


def work_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(width, height) of the working copy of a height x width photo at `scale`."""
    return max(1, round(width * scale)), max(1, round(height * scale))


def working_copy(image: np.ndarray, scale: float, angle: float = 0.0):
    """(work, to_work): the photo resized by `scale` and rotated by `angle` degrees about its
    centre (canvas grown so no corner is lost), and the 2x3 photo -> work matrix."""
    h, w = image.shape[:2]
    size = work_size(h, w, scale)
    sx, sy = size[0] / w, size[1] / h  # exact per-axis factors after rounding
    to_work = resize_matrix(sx, sy)[:2]
    if size == (w, h):
        work = image
    else:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        work = cv2.resize(image, size, interpolation=interp)
    if angle == 0.0:
        return np.ascontiguousarray(work), to_work
    turned, rot = _turned(work, angle)
    return turned, rot @ np.vstack([to_work, [0.0, 0.0, 1.0]])


def _turned(work: np.ndarray, angle: float):
    """(turned, rot): `work` rotated by `angle` degrees about its centre on a canvas grown so
    that no corner is lost (edges replicated), and the 2x3 work -> turned matrix."""
    wh, ww = work.shape[:2]
    rot = cv2.getRotationMatrix2D(((ww - 1) / 2.0, (wh - 1) / 2.0), angle, 1.0)
    cos, sin = abs(rot[0, 0]), abs(rot[0, 1])
    nw, nh = int(np.ceil(ww * cos + wh * sin)), int(np.ceil(ww * sin + wh * cos))
    rot[:, 2] += ((nw - ww) / 2.0, (nh - wh) / 2.0)
    turned = cv2.warpAffine(work, rot, (nw, nh), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    return turned, rot


def _turned_pixels(width: int, height: int, angle: float) -> int:
    """Pixels of the canvas _turned() makes for a width x height copy."""
    cos, sin = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
    return int(np.ceil(width * cos + height * sin)) * int(np.ceil(width * sin + height * cos))


def turn_pieces(width: int, height: int, angle: float) -> list[tuple[int, int, int, int]]:
    """The parts (x0, y0, x1, y1) of a width x height working copy that a pass turned by
    `angle` turns one at a time: the whole copy, or, when that turns fewer pixels, overlapping
    pieces along its long side (TURN_PIECE, TURN_OVERLAP)."""
    whole = [(0, 0, width, height)]
    short, long = min(width, height), max(width, height)
    piece = int(TURN_PIECE * short)
    if angle == 0.0 or long <= piece:
        return whole
    stride = piece - int(np.ceil(TURN_OVERLAP * short))
    starts = np.linspace(0, long - piece, int(np.ceil((long - piece) / stride)) + 1).round().astype(int)
    pieces = [(int(a), 0, int(a) + piece, height) if width >= height else (0, int(a), width, int(a) + piece)
              for a in starts]
    turned = sum(_turned_pixels(x1 - x0, y1 - y0, angle) for x0, y0, x1, y1 in pieces)
    return pieces if turned < _turned_pixels(width, height, angle) else whole


def upright_chip(image: np.ndarray, centre, angle: float, scale: float, side: int,
                 interp: int = cv2.INTER_LINEAR):
    """(chip, to_chip): a side x side chip centred on `centre` (pixel-centre coordinates) of
    the photo rotated by `angle` degrees about it and resized by `scale`, and the 2x3
    photo -> chip matrix. Edges are replicated, so a face at the border still gets a chip."""
    cx, cy = float(centre[0]), float(centre[1])
    to_chip = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    to_chip[:, 2] += (side - 1) / 2.0 - np.array([cx, cy])
    chip = cv2.warpAffine(image, to_chip, (side, side), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    return chip, to_chip


def _to_photo(to_work: np.ndarray, rects, scores, source: str, angle: float,
              shift=(0.0, 0.0, 1.0)) -> list[Detection]:
    to_photo = cv2.invertAffineTransform(to_work)
    scale = float(np.sqrt(abs(np.linalg.det(to_work[:, :2]))))
    dx, dy, ds = shift
    out = []
    for r, s in zip(rects, scores):
        side = (r.right() - r.left() + 1 + r.bottom() - r.top() + 1) / 2.0
        # centre in pixel-centre coordinates: rect edges are inclusive pixel indices
        c = np.array([(r.left() + r.right()) / 2.0 + dx * side,
                      (r.top() + r.bottom()) / 2.0 + dy * side])
        p = transform_points(to_photo, c)
        out.append(Detection((float(p[0]), float(p[1])), side * ds / scale, float(s), source, angle))
    return out


# dlib documents its object detectors as unsafe for concurrent use (the shape predictor
# is fine), and the app may serve two uploads at once: runs are serialised.
_hog_lock = threading.Lock()
_cnn_lock = threading.Lock()


def hog_pass(image: np.ndarray, scale: float, threshold: float = 0.0,
             angle: float = 0.0) -> list[Detection]:
    """HOG on the photo resized by `scale` and turned by `angle` (turn_pieces: a long copy a
    piece at a time); nothing when the copy is thinner than MIN_WORK_SIDE."""
    h, w = image.shape[:2]
    size = work_size(h, w, scale)
    if min(size) < MIN_WORK_SIDE:
        return []
    pieces = turn_pieces(*size, angle)
    if len(pieces) == 1:
        return _hog(*working_copy(image, scale, angle), threshold, angle)
    work, to_work = working_copy(image, scale)
    to_work = np.vstack([to_work, [0.0, 0.0, 1.0]])
    found: list[Detection] = []
    for x0, y0, x1, y1 in pieces:  # one face seen in two overlapping pieces: one box
        turned, rot = _turned(work[y0:y1, x0:x1], angle)
        shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
        found = merge_detections(found, _hog(turned, rot @ shift @ to_work, threshold, angle))
    return found


def _hog(work: np.ndarray, to_work: np.ndarray, threshold: float, angle: float) -> list[Detection]:
    with _hog_lock:
        rects, scores, _ = hog_detector().run(work, 0, threshold)
    return _to_photo(to_work, rects, scores, "hog", angle)


def cnn_pass(image: np.ndarray, scale: float, threshold: float = 0.0,
             hog_framing: bool = True) -> list[Detection]:
    """MMOD detections, boxes mapped to HOG framing (hog_framing=False: as MMOD frames them);
    nothing when the working copy is thinner than MIN_WORK_SIDE."""
    if min(work_size(*image.shape[:2], scale)) < MIN_WORK_SIDE:
        return []
    work, to_work = working_copy(image, scale)
    with _cnn_lock:
        found = cnn_detector()(work, 0)
    found = [d for d in found if d.confidence >= threshold]
    return _to_photo(to_work, [d.rect for d in found], [d.confidence for d in found],
                     "cnn", 0.0, CNN_TO_HOG if hog_framing else (0.0, 0.0, 1.0))


# Face side (px) in the chip cnn_confirms looks at: comfortably above the CNN's smallest face,
# small enough that a 2x chip (160 x 160 px) costs ~0.2 s.
VERIFY_FACE = 80.0


def cnn_confirms(image: np.ndarray, d: Detection, threshold: float = 0.0) -> bool:
    """Does the CNN see a face where `d` says there is one? It looks at an upright chip twice
    the box's side around it, the face brought to VERIFY_FACE px: a second opinion on boxes
    only a tilted HOG pass found (which also fires on badges and logos)."""
    k = VERIFY_FACE / max(d.size, 1.0)
    side = int(np.ceil(2 * VERIFY_FACE))
    chip, _ = upright_chip(image, d.centre, d.angle, k, side, cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    with _cnn_lock:
        found = cnn_detector()(np.ascontiguousarray(chip), 0)
    mid = (side - 1) / 2.0
    for f in found:
        r = f.rect
        size = (r.width() + r.height()) / 2.0
        off = np.hypot((r.left() + r.right()) / 2.0 - mid, (r.top() + r.bottom()) / 2.0 - mid)
        if f.confidence >= threshold and off < 0.35 * VERIFY_FACE and 0.6 < size / VERIFY_FACE < 1.6:
            return True
    return False


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


# Two boxes of one face from different passes overlap by IoU ~0.6-0.9 (HOG at two scales,
# HOG vs mapped CNN); neighbouring faces in a group photo by < 0.1.
MERGE_IOU = 0.3


def merge_detections(first: list[Detection], then: list[Detection],
                     min_iou: float = MERGE_IOU) -> list[Detection]:
    """`first` plus every detection of `then` that overlaps none of them (one face, one box).

    The earlier pass wins: passes run in order of how well their boxes suit the landmark
    predictor (upright HOG, upsampled HOG, rotated HOG, CNN), not of their scores, which
    are not comparable across detectors.
    """
    out = list(first)
    for d in then:
        if all(iou(d.box, k.box) < min_iou for k in out):
            out.append(d)
    return out
