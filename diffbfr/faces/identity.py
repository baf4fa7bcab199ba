"""How much does a face look like the same person? dlib's 128-D ResNet embedding.

For metrics (identity kept by a restoration) and for the app to show how far a
restoration moved a face away from the input. dlib's model was trained so that
faces of the same person lie closer than 0.6 (Euclidean distance).

An aligned face (our canonical frame) needs no detection: the face rectangle of the
canonical frame is known (FACE_BOX_128, measured with the template), so the 5-point
shape predictor runs inside it. That makes LQ and restored versions of a face
comparable even when a heavily degraded input would defeat the detector.
"""

from __future__ import annotations

import dlib
import numpy as np

from ..frame import FRAME
from .align import FACE_BOX_128
from .detect import DlibDetector, detect_faces
from .models import identity_network, shape_predictor_5

__all__ = ["SAME_PERSON_THRESHOLD", "face_embedding", "identity_distance", "is_aligned_frame"]

SAME_PERSON_THRESHOLD = 0.6  # dlib's documented operating point

# A whole photo given for an identity comparison is expected to hold a clear face: HOG's
# first pass (and rotated retry) only. The small-face and CNN passes, seconds on a
# face-less image, are for finding faces to restore.
_DETECTOR = DlibDetector(small_pixels=0, cnn_pixels=0)


def is_aligned_frame(image: np.ndarray) -> bool:
    """Auto rule: square images 64..256 px are taken to be in the canonical frame.

    Those are the sizes the pipeline produces (64 px stage 1, 128 px faces) plus raw
    200 px UTKFace crops; whole photos are rarely that small and square.
    """
    h, w = image.shape[:2]
    return h == w and 64 <= h <= 256


def face_embedding(image: np.ndarray, aligned: bool | None = None) -> np.ndarray | None:
    """128-D float32 embedding of the face in an RGB uint8 image, or None.

    aligned=True: the image is a face in the canonical frame (any size, scaled);
    False: detect and use the highest-scoring face; None: decide by is_aligned_frame().
    None is returned when no embedding can be computed (no face found, bad input).
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or min(image.shape[:2]) < 16:
        return None
    image = np.ascontiguousarray(image)
    if aligned is None:
        aligned = is_aligned_frame(image)
    if aligned:
        h, w = image.shape[:2]
        x0, y0, x1, y1 = np.asarray(FACE_BOX_128) * np.array([w, h, w, h]) / FRAME
    else:
        faces = detect_faces(image, _DETECTOR)
        if not faces:
            return None
        x0, y0, x1, y1 = max(faces, key=lambda f: f.score).box
    rect = dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)) - 1, int(round(y1)) - 1)
    try:
        shape = shape_predictor_5()(image, rect)
        desc = identity_network().compute_face_descriptor(image, shape)
    except RuntimeError:  # dlib raises on degenerate chips; "cannot compute" is the answer
        return None
    vec = np.asarray(desc, dtype=np.float32)
    return vec if np.all(np.isfinite(vec)) else None


def identity_distance(a: np.ndarray, b: np.ndarray, aligned: bool | None = None) -> float | None:
    """Euclidean distance of the two faces' embeddings (< 0.6: same person), or None."""
    ea = face_embedding(a, aligned)
    if ea is None:
        return None
    eb = face_embedding(b, aligned)
    if eb is None:
        return None
    return float(np.linalg.norm(ea - eb))
