"""The page tells the truth (issue #30, items 1-4): a face left as it was is not called
restored, Auto switched off says so and how to go back, what the page promises about
uploads is what happens on disk, and a method that cannot run shows no controls."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffbfr import methods
from diffbfr.auto import CALIBRATION_FILE, Auto, Calibration, Estimator
from diffbfr.methods import DiffBFRSettings
from diffbfr.photo import PhotoOptions, restore_photo
from ui.handlers import Handlers, knob_layout
from ui.state import AppState

ROOT = Path(__file__).resolve().parent.parent
FACE = ROOT / "examples" / "astronaut_face_aligned.png"
FAST = {"irm64_steps": 1, "irm128_steps": 1, "tem_steps": 1}


@pytest.fixture(scope="module")
def model():
    return methods.tiny("diffbfr")


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():   # gr.Warning outside a server -> warnings
        warnings.simplefilter("ignore")
        return fn(*a, **k)


def _values(**changes) -> list:
    return [{**FAST, **changes}.get(k.name, k.default) for _, k in knob_layout()]


def _call(fn, up, auto=False, **changes):
    return _quiet(fn, up, None, True, "diffbfr", "1", False, auto, *_values(**changes),
                  progress=lambda *a, **k: None)


def _handlers(model, tmp_path, monkeypatch, calibration: dict | None = None, **more) -> Handlers:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    cal = Calibration.load(ROOT / "weights" / "diffbfr" / CALIBRATION_FILE)
    if calibration is not None:
        cal = Calibration("diffbfr", (0.0, 1.0), calibration)
    return Handlers(AppState({"diffbfr": model, **more}, identity=False,
                             autos={"diffbfr": Auto(Estimator.tiny(), cal)}), [])


# ---------------------------------------------------------------- 1. left as it was
def test_a_face_auto_leaves_alone_is_said_in_words_not_restored(model, tmp_path, monkeypatch):
    zeros = {"irm_start": [0.0, 0.0], "irm2_start": [0.0, 0.0], "tem_t": [0.0, 0.0]}
    h = _handlers(model, tmp_path, monkeypatch, calibration=zeros)
    up = _quiet(h.on_image, str(FACE))[0]
    up, status, *_rest = _call(h.on_restore, up, auto=True)
    identity = _rest[3]
    assert "left 1 face as it was" in status and "restored 1 face" not in status
    assert "Face 1: left as it was: already sharp" in status
    assert "degradation" not in status   # no "moderate degradation" beside an untouched face
    assert "left as it was" in identity
    face = up.last[0].faces[0]
    assert face.left_as_is and np.array_equal(face.stages.result, face.stages["lq"])


def test_summary_counts_restored_and_untouched_faces_apart(model):
    photo = np.asarray(Image.open(FACE).convert("RGB"))
    s = DiffBFRSettings(irm_start=0, irm2_start=0, tem_t=0, **FAST)
    result = restore_photo(model, photo, s, PhotoOptions(aligned=True), identity=False)
    assert result.faces[0].left_as_is and "every start step is 0" in " ".join(result.notices)
    assert result.to_record()["faces"][0]["left_as_it_was"] is True
    moved = restore_photo(model, photo, DiffBFRSettings(**FAST), PhotoOptions(aligned=True), identity=False)
    assert not moved.faces[0].left_as_is and moved.to_record()["faces"][0]["left_as_it_was"] is False

    from ui.views import status_markdown
    both = type(result)(**{**vars(result), "faces": result.faces + moved.faces})
    assert "restored 1 face, left 1 as it was" in status_markdown(both, methods.get("diffbfr"))


def test_cli_counts_untouched_faces_apart(tmp_path, capsys):
    from diffbfr.cli import main
    assert main(["-i", str(FACE), "-o", str(tmp_path / "o"), "--tiny", "--aligned", "--irm-start", "0",
                 "--irm2-start", "0", "--tem-t", "0"]) == 0
    assert "restored 0 face(s), left 1 as it was" in capsys.readouterr().out


# ---------------------------------------------------------------- 2. Auto switched off
def test_auto_switched_off_says_so_and_ticking_it_goes_back(model, tmp_path, monkeypatch):
    h = _handlers(model, tmp_path, monkeypatch)
    up = _quiet(h.on_image, str(FACE))[0]
    up, first, *_ = _call(h.on_restore, up, auto=True)
    first_image = up.last[0].faces[0].stages.result.copy()
    assert "→ Auto:" in first and "Auto is off" not in first
    # the fidelity slider moved (25 -> 40): the page switches Auto off and moves the sliders
    moved = methods.get("diffbfr").simple.apply(40, model.knob_limits())
    up, manual, *_ = _call(h.on_tune, up, auto=False, **moved)
    assert "Auto is off" in manual and "Tick **Auto**" in manual and "→ Auto:" not in manual
    # back to 25 and Auto ticked again: the first result and its notes come back
    up, again, *_ = _call(h.on_tune, up, auto=True)
    assert "→ Auto:" in again and "Auto is off" not in again
    assert np.array_equal(up.last[0].faces[0].stages.result, first_image)


# ---------------------------------------------------------------- 3. what happens to uploads and results
def test_a_rerun_deletes_the_previous_result_files_and_old_ones_age_out(model, tmp_path, monkeypatch):
    import os
    import time
    from ui import files as ui_files
    h = _handlers(model, tmp_path, monkeypatch)
    up = _quiet(h.on_image, str(FACE))[0]
    up, _, (before, after), _, _, _, face_files, *_ = _call(h.on_restore, up)
    first = [after, *face_files["value"]]
    assert all(Path(p).exists() for p in first)
    up, _, (before2, after2), _, _, _, face_files2, *_ = _call(h.on_tune, up, tem_t=5)
    assert not any(Path(p).exists() for p in first)        # replaced on the page: gone from disk
    assert all(Path(p).exists() for p in [before2, after2, *face_files2["value"]])
    old = time.time() - ui_files.RESULT_TTL_S - 10
    for p in [before2, after2]:
        os.utime(p, (old, old))
    h.files.last_ttl_walk = 0.0
    h.files.write("another.png", np.zeros((8, 8, 3), np.uint8))
    assert not Path(before2).exists() and not Path(after2).exists()


def test_the_page_promises_what_happens(model, tmp_path, monkeypatch):
    from ui.page import LICENCE
    assert "never kept" not in LICENCE
    assert "deleted once restored" in LICENCE and "45 minutes" in LICENCE and "rerun deletes" in LICENCE


# ---------------------------------------------------------------- 4. a method that cannot run
def test_an_untrained_method_shows_no_controls(model, tmp_path, monkeypatch):
    import app as app_module
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    state = AppState({"diffbfr": model}, unavailable={"panini": "it is not trained yet"})
    demo = app_module.build_demo(state)
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    panini = [i for i in by_id if i.startswith("panini-")]
    assert panini and not any(by_id[i].visible for i in panini), panini
    assert by_id["diffbfr-simple"].visible and by_id["diffbfr-irm_start"].visible
    texts = [b.value for b in demo.blocks.values() if type(b).__name__ == "Markdown" and isinstance(b.value, str)]
    assert not any(t.startswith("**Panini-Net**") for t in texts)
    h = Handlers(state, [])
    out = dict(zip(h.method_outputs, _quiet(h.on_method, None, "panini")))
    assert out["panini-simple"]["visible"] is False and "not available" in out["status"]
