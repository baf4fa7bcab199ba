"""Methods as data: the stage table, the settings surfaces generated from one dataclass, the
registry and weights folders. A third method through every surface: test_third_method.py."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from diffbfr import methods
from diffbfr import settings as S
from diffbfr.methods import INPUT, DiffBFRSettings, Method, Stage

ROOT = Path(__file__).resolve().parent.parent
DIFFBFR = methods.get("diffbfr")


# ---------------------------------------------------------------- the stage table
def test_dependencies_are_derived_from_the_stage_table():
    assert DIFFBFR.stage_names == ("irm64", "irm128", "tem") and DIFFBFR.final == "tem"
    assert [st.name for st in DIFFBFR.upstream("tem")] == ["irm64", "irm128", "tem"]
    assert DIFFBFR.key_fields("irm64") == ("irm_start", "irm64_steps", "irm64_samples", "seed", "eta")
    assert DIFFBFR.key_fields("tem") == ("irm_start", "irm64_steps", "irm64_samples", "seed", "eta", "irm2_start",
                                         "irm128_steps", "tem_t", "tem_steps", "tem_eta")
    assert DIFFBFR.seed_of(DiffBFRSettings(seed=7)) == 7 and methods.get("panini").seed_of(None) == 0
    assert DIFFBFR.nfe(DiffBFRSettings(irm_start=0, tem_t=3)) == {"irm64": 0, "irm128": 4, "tem": 2}
    assert DIFFBFR.labels == {"lq": "LQ", "irm64": "IRM 64", "irm128": "IRM 128", "tem": "TEM"}


@dataclass(frozen=True)
class DummySettings:
    gain: float = S.knob(1.0, 0, 4, 0.1, "Gain", "brightness factor")
    seed: int = S.knob(0, 0, 99, 1, "Seed", "unused")


def test_a_stage_reading_a_later_stage_is_rejected():
    def run(*_a):
        return []
    with pytest.raises(ValueError, match="reads"):
        Method("bad", "Bad", DummySettings, (Stage("b", "B", ("a",), (), run, lambda s: 0),
                                             Stage("a", "A", (INPUT,), (), run, lambda s: 0)),
               (), lambda p: None, lambda seed: {})
    with pytest.raises(ValueError, match="unknown settings"):
        Method("bad", "Bad", DummySettings, (Stage("a", "A", (INPUT,), ("nope",), run, lambda s: 0),),
               (), lambda p: None, lambda seed: {})
    with pytest.raises(ValueError, match="unknown settings"):   # the seed is a declared field, not a guess
        Method("bad", "Bad", DummySettings, (), (), lambda p: None, lambda seed: {}, seed="nonce")


# ---------------------------------------------------------------- settings surfaces
def test_knobs_clamp_and_flags_come_from_the_dataclass():
    ks = {k.name: k for k in S.knobs(DiffBFRSettings)}
    assert list(ks) == ["irm_start", "irm2_start", "tem_t", "irm64_steps", "irm64_samples", "irm128_steps", "tem_steps",
                        "seed", "eta", "tem_eta"]
    assert ks["tem_t"].ui_hi == 100 and ks["tem_t"].hi == 1000 and ks["irm64_steps"].kind is int
    # clamp: for numbers the app computes itself (Auto, the fidelity slider); people's values go
    # through S.validate, which refuses (tests/test_settings.py)
    s = S.clamp(DiffBFRSettings, irm_start=1500, irm2_start=-3, tem_t=12.25, irm64_steps=3.6, irm128_steps=None)
    assert (s.irm_start, s.irm2_start, s.tem_t, s.irm64_steps) == (1000.0, 0.0, 12.25, 4)
    assert s.irm128_steps == DiffBFRSettings().irm128_steps and s.seed == 0
    for junk in ("12.25", float("nan")):   # not numbers: refused, never replaced by the default
        with pytest.raises(S.SettingsError, match="tem_t"):
            S.clamp(DiffBFRSettings, tem_t=junk)
    with pytest.raises(S.SettingsError, match="bogus"):
        S.clamp(DiffBFRSettings, bogus=1)
    p = argparse.ArgumentParser()
    S.add_arguments(p, DiffBFRSettings)
    a = p.parse_args(["--irm-start", "300", "--tem-t", "7.5", "--irm64-steps", "3"])
    assert S.from_arguments(DiffBFRSettings, a) == DiffBFRSettings(irm_start=300, tem_t=7.5, irm64_steps=3)
    assert S.parse_sweep(DiffBFRSettings, "tem-t=0,2.5") == ("tem_t", [0.0, 2.5])
    assert S.parse_sweep(DiffBFRSettings, "irm64_steps=2,10") == ("irm64_steps", [2, 10])
    with pytest.raises(argparse.ArgumentTypeError, match="has no setting 'temp'"):
        S.parse_sweep(DiffBFRSettings, "temp=1")


# ---------------------------------------------------------------- weights folders
def test_weights_folder_manifest_names_its_method(tmp_path):
    folder = tmp_path / "diffbfr"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="manifest"):
        methods.load(folder)
    (folder / "manifest.json").write_text(json.dumps({"method": "diffbfr"}))
    with pytest.raises(FileNotFoundError, match="not trained yet.*irm64.safetensors"):
        methods.load(folder)
    (folder / "manifest.json").write_text(json.dumps({"method": "nonesuch"}))
    with pytest.raises(KeyError, match="unknown method"):
        methods.load(folder)
    assert methods.resolve_weights(tmp_path, "diffbfr") == folder
    assert methods.weights_folders(ROOT / "weights") == {n: ROOT / "weights" / n for n in ("diffbfr", "panini")}


def test_shipped_diffbfr_folder_loads_and_says_how_good_it_is():
    model = methods.load(ROOT / "weights" / "diffbfr", device="cpu")
    assert model.method is DIFFBFR and set(model.nets) == {"irm64", "irm128", "tem128"}
    assert isinstance(model.card["beats_bicubic"], bool) and "UTKFace" in model.card["licence"]
