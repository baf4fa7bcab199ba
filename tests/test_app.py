"""The app's callbacks and stage cache (diffbfr/app_state.py and the handlers in app.py),
with random tiny networks. Aligned-face mode gives deterministic face counts."""
from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffbfr.app_state import (
    AppState,
    LRUCache,
    gallery_items,
    identity_meaning,
    settings_from_ui,
    stage_keys,
    status_markdown,
)
from diffbfr.pipeline import DiffBFR, RestoreSettings

ROOT = Path(__file__).resolve().parent.parent
FACE = ROOT / "examples" / "astronaut_face_aligned.png"
# few steps: the tiny networks are random anyway, and the tests stay quick on 2 cores
FAST = RestoreSettings(irm64_steps=1, irm128_steps=1, tem_steps=1)


@pytest.fixture(scope="module")
def model():
    return DiffBFR.tiny(seed=0)


class Counter:
    """Wraps a model's stage methods and counts calls."""

    def __init__(self, model):
        self.calls = {"run_irm64": 0, "run_irm128": 0, "run_tem": 0}
        self.originals = {}
        for name in self.calls:
            orig = getattr(model, name)
            self.originals[name] = orig

            def wrapped(*a, _orig=orig, _name=name, **k):
                self.calls[_name] += 1
                return _orig(*a, **k)
            setattr(model, name, wrapped)
        self.model = model

    def restore(self):
        for name, orig in self.originals.items():
            setattr(self.model, name, orig)

    def delta(self, before: dict) -> dict:
        return {k: self.calls[k] - before[k] for k in self.calls}


@pytest.fixture
def counted(model):
    c = Counter(model)
    yield c
    c.restore()


@pytest.fixture
def app(model):
    return AppState(model, identity=False)


@pytest.fixture(scope="module")
def shared_app(model):
    return AppState(model, identity=False)


def _face_upload(app):
    return app.load(str(FACE), path="")


def test_tem_only_change_runs_only_tem(app, counted):
    up = _face_upload(app)
    first = app.restore(up, FAST, aligned=True)
    assert counted.calls == {"run_irm64": 1, "run_irm128": 1, "run_tem": 1}
    assert len(first.faces) == 1 and first.faces[0].computed == ["irm64", "irm128", "tem"]

    snap = dict(counted.calls)
    second = app.restore(up, replace(FAST, tem_t=35.5), aligned=True)
    assert counted.delta(snap) == {"run_irm64": 0, "run_irm128": 0, "run_tem": 1}
    f1, f2 = first.faces[0], second.faces[0]
    assert np.array_equal(f1.irm64, f2.irm64) and np.array_equal(f1.irm128, f2.irm128)
    assert not np.array_equal(f1.tem, f2.tem)
    assert "reused from cache: IRM 64, IRM 128" in status_markdown(second)

    snap = dict(counted.calls)   # back to the first settings: everything comes from the cache
    third = app.restore(up, FAST, aligned=True)
    assert counted.delta(snap) == {"run_irm64": 0, "run_irm128": 0, "run_tem": 0}
    assert np.array_equal(third.image, first.image)


@pytest.mark.parametrize("change, expect", [
    (dict(irm2_start=400.0), {"run_irm64": 0, "run_irm128": 1, "run_tem": 1}),
    (dict(irm128_steps=2), {"run_irm64": 0, "run_irm128": 1, "run_tem": 1}),
    (dict(tem_steps=2), {"run_irm64": 0, "run_irm128": 0, "run_tem": 1}),
    (dict(irm_start=300.0), {"run_irm64": 1, "run_irm128": 1, "run_tem": 1}),
    (dict(seed=7), {"run_irm64": 1, "run_irm128": 1, "run_tem": 1}),
])
def test_partial_reruns(shared_app, counted, change, expect):
    app = shared_app  # one app for all cases: FAST is computed once, then found in the cache
    up = _face_upload(app)
    app.restore(up, FAST, aligned=True)
    snap = dict(counted.calls)
    app.restore(up, replace(FAST, **change), aligned=True)
    assert counted.delta(snap) == expect


def test_cached_results_equal_fresh_results(model):
    """Keys are complete: a result assembled from cached stages equals a fresh computation."""
    warm, cold = AppState(model, identity=False), AppState(model, identity=False)
    target = replace(FAST, irm2_start=350.0, tem_t=22.0)
    up = _face_upload(warm)
    warm.restore(up, FAST, aligned=True)
    warm.restore(up, replace(FAST, tem_t=22.0), aligned=True)
    from_cache = warm.restore(up, target, aligned=True).faces[0]
    fresh = cold.restore(_face_upload(cold), target, aligned=True).faces[0]
    for st in ("irm64", "irm128", "tem"):
        assert np.array_equal(getattr(from_cache, st), getattr(fresh, st)), st


