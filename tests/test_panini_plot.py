"""Panini-Net's DAFI prior share as a chart (diffbfr/methods/panini_plot.py, the stage's
`Stage.plot`) and on the page (ui/views.stage_plots, the "plot" output): its size and texts,
lines where the shares put them, the image block apart, many faces, and the wiring with
random tiny networks (Panini-Net alone, side by side, DiffBFR alone: none)."""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from diffbfr import methods
from diffbfr.methods.panini_plot import COLOURS, IMAGE_LABEL, MAX_LEGEND, SIZE, TITLE, layout, prior_share_plot
from tests.app_calls import FACE, call, quiet
from ui.handlers import Handlers
from ui.outputs import LOAD, PHOTO
from ui.state import AppState
from ui.views import stage_plots

pytestmark = pytest.mark.usefixtures("one_thread")

LEVELS = ("4", "8", "16", "32", "64", "128")


def info(shares, image=None, face=None) -> dict:
    """One face's stage info: `shares` one value for every level, or a list, one per level."""
    values = shares if isinstance(shares, list) else [shares] * len(LEVELS)
    out = {"prior_share": {**dict(zip(LEVELS, values)), **({"image": image} if image is not None else {})}}
    return {**out, "face": face} if face is not None else out


def mask_of(img: np.ndarray, colour) -> np.ndarray:
    return np.all(np.abs(img.astype(int) - np.array(colour)) <= 12, axis=-1)


def overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# ---------------------------------------------------------------- the chart
def test_nothing_to_draw_is_none():
    assert prior_share_plot([]) is None
    assert prior_share_plot([{}, {"prior_share": {}}, {"other": 1}]) is None
    assert layout([]) is None


def test_size_and_not_blank():
    img = prior_share_plot([info(0.7, image=0.5), info(0.3, image=0.2)])
    assert img.shape == (SIZE[1], SIZE[0], 3) and img.dtype == np.uint8
    assert (img < 128).mean() > 0.01                 # texts and axes drawn, not a white page
    for colour in COLOURS[:2]:                       # both faces' lines, in their colours
        assert mask_of(img, colour).sum() > 200
    assert mask_of(img, COLOURS[2]).sum() == 0       # and no third face
    assert prior_share_plot([info(0.5)], size=(640, 300)).shape == (300, 640, 3)


@pytest.mark.parametrize("infos", [
    [info(0.5)],
    [info([0.1, 0.9, 0.2, 0.8, 0.3, 0.7], image=0.4, face=12)],
    [info(0.1 * k, image=1 - 0.1 * k) for k in range(3)],
    [info(k / 20, face=k + 1) for k in range(20)],
    [{"prior_share": {"4": 0.2, "256": 0.9, "image": 0.5}}],
], ids=["one", "image", "three", "twenty", "other-levels"])
@pytest.mark.parametrize("size", [SIZE, (420, 240)], ids=["480", "420"])
def test_texts_do_not_overlap_and_lie_inside(infos, size):
    lay = layout(infos, size)
    boxes = [(t.text, t.box) for t in lay.texts]
    w, h = size
    for text, (x0, y0, x1, y1) in boxes:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (text, (x0, y0, x1, y1))
    clash = [(a, b) for (a, A), (b, B) in itertools.combinations(boxes, 2) if overlaps(A, B)]
    assert not clash, clash
    px0, py0, px1, py1 = lay.plot
    for text, box in boxes:   # no text over the curves either (tick labels under, legend beside)
        if text != TITLE:
            assert not overlaps(box, (px0 + 1, py0, px1, py1 - 1)), text


def test_texts_say_levels_faces_and_the_image_block():
    lay = layout([info(0.5, image=0.3, face=2), info(0.4, face=5)])
    texts = [t.text for t in lay.texts]
    assert TITLE in texts and "feature level (px)" in texts and "100 %" in texts and "0 %" in texts
    assert ["Face 2", "Face 5"] == [t for t in texts if t.startswith("Face")]   # the page's numbers
    assert IMAGE_LABEL in texts
    assert IMAGE_LABEL not in [t.text for t in layout([info(0.5)]).texts]     # only where it ran
    # levels read from the infos, ascending by size (not as strings: "128" < "16" < "4")
    lay = layout([{"prior_share": {"16": 0.2, "4": 0.3, "128": 0.5, "image": 0.9}}])
    assert lay.levels == ["4", "16", "128"]
    assert lay.xs["4"] < lay.xs["16"] < lay.xs["128"] < lay.xs["image"]
    # the image block sits apart: its gap to 128 px is wider than the levels' spacing
    assert lay.xs["image"] - lay.xs["128"] > lay.xs["128"] - lay.xs["16"]


def test_many_faces_cap_the_legend():
    lay = layout([info(k / 12) for k in range(12)])
    texts = [t.text for t in lay.texts]
    assert [t for t in texts if t.startswith("Face")] == [f"Face {k}" for k in range(1, MAX_LEGEND + 1)]
    assert f"+{12 - MAX_LEGEND} more (grey)" in texts
    img = prior_share_plot([info(k / 12) for k in range(12)])
    assert all(mask_of(img, c).sum() > 50 for c in COLOURS[:MAX_LEGEND])


