"""The smaller items of issue #30: detection's progress is its step's name, not a frozen
"0.0 %" (18); on a phone the result comes before the examples (19; the browser test measures
it at 390 px); an unsure detection says how to leave it out, and the picker shows even for one
face (20)."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from diffbfr import methods
from ui.handlers import Handlers, knob_layout
from ui.state import AppState

ROOT = Path(__file__).resolve().parent.parent
FAST = {"irm64_steps": 1, "irm128_steps": 1, "tem_steps": 1}


@pytest.fixture
def handlers(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    return Handlers(AppState({"diffbfr": methods.tiny("diffbfr")}, identity=False), [])


def _restore(h, photo: Path, progress=lambda *a, **k: None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        up = h.on_image(str(photo))[0]
        values = [FAST.get(k.name, k.default) for _, k in knob_layout()]
        return h.on_restore(up, None, False, "diffbfr", "1", False, False, *values, progress=progress)


def test_detection_shows_its_name_without_a_frozen_percentage(handlers):
    seen = []
    _restore(handlers, ROOT / "examples" / "hopper_small.jpg",
             progress=lambda f, desc=None, **k: seen.append((f, desc)))
    detecting = [f for f, desc in seen if "Detecting faces" in desc]
    assert detecting and all(f is None for f in detecting), seen[:3]   # an indeterminate bar with the name
    assert any(isinstance(f, float) and f > 0 for f, _ in seen)          # the stages count on


def test_examples_come_after_the_result_on_a_phone(handlers):
    import app as app_module
    from ui.page import CSS
    demo = app_module.build_demo(handlers.app)
    ids = [b.elem_id for b in demo.blocks.values() if getattr(b, "elem_id", None)]
    assert "examples_side" in ids and "examples_below" in ids
    assert ids.index("result") < ids.index("examples_below")
    assert "#examples_side { display: none" in CSS and "#examples_below { display: none" in CSS


def test_an_unsure_detection_says_how_to_leave_it_out(handlers):
    # two_faces_grey.jpg: the second face is found with a HOG score of 0.0, the first with 0.4
    _, status, *_, pick, _preview = _restore(handlers, ROOT / "examples" / "two_faces_grey.jpg")
    assert "Face 2: the detector is unsure it is a face" in status and "Faces to restore" in status
    assert "Face 1: the detector is unsure" not in status
    assert pick["visible"] is True
