"""Settings are validated, not guessed (diffbfr/settings.py): the one validation that the API,
the CLI and the page go through; the API's defaults are the page's; the start steps stay within
the timesteps each network was trained at (Model.knob_limits()). Tiny random networks."""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

import app as app_module
from tests.app_calls import restore_api
from ui.handlers import Handlers, knob_layout
from ui.state import AppState
from ui.views import settings_from_ui
from diffbfr import methods
from diffbfr import settings as S
from diffbfr.auto import CALIBRATION_FILE, Auto, Calibration, Estimator, auto_settings
from diffbfr.cli import main
from diffbfr.methods import DiffBFRSettings
from diffbfr.photo import PhotoOptions, PhotoRestorer

ROOT = Path(__file__).resolve().parent.parent
FACE = ROOT / "examples" / "astronaut_face_aligned.png"
FAST = {"irm64_steps": 1, "irm128_steps": 1, "tem_steps": 1}
FAST_FLAGS = ["--irm64-steps", "1", "--irm128-steps", "1", "--tem-steps", "1"]
PYTHON_WORDING = ("Expecting value", "line 1 column", "object is not", "is not a mapping", "Traceback",
                  "could not convert", "invalid literal", "NoneType", "KeyError")


@pytest.fixture
def model():
    return methods.tiny("diffbfr")


@pytest.fixture
def limited():
    """Tiny networks whose configs say they were trained up to t = 400 / 300 / 10."""
    m = methods.tiny("diffbfr")
    m.nets["irm64"].config.t_max = 400
    m.nets["irm128"].config.t_max = 300
    m.nets["tem128"].config.t_max = 10
    return m


def handlers_for(model, tmp_path, monkeypatch, auto=None) -> Handlers:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    autos = {"diffbfr": auto} if auto is not None else None
    return Handlers(AppState({"diffbfr": model}, identity=False, autos=autos), [])


def tiny_auto(values: dict | None = None) -> Auto:
    cal = Calibration.load(ROOT / "weights" / "diffbfr" / CALIBRATION_FILE)
    if values is not None:
        cal = Calibration("diffbfr", (0.0, 1.0), values)
    return Auto(Estimator.tiny(), cal)


def photo(tmp_path, size: int = 128) -> str:
    path = tmp_path / f"face{size}.png"
    Image.open(FACE).convert("RGB").resize((size, size), Image.LANCZOS).save(path)
    return str(path)


def api_error(h: Handlers, settings_json, **kw) -> str:
    with pytest.raises(gr.Error) as err:
        restore_api(h).restore(kw.pop("image", str(FACE)), "diffbfr", True, settings_json, **kw)
    msg = str(err.value.message if hasattr(err.value, "message") else err.value)
    assert not any(w in msg for w in PYTHON_WORDING), msg
    return msg


def _noprogress(*_a, **_k):
    pass


