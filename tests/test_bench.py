"""Benchmarks: degradation protocol, metrics on constructed images, NIQE, and tiny
end-to-end runs of bench.quality and bench.speed."""
import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench import common as C
from diffbfr import methods
from diffbfr.methods import DiffBFRSettings

ROOT = Path(__file__).resolve().parent.parent


def rand_img(seed=0, lo=0, hi=256, size=64):
    return np.random.default_rng(seed).integers(lo, hi, (size, size, 3), dtype=np.uint8)


def smooth_face(seed=0):
    small = rand_img(seed, size=16)
    return np.ascontiguousarray(cv2.resize(small, (128, 128), interpolation=cv2.INTER_CUBIC))


# ---------------------------------------------------------------- protocol

@pytest.mark.parametrize("level", ["light", "medium", "heavy"])
def test_fixed_degrade_same_seed_same_bytes(level):
    from diffbfr.train.degrade import fixed_degrade

    img = smooth_face(1)
    a, b = fixed_degrade(img, level, seed=7), fixed_degrade(img.copy(), level, seed=7)
    assert a.dtype == np.uint8 and a.shape == img.shape
    assert a.tobytes() == b.tobytes()


def test_face_seed_depends_only_on_seed_and_name():
    assert C.face_seed(0, "a.png") == C.face_seed(0, "a.png")
    assert C.face_seed(0, "a.png") != C.face_seed(1, "a.png")
    assert C.face_seed(0, "a.png") != C.face_seed(0, "b.png")
    assert 0 <= C.face_seed(3, "x") < 2**31


# ---------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def hq_dir(tmp_path_factory):
    from diffbfr.train.data import default_data_dir, iter_faces

    if not (Path(default_data_dir()) / "utkface" / "manifest.csv").exists():
        pytest.skip("../shared/data absent")
    d = tmp_path_factory.mktemp("hq")
    for name, img in iter_faces(split="test", limit=2):
        C.save_rgb(d / (Path(name).stem + ".png"), img)
    # a non-square image without a face: must be counted and reported, not dropped
    C.save_rgb(d / "zz_no_face.png", np.full((60, 100, 3), 128, np.uint8))
    return d


FAST = ["--tiny", "--irm64-steps", "1", "--irm128-steps", "1", "--tem-steps", "1"]


def test_quality_tiny_end_to_end(hq_dir, tmp_path, capsys):
    from bench import quality

    out = tmp_path / "out"
    rc = quality.main(["--hq-dir", str(hq_dir), "--out", str(out), "--levels", "medium",
                       "--sweep", "tem_t=0,20", "--sweep", "simple=0,100", *FAST])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| medium | TEM (final) | 2 |" in text and "1 failed to align" in text
    assert "zz_no_face.png" in text and "settings: DiffBFRSettings(" in text
    for f in ("faces.csv", "failures.csv", "summary.md", "contact_medium.png", "run.json",
              "sweep_tem_t.csv", "sweep_tem_t.png"):
        assert (out / f).stat().st_size > 0, f
    rows = list(csv.DictReader(open(out / "faces.csv")))
    assert len(rows) == 2 * 5  # 2 faces x (hq, lq, irm64, irm128, tem): the stage table's columns
    bic = [r for r in rows if r["stage"] == "lq"]
    assert all(0 < float(r["psnr"]) < 60 and 0 < float(r["ssim"]) <= 1 for r in bic)
    assert all(math.isfinite(float(r["niqe"])) for r in rows)
    fails = list(csv.DictReader(open(out / "failures.csv")))
    assert [r["file"] for r in fails] == ["zz_no_face.png"]
    sweep = list(csv.DictReader(open(out / "sweep_tem_t.csv")))
    assert [float(r["value"]) for r in sweep] == [0.0, 20.0]
    simple = list(csv.DictReader(open(out / "sweep_simple.csv")))   # the fidelity <-> detail slider
    lq_psnr = np.mean([float(r["psnr"]) for r in bic])
    assert [float(r["value"]) for r in simple] == [0.0, 100.0]
    assert float(simple[0]["psnr"]) == pytest.approx(lq_psnr, abs=1e-3)   # position 0: the LQ face as it is
    assert quality.main(["--hq-dir", str(hq_dir), "--sweep", "simple=120", *FAST]) == 2
    assert "positions from 0 to 100" in capsys.readouterr().err
    sheet = cv2.imread(str(out / "contact_medium.png"))
    assert sheet.shape[0] > 2 * 128 and sheet.shape[1] > 5 * 128


