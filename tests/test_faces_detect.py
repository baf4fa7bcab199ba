"""Detection passes: box merging across detectors, the minimum face size, the small-face
pass and when it runs, and the synthetic detection benchmark (bench.detection --quick)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import diffbfr.faces.detect as detect_mod
from diffbfr.faces.align import find_faces
from diffbfr.faces.detect import MIN_FACE_PX, DlibDetector, detect_faces, face_from_detection
from diffbfr.faces.scan import MERGE_IOU, Detection, cnn_confirms, cnn_pass, hog_pass, iou, merge_detections


def det(x, y, size, source="hog", score=1.0) -> Detection:
    return Detection((float(x), float(y)), float(size), score, source)


def test_merging_keeps_one_box_per_face():
    hog = [det(100, 100, 80), det(300, 120, 60)]
    # the CNN's boxes of the same two faces (shifted, other sizes) and of a third face
    cnn = [det(104, 95, 90, "cnn", 0.9), det(296, 126, 54, "cnn", 1.1), det(500, 100, 70, "cnn")]
    merged = merge_detections(hog, cnn)
    assert [d.source for d in merged] == ["hog", "hog", "cnn"]  # earlier pass wins
    assert merged[2].centre == (500.0, 100.0)
    # neighbours in a group photo (touching boxes) stay two faces
    assert len(merge_detections([det(100, 100, 80)], [det(181, 100, 80)])) == 2
    assert iou(det(0, 0, 10).box, det(0, 0, 10).box) == pytest.approx(1.0)
    assert iou(det(0, 0, 10).box, det(10, 0, 10).box) == 0.0


@pytest.fixture(scope="module")
def utk():
    from diffbfr.train.data import default_data_dir, iter_faces

    if not (default_data_dir() / "utkface" / "manifest.csv").is_file():
        pytest.skip("UTKFace data not present (../shared/data or $DIFFBFR_DATA)")
    return [img for _, img in iter_faces("test", limit=12)]


def on_canvas(face: np.ndarray, side: int, canvas_hw, centre, seed=0) -> np.ndarray:
    """`face` (a UTK crop) resized to side x side, pasted onto a smooth textured canvas."""
    rng = np.random.default_rng(seed)
    h, w = canvas_hw
    bg = cv2.resize(rng.integers(60, 200, (h // 16 + 1, w // 16 + 1, 3)).astype(np.uint8), (w, h),
                    interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    x0, y0 = centre[0] - side // 2, centre[1] - side // 2
    bg[y0:y0 + side, x0:x0 + side] = small
    return np.ascontiguousarray(bg)


def test_both_detectors_find_one_face_once(utk):
    """HOG and the CNN both find the face; the CNN box, mapped to HOG framing, overlaps the
    HOG box well past the merge threshold, so the merge keeps one face; and landmarks fitted
    in the mapped CNN box agree with those from the HOG box."""
    photo = on_canvas(utk[0], 180, (280, 280), (140, 140))
    hog, cnn = hog_pass(photo, 1.0), cnn_pass(photo, 1.0)
    assert len(hog) == 1 and len(cnn) == 1
    assert iou(hog[0].box, cnn[0].box) > 2 * MERGE_IOU
    assert len(merge_detections(hog, cnn)) == 1
    p_hog = face_from_detection(photo, hog[0]).points5
    p_cnn = face_from_detection(photo, cnn[0]).points5
    eye = np.linalg.norm(p_hog[1] - p_hog[0])
    assert np.linalg.norm(p_cnn - p_hog, axis=1).max() < 0.1 * eye


def test_faces_under_the_minimum_size_are_dropped(monkeypatch):
    def fake_hog(image, scale, threshold=0.0, angle=0.0):
        return [det(50, 50, MIN_FACE_PX - 4), det(150, 50, MIN_FACE_PX + 4)]

    monkeypatch.setattr(detect_mod, "hog_pass", fake_hog)
    found = DlibDetector(cnn_pixels=0).detections(np.zeros((100, 200, 3), np.uint8))
    assert [d.size for d in found] == [MIN_FACE_PX + 4]


def test_a_20_px_face_is_found_and_restorable(utk):
    """A ~20 px face (a 22 px UTK crop) in a small photo: below pass A's limit (32 px here),
    found by the upsampled small-face pass, aligned like any other face."""
    photo = on_canvas(utk[1], 22, (180, 240), (90, 80))
    a_only = DlibDetector(small_pixels=0, cnn_pixels=0, retry_rotations=())
    assert detect_faces(photo, a_only) == []
    faces, reason = find_faces(photo)
    assert reason is None and len(faces) == 1
    x0, y0, x1, y1 = faces[0].face.box
    assert abs((x0 + x1) / 2 - 90) < 4 and abs((y0 + y1) / 2 - 80) < 4
    assert MIN_FACE_PX <= x1 - x0 < 30 and 18 < faces[0].face_size < 32


def count_passes(monkeypatch) -> list[float]:
    scales: list[float] = []

    def spy(image, scale, threshold=0.0, angle=0.0):
        scales.append(scale)
        return hog_pass(image, scale, threshold, angle)

    monkeypatch.setattr(detect_mod, "hog_pass", spy)
    return scales


def test_small_pass_always_and_tilted_passes_only_when_faces_are_small(utk, monkeypatch):
    angles: list[float] = []
    scales = count_passes(monkeypatch)
    original = detect_mod.hog_pass

    def spy(image, scale, threshold=0.0, angle=0.0):
        angles.append(angle)
        return original(image, scale, threshold, angle)
    monkeypatch.setattr(detect_mod, "hog_pass", spy)
    det_ = DlibDetector(cnn_pixels=0)
    # a portrait with a small face beside the big one: A finds the big face at a comfortable
    # size, so no tilted passes (the app's budget), but the small-face pass runs and finds both
    portrait = on_canvas(utk[2], 200, (400, 400), (150, 200))
    portrait[180:204, 330:354] = cv2.resize(utk[6], (24, 24), interpolation=cv2.INTER_AREA)
    found = det_.detect(portrait)
    assert len(found) == 2 and len(scales) == 2 and scales[1] > 1.8 * scales[0] and angles == [0.0, 0.0]
    # a group at a distance: faces near pass A's limit (34 px in a 300x600 photo) -> the
    # small-face pass and the tilted passes (+-20 degrees on A's copy) run
    scales.clear()
    angles.clear()
    group = on_canvas(utk[3], 50, (300, 600), (150, 150))
    group[140:160, 290:310] = cv2.resize(utk[4], (20, 20), interpolation=cv2.INTER_AREA)
    group[125:175, 425:475] = cv2.resize(utk[5], (50, 50), interpolation=cv2.INTER_AREA)
    found = det_.detect(group)
    assert len(scales) == 4 and scales[1] > 1.8 * scales[0] and sorted(angles) == [-20.0, 0.0, 0.0, 20.0]
    assert len(found) == 3


def test_tilted_boxes_are_kept_only_where_the_cnn_sees_a_face(utk):
    """A face tilted by 20 degrees: the CNN, shown an upright chip of the box, agrees; a box on
    the plain background is turned down (as badges and logos that fire tilted HOG are)."""
    face = on_canvas(utk[7], 180, (320, 320), (160, 160))
    turn = cv2.getRotationMatrix2D((159.5, 159.5), -20.0, 1.0)
    tilted = cv2.warpAffine(face, turn, (320, 320), borderMode=cv2.BORDER_REPLICATE)
    box = hog_pass(face, 1.0)[0]   # where the face is, upright; the same centre once turned
    assert cnn_confirms(tilted, Detection(box.centre, box.size, 0.1, "hog", 20.0))
    assert not cnn_confirms(tilted, Detection((40.0, 40.0), 60.0, 0.1, "hog", 20.0))


def test_detector_drops_tilted_only_boxes_the_cnn_turns_down(monkeypatch):
    def fake_hog(image, scale, threshold=0.0, angle=0.0):   # a "face" only when tilted
        return [Detection((100.0, 100.0), 40.0, 0.2, "hog", angle)] if angle else []

    monkeypatch.setattr(detect_mod, "hog_pass", fake_hog)
    monkeypatch.setattr(detect_mod, "cnn_pass", lambda *a, **k: [])
    wall = np.full((200, 300, 3), 128, np.uint8)
    assert DlibDetector().detections(wall) == []
    kept = DlibDetector(verify_tilted=False).detections(wall)
    assert len(kept) == 1 and kept[0].angle == 20.0


def test_detection_benchmark_quick():
    from bench.detection import run

    scores = run(2, seed=0, real=False, pool=8, names=("before", "hog", "hog+cnn"))
    assert set(scores) == {"before", "hog", "hog+cnn"}
    default = scores["hog+cnn"]
    assert default.photos == 2 and len(default.sizes) == 3
    recall_big, n_big = default.recall(64)
    assert n_big >= 1 and recall_big == 1.0
    assert default.false_pos <= 1 and default.cpu > 0
