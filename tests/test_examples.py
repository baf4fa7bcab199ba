"""The example images: small files, the faces they promise, composites from training faces only."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffbfr.faces.align import find_faces

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))
import make_composites  # noqa: E402


def test_every_example_is_small():
    files = [p for p in EXAMPLES.iterdir() if p.suffix in {".jpg", ".png"}]
    assert len(files) >= 9
    assert all(p.stat().st_size < 300_000 for p in files), [p.name for p in files]


@pytest.mark.parametrize("name, faces", [("composite_portraits.jpg", 6), ("composite_lowres.jpg", 1)])
def test_composite_examples_show_their_people(name, faces):
    found, _ = find_faces(np.asarray(Image.open(EXAMPLES / name).convert("RGB")))
    assert len(found) == faces


def test_composites_average_training_faces_only():
    row = dict(race=1, gender=0, age=30, sharpness=50.0, saturation=60.0)
    rows = [dict(row, file="a.jpg", split="train"), dict(row, file="b.jpg", split="test"),
            dict(row, file="c.jpg", split="train", race=2),
            dict(row, file="d.jpg", split="train", age=None),
            dict(row, file="e.jpg", split="train", sharpness=5.0)]
    assert make_composites.group_files(rows, race=1, gender=0, ages=(25, 40)) == ["a.jpg"]


def test_composite_of_identical_faces_is_that_face():
    """All copies align onto themselves, so the average gives back the face."""
    face = np.asarray(Image.open(EXAMPLES / "astronaut_face_aligned.png").convert("RGB").resize((200, 200)))
    out = make_composites.composite([face] * 3)
    assert np.abs(out.astype(int) - face).mean() < 1.0
