"""bench.soak and bench.odd_shapes without starting the app: the mix, the verdict, the
detector-work counter (their full runs take minutes: bench/README.md has their numbers)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio_client")

from bench import odd_shapes, soak  # noqa: E402


def test_a_soak_cycle_is_twelve_requests_each_kind_in_turn_last(tmp_path):
    files = [tmp_path / f"{i}.jpg" for i in range(4)]
    inputs = soak.Inputs(files, files, files, files, files, tmp_path / "x.png", tmp_path / "t.jpg")
    lasts = set()
    for c in range(7):
        steps = soak.cycle(inputs, "http://127.0.0.1:1/", None, 1.0, c, 14)
        kinds = [k for k, _ in steps]
        assert len(steps) == soak.PER_CYCLE and len(set(kinds)) == 12
        tab = [k for k in kinds if k.startswith("page")]
        assert tab == ["page upload", "page restore", "page seed slider", "page TEM slider",
                       "page uncertainty", "page bad upload"]          # a tab's steps stay in order
        assert kinds.index("page upload") + 5 == kinds.index("page bad upload")
        lasts.add(kinds[-1])
    assert len(lasts) == 7   # over 7 cycles an idle reading follows every kind of request


def test_soak_verdict_reads_the_idle_curve_after_the_warm_up():
    steps = [soak.Step(n, "api photo", True, 1.0, 700.0) for n in range(1, 49)]
    flat = [(0, 400.0), (12, 690.0), (24, 700.0), (36, 780.0), (48, 840.0)]
    text, ok = soak.summary(steps, flat, 400.0, 900.0, warmup=20, budget=150)
    assert ok and "vs request 24" in text and "+140" in text
    _, ok = soak.summary(steps, flat[:-1] + [(48, 851.0)], 400.0, 900.0, warmup=20, budget=150)
    assert not ok


def test_detector_work_counts_what_dlib_is_handed():
    from diffbfr.faces.scan import cnn_pass, hog_pass
    img = np.full((200, 300, 3), 120, np.uint8)
    with odd_shapes.DetectorWork() as work:
        hog_pass(img, 1.0)
        cnn_pass(img, 0.5)
    assert work.runs == [("hog", 200, 300), ("cnn", 100, 150)]
    assert work.megapixels() == pytest.approx(0.075) and work.largest() == pytest.approx(0.06)
    hog_pass(img, 1.0)   # restored on exit: nothing counted any more
    assert len(work.runs) == 2


def test_odd_shape_inputs_are_the_sizes_they_say(tmp_path):
    path = odd_shapes.make_input("strip_10000x40", tmp_path)
    from PIL import Image
    with Image.open(path) as im:
        assert im.size == (10000, 40)
    assert path.stat().st_size < 5000   # the QA report's 1.3 KB kind of file
    assert odd_shapes.make_input("strip_10000x40", tmp_path) == path and Path(path).exists()
