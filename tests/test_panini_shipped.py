"""The shipped Panini-Net (weights/panini/): its manifest names every network as an fp16
safetensors file of at most 16 MiB, the folder loads as a trained method, a real face is
restored alone and beside DiffBFR in the app, and its verdict against bicubic is said loudly.
The real networks (~30 MB) are loaded once for the module."""
from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open

from diffbfr import methods
from diffbfr.methods.panini import PANINI, PaniniSettings
from diffbfr.nets.panini_dafi import PaniniNet
from tests.app_calls import FACE, ROOT, call, quiet, read_png
from ui import page as ui_page
from ui.handlers import Handlers
from ui.state import AppState
from ui.views import weights_notice

FOLDER = ROOT / "weights" / "panini"
CARD = json.loads((FOLDER / "manifest.json").read_text())
MAX_BYTES = 16 << 20


@pytest.fixture(scope="module")
def shipped():
    return methods.load(FOLDER, device="cpu")


def tensor_dtypes(path) -> dict[str, str]:
    """name -> dtype as the file stores it ("F16", "I64", ...), read from its header only."""
    with safe_open(str(path), "pt") as f:
        return {k: f.get_slice(k).get_dtype() for k in f.keys()}


def test_manifest_names_every_network_as_a_small_fp16_file():
    assert CARD["method"] == "panini" and CARD["status"] == "trained"
    assert set(CARD["networks"]) == set(PANINI.networks) == set(CARD["parts"])
    for name, rel in CARD["networks"].items():
        path = FOLDER / rel
        assert path.is_file() and path.suffix == ".safetensors", (name, path)
        assert path.stat().st_size <= MAX_BYTES, (name, path.stat().st_size)
        dtypes = tensor_dtypes(path)
        floats = {d for d in dtypes.values() if d.startswith(("F", "BF"))}
        assert floats == {"F16"}, (name, floats)   # integer counters (BatchNorm's) may stay I64


def test_verdict_is_honest_and_loud(shipped):
    """beats_bicubic is what the manifest's own numbers say (every level above bicubic in PSNR),
    and the page still warns loudly about the invented features the numbers do not show."""
    assert "UTKFace" in CARD["licence"]
    levels = [CARD["validation"][lv] for lv in ("light", "medium", "heavy")]
    assert CARD["beats_bicubic"] is all(v["final_psnr"] > v["bicubic_psnr"] for v in levels)
    for lv, v in zip(("light", "medium", "heavy"), levels):   # the note quotes the measured gains
        assert f"{v['final_psnr'] - v['bicubic_psnr']:+.2f} dB" in CARD["quality_note"], lv
    notice = weights_notice(shipped)
    assert notice.startswith("⚠️ **Panini-Net:**") and "invents features" in notice
    assert CARD["stage_warning"] in notice


def test_shipped_folder_loads_as_a_trained_method(shipped):
    assert shipped.method is PANINI and shipped.label == "" and shipped.card["status"] == "trained"
    assert set(shipped.nets) == set(PANINI.networks)
    net = shipped.assembled()
    assert isinstance(net, PaniniNet) and net.generator is shipped.nets["generator"]
    assert net.dre is shipped.nets["dre"] and net.dafi is shipped.nets["dafi"].blocks
    face = read_png(FACE)
    (out,), (info,) = shipped.run_stage("panini", {"lq": [face]}, PaniniSettings(), [0])
    assert out.shape == face.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(float) - face).mean()
    assert 0.5 < diff < 40, diff   # changed, but still this face (not noise, not a copy)
    shares = info["prior_share"]
    assert set(shares) >= {"4", "8", "16", "32", "64"} and all(0 < v < 1 for v in shares.values())


def test_app_lists_it_trained_and_runs_it_beside_diffbfr(shipped, tmp_path, monkeypatch):
    """In the app: listed without "not yet trained", "Both" offered, and a side-by-side restore
    runs the real Panini-Net (DiffBFR's tiny networks beside it keep this fast)."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    state = AppState({"diffbfr": methods.tiny("diffbfr"), "panini": shipped})
    labels = [label for label, _ in ui_page.method_choices(state)]
    assert "Panini-Net" in labels and "Both, side by side" in labels
    assert not any("not yet trained" in label for label in labels)
    h = Handlers(state, [])
    up = quiet(h.on_image, str(FACE))[0][0]
    for choice in ("panini", "both"):
        (up, status, pair, *_), _ = call(h.on_restore, up, choice=choice)
        assert "Panini-Net: restored 1 face" in status and pair is not None, status
        assert ("DiffBFR: restored 1 face" in status) == (choice == "both"), status
    assert [r.method for r in up.last] == ["diffbfr", "panini"]