def test_quality_auto_gives_each_face_the_calibrated_start_steps(hq_dir, tmp_path, capsys):
    from bench import quality
    from diffbfr.auto import Auto

    with pytest.raises(SystemExit):   # Auto chooses the start steps: nothing to sweep
        quality.parse_args(["--auto", "--sweep", "irm_start=0,100", *FAST])
    out = tmp_path / "auto"
    assert quality.main(["--hq-dir", str(hq_dir), "--out", str(out), "--levels", "light", "--auto",
                         "--no-identity", *FAST]) == 0
    assert "with Auto's start steps per face (--auto)" in capsys.readouterr().out
    model = methods.tiny("diffbfr")
    auto = Auto.for_method(ROOT / "weights", "diffbfr", random_tiny=True)
    faces = [np.full((128, 128, 3), v, np.uint8) for v in (60, 200)]
    per = quality.per_face_settings(auto, model, faces, DiffBFRSettings())
    assert per == [f.settings for f in auto.faces(faces, DiffBFRSettings(), model.knob_limits())]
    assert len(per) == 2 and all(p != DiffBFRSettings() for p in per)   # the calibration's, not the defaults
    assert quality.per_face_settings(None, model, faces, DiffBFRSettings()) == DiffBFRSettings()


def test_quality_lq_dir_tiny(hq_dir, tmp_path, capsys):
    from bench import quality

    out = tmp_path / "lq"
    assert quality.main(["--lq-dir", str(hq_dir), "--out", str(out), "--limit", "1", *FAST]) == 0
    text = capsys.readouterr().out
    assert "Real degraded photos" in text and "ID dist to input" in text
    rows = list(csv.DictReader(open(out / "lq_faces.csv")))
    assert [r["stage"] for r in rows] == ["input", "irm64", "irm128", "tem"]
    assert (out / "contact_lq.png").exists() and not (out / "faces.csv").exists()


def test_speed_tiny_end_to_end(tmp_path, capsys):
    from bench import speed

    out = tmp_path / "speed"
    rc = speed.main(["--tiny", "--device", "cpu", "--repeats", "1", "--warmup", "0", "--measure-steps", "2",
                     "--faces", "2", "--irm64-steps", "2", "--out", str(out), *FAST[3:]])
    assert rc == 0
    text = capsys.readouterr().out
    assert "ancestral-1000" in text and "extrapolated" in text
    data = json.loads((out / "speed.json").read_text())
    nfe = {(r["pipeline"], r["stage"]): r["nfe"] for r in data["rows"]}
    # counted by hooks on the networks, not copied from the settings
    assert nfe[("ours", "irm64")] == 2 and nfe[("ours", "tem")] == 1 and nfe[("ours", "restore_face")] == 4
    assert nfe[("ddim-from-T", "irm64")] == 2 and nfe[("ancestral-1000", "irm64")] == 1000
    tot = {r["pipeline"]: r for r in data["rows"] if "ratio" in r}
    assert tot["ancestral-1000"]["ratio"] > 1.0
    batched = [r for r in data["rows"] if r["pipeline"].startswith("2 faces")]
    assert [r["pipeline"] for r in batched] == ["2 faces, batch 1", "2 faces, batch 4"] and batched[1]["ratio"] > 0
    assert (out / "speed.md").exists()


def test_cached_identity_matches_faces_layer(hq_dir):
    from diffbfr.niqe import NiqeModel
    from bench.scorer import Scorer
    from diffbfr.faces.identity import identity_distance

    a, b = (C.load_rgb(p) for p in sorted(hq_dir.glob("*.png"))[:2])
    a, b = (cv2.resize(x, (128, 128), interpolation=cv2.INTER_AREA) for x in (a, b))
    s = Scorer(NiqeModel.load())
    d = s.identity(a, b, "a")
    assert d == pytest.approx(identity_distance(a, b, aligned=True), abs=1e-6)
    assert s.identity(a, b, "a") == d and s.identity(a, a, "a") == 0.0


def test_learning_curves_join_the_sessions_of_a_relay(tmp_path):
    from bench import learning_curves as L

    first = {"config": {"name": "irm64"}, "meta": {"model": "irm64", "val_history": [
        {"step": 1000, "val_psnr_start": 25.9, "val_psnr_s50": 25.1}]}}
    second = {"model": "irm64", "prior_steps": 5000, "val_history": [   # a state.json, warm-started
        {"step": 2000, "val_psnr_start": 25.9, "val_psnr_s50": 26.1}]}
    paths = []
    for i, payload in enumerate((second, first)):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(payload))
    data = L.curves(paths)
    assert data["irm64"]["val_psnr_s50"] == [(1000, 25.1), (7000, 26.1)]
    assert L.main([*map(str, paths), "--out", str(tmp_path / "lc.png")]) == 0 and (tmp_path / "lc.png").stat().st_size
