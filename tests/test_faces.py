"""Face layer: detection -> alignment -> paste back, on synthetic canvases made of
UTKFace test crops (whose framing is our canonical frame, so ground truth is known)."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from diffbfr.faces.align import (
    FRAME,
    TEMPLATE_128,
    AlignedFace,
    align_crop,
    align_face,
    find_faces,
    similarity_transform,
)
from diffbfr.faces.detect import MIN_FACE_PX, DlibDetector, Face, detect_faces
from diffbfr.faces.models import model_path
from diffbfr.faces.paste import blend_mask, is_greyscale, paste_back


def apply(matrix, pts):
    return np.asarray(pts, np.float64) @ matrix[:, :2].T + matrix[:, 2]


# --- data-free unit tests -----------------------------------------------------------

def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (5, 2))
    true = cv2.getRotationMatrix2D((50.0, 60.0), 23.0, 0.7)
    true[:, 2] += (5.0, -8.0)
    m = similarity_transform(src, apply(true, src))
    assert np.allclose(m, true, atol=1e-9)
    # a mirrored target must not be fitted by a reflection (det stays positive)
    m = similarity_transform(src, src * [-1, 1])
    assert np.linalg.det(m[:, :2]) > 0


def test_template_is_a_plausible_upright_face():
    le, re, nose, lm, rm = TEMPLATE_128
    assert abs(le[1] - re[1]) < 1.0 and abs(lm[1] - rm[1]) < 1.0  # eyes and mouth level
    assert le[0] < nose[0] < re[0] and le[1] < nose[1] < lm[1]
    assert abs((le[0] + re[0]) / 2 - FRAME / 2) < 2.0  # centred like the UTK crops


def test_blend_mask_feathers_inside_the_photo_only():
    # frame = photo pixels 100..227: the photo surrounds it on all sides
    shift = np.array([[1.0, 0, -100], [0, 1.0, -100]])
    m, to_mask = blend_mask(shift, (400, 400))
    pad = int(round(to_mask[0, 2] + 100))
    frame = m[pad:pad + FRAME, pad:pad + FRAME]
    assert frame[0].max() < 0.01 and frame[:, -1].max() < 0.01  # zero at the frame edge
    assert frame[32:96, 32:96].min() == 1.0
    row = frame[FRAME // 2, : FRAME // 2]
    assert np.all(np.diff(row) >= 0)  # rises monotonically: no ring, no halo
    # photo edge at the frame's left edge (frame = photo pixels 0..127 in x): no fade there
    m, _ = blend_mask(np.array([[1.0, 0, 0], [0, 1.0, -100]]), (400, 400))
    frame = m[pad:pad + FRAME, pad:pad + FRAME]
    assert frame[FRAME // 2, 0] == 1.0 and frame[FRAME // 2, -1] < 0.01


def test_model_files_found_without_importing_the_package():
    # face_recognition_models/__init__ imports pkg_resources; we must not need it
    assert model_path("shape_predictor_68_face_landmarks.dat").is_file()
    assert "face_recognition_models" not in sys.modules


def test_detector_reports_the_smallest_face_it_can_find():
    """min_face_size follows the passes' pixel budgets: smaller photos are upsampled, so
    smaller faces are findable; a bigger budget finds smaller faces; never below the
    minimum face size, and a detector without the extra passes reports HOG's own limit."""
    det = DlibDetector()
    small, photo, big = det.min_face_size(300, 400), det.min_face_size(512, 512), \
        det.min_face_size(3000, 4000)
    assert small == MIN_FACE_PX  # 0.12 MP: upsampled until 16 px faces are in reach
    assert MIN_FACE_PX <= photo <= 24.0
    assert big > 2 * photo  # 12 MP: the budgets are spread over many more pixels
    hog_a_only = DlibDetector(small_pixels=0, cnn_pixels=0)
    assert hog_a_only.min_face_size(1000, 1000) == pytest.approx(80.0)  # HOG's window
    assert DlibDetector(small_pixels=16e6).min_face_size(2000, 2000) < \
        det.min_face_size(2000, 2000)


