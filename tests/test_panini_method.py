"""Panini-Net as a registered method (diffbfr/methods/panini.py) with random tiny parts: the
stage table and settings, restoration through the photo path with the DAFI prior shares per
level, the prior_shift knob at its extremes, the CLI, part assembly, a weights folder without
its networks."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffbfr import methods
from diffbfr import settings as S
from diffbfr.cli import main as cli_main
from diffbfr.methods import panini as P
from diffbfr.methods.panini import PANINI, PaniniSettings
from diffbfr.nets.panini_dafi import PaniniNet
from diffbfr.nets.panini_prior import Generator, TINY_GENERATOR
from diffbfr.photo import PhotoOptions, PhotoRestorer, restore_faces
from tests.weights_roots import untrained_panini_root

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent
FACE_PATH = ROOT / "examples" / "astronaut_face_aligned.png"
FACE = np.asarray(Image.open(FACE_PATH).convert("RGB"))
LEVELS = {"4", "8", "16", "32", "64", "128"}



@pytest.fixture(scope="module")
def model():
    return methods.tiny("panini")


def rand_face(seed):
    return np.random.default_rng(seed).integers(0, 256, (128, 128, 3), dtype=np.uint8)


# ---------------------------------------------------------------- the table
def test_method_table_settings_and_simple_control():
    assert methods.get("panini") is PANINI and PANINI.title == "Panini-Net"
    assert PANINI.stage_names == ("panini",) and PANINI.labels == {"lq": "LQ", "panini": "Panini-Net"}
    assert PANINI.networks == ("generator", "encoder", "dafi", "dre")
    assert PANINI.key_fields("panini") == ("prior_shift",) and PANINI.nfe(PaniniSettings()) == {"panini": 1}
    (k,) = S.knobs(PaniniSettings)
    assert (k.name, k.label, k.lo, k.hi, k.default, k.advanced) == ("prior_shift", "Prior strength", -10, 10, 0.0, False)
    assert S.clamp(PaniniSettings, prior_shift=99).prior_shift == 10.0
    assert PANINI.seed is None and PANINI.seed_of(PaniniSettings(prior_shift=3)) == 0   # draws nothing random
    assert "seed" not in S.to_dict(PaniniSettings())
    assert [PANINI.simple.apply(p)["prior_shift"] for p in (0, 50, 100, 150)] == [-10.0, 0.0, 10.0, 10.0]
    assert PANINI.simple.apply(PANINI.simple.default) == {"prior_shift": PaniniSettings().prior_shift}


# ---------------------------------------------------------------- restoring
def test_tiny_restores_faces_with_prior_shares_per_level(model):
    a, b = restore_faces(model, [FACE, rand_face(1)], PaniniSettings())
    for st in (a, b):
        assert st.result.shape == (128, 128, 3) and st.result.dtype == np.uint8 and st.nfe == {"panini": 1}
        shares = st.info["panini"]["prior_share"]
        assert set(shares) == LEVELS and all(0.0 <= v <= 1.0 for v in shares.values())
    assert a.info != b.info              # the shares depend on the face (its DRE vector)
    assert not np.array_equal(a.result, b.result)
    assert len(set(a.info["panini"]["prior_share"].values())) > 1   # and differ per level
    alone = restore_faces(model, [rand_face(1)], PaniniSettings())[0]
    # a face's result does not depend on its batch (batch 1 uses a fused conv: rounding only)
    assert np.abs(alone.result.astype(int) - b.result.astype(int)).max() <= 1


def test_prior_shift_extremes_move_every_level(model):
    out = {sh: restore_faces(model, [FACE], PaniniSettings(prior_shift=sh))[0] for sh in (-20.0, 0.0, 20.0)}
    assert all(v > 0.999 for v in out[20.0].info["panini"]["prior_share"].values())
    assert all(v < 0.001 for v in out[-20.0].info["panini"]["prior_share"].values())
    images = [out[sh].result.astype(np.float32) for sh in (-20.0, 0.0, 20.0)]
    assert np.abs(images[0] - images[2]).mean() > 1.0
    assert np.abs(images[1] - images[0]).mean() > 0.1 and np.abs(images[1] - images[2]).mean() > 0.1


def test_photo_path_and_cli(model, tmp_path):
    res = PhotoRestorer(model, identity=False).restore(FACE, PaniniSettings(prior_shift=2.0), PhotoOptions(aligned=True))
    assert res.method == "panini" and res.image.shape == FACE.shape and len(res.faces) == 1
    info = res.faces[0].stages.info["panini"]
    assert set(info["prior_share"]) == LEVELS
    words = P.face_share_summary(info)
    assert "face prior (0 % = from your photo): 4 px " in words and words.count(" px ") == 6
    out = tmp_path / "out"
    assert cli_main(["--method", "panini", "--tiny", "-i", str(FACE_PATH), "-o", str(out), "--aligned",
                     "--prior-shift", "2.5"]) == 0
    rec = json.loads((out / "astronaut_face_aligned.json").read_text())
    assert rec["method"] == "panini" and rec["settings"] == {"prior_shift": 2.5}
    strip = np.asarray(Image.open(out / "astronaut_face_aligned_face1_stages.png"))
    assert strip.shape[0] == 128 and strip.shape[1] > 2 * 128      # LQ | Panini-Net
    assert (out / "astronaut_face_aligned_restored.png").is_file()


# ---------------------------------------------------------------- parts
def test_assembled_net_is_made_of_the_models_parts(model):
    net = model.assembled()
    assert isinstance(net, PaniniNet) and model.assembled() is net          # built once per Model
    assert net.generator is model.nets["generator"] and net.dafi is model.nets["dafi"].blocks
    assert net.encoder is model.nets["encoder"] and net.dre is model.nets["dre"]
    other = methods.tiny("panini", seed=1)
    assert other.assembled() is not net and other.assembled().generator is other.nets["generator"]
    parts = dict(model.nets)
    parts["generator"] = Generator(dataclasses.replace(TINY_GENERATOR, z_dim=16))
    with pytest.raises(ValueError, match="generator part does not fit"):
        P.assemble(parts)
    with pytest.raises(TypeError):
        P.assemble({**model.nets, "dre": torch.nn.Identity()})


def test_a_folder_without_its_networks_says_not_trained_yet(tmp_path):
    """The shipped folder is trained (tests/test_panini_shipped.py); a manifest whose networks
    are not there is "not trained yet", naming what is missing."""
    folder = untrained_panini_root(tmp_path) / "panini"
    card = json.loads((folder / "manifest.json").read_text())
    assert card["method"] == "panini" and set(card["networks"]) == set(PANINI.networks)
    assert card["status"] == "not trained" and not any((folder / f).exists() for f in card["networks"].values())
    with pytest.raises(FileNotFoundError, match="Panini-Net is not trained yet: missing .*generator.safetensors"):
        methods.load(folder, device="cpu")
    # networks in a sub-folder are found there (the shipped restore/): one missing part is named
    card["networks"] = {**card["networks"], "dre": "sub/dre.safetensors"}
    (folder / "manifest.json").write_text(json.dumps(card))
    with pytest.raises(FileNotFoundError, match="missing .*sub/dre.safetensors"):
        methods.load(folder, device="cpu")
