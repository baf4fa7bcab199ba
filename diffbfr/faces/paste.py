"""Put restored 128 px faces back into the photo they came from.

Each restored face is warped back with the inverse of its alignment transform and
blended through a feathered mask, so there is neither a hard edge nor a halo:
- the mask is defined in the aligned frame and is zero on the frame's outer margin,
  so the blend never reaches the frame border, where a warp would smear edge pixels;
- it ramps smoothly (smoothstep) to one, so any colour difference fades out;
- where the frame runs off the photo there is nothing to blend with, so the face is
  pasted fully up to the photo border (faces cut by the border are restored too);
- only the face's bounding box in the photo is touched, which keeps this fast.
Faces that extend past the photo border are cut by the photo naturally.

Two more rules make sure a face never comes out worse than it went in:
- output scale: a 20 px face pasted back at 20 px throws its 128 px restoration away, so the
  output may be 2x or 4x the photo (background upscaled classically, faces pasted at the
  new scale); auto_scale() picks the factor;
- large faces (keep_detail): a face spanning more than the 128 px frame keeps its own
  detail finer than the frame; only the restoration's change is pasted.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..frame import FRAME, as_rgb, resize_matrix, transform_points
from ..grey import grey_rgb
from .align import AlignedFace

__all__ = ["paste_back", "auto_scale", "upscale", "blend_mask", "is_greyscale", "SCALES",
           "MAX_OUTPUT_PIXELS"]

# In aligned-frame pixels: the outer margin left untouched and the width of the soft
# ramp. Being in frame units, the feather scales with the face, so a big face gets a
# proportionally wide, invisible transition.
MASK_MARGIN = 3.0
MASK_RAMP = 14.0
_PAD = int(MASK_MARGIN + MASK_RAMP) + 4  # frame padding that holds the whole ramp


def blend_mask(matrix: np.ndarray, photo_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Feathered blend mask of one face, in a padded copy of the aligned frame.

    Returns (mask, to_mask): a float32 (128 + 2*PAD)^2 mask and the 2x3 photo -> mask
    matrix. The mask is a smoothstep of the distance to the nearest photo pixel outside
    the 128 px frame. Measuring distance to *photo* pixels, not to the frame edge,
    means a face whose frame runs off the photo is pasted fully up to the photo border
    (there is nothing there to blend with) while its edges inside the photo feather.
    """
    side = FRAME + 2 * _PAD
    to_mask = np.asarray(matrix, dtype=np.float64).copy()
    to_mask[:, 2] += _PAD
    h, w = photo_hw
    # which mask pixels fall inside the photo (computed on the small grid, so the cost
    # does not grow with the photo)
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side)), axis=-1).astype(np.float64)
    to_photo = cv2.invertAffineTransform(to_mask)
    xy = transform_points(to_photo, grid)
    blocked = ((xy[..., 0] >= -0.5) & (xy[..., 0] < w - 0.5)
               & (xy[..., 1] >= -0.5) & (xy[..., 1] < h - 0.5))
    blocked[_PAD:_PAD + FRAME, _PAD:_PAD + FRAME] = False  # the frame itself
    if not blocked.any():  # the frame covers the whole photo: replace all of it
        return np.ones((side, side), np.float32), to_mask
    # distance of each pixel centre to the nearest blocked pixel centre (0 on blocked)
    dist = cv2.distanceTransform((~blocked).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
    t = np.clip((dist - 0.5 - MASK_MARGIN) / MASK_RAMP, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32), to_mask


def is_greyscale(image: np.ndarray) -> bool:
    """True when the three channels are identical (a grey photo stored as RGB)."""
    return bool(np.array_equal(image[..., 0], image[..., 1])
                and np.array_equal(image[..., 1], image[..., 2]))


def _roi(inv: np.ndarray, size: int, h: int, w: int):
    """Photo-space integer box (x0, y0, x1, y1) covering the frame, clipped; or None."""
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5],
                        [size - 0.5, size - 0.5]])
    pts = transform_points(inv, corners)
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _scaled(matrix: np.ndarray, scale: int) -> np.ndarray:
    """photo -> frame matrix re-expressed on the output, `scale` times larger than the photo
    (pixel-centre convention of cv2.resize: x_out = (x + 0.5) * scale - 0.5)."""
    if scale == 1:
        return np.asarray(matrix, dtype=np.float64)
    return (np.vstack([matrix, [0.0, 0.0, 1.0]]) @ resize_matrix(1.0 / scale))[:2]   # output -> photo first


def _paste_one(out: np.ndarray, fwd: np.ndarray, face_size: float, content: np.ndarray,
               replace: bool) -> None:
    """Blend one face into `out` (float32 HxWx3, the output canvas) in place.

    fwd: output -> frame matrix; face_size: output pixels spanned by the frame; content:
    128x128x3 float32, the restored face (replace=True) or the change the restoration
    made to the aligned input (replace=False: added, so the photo's own detail stays).
    """
    h, w = out.shape[:2]
    mask, to_mask = blend_mask(fwd, (h, w))
    size = FRAME
    # The photo face is smaller than the frame: shrink with an area filter first, as a
    # bilinear inverse warp would alias (skip every other pixel). Then warp from there.
    if face_size < 0.75 * FRAME:
        size = max(8, int(round(face_size)))
        content = cv2.resize(content, (size, size), interpolation=cv2.INTER_AREA)
        fwd = (resize_matrix(size / FRAME) @ np.vstack([fwd, [0.0, 0.0, 1.0]]))[:2]   # frame px -> small px
    inv = cv2.invertAffineTransform(fwd)
    roi = _roi(inv, size, h, w)
    if roi is None:
        return
    x0, y0, x1, y1 = roi
    inv_roi = inv.copy()
    inv_roi[:, 2] -= (x0, y0)
    dsize = (x1 - x0, y1 - y0)
    # cubic: sharper than bilinear when the face is enlarged
    warped = cv2.warpAffine(content, inv_roi, dsize, flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REPLICATE)
    mask_inv = cv2.invertAffineTransform(to_mask)
    mask_inv[:, 2] -= (x0, y0)
    mask = cv2.warpAffine(mask, mask_inv, dsize, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    mask = np.clip(mask, 0.0, 1.0)[:, :, None]
    region = out[y0:y1, x0:x1]
    if replace:  # cubic overshoot clipped to the valid range
        region += mask * (np.clip(warped, 0.0, 255.0) - region)
    else:
        region += mask * warped


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """The photo `scale` times larger, for the background around pasted faces. Lanczos (8x8
    taps): the sharpest of OpenCV's classical filters, its slight ringing is clipped."""
    if scale == 1:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (w * scale, h * scale), interpolation=cv2.INTER_LANCZOS4)


