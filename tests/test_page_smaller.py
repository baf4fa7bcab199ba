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



# ---------------------------------------------------------------- 8. the work one request may do
def test_the_work_per_request_is_capped_and_said(tmp_path):
    import numpy as np
    from diffbfr import settings as S
    from diffbfr.methods import DiffBFRSettings
    from diffbfr.photo import WORK_BUDGET, PhotoRestorer
    model = methods.tiny("diffbfr")
    photo = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(ROOT / "examples" / "two_people.jpg").convert("RGB"))
    heavy = S.validate(DiffBFRSettings, {"irm64_steps": 20, "irm128_steps": 20, "tem_steps": 10, "irm64_samples": 1})
    capped = PhotoRestorer(model, identity=False, work_budget=WORK_BUDGET).restore(photo, heavy)
    assert len(capped.found) == 2 and len(capped.faces) == 1   # 2 x 50 evaluations > 64: the larger face
    assert capped.faces[0].aligned.face_size == max(f.face_size for f in capped.found)
    assert any("Restoring 1 of the 2 faces" in n and "100 network evaluations" in n for n in capped.notices)
    light = PhotoRestorer(model, identity=False, work_budget=WORK_BUDGET).restore(photo, DiffBFRSettings())
    assert len(light.faces) == 2 and not any("network evaluations" in n for n in light.notices)
    assert len(PhotoRestorer(model, identity=False).restore(photo, heavy).faces) == 2   # CLI, Python API: no cap


def test_the_app_caps_the_work_per_request(handlers):
    from diffbfr.photo import WORK_BUDGET
    assert all(r.work_budget == WORK_BUDGET for r in handlers.app.restorers.values())