def test_equal_shares_hide_no_face():
    """Faces with the same shares (the tiny networks give nearly the same to every face) are all
    seen: each a few px aside, not one line drawn over the others."""
    infos = [info(0.5, image=0.5) for _ in range(3)]
    plot = prior_share_plot(infos)[:, :layout(infos).plot[2]]   # the curves, not the legend's swatches
    seen = [int(mask_of(plot, c).sum()) for c in COLOURS[:3]]
    assert min(seen) > 40, seen


@pytest.mark.parametrize("high, low", [(0, 1), (1, 0)])
def test_higher_shares_draw_higher(high, low):
    """A face with larger shares draws its line higher (smaller y), whichever face it is; its
    image block marker too, in the image column."""
    shares = {high: 0.9, low: 0.1}
    images = {high: 0.2, low: 0.8}   # the image block the other way round
    infos = [info(shares[k], image=images[k]) for k in (0, 1)]
    img, lay = prior_share_plot(infos), layout(infos)
    levels_part = slice(0, (lay.xs["128"] + lay.xs["image"]) // 2)
    image_part = slice((lay.xs["128"] + lay.xs["image"]) // 2, lay.plot[2])
    ys = {k: np.nonzero(mask_of(img[:, levels_part], COLOURS[k]))[0].mean() for k in (0, 1)}
    assert ys[high] < ys[low]
    py0, py1 = lay.plot[1], lay.plot[3]
    assert abs(ys[high] - (py1 - 0.9 * (py1 - py0))) < 4 and abs(ys[low] - (py1 - 0.1 * (py1 - py0))) < 4
    ys = {k: np.nonzero(mask_of(img[py0 - 5:py1 + 5, image_part], COLOURS[k]))[0].mean() for k in (0, 1)}
    assert ys[low] < ys[high]


# ---------------------------------------------------------------- the stage and the page
@pytest.fixture(scope="module")
def tiny():
    return {"diffbfr": methods.tiny("diffbfr"), "panini": methods.tiny("panini")}


def handlers(models, tmp_path, monkeypatch) -> Handlers:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    return Handlers(AppState(models, identity=False), [])


def test_the_panini_stage_plots_and_diffbfrs_do_not():
    assert methods.get("panini").stage("panini").plot is prior_share_plot
    assert all(st.plot is None for st in methods.get("diffbfr").stages)


@pytest.mark.parametrize("choice", ["panini", "both"])
def test_restoring_with_panini_shows_its_chart(tiny, tmp_path, monkeypatch, choice):
    h = handlers(tiny, tmp_path, monkeypatch)
    up = quiet(h.on_image, str(FACE))[0][0]
    out, _ = call(h.on_restore, up, choice=choice)
    shown = dict(zip(PHOTO, out))
    plot = shown["plot"]
    assert plot["visible"] is True and plot["label"] == "Panini-Net: prior share per level"
    assert plot["value"].shape == (SIZE[1], SIZE[0], 3)   # one chart: DiffBFR's stages draw none
    assert "share taken from the learned face prior" in shown["identity"]   # the words stay
    # the chart is the one of this face's shares
    face = next(r for r in shown["state"].last if r.method == "panini").faces[0]
    assert np.array_equal(plot["value"], prior_share_plot([{**face.stages.info["panini"], "face": 1}]))
    # a new photo takes the chart off the page with the rest of the result
    assert dict(zip(LOAD, quiet(h.on_image, str(FACE))[0]))["plot"] == {
        "__type__": "update", "value": None, "visible": False}


def test_diffbfr_alone_shows_no_chart(tiny, tmp_path, monkeypatch):
    h = handlers({"diffbfr": tiny["diffbfr"]}, tmp_path, monkeypatch)
    up = quiet(h.on_image, str(FACE))[0][0]
    (shown, _) = call(h.on_restore, up)
    shown = dict(zip(PHOTO, shown))
    assert shown["result"] is not None   # restored, with nothing to plot
    assert shown["plot"]["visible"] is False and shown["plot"]["value"] is None


def test_several_charts_stack_and_keep_the_face_numbers(tiny, tmp_path, monkeypatch):
    h = handlers({"panini": tiny["panini"]}, tmp_path, monkeypatch)
    up = quiet(h.on_image, str(FACE))[0][0]
    (state, *_), _ = call(h.on_restore, up, choice="panini")
    r = state.last[0]
    third = dataclasses.replace(r, faces=[dataclasses.replace(r.faces[0], index=2)])
    chart, caption = stage_plots([r, third])
    assert chart.shape[0] > 2 * SIZE[1] and chart.shape[1] == SIZE[0]
    assert caption == "Panini-Net: prior share per level · Panini-Net: prior share per level"
    one, _ = stage_plots([third])
    assert np.array_equal(chart[-SIZE[1]:], one)
    assert np.array_equal(one, prior_share_plot([{**r.faces[0].stages.info["panini"], "face": 3}]))
    assert "Face 3" in [t.text for t in layout([{**r.faces[0].stages.info["panini"], "face": 3}]).texts]
    assert stage_plots([]) == (None, "")


def test_the_page_has_the_chart_hidden_until_one_is_drawn(tiny, tmp_path, monkeypatch):
    import app as app_module
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    demo = app_module.build_demo(AppState(tiny))
    (plot,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "stage_plot"]
    assert type(plot).__name__ == "Image" and plot.visible is False and plot.interactive is False
