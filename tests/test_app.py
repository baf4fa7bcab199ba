"""The app's callbacks (app.py), what it shows (app_views.py) and its files (app_files.py),
with random tiny networks. Aligned-face mode gives deterministic face counts."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app as app_module
from app_files import AppFiles
from app_views import identity_meaning, settings_from_ui, weights_notice
from diffbfr import methods
from diffbfr import settings as S
from diffbfr.methods import DiffBFRSettings

ROOT = Path(__file__).resolve().parent.parent
FACE = ROOT / "examples" / "astronaut_face_aligned.png"
DIFFBFR = methods.get("diffbfr")


@pytest.fixture(scope="module")
def model():
    return methods.tiny("diffbfr")


@pytest.fixture
def handlers(model, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    return app_module.Handlers(app_module.AppState({"diffbfr": model}, identity=True))


def values(**changes) -> list:
    """Every slider's value in the handlers' order: fast steps for the tiny networks."""
    fast = {"irm64_steps": 1, "irm128_steps": 1, "tem_steps": 1, **changes}
    return [fast.get(k.name, k.default) for _, k in app_module.knob_layout()]


def _quiet(fn, *a, **k):
    with warnings.catch_warnings(record=True) as w:   # gr.Warning outside a server -> warnings
        warnings.simplefilter("always")
        return fn(*a, **k), [str(x.message) for x in w]


def _noprogress(*_a, **_k):
    pass


def _img(path) -> np.ndarray:
    assert str(path).endswith(".png")   # lossless
    return np.asarray(Image.open(path).convert("RGB"))


def _is_skip(v) -> bool:
    return isinstance(v, dict) and v.get("__type__") == "update" and len(v) == 1


def _upload(name: str) -> Path:
    from gradio.utils import get_upload_folder
    path = Path(get_upload_folder()) / os.urandom(4).hex() / name
    path.parent.mkdir(parents=True)
    return path


@pytest.mark.parametrize("content", [b"not an image at all", b""])
def test_bad_upload_is_a_message_and_is_deleted(handlers, content):
    bad = _upload("bad.jpg")
    bad.write_bytes(content)
    (state, status, *_rest), warned = _quiet(handlers.on_image, str(bad))
    assert state is None and status.startswith("⚠️") and warned
    assert not bad.exists()  # an unusable upload is not kept either


def test_restore_without_upload(handlers):
    (state, status, *_), warned = _quiet(handlers.on_restore, None, False, "diffbfr", *values(),
                                         progress=_noprogress)
    assert state is None and "No photo loaded" in status and warned
    assert all(_is_skip(v) for v in handlers.on_tune(None, False, "diffbfr", *values(), progress=_noprogress))


def test_restore_tune_download_name_and_upload_cleanup(handlers):
    upload = _upload("holiday photo.png")
    Image.open(FACE).save(upload, compress_level=1)  # an example's pixels, other bytes: an upload
    (up, status, *_), _ = _quiet(handlers.on_image, str(upload))
    assert up is not None and "Press **Restore**" in status and up.name == "holiday photo"
    assert all(_is_skip(v) for v in handlers.on_tune(up, True, "diffbfr", *values(), progress=_noprogress))

    (up, status, pair, download, gallery, ident), _ = _quiet(
        handlers.on_restore, up, True, "diffbfr", *values(), progress=_noprogress)
    assert "restored 1 face" in status and len(gallery) == 4
    assert _img(pair[0]).shape == _img(pair[1]).shape == (128, 128, 3)
    assert Path(download["value"]).name == "holiday_photo_restored.png" and download["visible"]
    assert "Identity distance" in ident
    assert not upload.exists(), "the upload must not stay on disk after the result"

    (up, status, pair2, *_rest, gallery2, _), _ = _quiet(
        handlers.on_tune, up, True, "diffbfr", *values(tem_t=44.5), progress=_noprogress)
    assert "reused from cache: IRM 64, IRM 128" in status and pair2[0] == pair[0]
    assert np.array_equal(gallery2[2][0], gallery[2][0]) and not np.array_equal(gallery2[3][0], gallery[3][0])


def test_example_copies_are_not_deleted(handlers):
    copy = _upload(FACE.name)
    copy.write_bytes(FACE.read_bytes())
    (up, *_), _ = _quiet(handlers.on_image, str(copy))
    _quiet(handlers.on_restore, up, True, "diffbfr", *values(), progress=_noprogress)
    assert copy.exists()


def test_no_face_photo_has_no_slider_and_no_download(handlers, tmp_path):
    p = tmp_path / "wall.png"
    Image.new("RGB", (160, 120), (120, 130, 140)).save(p)
    (up, *_), _ = _quiet(handlers.on_image, str(p))
    (up, status, pair, download, gallery, ident), warned = _quiet(
        handlers.on_restore, up, False, "diffbfr", *values(), progress=_noprogress)
    assert "No face restored" in status and "No face found" in status and warned
    assert pair is None and download["visible"] is False and gallery == [] and ident == ""


def test_unavailable_method_says_why(model, monkeypatch):
    from tests.test_methods import DUMMY
    monkeypatch.setitem(methods.METHODS, "dummy", DUMMY)
    h = app_module.Handlers(app_module.AppState({"diffbfr": model}, {"dummy": "no weights in weights/dummy"}))
    up = _quiet(h.on_image, str(FACE))[0][0]
    (_, status, *_), warned = _quiet(h._run, up, True, "dummy", values(), _noprogress)
    assert "not available" in status and "no weights" in status and warned


def test_settings_from_ui_and_identity_text():
    s = settings_from_ui(DIFFBFR, [1500, -3, 12.25, 3.6, None, 2, 5, 0.0])
    assert s == DiffBFRSettings(irm_start=1000, irm2_start=0, tem_t=12.25, irm64_steps=4, tem_steps=2, seed=5)
    assert identity_meaning(None).startswith("n/a")
    assert "same person" in identity_meaning(0.3) and "drifted" in identity_meaning(0.9)


def test_weights_notice_follows_the_manifest():
    shipped = methods.load(ROOT / "weights" / "diffbfr", device="cpu")
    shipped.card = {**shipped.card, "beats_bicubic": False}
    assert "worse than plain bicubic" in weights_notice(shipped)
    shipped.card = {**shipped.card, "beats_bicubic": True}
    assert weights_notice(shipped) == ""
    assert "random tiny networks" in weights_notice(methods.tiny("diffbfr"))


def test_results_folder_is_bounded_by_size(tmp_path):
    files = AppFiles([], max_bytes=200_000)
    img = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)  # ~120 kB as PNG
    paths = [files.write(f"p{i}.png", img) for i in range(4)]
    for k, p in enumerate(paths):  # age them so the oldest may go
        os.utime(p, (1000 + k, 1000 + k))
    files.write("new.png", img)
    assert files.folder_bytes() <= 200_000 + 130_000   # the newest file always stays
    assert not Path(paths[0]).exists() and Path(paths[-1]).parent.exists()


def test_build_demo_has_the_pieces(model):
    import gradio as gr
    demo = app_module.build_demo(app_module.AppState({"diffbfr": model}))
    types = {type(b).__name__ for b in demo.blocks.values()}
    assert {"PhotoInput", "ImageSlider", "Gallery", "Slider", "Checkbox", "Button", "DownloadButton"} <= types
    sliders = {b.elem_id for b in demo.blocks.values() if type(b).__name__ == "Slider"}
    assert sliders == {f"diffbfr-{k.name}" for k in S.knobs(DiffBFRSettings)}   # generated, not listed
    assert isinstance(demo, gr.Blocks) and demo.delete_cache is not None
    assert app_module.parse_args(["--share", "--port", "7000", "--tiny"]).share


def test_create_app_loads_shipped_weights_and_falls_back(tmp_path):
    real = app_module.create_app(ROOT / "weights", device="cpu")
    assert set(real.restorers) == {"diffbfr"} and real.models["diffbfr"].label == ""
    empty = app_module.create_app(tmp_path, device="cpu")
    assert "random tiny networks" in empty.models["diffbfr"].label
