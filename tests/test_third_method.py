"""A third method, written here and registered for the test only (no other file knows it):
its own tiny network, settings and stages. Through the registry alone it restores a photo by
the photo path, the CLI, the page's events, the /restore API, bench.quality --tiny and the
uncertainty map. Whatever one of these needs beyond the Method's own data is a rule a
newcomer would have to know: this test keeps there being none."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from diffbfr import methods
from diffbfr import settings as S
from diffbfr.face_stages import restore_faces
from diffbfr.frame import to_batch, to_images
from diffbfr.imageio import load_image
from diffbfr.methods import INPUT, Method, Stage
from diffbfr.photo import restore_photo
from diffbfr.stage_cache import LRUCache, stage_key
from tests.app_calls import FACE, ROOT, noprogress, quiet, restore_api, values
from ui.handlers import Handlers
from ui.state import AppState


# ---------------------------------------------------------------- the method
@dataclass(frozen=True)
class ToySettings:
    strength: float = S.knob(1.0, 0, 1, 0.1, "Smoothing", "how much of the network's output replaces the face")
    grain: float = S.knob(0.0, 0, 20, 1, "Grain", "grey levels of seeded noise added on top")
    grain_seed: int = S.knob(0, 0, 99, 1, "Grain seed", "picks the grain")   # any name: Method.seed says


class ToyNet(nn.Module):
    """One 3x3 convolution near the identity: the toy's restoration network."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def tiny_networks(seed: int) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    net = ToyNet()
    with torch.no_grad():
        net.conv.weight.mul_(0.1)
        net.conv.weight[:, :, 1, 1] += torch.eye(3)
    return {"toy": net}


def run_smooth(model, inputs, s, seeds, callback=None):
    x = to_batch(inputs[INPUT], model.device)
    y = x + s.strength * (model.nets["toy"](x) - x)
    if callback is not None:
        callback({"x": y, "i": 0, "t": 0.0, "denoised": y})
    return to_images(y), [{"mean_change": float((y - x).abs().mean())} for _ in inputs[INPUT]]


def run_grain(model, inputs, s, seeds, callback=None):
    x = to_batch(inputs["smooth"], model.device)
    noise = torch.stack([torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(int(k))) for k in seeds])
    return to_images(x + noise.to(x.device) * s.grain / 127.5)


TOY = Method(
    name="toy", title="Toy", settings=ToySettings,
    stages=(Stage("smooth", "Smooth", (INPUT,), ("strength",), run_smooth, lambda s: 1,
                  describe=lambda info: f"mean change {info['mean_change']:.3f}"),
            Stage("grain", "Grain", ("smooth",), ("grain", "grain_seed"), run_grain, lambda s: 1 if s.grain > 0 else 0)),
    networks=("toy",), tiny_networks=tiny_networks,
    seed="grain_seed", uncertainty_settings={"grain": 10.0},
    auto_words=("smoothing", "the smoothing"), drift_hint="try less smoothing",
    description="A one-convolution smoother, then seeded grain: a method for tests.")


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(methods.METHODS, "toy", TOY)
    return methods.tiny("toy")


@pytest.fixture
def face():
    return load_image(FACE).rgb


