"""Odd shapes cost what an ordinary photo costs: the detector passes are bounded by the pixels
they would process (a thin strip's tilted passes turn it a piece at a time, passes thinner
than any findable face do not run), and a tilted face in a long strip is still found."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from diffbfr.faces import scan
from diffbfr.faces.align import find_faces
from diffbfr.faces.detect import DlibDetector

ROOT = Path(__file__).resolve().parent.parent

# What the default detector hands dlib for an ordinary faceless 1 MP photo: pass A (1 MP),
# B (4 MP), C (2 x 1.6 MP turned), D (0.3 MP CNN): ~8.5 MP, the largest 4 MP (bench.odd_shapes).
ORDINARY_MP, LARGEST_MP = 8.7, 4.0


@pytest.fixture
def work(monkeypatch):
    """Every image dlib's detectors are handed (detector, height, width); an input far larger
    than any pass of an ordinary photo fails at once instead of running for seconds."""
    runs: list[tuple[str, int, int]] = []
    hog, cnn = scan.hog_detector, scan.cnn_detector

    def seen(kind, image):
        runs.append((kind,) + tuple(image.shape[:2]))
        assert image.shape[0] * image.shape[1] <= 1.1 * LARGEST_MP * 1e6, f"{kind} handed {image.shape[:2]}"

    class Hog:
        def run(self, image, *a):
            seen("hog", image)
            return hog().run(image, *a)

    def run_cnn(image, *a):
        seen("cnn", image)
        return cnn()(image, *a)

    monkeypatch.setattr(scan, "hog_detector", lambda: Hog())
    monkeypatch.setattr(scan, "cnn_detector", lambda: run_cnn)
    return runs


def megapixels(runs) -> float:
    return sum(h * w for _, h, w in runs) / 1e6


@pytest.mark.parametrize("hw, kind", [((40, 10000), "flat"), ((10000, 40), "flat"), ((48, 9000), "noise")])
def test_a_thin_strip_costs_no_more_than_an_ordinary_photo(work, hw, kind):
    """The QA report's 10000x40 PNG took 17-21 s and 1 GB: pass C turned its 1 MP working copy
    into two 81 MP canvases (168 MP of detector input in all)."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, hw + (3,), dtype=np.uint8) if kind == "noise" else np.full(hw + (3,), 190, np.uint8)
    faces, reason = find_faces(img)
    assert faces == [] and reason
    assert megapixels(work) <= 2 * ORDINARY_MP, work
    # the CNN's working copy of such a strip is thinner than any face it could find: not run
    assert not [r for r in work if r[0] == "cnn"]


def test_passes_thinner_than_a_face_are_not_run(work):
    strip = np.full((30, 3000, 3), 120, np.uint8)
    assert scan.hog_pass(strip, 1.0) == [] and scan.cnn_pass(strip, 1.0) == []
    assert work == []
    assert scan.hog_pass(np.full((60, 3000, 3), 120, np.uint8), 1.0) == [] and len(work) == 1


@pytest.mark.parametrize("size", [(1000, 1000), (1333, 750), (1778, 562), (2646, 378), (378, 2646)])
def test_ordinary_shapes_are_turned_whole(size):
    """Up to ~7:1 the whole copy is turned, as before: ordinary photos' detections unchanged."""
    assert scan.turn_pieces(*size, 20.0) == [(0, 0) + size]
    assert scan.turn_pieces(*size, 0.0) == [(0, 0) + size]


@pytest.mark.parametrize("size", [(15811, 63), (63, 15811), (5000, 100), (2000, 200)])
def test_long_copies_are_turned_in_overlapping_pieces(size):
    w, h = size
    pieces = scan.turn_pieces(w, h, 20.0)
    assert len(pieces) > 1
    short, axis = min(w, h), 0 if w >= h else 1
    spans = [(p[axis], p[axis + 2]) for p in pieces]
    assert spans[0][0] == 0 and spans[-1][1] == max(w, h)          # the whole long side
    assert all(p[1 - axis] == 0 and p[3 - axis] == short for p in pieces)   # the whole short side
    assert all(a1 - b0 >= scan.TURN_OVERLAP * short - 1 for (_, a1), (b0, _) in zip(spans, spans[1:]))
    turned = sum(scan._turned_pixels(x1 - x0, y1 - y0, 20.0) for x0, y0, x1, y1 in pieces)
    assert turned < scan._turned_pixels(w, h, 20.0)
    assert turned <= 4.2 * w * h


def _tilted_face_strip(height: int, width: int, x: int) -> np.ndarray:
    """The larger face of examples/two_people.jpg turned by 25 degrees, in a long grey strip."""
    bgr = cv2.imread(str(ROOT / "examples" / "two_people.jpg"), cv2.IMREAD_COLOR)
    img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    r = scan.hog_detector().run(img, 0, 0.0)[0][0]
    cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
    turned = cv2.warpAffine(img, cv2.getRotationMatrix2D((cx, cy), 25, 1.0), img.shape[1::-1],
                            borderMode=cv2.BORDER_REFLECT)
    strip = np.full((height, width, 3), 120, np.uint8)
    y0, x0 = int(cy - height / 2), int(cx - 80)
    strip[:, x - 80:x + 80] = turned[y0:y0 + height, x0:x0 + 160]
    return np.ascontiguousarray(strip)


@pytest.mark.parametrize("x", [80, 1500, 2920])
def test_a_tilted_face_in_a_long_strip_is_still_found(x):
    strip = _tilted_face_strip(150, 3000, x)
    assert len(scan.turn_pieces(3000, 150, -20.0)) > 1
    found = scan.hog_pass(strip, 1.0, 0.0, -20.0)
    assert len(found) == 1
    (fx, fy), size = found[0].centre, found[0].size
    assert abs(fx - x) < 10 and abs(fy - 75) < 10 and 70 < size < 110
    # and the default detector, which tries the tilted passes when nothing upright is found
    faces = DlibDetector().detections(strip)
    assert any(abs(d.centre[0] - x) < 10 for d in faces)