def test_same_content_hits_cache_and_keys(app, counted, tmp_path):
    up = _face_upload(app)
    app.restore(up, FAST, aligned=True)
    copy = tmp_path / "same.png"
    copy.write_bytes(FACE.read_bytes())
    snap = dict(counted.calls)
    app.restore(app.load(str(copy)), FAST, aligned=True)   # same pixels, other file: cached
    assert counted.delta(snap) == {"run_irm64": 0, "run_irm128": 0, "run_tem": 0}
    k = stage_keys("img", True, 0, FAST)
    k_face1 = stage_keys("img", True, 1, FAST)
    assert k["irm64"] != k_face1["irm64"]
    assert k["tem"][: len(k["irm128"])][1:] == k["irm128"][1:]  # TEM key extends the stage-2 key


def test_two_faces_are_cached_separately(app, counted):
    from diffbfr.faces.align import align_crop
    img = np.asarray(Image.open(FACE).convert("RGB"))
    photo = np.concatenate([img, img[:, ::-1]], axis=1)
    up = app.load(photo)
    faces = [align_crop(img, "utk"), align_crop(img[:, ::-1].copy(), "utk")]
    faces[1].matrix = faces[1].matrix.copy()
    faces[1].matrix[0, 2] -= 128.0  # second crop sits 128 px to the right in the photo
    app.detections.put((up.key, False), (faces, []))  # no detector: deterministic two faces
    out = app.restore(up, FAST)
    assert len(out.faces) == 2 and counted.calls["run_tem"] == 2
    snap = dict(counted.calls)
    out2 = app.restore(up, replace(FAST, tem_t=50.0))
    assert counted.delta(snap) == {"run_irm64": 0, "run_irm128": 0, "run_tem": 2}
    assert len(gallery_items(out2)) == 8 and gallery_items(out2)[5][0].shape == (256, 256, 3)
    assert out2.image.shape == photo.shape


def test_cache_is_bounded(model):
    app = AppState(model, cache_size=4, identity=False)
    up = _face_upload(app)
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):
        app.restore(up, replace(FAST, tem_t=t), aligned=True)
    assert len(app.stages) == 4
    lru = LRUCache(2)
    lru.put("a", 1), lru.put("b", 2), lru.get("a"), lru.put("c", 3)
    assert lru.get("b") is None and lru.get("a") == 1 and lru.get("c") == 3


