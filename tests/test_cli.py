"""python -m diffbfr.cli on a folder: expected files, JSON records, bad files skipped."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from diffbfr.cli import main, output_names

ROOT = Path(__file__).resolve().parent.parent
FACE = ROOT / "examples" / "astronaut_face_aligned.png"
FAST = ["--irm64-steps", "1", "--irm128-steps", "1", "--tem-steps", "1"]


def _folder(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(FACE, src / "face_a.png")
    face = np.asarray(Image.open(FACE).convert("RGB"))
    Image.fromarray(face[:, ::-1]).save(src / "face_b.jpg", quality=92)   # a second photo
    (src / "broken.png").write_bytes(b"this is not a png")                 # reported, skipped
    (src / "notes.txt").write_text("ignored")
    return src


def test_cli_folder_of_two_photos(tmp_path, capsys):
    src, out = _folder(tmp_path), tmp_path / "out"
    rc = main(["-i", str(src), "-o", str(out), "--tiny", "--aligned", "--tem-t", "12.5", "--seed", "3", *FAST])
    assert rc == 0
    expected = {"face_a_restored.png", "face_a_face1_stages.png", "face_a.json",
                "face_b_restored.png", "face_b_face1_stages.png", "face_b.json", "run.json"}
    assert {p.name for p in out.iterdir()} == expected

    rec = json.loads((out / "face_a.json").read_text())
    assert rec["settings"]["tem_t"] == 12.5 and rec["settings"]["seed"] == 3 and rec["method"] == "diffbfr"
    assert rec["faces"][0]["stages_png"] == "face_a_face1_stages.png"
    assert {"load", "detect", "stages", "paste", "total"} <= set(rec["timings_s"])
    assert isinstance(rec["notices"], list)
    restored = np.asarray(Image.open(out / "face_a_restored.png"))
    assert restored.shape == (128, 128, 3)
    strip = np.asarray(Image.open(out / "face_a_face1_stages.png"))
    assert strip.shape[0] == 128 and strip.shape[1] >= 4 * 128

    run = json.loads((out / "run.json").read_text())
    assert [Path(r["file"]).name for r in run["restored"]] == ["face_a.png", "face_b.jpg"]
    assert run["no_face"] == []
    skipped = {Path(r["file"]).name: r["reason"] for r in run["skipped"]}
    assert set(skipped) == {"broken.png", "notes.txt"} and "not an image" in skipped["broken.png"]
    captured = capsys.readouterr()
    assert "skipped broken.png" in captured.err and "2 restored, 0 with no face, 2 skipped" in captured.out


def test_cli_photo_without_face_is_not_counted_as_restored(tmp_path, capsys):
    src, out = tmp_path / "walls", tmp_path / "out"
    src.mkdir()
    Image.new("RGB", (90, 60), (90, 90, 90)).save(src / "wall.png")
    assert main(["-i", str(src), "-o", str(out), "--tiny", *FAST]) == 1   # nothing restored
    assert sorted(p.name for p in out.iterdir()) == ["run.json", "wall.json"]   # no "restored" photo
    run = json.loads((out / "run.json").read_text())
    assert run["restored"] == [] and [Path(r["file"]).name for r in run["no_face"]] == ["wall.png"]
    text = capsys.readouterr().out
    assert "wall.png: no face restored" in text and "0 restored, 1 with no face, 0 skipped" in text


def test_cli_errors_and_names(tmp_path):
    assert main(["-i", str(tmp_path / "missing"), "-o", str(tmp_path / "o"), "--tiny"]) == 2
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_bytes(b"nope")
    assert main(["-i", str(bad), "-o", str(tmp_path / "o"), "--tiny"]) == 1   # nothing restored
    assert main(["-i", str(FACE), "-o", str(tmp_path / "o"), "--weights", str(tmp_path)]) == 2
    names = output_names([Path("a.jpg"), Path("a.png"), Path("b.png")])
    assert names == {Path("a.jpg"): "a_jpg", Path("a.png"): "a_png", Path("b.png"): "b"}


def test_cli_module_entry_point():
    res = subprocess.run([sys.executable, "-m", "diffbfr.cli", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    for flag in ("--irm-start", "--irm2-start", "--tem-t", "--irm64-steps", "--irm128-steps",
                 "--tem-steps", "--seed", "--eta", "--aligned", "--weights", "--device", "--method"):
        assert flag in res.stdout


def test_cli_upscale_makes_the_output_larger(tmp_path):
    out = tmp_path / "out"
    assert main(["-i", str(FACE), "-o", str(out), "--tiny", "--aligned", "--upscale", "2", *FAST]) == 0
    assert Image.open(out / "astronaut_face_aligned_restored.png").size == (256, 256)
    assert json.loads((out / "astronaut_face_aligned.json").read_text())["scale"] == 2


def test_cli_auto_is_the_default_and_records_each_face_estimate(tmp_path, capsys):
    """Auto is on by default, as on the page (--auto still accepted); --no-auto and a named
    start step switch it off, as unticking the box and moving a start-step slider do."""
    def face_auto(*flags):
        out = tmp_path / "_".join(flags or ("default",))
        assert main(["-i", str(FACE), "-o", str(out), "--tiny", "--aligned", *flags, *FAST]) == 0
        return json.loads((out / "astronaut_face_aligned.json").read_text())["faces"][0]
    face = face_auto()
    assert set(face["auto"]["estimate"]) >= {"severity"} and "severity" in face["auto"]["words"]
    assert face["settings"]["irm64_steps"] == 1   # steps kept from the flags, start steps from Auto
    assert {**face_auto("--auto"), "timings_s": None} == {**face, "timings_s": None}
    assert face_auto("--no-auto")["auto"] is None
    capsys.readouterr()
    assert face_auto("--tem-t", "7")["auto"] is None and "Auto is off: --tem-t named" in capsys.readouterr().err
    assert face_auto("--tem-t", "7", "--auto")["auto"] is not None   # asked for by name: Auto chooses


def test_cli_json_is_the_result_record(tmp_path):
    """NAME.json is PhotoResult.to_record() (the record the app's API returns too) plus what only
    the CLI knows: the input, its size, the files written and the load time."""
    from diffbfr import methods
    from diffbfr.photo import PhotoOptions, restore_photo
    out = tmp_path / "out"
    assert main(["-i", str(FACE), "-o", str(out), "--tiny", "--aligned", *FAST]) == 0
    rec = json.loads((out / "astronaut_face_aligned.json").read_text())
    face = np.asarray(Image.open(FACE).convert("RGB"))
    ref = restore_photo(methods.tiny("diffbfr"), face, options=PhotoOptions(aligned=True), identity=False).to_record()
    assert set(rec) == set(ref) | {"input", "size", "was_grey", "outputs"}
    assert set(rec["faces"][0]) == set(ref["faces"][0]) | {"stages_png"}
    assert rec["faces"][0]["stages"] == list(methods.get("diffbfr").labels.values())
    assert rec["faces"][0]["face_size_px"] == ref["faces"][0]["face_size_px"]
    assert rec["timings_s"]["load"] >= 0 and "file_total" in rec["timings_s"] and "detect" in rec["timings_s"]