@pytest.fixture
def handlers(toy, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    return Handlers(AppState({"toy": toy}, identity=False), [])


# ---------------------------------------------------------------- the photo path
def test_photo_path_and_its_cache(toy, face):
    out = restore_photo(toy, load_image(ROOT / "examples" / "astronaut.jpg").rgb, ToySettings(grain=4),
                        identity=False)
    assert out.method == "toy" and len(out.faces) == 1 and out.image.shape == (512, 512, 3)
    assert out.faces[0].stages.nfe == {"smooth": 1, "grain": 1} and out.to_record()["faces"][0]["stages"] == \
        ["LQ", "Smooth", "Grain"]
    cache, runs = LRUCache(16), []
    original = toy.run_stage
    toy.run_stage = lambda name, *a, **k: runs.append(name) or original(name, *a, **k)
    s = ToySettings(strength=0.5, grain=4)
    first = restore_faces(toy, [face], s, cache, ["f"])[0]
    runs.clear()
    second = restore_faces(toy, [face], S.with_value(s, "grain_seed", 3), cache, ["f"])[0]   # only the grain reruns
    assert runs == ["grain"] and np.array_equal(second["smooth"], first["smooth"])
    assert not np.array_equal(second.result, first.result)
    assert second.info["smooth"]["mean_change"] > 0   # what a stage reports comes back from the cache too
    assert stage_key(TOY, "grain", "f", s)[3:] == (("strength", 0.5), ("grain", 4.0), ("grain_seed", 0))


def test_cli(toy, tmp_path, capsys):
    from diffbfr import cli
    src, out = tmp_path / "face.png", tmp_path / "out"
    shutil.copy(FACE, src)
    assert cli.main(["--method", "toy", "-i", str(src), "-o", str(out), "--tiny", "--aligned",
                     "--strength", "0.5", "--grain", "3"]) == 0   # Auto by default: the toy has none, so none
    rec = json.loads((out / "face.json").read_text())
    assert rec["method"] == "toy" and rec["settings"] == {"strength": 0.5, "grain": 3.0, "grain_seed": 0}
    assert rec["faces"][0]["stages"] == ["LQ", "Smooth", "Grain"] and rec["faces"][0]["auto"] is None
    assert (out / "face_face1_stages.png").is_file() and "Auto is off" not in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.parse_args(["--method", "toy", "-i", "x", "-o", "y", "--irm-start", "3"])   # DiffBFR's flag, not its


# ---------------------------------------------------------------- the page and the API
def test_page_events_and_uncertainty_map(handlers):
    from ui.outputs import PHOTO
    (up, status, *_), _ = quiet(handlers.on_image, str(FACE))
    controls = (str(FACE), True, "toy", "1", False, True)   # photo, aligned, method, scale, thorough, Auto
    # then every registered method's sliders (values(): the toy's among them)
    out, warned = quiet(handlers.on_restore, up, *controls, *values(grain=5), progress=noprogress)
    shown = dict(zip(PHOTO, out))
    assert not warned and "Toy: restored 1 face" in shown["status"] and "Auto is off" not in shown["status"]
    assert [caption for _, caption in shown["gallery"]] == ["Face 1 · LQ", "Face 1 · Smooth", "Face 1 · Grain"]
    assert "Smooth: mean change" in shown["identity"]   # the stage's own words for what it reported
    out, _ = quiet(handlers.on_tune, shown["state"], *controls, *values(grain=5, grain_seed=2), progress=noprogress)
    assert "reused from cache: Smooth" in dict(zip(PHOTO, out))["status"]
    method_shown = dict(zip(handlers.method_outputs, quiet(handlers.on_method, up, "toy")[0]))
    assert method_shown["auto"]["visible"] is False   # no calibration: no Auto box
    maps, text = quiet(handlers.on_uncertainty, up, progress=noprogress)[0]
    assert len(maps) == 2 and "Face 1 (Toy)" in text and "(Grain)" in text and "deterministic" not in text


def test_restore_api_on_the_page(handlers, tmp_path):
    from ui.page import build_demo
    demo = build_demo(handlers.app)
    endpoint = next(f for f in demo.fns.values() if f.api_name == "restore")
    assert endpoint.inputs[1].value == "toy"   # the API's default method: the app's first
    sliders = [b for b in demo.blocks.values() if str(getattr(b, "elem_id", "")).startswith("toy-")]
    assert {b.label for b in sliders} == {"Smoothing", "Grain", "Grain seed"}
    photo = tmp_path / "portrait.png"
    photo.write_bytes(FACE.read_bytes())
    restored, gallery, record = endpoint.fn(str(photo), "toy", True, '{"grain": 2}', True, "1")
    assert record["method"] == "toy" and record["settings"]["grain"] == 2.0 and Path(restored).is_file()
    assert record["auto"] == {"requested": True, "used": False, "available": False}
    assert [caption for _, caption in gallery] == ["Face 1 · LQ", "Face 1 · Smooth", "Face 1 · Grain"]
    photo.write_bytes(FACE.read_bytes())
    assert restore_api(handlers).restore(str(photo), aligned=True)[2]["method"] == "toy"   # by default


# ---------------------------------------------------------------- the benches and the map
def test_bench_quality_tiny(toy, tmp_path, capsys):
    from bench import quality
    hq = tmp_path / "hq"
    hq.mkdir()
    shutil.copy(FACE, hq / "a.png")
    out = tmp_path / "q"
    assert quality.main(["--method", "toy", "--tiny", "--hq-dir", str(hq), "--align", "crop",
                         "--no-identity", "--out", str(out), "--sweep", "strength=0,1"]) == 0
    text = capsys.readouterr().out
    assert "| medium | Grain (final) | 1 |" in text and "## Sweep strength" in text
    assert (out / "sweep_strength.csv").read_text().count("\n") == 3   # header + 2 values


def test_uncertainty_map_reads_the_method_fields(toy, face):
    from diffbfr.uncertainty import first_sampling_stage, stochastic, uncertainties
    s = stochastic(TOY, ToySettings())
    assert s.grain == 10.0 and first_sampling_stage(TOY, s) == "grain"
    (u,) = uncertainties(toy, [face], s)
    assert not u.deterministic and u.score > 0 and u.stage == "Grain"
    (flat,) = uncertainties(toy, [face], ToySettings())   # no grain: nothing random
    assert flat.deterministic
