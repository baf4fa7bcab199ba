"""The app's bound on one request's work (issue #30, item 8; diffbfr/work_budget.py):
over it the step counts are scaled down, one face's work included, and past the fewest steps
the largest faces are restored; both are said in words and in the record. The CLI and the
Python API run what they are asked."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffbfr import methods
from diffbfr import settings as S
from diffbfr.methods import DiffBFRSettings
from diffbfr.photo import PhotoOptions, PhotoRestorer
from diffbfr.stage_cache import LRUCache, image_key
from diffbfr.work_budget import LOOK_HARDER_S, WORK_BUDGET_S, face_work, fit, scaled_counts
from tests.app_calls import restore_api
from ui.handlers import Handlers
from ui.state import AppState

ROOT = Path(__file__).resolve().parent.parent
DIFFBFR = methods.get("diffbfr")
COUNTS = ("irm64_steps", "irm64_samples", "irm128_steps", "tem_steps")
# every count at its end, the start steps within what the shipped networks were trained at
WORST = S.validate(DiffBFRSettings, {"irm_start": 400, "irm2_start": 400, "tem_t": 100, "irm64_steps": 50,
                                     "irm64_samples": 8, "irm128_steps": 50, "tem_steps": 20, "eta": 1.0})
DEFAULTS = DiffBFRSettings()


def test_work_is_counted_per_evaluation_and_grows_with_the_stage1_samples():
    assert face_work(DIFFBFR, DEFAULTS) > 0
    more = S.validate(DiffBFRSettings, {"irm64_samples": 8})
    assert face_work(DIFFBFR, more) > face_work(DIFFBFR, DEFAULTS)      # same calls, a larger batch
    skipped = S.validate(DiffBFRSettings, {"irm_start": 0, "irm64_steps": 50, "irm64_samples": 8})
    assert face_work(DIFFBFR, skipped) < face_work(DIFFBFR, DEFAULTS)   # a stage that is skipped costs nothing
    # the typical photo (2 faces at the defaults) fits the app's budget as asked
    assert fit(DIFFBFR, [DEFAULTS] * 2, [100, 90], WORK_BUDGET_S).capped is False


def test_one_face_at_the_most_expensive_settings_is_brought_within_the_budget():
    assert face_work(DIFFBFR, WORST) > 3 * WORK_BUDGET_S
    f = fit(DIFFBFR, [WORST], [100], WORK_BUDGET_S)
    assert f.keep == [0] and not f.left_out
    assert f.run_s <= WORK_BUDGET_S < f.asked_s and f.run_s == pytest.approx(face_work(DIFFBFR, f.settings[0]))
    run = f.settings[0]
    for name in COUNTS:   # every count lowered, none below its slider's end
        assert S.knob_of(DiffBFRSettings, name).lo <= getattr(run, name) < getattr(WORST, name)
        assert f.lowered[name] == (getattr(WORST, name), getattr(run, name))
    # the largest scale that fits: one more of every count would not
    assert face_work(DIFFBFR, scaled_counts(DIFFBFR, WORST, 1.0)) == f.asked_s
    assert {k: getattr(run, k) for k in S.to_dict(run) if k not in COUNTS} == \
        {k: getattr(WORST, k) for k in S.to_dict(WORST) if k not in COUNTS}   # nothing else changes


def test_past_the_fewest_steps_the_largest_faces_are_restored():
    sizes = [40, 160, 90, 120]
    f = fit(DIFFBFR, [WORST] * 4, sizes, budget_s=face_work(DIFFBFR, scaled_counts(DIFFBFR, WORST, 0.0)) * 2.5)
    assert f.keep == [1, 3] and f.left_out == [0, 2]   # the two largest, in photo order
    assert f.run_s <= f.budget_s
    assert all(getattr(s, n) == S.knob_of(DiffBFRSettings, n).lo for s in f.settings for n in COUNTS)
    one = fit(DIFFBFR, [WORST] * 2, [50, 60], budget_s=0.001)
    assert one.keep == [1]   # at least one face, even over the budget


def test_the_notice_and_the_record_say_what_was_capped():
    f = fit(DIFFBFR, [WORST] * 3, [100, 90, 80], WORK_BUDGET_S)
    words = " ".join(f.notices(DIFFBFR, [0, 2, 5]))
    run = f.settings[0]
    assert f"Sampling steps (stage 1) 50 → {run.irm64_steps}" in words
    assert f"Stage-1 samples averaged 8 → {run.irm64_samples}" in words
    assert f"under about {WORK_BUDGET_S:g} s of work" in words and "these 3 faces" in words
    record = f.record([0, 2, 5])
    assert record["lowered"]["tem_steps"] == [20, run.tem_steps] and record["left_out"] == []
    assert record["run_s"] <= record["budget_s"] == WORK_BUDGET_S < record["asked_s"]
    fewest = face_work(DIFFBFR, scaled_counts(DIFFBFR, WORST, 0.0))
    left = fit(DIFFBFR, [WORST] * 3, [100, 90, 80], budget_s=2.5 * fewest)   # two of the three fit
    assert left.record([0, 2, 5])["left_out"] == [6]
    assert "left out: face 6" in " ".join(left.notices(DIFFBFR, [0, 2, 5]))


@pytest.fixture(scope="module")
def two_people():
    return np.asarray(Image.open(ROOT / "examples" / "two_people.jpg").convert("RGB"))


def test_the_app_restores_every_face_with_fewer_steps_and_says_so(two_people, one_thread):
    model, detections = methods.tiny("diffbfr"), LRUCache(4)   # detected once for both restorers
    heavy = S.validate(DiffBFRSettings, {"irm64_steps": 6, "irm64_samples": 2, "irm128_steps": 4, "tem_steps": 2})
    budget = 1.5 * face_work(DIFFBFR, heavy)   # two faces do not fit as asked
    capped = PhotoRestorer(model, identity=False, work_budget=budget, detections=detections).restore(two_people, heavy)
    assert len(capped.found) == 2 and len(capped.faces) == 2
    ran = capped.faces[0].settings
    assert ran.irm64_steps < 6 and capped.faces[0].stages.nfe["irm64"] == ran.irm64_steps   # what ran is what is said
    assert any("Steps reduced" in n and f"6 → {ran.irm64_steps}" in n for n in capped.notices)
    record = capped.to_record()
    assert record["work"]["lowered"]["irm64_steps"] == [6, ran.irm64_steps]
    assert record["faces"][0]["settings"]["irm64_steps"] == ran.irm64_steps
    assert record["settings"]["irm64_steps"] == 6   # what was asked stays in the record
    # the CLI's and the Python API's restorer: no bound
    uncapped = PhotoRestorer(model, identity=False, detections=detections).restore(two_people, heavy)
    assert uncapped.faces[0].stages.nfe["irm64"] == 6 and uncapped.to_record()["work"] is None
    # "look harder" spends part of the budget on detection (its faces taken from the cache here)
    key = image_key(two_people)
    detections.put((key, False, True), detections.get((key, False, False)))
    harder = PhotoRestorer(model, identity=False, work_budget=budget + LOOK_HARDER_S, detections=detections)
    capped_harder = harder.restore(two_people, heavy, PhotoOptions(thorough=True))
    assert capped_harder.work["budget_s"] == pytest.approx(budget)
    assert capped_harder.work["lowered"] == record["work"]["lowered"]   # the faces got what was left
    assert any('"Look harder" spent' in n for n in capped_harder.notices)


def test_the_app_bounds_every_restore_and_the_api_record_says_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    h = Handlers(AppState({"diffbfr": methods.tiny("diffbfr")}, identity=False), [])
    assert all(r.work_budget == WORK_BUDGET_S for r in h.app.restorers.values())
    photo = tmp_path / "face.png"
    photo.write_bytes((ROOT / "examples" / "astronaut_face_aligned.png").read_bytes())
    *_, record = restore_api(h).restore(str(photo), "diffbfr", True, '{"irm64_steps": 50, "irm64_samples": 8, "tem_steps": 1}')
    assert record["work"]["budget_s"] == WORK_BUDGET_S and record["work"]["lowered"]["irm64_steps"][0] == 50
    assert record["faces"][0]["nfe"]["irm64"] < 50 and any("Steps reduced" in n for n in record["notices"])