SCALES = (1, 2, 4)
# auto_scale's cap on the output: 8 MP (e.g. 3464 x 2309), a phone photo's size; beyond it
# the result is slow to encode, send and view in a browser, and the faces that need x4
# are those of small photos anyway.
MAX_OUTPUT_PIXELS = 8_000_000
# A face may come out up to 15 % short of 128 px rather than double the output's sides.
_SCALE_SLACK = 0.85


def auto_scale(aligned_faces: Sequence[AlignedFace], image_hw: tuple[int, int],
               max_pixels: int = MAX_OUTPUT_PIXELS) -> int:
    """Output scale in SCALES so that the largest face keeps its 128 px restored detail
    (its frame spans >= ~128 output pixels), capped so that the output has at most
    `max_pixels` pixels. 1 when there is no face, or when the photo alone is over the cap.
    """
    if not aligned_faces:
        return 1
    largest = max(a.face_size for a in aligned_faces)
    h, w = image_hw
    fitting = [s for s in SCALES if h * w * s * s <= max_pixels] or [1]
    for s in fitting:
        if largest * s >= _SCALE_SLACK * FRAME:
            return s
    return fitting[-1]


def paste_back(image: np.ndarray, aligned_faces: Sequence[AlignedFace],
               restored_faces: Sequence[np.ndarray], scale: int = 1,
               keep_detail: bool = True) -> np.ndarray:
    """A copy of `image`, `scale` times larger, with every restored face blended in.

    restored_faces[i] is the 128x128x3 uint8 restoration of aligned_faces[i], which must
    have been aligned from this `image` (keep_detail reads the input's 128 px version from it).
    scale (1, 2 or 4): the background is upscaled with a classical filter (upscale()) and
    the faces pasted at the new scale, so a 30 px face shows its 128 px restoration
    (auto_scale() picks one).
    keep_detail: a face larger than the frame in the photo (face_size > 128) has detail the
    128 px restoration cannot hold, so only the change the restoration made is pasted:
    output = photo + warp(restored - aligned input). The restoration decides everything
    the 128 px frame can represent; finer detail (above its Nyquist) is the photo's own, so
    an undegraded face comes back as it went in instead of blurred. False: the restored
    face replaces the photo's (upsampled), as for faces <= 128 px.
    Grey photos (three equal channels) stay grey: the restored faces are converted
    to luma before pasting, so a colourising model cannot tint an old print.
    """
    if len(aligned_faces) != len(restored_faces):
        raise ValueError(f"{len(aligned_faces)} aligned faces but {len(restored_faces)} restored")
    image = as_rgb(image)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    grey = is_greyscale(image)
    out = upscale(image, scale).astype(np.float32)
    for aligned, restored in zip(aligned_faces, restored_faces):
        restored = np.asarray(restored)
        if restored.shape != (FRAME, FRAME, 3) or restored.dtype != np.uint8:
            raise ValueError(f"restored faces must be {FRAME}x{FRAME}x3 uint8, "
                             f"got {restored.dtype} {restored.shape}")
        face = (grey_rgb(restored) if grey else restored).astype(np.float32)
        replace = not (keep_detail and aligned.larger_than_model)
        content = face if replace else face - aligned.image.astype(np.float32)
        _paste_one(out, _scaled(aligned.matrix, scale), aligned.face_size * scale, content,
                   replace)
    result = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if grey:  # identical channels in, identical channels out (rounding included)
        result[..., 1] = result[..., 0]
        result[..., 2] = result[..., 0]
    return np.ascontiguousarray(result)


def paste_notices(pasted: dict[int, AlignedFace], out_shape: tuple[int, ...], scale: int, grey: bool,
                  aligned_crop: bool = False) -> list[str]:
    """What paste_back did that a person should be told: a grey photo's faces kept grey, an output
    larger than the input, and which faces (`pasted`: face number from 0 -> the face) kept the
    photo's finer detail (the large-face rule; not said of an aligned crop, which is the face)."""
    notices = []
    if grey:
        notices.append("The input is greyscale, so the restored faces and every stage are shown in grey.")
    if scale > 1:
        notices.append(f"Output {scale}x the input's size ({out_shape[1]}x{out_shape[0]}): the "
                       "background is upscaled (Lanczos), the faces carry their 128 px restoration.")
    large = [i + 1 for i, face in pasted.items() if face.larger_than_model and not aligned_crop]
    if large:
        notices.append(f"Face{'s' if len(large) > 1 else ''} {', '.join(map(str, large))} "
                       f"span{'' if len(large) > 1 else 's'} more than the models' {FRAME} px: only what "
                       f"the restoration changed at {FRAME} px was pasted; the photo's finer detail is kept.")
    return notices