def page_restore(h: Handlers, path: str, aligned=True, scale="auto", auto=True, **changes):
    """The page's Restore with every input the app wires to it (page defaults: Auto on, scale auto)."""
    up = h.on_image(path)[0]
    vals = [{**FAST, **changes}.get(k.name, h.slider_range(m, k)[2]) for m, k in knob_layout()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = h.on_restore(up, None, aligned, "diffbfr", scale, False, auto, *vals, progress=_noprogress)
    # the session keeps no full-size photo (ui/handlers.py): read the restored one from its download
    download = out[3]["value"] if isinstance(out[3], dict) else out[3]
    return dataclasses.replace(out[0].last[0], image=np.asarray(Image.open(download).convert("RGB")))


# ---------------------------------------------------------------- the one validation
def test_validate_refuses_with_plain_words():
    assert S.validate(DiffBFRSettings, {"irm_start": 300, "irm64_steps": 3.0}) == \
        DiffBFRSettings(irm_start=300.0, irm64_steps=3)
    assert S.validate(DiffBFRSettings, {"tem_t": None}) == DiffBFRSettings()        # null: the default
    cases = {
        '{"irm_start": "abc"}': 'irm_start must be a number from 0 to 1000; got "abc"',
        '{"irm64_steps": 2.5}': "irm64_steps must be a whole number from 1 to 50; got 2.5",
        '{"irm64_steps": 1000}': "irm64_steps must be a whole number from 1 to 50; got 1000",
        '{"tem_t": -1}': "tem_t must be a number from 0 to 1000; got -1",
        '{"seed": true}': "seed must be a whole number from 0 to 2147483647; got true",
        '{"eta": [1, 2]}': "eta must be a number from 0 to 1; got a list, [1, 2]",
        '{"irm_start": NaN}': "irm_start must be a number from 0 to 1000; got NaN",
        '{"irm_start": Infinity}': "irm_start must be a number from 0 to 1000; got infinity",
        '{"tem_t": 1e999}': "tem_t must be a number from 0 to 1000; got infinity",
        '[1, 2]': 'settings must be a JSON object of named values, such as {"irm_start": 200}; got a list, [1, 2]',
        '5': 'settings must be a JSON object of named values, such as {"irm_start": 200}; got the number 5',
        'not json': 'settings must be a JSON object of named values, such as {"irm_start": 200}; '
                    'got text that is not JSON: "not json"',
        '{"bogus": 1}': 'there is no setting "bogus"; the settings are: irm_start, irm2_start, tem_t, '
                        'irm64_steps, irm64_samples, irm128_steps, tem_steps, seed, eta, tem_eta',
    }
    for text, message in cases.items():
        with pytest.raises(S.SettingsError) as err:
            S.from_json(DiffBFRSettings, text)
        assert str(err.value) == message, text
    assert isinstance(err.value, ValueError)
    with pytest.raises(S.SettingsError, match=r"irm_start must be a number from 0 to 400 \(the range the loaded "
                                              r"model was trained for\); got 500"):
        S.from_json(DiffBFRSettings, '{"irm_start": 500}', {"irm_start": (0, 400)})
    # missing fields take their default, lowered into the limits
    assert S.from_json(DiffBFRSettings, "{}", {"irm_start": (0, 150)}).irm_start == 150.0


def test_page_bench_and_with_value_use_the_same_check():
    s = settings_from_ui(DIFFBFR, [300.0, 100.0, 12.25, 3.0, 2, None, 2, 5, 0.0])
    assert s == DiffBFRSettings(irm_start=300, irm2_start=100, tem_t=12.25, irm64_steps=3, irm64_samples=2,
                                tem_steps=2, seed=5)
    with pytest.raises(S.SettingsError, match="irm_start"):
        settings_from_ui(DIFFBFR, [1500, 0, 5, 3, 4, 4, 2, 0, 0.0])
    with pytest.raises(S.SettingsError, match="eta must be a number from 0 to 1; got 2"):
        S.with_value(DiffBFRSettings(), "eta", 2)
    with pytest.raises(argparse.ArgumentTypeError, match="irm64_steps must be a whole number"):
        S.parse_sweep(DiffBFRSettings, "irm64_steps=2.4,10")


DIFFBFR = methods.get("diffbfr")


# ---------------------------------------------------------------- the API
def test_api_refuses_a_thousand_steps_at_once(model, tmp_path, monkeypatch):
    h = handlers_for(model, tmp_path, monkeypatch)
    t0 = time.perf_counter()
    msg = api_error(h, '{"irm64_steps": 1000}')
    assert time.perf_counter() - t0 < 1.0
    assert msg == "irm64_steps must be a whole number from 1 to 50; got 1000"


@pytest.mark.parametrize("text, words", [
    ('{"irm_start": "abc"}', 'irm_start must be a number from 0 to 1000; got "abc"'),
    ('[1,2]', "settings must be a JSON object"),
    ('5', "settings must be a JSON object"),
    ('not json', "settings must be a JSON object"),
    ('{"irm_start": NaN}', "irm_start must be a number"),
    ('{"tem_t": Infinity}', "tem_t must be a number"),
    ('{"eta": -Infinity}', "eta must be a number"),
    ('{"irm_strat": 300}', "the settings are: irm_start, irm2_start"),
])
def test_api_refuses_bad_settings_in_plain_words(model, tmp_path, monkeypatch, text, words):
    assert words in api_error(handlers_for(model, tmp_path, monkeypatch), text)


def test_api_refuses_bad_scale_and_auto(model, tmp_path, monkeypatch):
    h = handlers_for(model, tmp_path, monkeypatch)
    assert api_error(h, "{}", scale="3") == 'scale must be one of auto, 1, 2, 4; got "3"'
    assert api_error(h, "{}", auto="maybe") == 'auto must be one of true, false; got "maybe"'


def test_api_defaults_are_the_page_defaults(model, tmp_path, monkeypatch):
    """Same photo, no settings named but the step counts: the API and the page's Restore give
    the same output size (page default: Auto size) and the same per-face Auto settings."""
    h = handlers_for(model, tmp_path, monkeypatch, auto=tiny_auto())
    small = photo(tmp_path, 64)
    page = page_restore(h, small)
    restored, _, record = restore_api(h).restore(small, "diffbfr", True, json.dumps(FAST))   # the old positional call
    assert page.scale == 2 and record["scale"] == 2 and np.asarray(Image.open(restored)).shape == (128, 128, 3)
    assert record["auto"] == {"requested": True, "used": True, "available": True}
    assert page.faces[0].auto is not None
    assert record["faces"][0]["settings"] == S.to_dict(page.faces[0].settings)
    assert record["faces"][0]["auto"]["words"] == page.faces[0].auto.words
    assert np.array_equal(np.asarray(Image.open(restored).convert("RGB")), page.image)


def test_api_settings_the_caller_names_win_over_auto(model, tmp_path, monkeypatch):
    h = handlers_for(model, tmp_path, monkeypatch, auto=tiny_auto())
    _, _, record = restore_api(h).restore(str(FACE), "diffbfr", True, json.dumps({**FAST, "irm_start": 300}))
    assert record["auto"]["used"] is False and record["faces"][0]["settings"]["irm_start"] == 300
    assert any("Auto is off for this call" in n and "irm_start" in n for n in record["notices"])
    page = page_restore(h, str(FACE), auto=False, irm_start=300)   # the page: moving the slider unticks Auto
    assert record["faces"][0]["settings"] == S.to_dict(page.faces[0].settings)
    _, _, record = restore_api(h).restore(str(FACE), "diffbfr", True, json.dumps(FAST), False, "1")
    assert record["auto"]["used"] is False and record["scale"] == 1


# ---------------------------------------------------------------- the CLI
def test_cli_output_that_is_a_file_exits_2(tmp_path, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"x")
    assert main(["-i", str(FACE), "-o", str(out), "--tiny", "--aligned", *FAST_FLAGS]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "Traceback" not in err and out.read_bytes() == b"x"


@pytest.mark.parametrize("flags, words", [
    (["--irm64-steps", "1000"], "--irm64-steps must be a whole number from 1 to 50; got 1000"),
    (["--irm64-steps", "2.5"], "--irm64-steps must be a whole number from 1 to 50; got 2.5"),
    (["--irm-start", "abc"], '--irm-start must be a number from 0 to 1000; got "abc"'),
    (["--tem-t", "nan"], "--tem-t must be a number from 0 to 1000; got NaN"),
    (["--eta", "inf"], "--eta must be a number from 0 to 1; got infinity"),
])
def test_cli_refuses_bad_settings_with_exit_2(tmp_path, capsys, flags, words):
    with pytest.raises(SystemExit) as exc:
        main(["-i", str(FACE), "-o", str(tmp_path / "o"), "--tiny", "--aligned", *flags])
    assert exc.value.code == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- what the networks were trained at
def test_knob_limits_come_from_the_networks(limited):
    assert limited.knob_limits() == {"irm_start": (0.0, 400.0), "irm2_start": (0.0, 300.0), "tem_t": (0.0, 10.0)}
    assert methods.tiny("diffbfr").knob_limits()["irm_start"] == (0.0, 1000.0)   # configs without t_max: 1000
    assert methods.tiny("panini").knob_limits() == {}


def test_sliders_and_fidelity_stop_at_the_trained_range(limited, tmp_path, monkeypatch):
    h = handlers_for(limited, tmp_path, monkeypatch)
    k = {k.name: k for k in S.knobs(DiffBFRSettings)}
    assert h.slider_range("diffbfr", k["irm_start"]) == (0.0, 400.0, 200.0)
    assert h.slider_range("diffbfr", k["tem_t"]) == (0.0, 10.0, 10.0)   # the default (20) lowered to fit
    assert h.slider_range("diffbfr", k["irm64_steps"]) == (1.0, 50.0, 2)
    demo = app_module.build_demo(AppState({"diffbfr": limited}, identity=False))
    sliders = {b.elem_id: b for b in demo.blocks.values() if type(b).__name__ == "Slider"}
    assert sliders["diffbfr-irm_start"].maximum == 400 and sliders["diffbfr-irm2_start"].maximum == 300
    assert sliders["diffbfr-tem_t"].maximum == 10 and sliders["diffbfr-irm64_steps"].maximum == 50
    updates = h.on_simple("diffbfr", 100)
    moved = {k.name: u["value"] for (m, k), u in zip(h.layout, updates) if isinstance(u, dict) and "value" in u}
    assert moved == {"irm_start": 400.0, "irm2_start": 200.0, "tem_t": 10.0, "tem_steps": 10, "irm64_samples": 1}
    assert DIFFBFR.simple.apply(100) == {"irm_start": 400.0, "irm2_start": 200.0, "tem_t": 100.0, "tem_steps": 10,
                                         "irm64_samples": 1}


def test_auto_stays_within_the_trained_range(limited):
    wild = Calibration("diffbfr", (0.0, 1.0), {"irm_start": (0.0, 900.0), "irm2_start": (0.0, 900.0),
                                               "tem_t": (0.0, 50.0)})
    s = auto_settings(DiffBFRSettings(**FAST, tem_t=5.0), 1.0, wild, limited.knob_limits())
    assert (s.irm_start, s.irm2_start, s.tem_t, s.irm64_steps) == (400.0, 300.0, 10.0, 1)
    face = np.asarray(Image.open(FACE).convert("RGB"))
    res = PhotoRestorer(limited, identity=False, auto=Auto(Estimator.tiny(), wild)).restore(
        face, DiffBFRSettings(**FAST, tem_t=5.0), PhotoOptions(aligned=True, auto=True))
    f = res.faces[0].settings
    assert f.irm_start <= 400 and f.irm2_start <= 300 and f.tem_t <= 10


def test_no_caller_reaches_an_untrained_timestep(limited, tmp_path, monkeypatch, capsys):
    face = np.asarray(Image.open(FACE).convert("RGB"))
    with pytest.raises(S.SettingsError, match="irm_start must be a number from 0 to 400"):
        PhotoRestorer(limited, identity=False).restore(face, DiffBFRSettings(irm_start=500, tem_t=5.0, **FAST),
                                                       PhotoOptions(aligned=True))
    h = handlers_for(limited, tmp_path, monkeypatch)
    assert "irm2_start must be a number from 0 to 300" in api_error(h, '{"irm2_start": 301}')
    _, _, record = restore_api(h).restore(str(FACE), "diffbfr", True, json.dumps({**FAST, "irm_start": 400}))
    assert record["settings"]["irm_start"] == 400
    monkeypatch.setattr(methods, "model_for", lambda *a, **k: limited)     # the CLI loads `limited`
    assert main(["-i", str(FACE), "-o", str(tmp_path / "o"), "--tiny", "--aligned", "--tem-t", "12",
                 *FAST_FLAGS]) == 2
    assert "--tem-t must be a number from 0 to 10 (the range the loaded model was trained for); got 12" \
        in capsys.readouterr().err
    out = tmp_path / "ok"
    assert main(["-i", str(FACE), "-o", str(out), "--tiny", "--aligned", *FAST_FLAGS]) == 0
    used = json.loads((out / "astronaut_face_aligned.json").read_text())["settings"]
    # the defaults, TEM's (20) lowered to the 10 its network was trained up to
    assert (used["irm_start"], used["irm2_start"], used["tem_t"]) == (200.0, 100.0, 10.0)
