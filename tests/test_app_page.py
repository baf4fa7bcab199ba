"""The page (ui/page.py, started by app.py) and what it shows (ui/views.py), with random tiny
networks: its pieces, the methods' controls, the plain-words slider, an untrained or
unavailable method said in words without paths, the weights' notice."""
from __future__ import annotations

from pathlib import Path

import pytest

import app as app_module
from diffbfr import methods
from diffbfr import settings as S
from diffbfr.methods import DiffBFRSettings
from tests.app_calls import DIFFBFR, FACE, ROOT, app_handlers, call, noprogress, quiet, restore_api, values
from tests.weights_roots import untrained_panini_root
from ui import page as ui_page
from ui.handlers import Controls, Handlers
from ui.outputs import PHOTO
from ui.state import AppState
from ui.views import identity_meaning, settings_from_ui, weights_notice


@pytest.fixture(scope="module")
def model():
    return methods.tiny("diffbfr")


def test_unavailable_method_says_why(model, monkeypatch):
    from tests.test_third_method import TOY
    monkeypatch.setitem(methods.METHODS, "toy", TOY)
    h = Handlers(AppState({"diffbfr": model}, {"toy": "no weights in weights/toy"}), [])
    up = quiet(h.on_image, str(FACE))[0][0]
    controls = Controls.read([None, True, "toy", "1", False, False, *values()])
    out, warned = quiet(h._run, up, controls, noprogress)
    status = dict(zip(PHOTO, out))["status"]
    assert "not available" in status and "no weights" in status and warned


def test_settings_from_ui_and_identity_text():
    s = settings_from_ui(DIFFBFR, [1000, 0, 12.25, 4.0, 2.0, None, 2, 5, 0.0])   # slider floats; None: default
    assert s == DiffBFRSettings(irm_start=1000, irm2_start=0, tem_t=12.25, irm64_steps=4, irm64_samples=2,
                                tem_steps=2, seed=5)
    with pytest.raises(S.SettingsError, match="irm_start must be a number from 0 to 1000; got 1500"):
        settings_from_ui(DIFFBFR, [1500, -3, 12.25, 3.6, 4, None, 2, 5, 0.0])   # refused, never clamped
    assert identity_meaning(None, DIFFBFR).startswith("n/a")
    assert "same person" in identity_meaning(0.3, DIFFBFR)
    # the advice is the method's own: no DiffBFR wording under Panini-Net's result
    assert identity_meaning(0.9, DIFFBFR) == "identity drifted: try a lower IRM start step"
    assert identity_meaning(0.9, methods.get("panini")) == "identity drifted: try a lower prior strength"


def test_weights_notice_follows_the_manifest():
    shipped = methods.load(ROOT / "weights" / "diffbfr", device="cpu")
    shipped.card = {**shipped.card, "beats_bicubic": False}
    assert "worse than plain bicubic" in weights_notice(shipped)
    shipped.card = {**shipped.card, "beats_bicubic": True, "stage_warning": ""}
    assert weights_notice(shipped) == ""
    # a stage worse than skipping it is said however good the chain is (the shipped manifest has one)
    assert "TEM" in methods.load(ROOT / "weights" / "diffbfr", device="cpu").card["stage_warning"]
    shipped.card = {**shipped.card, "stage_warning": "TEM adds grain."}
    assert weights_notice(shipped).endswith("TEM adds grain.")
    assert "random tiny networks" in weights_notice(methods.tiny("diffbfr"))


def test_build_demo_has_the_pieces(model, tmp_path, monkeypatch):
    import gradio as gr
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))   # the examples' copies
    demo = app_module.build_demo(AppState({"diffbfr": model}))
    types = {type(b).__name__ for b in demo.blocks.values()}
    assert {"PhotoInput", "ImageSlider", "Gallery", "Slider", "Checkbox", "Button", "DownloadButton"} <= types
    sliders = {b.elem_id for b in demo.blocks.values() if type(b).__name__ == "Slider"}
    # generated from the settings dataclass (and the method's simple control), not listed by hand
    expected = {f"{n}-{k.name}" for n, m in methods.METHODS.items() for k in S.knobs(m.settings)}
    expected |= {f"{n}-simple" for n, m in methods.METHODS.items() if m.simple is not None}
    assert sliders == expected and "diffbfr-tem_t" in sliders
    api = demo.get_api_info()["named_endpoints"]
    assert list(api) == ["/restore"]   # the internal per-slider events are private
    assert isinstance(demo, gr.Blocks) and demo.delete_cache is not None
    assert app_module.parse_args(["--share", "--port", "7000", "--tiny"]).share


def test_create_app_loads_shipped_weights_and_falls_back(tmp_path):
    """Both shipped methods are trained: the app loads both, offers them side by side, and says
    Panini-Net's warning about invented features above the result."""
    real = app_module.create_app(ROOT / "weights", device="cpu")
    assert set(real.restorers) == {"diffbfr", "panini"} and real.unavailable == {}
    assert all(m.label == "" for m in real.models.values())
    assert [n for _, n in ui_page.method_choices(real)] == ["diffbfr", "panini", "both"]
    assert "invents features" in weights_notice(real.models["panini"])
    empty = app_module.create_app(tmp_path, device="cpu")
    assert "random tiny networks" in empty.models["diffbfr"].label


