"""paste_back's output scale (scale=2/4, auto_scale) and the large-face rule (keep_detail):
data-free (scikit-image's astronaut, public domain, is the face)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from diffbfr.metrics import psnr
from diffbfr.faces.align import FRAME, AlignedFace, find_faces
from diffbfr.faces.paste import MAX_OUTPUT_PIXELS, auto_scale, paste_back, upscale


def frame_of(x0: float, y0: float, span: float) -> AlignedFace:
    """An aligned face whose 128 px frame covers photo pixels [x0, x0+span) x [y0, y0+span)."""
    k = FRAME / span  # pixel-centre convention: frame = (photo + 0.5 - x0) * k - 0.5
    m = np.array([[k, 0.0, (0.5 - x0) * k - 0.5], [0.0, k, (0.5 - y0) * k - 0.5]])
    return AlignedFace(np.zeros((FRAME, FRAME, 3), np.uint8), m, None, span, span > FRAME)


def marked_face() -> np.ndarray:
    """Grey restored face with a red 16 px block centred on frame point (63.5, 63.5)."""
    face = np.full((FRAME, FRAME, 3), 120, np.uint8)
    face[56:72, 56:72] = (255, 0, 0)
    return face


def red_centroid(img: np.ndarray) -> np.ndarray:
    red = (img[..., 0] > 180) & (img[..., 1] < 90)
    ys, xs = np.nonzero(red)
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_faces_land_at_the_scaled_place(scale):
    photo = np.random.default_rng(0).integers(0, 60, (100, 120, 3), dtype=np.uint8)
    face = frame_of(40, 24, 32)  # a 32 px face: the restoration has 4x its detail
    out = paste_back(photo, [face], [marked_face()], scale=scale)
    assert out.shape == (100 * scale, 120 * scale, 3) and out.dtype == np.uint8
    # the marker's centre, photo (55.5, 39.5), at output pixel-centre coords s*(x+0.5)-0.5
    expected = scale * (np.array([55.5, 39.5]) + 0.5) - 0.5
    assert np.abs(red_centroid(out) - expected).max() < 0.25 * scale + 0.3
    # the marker covers 4 photo px: 4*scale output px, i.e. the face is pasted at full scale
    red = (out[..., 0] > 180) & (out[..., 1] < 90)
    assert abs(np.sqrt(red.sum()) - 4 * scale) <= 0.5 * scale + 1
    # far from the face the output is the upscaled photo
    far = (slice(0, 10 * scale), slice(0, 20 * scale))
    assert np.array_equal(out[far], upscale(photo, scale)[far])


def test_more_scale_keeps_more_of_the_restoration():
    """The 128 px restoration of a 32 px face: at x4 the output holds all of it (a fine
    checkerboard survives), at x1 it is averaged away."""
    photo = np.full((100, 120, 3), 128, np.uint8)
    face = frame_of(40, 24, 32)
    checker = np.indices((FRAME, FRAME)).sum(axis=0) // 4 % 2 * 200 + 20  # 4 px squares
    restored = np.repeat(checker[:, :, None], 3, axis=2).astype(np.uint8)
    contrast = []
    for scale in (1, 4):
        out = paste_back(photo, [face], [restored], scale=scale).astype(float)
        c = scale * 56
        contrast.append(out[c - 4 * scale:c + 4 * scale, c - 4 * scale:c + 4 * scale].std())
    assert contrast[0] < 20 < contrast[1]


def test_auto_scale():
    hw = (400, 600)
    assert auto_scale([], hw) == 1
    assert auto_scale([frame_of(0, 0, 200)], hw) == 1  # bigger than the frame already
    assert auto_scale([frame_of(0, 0, 70)], hw) == 2  # 140 px at x2
    assert auto_scale([frame_of(0, 0, 40)], hw) == 4  # 160 px at x4
    # the largest face decides (x2 restores it fully; smaller ones gain what they can)
    assert auto_scale([frame_of(0, 0, 40), frame_of(100, 0, 90)], hw) == 2
    # capped: a 2000x1500 photo at x4 would be 48 MP; x2 (12 MP) is over 8 MP too
    assert auto_scale([frame_of(0, 0, 30)], (1500, 2000)) == 1
    assert auto_scale([frame_of(0, 0, 30)], (1000, 1400)) == 2  # 5.6 MP at x2
    assert auto_scale([frame_of(0, 0, 30)], (1000, 1400), max_pixels=1_000_000) == 1
    assert MAX_OUTPUT_PIXELS == 8_000_000
    with pytest.raises(ValueError):
        paste_back(np.zeros((10, 10, 3), np.uint8), [], [], scale=3)


# --- the large-face rule ---------------------------------------------------------------

@pytest.fixture(scope="module")
def astronaut_faces():
    """The astronaut at x2 with fixed grain (full-resolution detail), so her face spans
    ~220 px, 1.7x the frame; and at x0.5 (~55 px)."""
    photo = skimage.data.astronaut()
    big = cv2.resize(photo, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    big = np.clip(big + np.random.default_rng(0).normal(0, 6, big.shape), 0, 255).astype(np.uint8)
    small = cv2.resize(photo, (256, 256), interpolation=cv2.INTER_AREA)
    out = {}
    for name, img in (("big", big), ("small", small)):
        faces, _ = find_faces(img)
        assert len(faces) == 1
        out[name] = (img, faces[0])
    assert out["big"][1].face_size > 1.5 * FRAME and out["small"][1].face_size < FRAME
    return out


def inner(img: np.ndarray, face: AlignedFace, margin: int = 24) -> np.ndarray:
    """The face's frame interior in the photo (where the paste mask is 1)."""
    inv = cv2.invertAffineTransform(face.matrix)
    pts = np.array([[margin, margin], [FRAME - margin, FRAME - margin]]) @ inv[:, :2].T + inv[:, 2]
    (x0, y0), (x1, y1) = pts.min(axis=0).astype(int), pts.max(axis=0).astype(int)
    return img[y0:y1, x0:x1]


def test_an_undegraded_large_face_comes_back_as_it_went_in(astronaut_faces):
    photo, face = astronaut_faces["big"]
    perfect = face.image  # the best a 128 px model can return for an undegraded face
    kept = paste_back(photo, [face], [perfect])
    assert psnr(inner(kept, face), inner(photo, face)) >= 35.0  # stated target; here exact
    replaced = paste_back(photo, [face], [perfect], keep_detail=False)
    # what it used to do (the restoration upsampled) loses the grain and misses the target
    assert psnr(inner(replaced, face), inner(photo, face)) < 35.0


def test_the_restoration_still_changes_a_large_face(astronaut_faces):
    """keep_detail pastes the restoration's change: a restoration that brightens the face
    brightens it in the photo, and the grain (finer than the frame) stays on top."""
    photo, face = astronaut_faces["big"]
    brighter = np.clip(face.image.astype(int) + 30, 0, 255).astype(np.uint8)
    out = paste_back(photo, [face], [brighter]).astype(float)
    diff = inner(out, face) - inner(photo, face)
    unclipped = inner(photo, face) < 200
    assert abs(np.median(diff[unclipped]) - 30) < 2
    assert np.std(diff[unclipped]) < 4  # the change is smooth: the photo's grain is kept


def test_a_small_face_still_gets_the_restoration(astronaut_faces):
    photo, face = astronaut_faces["small"]
    colour = np.full((FRAME, FRAME, 3), (10, 200, 30), np.uint8)
    out = paste_back(photo, [face], [colour])  # keep_detail=True is the default
    assert np.abs(inner(out, face, 30).astype(int) - (10, 200, 30)).max() <= 2
