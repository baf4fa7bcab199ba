"""68 face landmarks (dlib's shape predictor) inside a face box, and the 5 alignment points.

The predictor is a regression-tree cascade started from a mean shape placed in the box, so
its accuracy depends on two things this module controls: the box must be framed like the
boxes it was trained on (dlib HOG boxes; detect.py maps CNN boxes to that framing), and
the face must be roughly upright and big enough for whole-pixel outputs to be fine. Small
or tilted faces are therefore landmarked on an upsampled, derotated chip (landmarks_on_chip).
"""

from __future__ import annotations

import cv2
import dlib
import numpy as np

from ..frame import as_rgb, transform_points
from .models import shape_predictor_68
from .scan import upright_chip

__all__ = [
    "points5_from_68",
    "landmarks68_in_box",
    "landmarks68_upright",
    "landmarks68_on_chip",
    "CHIP_BOX",
    "UPRIGHT_REFIT_DEG",
]

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
    shape = shape_predictor_68()(as_rgb(image), dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    # dlib parts are integer pixel indices, i.e. pixel centres as in cv2 coordinates
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


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
    upright, rot = upright_chip(image, centre, roll, 1.0, side)  # undoes the roll
    c = side / 2.0
    lm_up = landmarks68_in_box(upright, (c - (x1 - x0) / 2, c - (y1 - y0) / 2,
                                         c + (x1 - x0) / 2, c + (y1 - y0) / 2))
    return transform_points(cv2.invertAffineTransform(rot), lm_up).astype(np.float32)


# Box side (px) a face is brought up to before landmarking: the predictor returns whole
# pixels, so a 20 px face landmarked in place would be quantised to 1/20 of its size.
CHIP_BOX = 160


def landmarks68_on_chip(image: np.ndarray, centre, size: float, angle: float = 0.0) -> np.ndarray:
    """68 points of the face whose square box (side `size`, centred at `centre` in pixel-centre
    coordinates) stands upright after rotating the photo by `angle` degrees.

    Faces smaller than CHIP_BOX and tilted ones (angle != 0: found on a rotated working copy)
    are warped into a chip where the box is upright and at least CHIP_BOX wide (cubic: the
    predictor reads single pixels, so smooth interpolation beats blocky); big upright faces
    are landmarked in place. Points come back in photo coordinates.
    """
    k = max(1.0, CHIP_BOX / max(size, 1.0))
    cx, cy = float(centre[0]), float(centre[1])
    if k == 1.0 and angle == 0.0:
        half = size / 2.0
        return landmarks68_upright(image, (cx + 0.5 - half, cy + 0.5 - half,
                                           cx + 0.5 + half, cy + 0.5 + half))
    side = int(np.ceil(2 * size * k))
    chip, to_chip = upright_chip(image, (cx, cy), angle, k, side, cv2.INTER_CUBIC)
    half, c = size * k / 2.0, side / 2.0
    lm = landmarks68_upright(chip, (c - half, c - half, c + half, c + half))
    return transform_points(cv2.invertAffineTransform(to_chip), lm).astype(np.float32)