def test_simple_control_moves_the_expert_sliders_coherently(model, tmp_path, monkeypatch):
    handlers = app_handlers(model, tmp_path, monkeypatch)
    updates = handlers.on_simple("diffbfr", 100)
    set_ = {k.name: u["value"] for (m, k), u in zip(handlers.layout, updates) if isinstance(u, dict) and "value" in u}
    assert set_ == {"irm_start": 400.0, "irm2_start": 200.0, "tem_t": 100.0, "tem_steps": 10, "irm64_samples": 1}
    # below the default position the counts stay at their defaults; above it TEM's steps grow and
    # stage 1 averages fewer samples (more of what the noise invents)
    assert DIFFBFR.simple.apply(0)["tem_steps"] == DiffBFRSettings().tem_steps < DIFFBFR.simple.apply(55)["tem_steps"]
    assert DIFFBFR.simple.apply(0)["irm64_samples"] == DiffBFRSettings().irm64_samples > \
        DIFFBFR.simple.apply(55)["irm64_samples"]
    default = DIFFBFR.simple.apply(DIFFBFR.simple.default)
    assert default == {k: getattr(DiffBFRSettings(), k) for k in default}   # the default position = defaults


def _paths_in(texts, root: Path) -> list[str]:
    """Server paths in user-facing text: the repository, the weights folder, network files."""
    bad = [str(root), str(root / "weights"), "weights/", ".safetensors", "/work/", "/tmp/"]
    return [f"{b!r} in {t!r}" for t in texts for b in bad if b in str(t)]


def test_untrained_method_says_so_in_plain_words_without_paths(model, tmp_path, monkeypatch):
    """A method whose manifest names networks that are not there (Panini-Net in a weights root
    built here: the shipped one is trained): choosing it says so in plain words, with no server
    path in the status, the toasts, the page's texts or the API; the DiffBFR result goes away and
    comes back (rerun) when DiffBFR is chosen again."""
    import gradio as gr
    import json
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    real = app_module.create_app(untrained_panini_root(tmp_path), device="cpu")
    assert real.unavailable == {"panini": "it is not trained yet"}
    assert "panini" in real.unavailable and "panini" not in real.restorers
    h = Handlers(AppState({"diffbfr": model}, real.unavailable), [])
    texts = [*real.unavailable.values(), *(label for label, _ in ui_page.method_choices(real)),
             *(weights_notice(m) for m in real.models.values())]
    up = quiet(h.on_image, str(FACE))[0][0]
    (up, status, pair, *_), warned = call(h.on_restore, up)
    assert pair is not None
    texts += [status, *warned]

    out = quiet(h.on_method, up, "panini")[0]
    vis = {k: v for k, v in zip(h.method_outputs, out)}
    assert "not trained" in vis["status"] and vis["result"] is None and vis["gallery"] == []
    assert vis["auto"]["visible"] is False and vis["diffbfr-simple"]["visible"] is False
    texts.append(vis["status"])
    (up, status, pair, download, gallery, ident, files, plot, picker, preview), warned = \
        call(h.on_tune, up, choice="panini")
    assert "Panini-Net" in status and "not trained" in status and warned
    assert pair is None and gallery == [] and ident == "" and not download["visible"] and not files["visible"]
    assert up.restored and not up.last   # nothing of DiffBFR's left to map
    texts += [status, *warned]
    (up, status, pair, *_), _ = call(h.on_tune, up, choice="diffbfr")   # back: DiffBFR's result again
    assert "DiffBFR: restored 1 face" in status and pair is not None
    assert quiet(h.on_method, up, "diffbfr")[0][h.method_outputs.index("auto")]["visible"] is False  # tiny: no Auto

    photo = tmp_path / "portrait.png"
    photo.write_bytes(FACE.read_bytes())
    with pytest.raises(gr.Error) as err:
        restore_api(h).restore(str(photo), "panini", True, "{}")
    texts.append(str(err.value))
    photo.write_bytes(FACE.read_bytes())
    texts.append(json.dumps(restore_api(h).restore(str(photo), "diffbfr", True, '{"irm64_steps": 1}')[2]))
    assert _paths_in(texts, ROOT) == []
    fallback = app_module.create_app(tmp_path / "nothing here", device="cpu")
    assert str(tmp_path) not in fallback.models["diffbfr"].label


def test_method_switch_shows_only_that_methods_controls(model, tmp_path, monkeypatch):
    from diffbfr.auto import CALIBRATION_FILE, Auto, Calibration, Estimator
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    auto = Auto(Estimator.tiny(), Calibration.load(ROOT / "weights" / "diffbfr" / CALIBRATION_FILE))
    h = Handlers(AppState({"diffbfr": model, "panini": methods.tiny("panini")}, autos={"diffbfr": auto}), [])
    seen = {}
    for choice in ("diffbfr", "panini", "both"):
        out = dict(zip(h.method_outputs, quiet(h.on_method, None, choice)[0]))
        seen[choice] = {k for k in ("auto", "diffbfr-simple", "panini-simple") if out[k]["visible"]}
        assert out["result"] is None and out["gallery"] == [] and out["identity"] == ""
    assert seen == {"diffbfr": {"auto", "diffbfr-simple"}, "panini": {"panini-simple"},
                    "both": {"auto", "diffbfr-simple", "panini-simple"}}
    demo = app_module.build_demo(h.app)
    auto_box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "auto")
    assert auto_box.visible   # DiffBFR, the first method, has Auto


def test_intro_is_short_and_the_rest_is_folded(model, tmp_path, monkeypatch):
    """The page opens on the photo and the Restore button: one intro line, the rest in a closed
    accordion (the browser test measures the fold)."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))   # the examples' copies
    demo = app_module.build_demo(AppState({"diffbfr": model}))
    about = [b for b in demo.blocks.values() if type(b).__name__ == "Accordion" and "About" in b.label]
    assert len(about) == 1 and about[0].open is False
    assert len(ui_page.INTRO.strip().splitlines()) <= 2
