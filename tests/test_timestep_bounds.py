"""Every timestep is bounded by what its network was trained for (issue #30, item 7): a start
step beyond its network's config t_max is refused; a network file that states no t_max (the
old TEM placeholder) is bounded by its setting's slider end (TEM: 100), not the config class's 1000."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from diffbfr import methods
from diffbfr import settings as S
from diffbfr.methods import DiffBFRSettings
from ui.restore_api import api_settings

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "weights" / "diffbfr"


@pytest.fixture(scope="module")
def shipped():
    return methods.load(SHIPPED, device="cpu")


def test_tem_without_a_stated_t_max_ends_at_100(shipped, tmp_path):
    assert json.loads((SHIPPED / "tem128.json").read_text())["config"]["t_max"] == 100.0   # the trained TEM
    assert shipped.knob_limits()["tem_t"] == (0.0, 100.0)
    folder = tmp_path / "diffbfr"     # a TEM file that states no range (as the old placeholder's)
    shutil.copytree(SHIPPED, folder)
    meta = json.loads((folder / "tem128.json").read_text())
    del meta["config"]["t_max"]
    (folder / "tem128.json").write_text(json.dumps(meta))
    assert methods.load(folder, device="cpu").knob_limits()["tem_t"] == (0.0, 100.0)
    with pytest.raises(S.SettingsError, match=r"TEM|tem_t.*from 0 to 100 \(the range the loaded model was trained for\)"):
        api_settings(shipped, '{"tem_t": 1000}')
    assert api_settings(shipped, '{"tem_t": 100}')[0].tem_t == 100.0


def test_a_stated_t_max_bounds_every_start_step(shipped, tmp_path):
    folder = tmp_path / "diffbfr"
    shutil.copytree(SHIPPED, folder)
    meta = json.loads((folder / "tem128.json").read_text())
    meta["config"]["t_max"] = 60.0   # a trained TEM states its range
    (folder / "tem128.json").write_text(json.dumps(meta))
    model = methods.load(folder, device="cpu")
    assert model.knob_limits() == {"irm_start": (0.0, 400.0), "irm2_start": (0.0, 400.0), "tem_t": (0.0, 60.0)}
    for name, bad in (("irm_start", 1000), ("irm2_start", 410), ("tem_t", 61)):
        with pytest.raises(S.SettingsError):
            S.validate(DiffBFRSettings, {name: bad}, model.knob_limits())


def test_cli_refuses_tem_t_beyond_the_trained_range(tmp_path, capsys):
    from diffbfr.cli import main
    face = ROOT / "examples" / "astronaut_face_aligned.png"
    assert main(["-i", str(face), "-o", str(tmp_path / "o"), "--aligned", "--tem-t", "1000"]) == 2
    assert "--tem-t must be a number from 0 to 100" in capsys.readouterr().err