def test_progress_reports_stages_and_face_count(app):
    seen = []
    app.restore(_face_upload(app), FAST, aligned=True, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    text = " / ".join(m for _, m in seen)
    for part in ("Found 1 face", "IRM 64", "IRM 128", "TEM", "Pasting"):
        assert part in text


def test_no_face_photo_gives_message(app):
    up = app.load(np.full((200, 240, 3), 128, np.uint8))
    out = app.restore(up, FAST)
    assert out.faces == [] and np.array_equal(out.image, up.rgb)
    assert "No face" in status_markdown(out) or "face" in " ".join(out.notices).lower()


def test_settings_from_ui_and_identity_text():
    s = settings_from_ui(1500, -3, 12.25, 3.6, None, 2, 5)
    assert s.irm_start == 1000 and s.irm2_start == 0 and s.tem_t == 12.25
    assert s.irm64_steps == 4 and s.irm128_steps == RestoreSettings().irm128_steps and s.seed == 5
    assert identity_meaning(None).startswith("n/a")
    assert "same person" in identity_meaning(0.3) and "drifted" in identity_meaning(0.9)


# ------------------------------------------------------------------ app.py handlers
@pytest.fixture
def handlers(model, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    import app as app_module
    return app_module.Handlers(AppState(model, identity=True))


def _quiet(fn, *a, **k):
    with warnings.catch_warnings(record=True) as w:   # gr.Warning outside a server -> warnings
        warnings.simplefilter("always")
        return fn(*a, **k), [str(x.message) for x in w]


def _noprogress(*_a, **_k):
    pass


SLIDERS = (FAST.irm_start, FAST.irm2_start, FAST.tem_t, FAST.irm64_steps, FAST.irm128_steps,
           FAST.tem_steps, FAST.seed)


@pytest.mark.parametrize("content", [b"not an image at all", b""])
def test_handler_bad_upload_is_a_message(handlers, content):
    from gradio.utils import get_upload_folder
    bad = Path(get_upload_folder()) / "h" / "bad.jpg"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(content)
    (state, status, *_rest), warned = _quiet(handlers.on_image, str(bad))
    assert state is None and status.startswith("⚠️") and warned
    assert not bad.exists()  # an unusable upload is not kept either


def test_handler_restore_without_upload(handlers):
    (state, status, *_), warned = _quiet(handlers.on_restore, None, False, *SLIDERS, progress=_noprogress)
    assert state is None and "No photo loaded" in status and warned
    assert all(_is_skip(v) for v in handlers.on_tune(None, False, *SLIDERS, progress=_noprogress))


def _img(path) -> np.ndarray:
    assert str(path).endswith(".png")   # lossless
    return np.asarray(Image.open(path).convert("RGB"))


def _is_skip(v) -> bool:
    return isinstance(v, dict) and v.get("__type__") == "update" and len(v) == 1


def test_handler_restore_tune_and_upload_cleanup(handlers, tmp_path):
    from gradio.utils import get_upload_folder
    upload = Path(get_upload_folder()) / "abc123" / "photo.png"
    upload.parent.mkdir(parents=True)
    Image.open(FACE).save(upload, compress_level=1)  # an example's pixels, but other bytes: an upload
    assert upload.read_bytes() != FACE.read_bytes()
    (up, status, *_), _ = _quiet(handlers.on_image, str(upload))
    assert up is not None and "Press **Restore**" in status
    assert all(_is_skip(v) for v in handlers.on_tune(up, True, *SLIDERS, progress=_noprogress))

    (up, status, pair, download, gallery, ident), _ = _quiet(
        handlers.on_restore, up, True, *SLIDERS, progress=_noprogress)
    assert "Restored 1 face" in status and len(gallery) == 4
    assert _img(pair[0]).shape == _img(pair[1]).shape == (128, 128, 3)
    assert Path(download["value"]).suffix == ".png" and "Identity distance" in ident
    assert not upload.exists(), "the upload must not stay on disk after the result"

    changed = list(SLIDERS)
    changed[2] = 44.5
    (up, status, pair2, *_rest, gallery2, _), _ = _quiet(
        handlers.on_tune, up, True, *changed, progress=_noprogress)
    assert "reused from cache: IRM 64, IRM 128" in status and pair2[0] == pair[0]
    assert np.array_equal(gallery2[2][0], gallery[2][0]) and not np.array_equal(gallery2[3][0], gallery[3][0])


def test_example_copies_are_not_deleted(handlers):
    from gradio.utils import get_upload_folder
    copy = Path(get_upload_folder()) / "hash" / FACE.name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(FACE.read_bytes())
    (up, *_), _ = _quiet(handlers.on_image, str(copy))
    _quiet(handlers.on_restore, up, True, *SLIDERS, progress=_noprogress)
    assert copy.exists()


def test_handler_no_face_photo(handlers, tmp_path):
    p = tmp_path / "wall.png"
    Image.new("RGB", (160, 120), (120, 130, 140)).save(p)
    (up, *_), _ = _quiet(handlers.on_image, str(p))
    (up, status, pair, *_), warned = _quiet(handlers.on_restore, up, False, *SLIDERS, progress=_noprogress)
    assert "No face" in status and warned and np.array_equal(_img(pair[1]), _img(pair[0]))


def test_build_demo_has_the_pieces(model):
    import gradio as gr

    import app as app_module
    demo = app_module.build_demo(AppState(model))
    types = {type(b).__name__ for b in demo.blocks.values()}
    assert {"PhotoInput", "ImageSlider", "Gallery", "Slider", "Checkbox", "Button", "DownloadButton"} <= types
    assert isinstance(demo, gr.Blocks) and demo.delete_cache is not None
    assert app_module.parse_args(["--share", "--port", "7000", "--tiny"]).share
    assert os.path.isdir(app_module.EXAMPLES)


def test_identity_matches_identity_distance(model):
    """The app's cached-embedding identity equals diffbfr.faces.identity.identity_distance."""
    from diffbfr.faces.identity import identity_distance
    app = AppState(model)
    up = app.load(str(FACE))
    for t in (10.0, 30.0):
        f = app.restore(up, replace(FAST, tem_t=t), aligned=True).faces[0]
        ref = identity_distance(f.lq, f.tem)
        assert (f.identity is None and ref is None) or abs(f.identity - ref) < 1e-5