def test_no_face_gives_an_empty_result_and_a_reason():
    flat = np.full((300, 400, 3), 127, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    # every pass runs on a face-less photo: small budgets keep the test fast
    det = DlibDetector(small_pixels=1.0e6, cnn_pixels=0.05e6)
    for img in (flat, noise):
        faces, reason = find_faces(img, det)
        assert faces == [] and isinstance(reason, str) and "No face" in reason
        # the reason states the smallest findable face of *this* detector and photo
        expected = int(np.ceil(det.min_face_size(*img.shape[:2])))
        assert f"at least about {expected} px" in reason
    faces, reason = find_faces(np.zeros((8, 8, 3), np.uint8))
    assert faces == [] and "too small" in reason


class _FixedDetector:
    """A non-dlib backend: the protocol is all find_faces needs."""

    def detect(self, image):
        return []

    def min_face_size(self, height, width):
        return 42.0


def test_any_detector_backend_drives_the_no_face_message():
    faces, reason = find_faces(np.full((200, 200, 3), 90, np.uint8), _FixedDetector())
    assert faces == [] and "at least about 42 px" in reason


# --- UTKFace-based tests ---------------------------------------------------------------

@pytest.fixture(scope="module")
def crops():
    """A few UTKFace test-split crops the detector finds confidently, with their points."""
    from diffbfr.train.data import default_data_dir, iter_faces

    if not (default_data_dir() / "utkface" / "manifest.csv").is_file():
        pytest.skip("UTKFace data not present (../shared/data or $DIFFBFR_DATA)")
    out = []
    for _, img in iter_faces("test", limit=40):
        faces = detect_faces(img)
        if len(faces) == 1 and faces[0].score > 1.0:
            out.append((img, faces[0].points5))
        if len(out) == 4:
            break
    assert len(out) == 4
    return out


def place(canvas, crop, angle, scale, centre):
    """Draw `crop` rotated/scaled onto `canvas` with its centre at `centre`; -> 2x3 map."""
    h, w = crop.shape[:2]
    t = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
    t[:, 2] += np.asarray(centre, np.float64) - (np.array([w, h]) - 1) / 2
    size = (canvas.shape[1], canvas.shape[0])
    warped = cv2.warpAffine(crop, t, size, flags=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.full((h, w), 255, np.uint8), t, size) > 127
    canvas[inside] = warped[inside]
    return t


# +-25 deg: what HOG finds upright; 45 deg: found by the rotated retry pass and fitted
# by the upright landmark refit (before that refit the error there was 6-20 px)
@pytest.mark.parametrize("angle,scale", [(-25.0, 0.8), (25.0, 1.3), (12.0, 1.0), (45.0, 1.0)])
def test_round_trip_rotated_scaled_shifted(crops, angle, scale):
    """A crop drawn into a bigger canvas with a known rotation/scale/offset aligns back.

    Criterion: the crop's own 5 points, carried into the canvas by the known transform
    and mapped by the canvas alignment matrix, land within 2 px of where the same points
    land when the crop itself is aligned directly. This isolates the face layer's error
    (detection + landmarks + fit) from the face's own shape; distance to TEMPLATE_128 is
    not meaningful per face (faces differ from the mean by 2-12 px, see fit_template).
    """
    for i, (crop, own_points) in enumerate(crops[:3]):
        canvas = np.full((480, 560, 3), 90, np.uint8)
        centre = (230 + 40 * i, 250 - 20 * i)
        t = place(canvas, crop, angle, scale, centre)
        faces, reason = find_faces(canvas)
        assert reason is None and len(faces) == 1
        direct = similarity_transform(own_points, TEMPLATE_128)
        err = np.linalg.norm(apply(faces[0].matrix, apply(t, own_points))
                             - apply(direct, own_points), axis=1)
        assert err.max() < 2.0, err
        # and the aligned pixels match those of the directly aligned crop
        direct_img = align_face(crop, Face((0, 0, 200, 200), 1.0, own_points)).image
        inner = (slice(16, -16), slice(16, -16))  # the canvas border may show at the edges
        diff = np.abs(faces[0].image[inner].astype(float) - direct_img[inner]).mean()
        print(f"angle {angle} scale {scale}: max point error {err.max():.2f} px, "
              f"pixel diff {diff:.1f}")
        assert diff < 8.0
        assert faces[0].larger_than_model == (faces[0].face_size > FRAME)
        assert abs(faces[0].face_size - 200 * scale) < 0.05 * 200 * scale
        # paste the unchanged aligned face back: the canvas hardly changes
        out = paste_back(canvas, faces, [faces[0].image])
        assert out.shape == canvas.shape and out.dtype == np.uint8
        assert np.abs(out.astype(np.float64) - canvas).mean() < 1.0


def test_several_faces_all_found_and_all_pasted(crops):
    canvas = np.full((420, 900, 3), 200, np.uint8)
    centres = [(130, 200), (420, 230), (720, 190)]
    scales = [0.9, 1.1, 0.7]
    for (crop, _), c, s in zip(crops[:3], centres, scales):
        place(canvas, crop, 0.0, s, c)
    faces, reason = find_faces(canvas)
    assert reason is None and len(faces) == 3
    xs = [f.face.box[0] for f in faces]
    assert xs == sorted(xs)  # left to right
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    restored = [np.full((FRAME, FRAME, 3), col, np.uint8) for col in colours]
    out = paste_back(canvas, faces, restored)
    for (cx, cy), col in zip(centres, colours):
        assert np.abs(out[cy, cx].astype(int) - col).max() <= 2  # face centre replaced
    assert np.array_equal(out[:, :20], canvas[:, :20])  # far from faces: untouched
    # the blend is feathered: white faces pasted into a black photo rise smoothly,
    # no pixel-to-pixel step anywhere near a hard edge (255). (keep_detail off: these
    # faces were not aligned from the black photo, and keep_detail adds the restoration's
    # change to the photo the faces came from.)
    black = np.zeros_like(canvas)
    white = [np.full((FRAME, FRAME, 3), 255, np.uint8)] * 3
    out = paste_back(black, faces, white, keep_detail=False).astype(np.int16)
    assert max(np.abs(np.diff(out, axis=0)).max(), np.abs(np.diff(out, axis=1)).max()) < 40


def test_face_touching_the_border(crops):
    crop, _ = crops[0]
    canvas = np.full((300, 300, 3), 60, np.uint8)
    place(canvas, crop, 0.0, 1.0, (85, 140))  # frame sticks out 15 px on the left
    faces, _ = find_faces(canvas)
    assert len(faces) == 1
    corners = apply(cv2.invertAffineTransform(faces[0].matrix), [[0, 0], [0, FRAME - 1]])
    assert corners[:, 0].min() < 0  # the canonical frame really leaves the photo
    restored = np.full((FRAME, FRAME, 3), 255, np.uint8)
    out = paste_back(canvas, faces, [restored])
    assert out[140, 0].min() > 240  # replaced right up to the photo border
    unchanged = paste_back(canvas, faces, [faces[0].image])
    assert np.abs(unchanged.astype(np.float64) - canvas).mean() < 1.0


def test_greyscale_photo_stays_grey(crops):
    grey = cv2.cvtColor(crops[1][0], cv2.COLOR_RGB2GRAY)
    canvas = np.full((320, 320), 128, np.uint8)
    canvas[60:260, 60:260] = grey
    canvas = np.repeat(canvas[:, :, None], 3, axis=2)
    assert is_greyscale(canvas)
    faces, _ = find_faces(canvas)
    assert len(faces) == 1
    tinted = faces[0].image.copy()
    tinted[..., 0] = 255  # a restoration that came back coloured
    out = paste_back(canvas, faces, [tinted])
    assert is_greyscale(out) and not np.array_equal(out, canvas)


def test_face_size_flag(crops):
    crop, _ = crops[2]
    for scale, larger in ((0.5, False), (1.5, True)):
        canvas = np.full((500, 500, 3), 30, np.uint8)
        place(canvas, crop, 0.0, scale, (250, 250))
        faces, _ = find_faces(canvas)
        assert len(faces) == 1 and faces[0].larger_than_model is larger


def test_aligned_crop_modes(crops):
    crop, own_points = crops[0]
    utk = align_crop(crop, "utk")
    assert isinstance(utk, AlignedFace) and utk.face is None
    assert np.array_equal(utk.image, cv2.resize(crop, (FRAME, FRAME), interpolation=cv2.INTER_AREA))
    assert align_crop(crop, "auto").matrix.tolist() == utk.matrix.tolist()  # 200 px -> utk
    assert utk.face_size == pytest.approx(200.0) and utk.larger_than_model
    # an FFHQ-style 512 crop made from the same face maps back onto our frame
    from diffbfr.faces.align import FFHQ_TEMPLATE_512

    to_ffhq = similarity_transform(TEMPLATE_128, FFHQ_TEMPLATE_512) @ np.vstack(
        [utk.matrix, [0, 0, 1]])
    ffhq = cv2.warpAffine(crop, to_ffhq, (512, 512), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT_101)
    back = align_crop(ffhq, "auto")
    assert back.face is None and back.larger_than_model
    diff = np.abs(back.image[8:-8, 8:-8].astype(float) - utk.image[8:-8, 8:-8]).mean()
    assert diff < 4.0
    # and unchanged, it pastes back into the crop almost losslessly
    out = paste_back(ffhq, [back], [back.image])
    assert np.abs(out.astype(float) - ffhq).mean() < 1.5
    with pytest.raises(ValueError):
        align_crop(crop, "bogus")
