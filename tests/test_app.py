"""The app's callbacks (ui/handlers.py), what it shows (ui/views.py), its files (ui/files.py)
and its page (ui/page.py, started by app.py), with random tiny networks. Aligned-face mode
gives deterministic face counts."""
from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app as app_module
from diffbfr import methods
from diffbfr import settings as S
from diffbfr.methods import DiffBFRSettings
from ui import files as ui_files, page as ui_page, state as ui_state
from ui.files import AppFiles
from ui.handlers import Controls, Handlers, knob_layout
from ui.outputs import LOAD, PHOTO, outputs
from ui.state import AppState
from ui.views import identity_meaning, settings_from_ui, weights_notice

ROOT = Path(__file__).resolve().parent.parent
FACE = ROOT / "examples" / "astronaut_face_aligned.png"
DIFFBFR = methods.get("diffbfr")


@pytest.fixture(scope="module")
def model():
    return methods.tiny("diffbfr")


@pytest.fixture
def handlers(model, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    return Handlers(AppState({"diffbfr": model}, identity=True), ui_state.example_files())


def values(**changes) -> list:
    """Every slider's value in the handlers' order: fast steps for the tiny networks."""
    fast = {"irm64_steps": 1, "irm128_steps": 1, "tem_steps": 1, **changes}
    return [fast.get(k.name, k.default) for _, k in knob_layout()]


def call(fn, up, aligned=True, path=None, scale="1", choice="diffbfr", thorough=False, auto=False, **changes):
    """A photo callback with every input the app wires to it."""
    return _quiet(fn, up, path, aligned, choice, scale, thorough, auto, *values(**changes), progress=_noprogress)


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
    (state, status, *_), warned = call(handlers.on_restore, None)
    assert state is None and "No photo loaded" in status and warned
    assert all(_is_skip(v) for v in call(handlers.on_tune, None)[0])


def test_restore_tune_download_name_and_upload_cleanup(handlers):
    upload = _upload("holiday photo.png")
    Image.open(FACE).save(upload, compress_level=1)  # an example's pixels, other bytes: an upload
    (up, status, *_), _ = _quiet(handlers.on_image, str(upload))
    assert up is not None and "Press **Restore**" in status and up.name == "holiday photo"
    assert all(_is_skip(v) for v in call(handlers.on_tune, up)[0])

    (up, status, pair, download, gallery, ident, files, *_), _ = call(handlers.on_restore, up, path=str(upload))
    assert "restored 1 face" in status and len(gallery) == 4
    assert _img(pair[0]).shape == _img(pair[1]).shape == (128, 128, 3)
    assert Path(download["value"]).name == "holiday_photo_restored.png" and download["visible"]
    assert "Identity distance" in ident and "does not mean the face got better" not in ident  # tiny: no card
    assert [Path(f).name for f in files["value"]] == ["holiday_photo_face1_restored.png",
                                                       "holiday_photo_face1_stages.png"]
    assert not upload.exists(), "the upload must not stay on disk after the result"

    (up, status, pair2, _, gallery2, *_), _ = call(handlers.on_tune, up, path=str(upload), tem_t=44.5)
    assert "reused from cache: IRM 64, IRM 128" in status and pair2[0] == pair[0]
    assert np.array_equal(gallery2[2][0], gallery[2][0]) and not np.array_equal(gallery2[3][0], gallery[3][0])


def test_example_copies_are_not_deleted(handlers):
    copy = _upload(FACE.name)
    copy.write_bytes(FACE.read_bytes())
    (up, *_), _ = _quiet(handlers.on_image, str(copy))
    call(handlers.on_restore, up, path=str(copy))
    assert copy.exists()


def test_warmed_example_is_shown_from_the_cache(handlers):
    """The background warm-up restores each example at the page's defaults; picking it (the
    Examples click runs on_restore with the page's inputs) then runs no network."""
    path = str(FACE)
    assert ui_state.example_rows() and (path, True) in ui_state.example_rows()
    restorer = handlers.app.restorers["diffbfr"]
    assert handlers.warm_examples([(path, True)]) == 1
    misses = restorer.stages.misses
    defaults = [k.default for _, k in knob_layout()]
    (up, status, pair, *_), _ = _quiet(handlers.on_restore, None, path, True, "diffbfr", "auto", False, False,
                                       *defaults, progress=_noprogress)
    assert up.restored and pair is not None and "reused from cache: IRM 64, IRM 128, TEM" in status and restorer.stages.misses == misses
    # the Photo box's change event may arrive after the example's result: it keeps the result
    assert handlers.on_image(path, up) == outputs(LOAD)   # every output left as it is


def test_warm_up_waits_for_api_and_uncertainty_requests(handlers, tmp_path, monkeypatch):
    """Not only the page's restores: while an API call (or an uncertainty map) is running, the
    example warm-up does not start the next example."""
    restorer = handlers.app.restorers["diffbfr"]
    release, in_api, seen = threading.Event(), threading.Event(), []
    real = restorer.restore

    def restore(*a, **k):
        if not in_api.is_set():           # the API call: hold it until the test lets go
            in_api.set()
            release.wait(10)
        else:
            seen.append(handlers._users)  # the warm-up: must only run with no person served
        return real(*a, **k)
    monkeypatch.setattr(restorer, "restore", restore)
    photo = tmp_path / "portrait.png"
    photo.write_bytes(FACE.read_bytes())
    api = threading.Thread(target=handlers.api_restore, args=(str(photo), "diffbfr", True, "{}"))
    api.start()
    assert in_api.wait(10)
    warm = threading.Thread(target=handlers.warm_examples, args=([(str(FACE), True)], 0.02))
    warm.start()
    warm.join(0.5)
    assert warm.is_alive() and seen == []   # waiting for the API call
    release.set()
    api.join(30)
    warm.join(30)
    assert seen == [0] and handlers._users == 0


def test_no_face_photo_has_no_slider_and_no_download(handlers, tmp_path):
    p = tmp_path / "wall.png"
    Image.new("RGB", (160, 120), (120, 130, 140)).save(p)
    (up, *_), _ = _quiet(handlers.on_image, str(p))
    (up, status, pair, download, gallery, ident, files, *_), warned = call(handlers.on_restore, up, aligned=False)
    assert "No face restored" in status and "No face found" in status and warned
    assert pair is None and download["visible"] is False and gallery == [] and ident == ""
    assert files["visible"] is False


def test_unavailable_method_says_why(model, monkeypatch):
    from tests.test_methods import DUMMY
    monkeypatch.setitem(methods.METHODS, "dummy", DUMMY)
    h = Handlers(AppState({"diffbfr": model}, {"dummy": "no weights in weights/dummy"}), [])
    up = _quiet(h.on_image, str(FACE))[0][0]
    controls = Controls.read([None, True, "dummy", "1", False, False, *values()])
    out, warned = _quiet(h._run, up, controls, _noprogress)
    status = dict(zip(PHOTO, out))["status"]
    assert "not available" in status and "no weights" in status and warned


def test_settings_from_ui_and_identity_text():
    s = settings_from_ui(DIFFBFR, [1000, 0, 12.25, 4.0, 2.0, None, 2, 5, 0.0])   # slider floats; None: default
    assert s == DiffBFRSettings(irm_start=1000, irm2_start=0, tem_t=12.25, irm64_steps=4, irm64_samples=2,
                                tem_steps=2, seed=5)
    with pytest.raises(S.SettingsError, match="irm_start must be a number from 0 to 1000; got 1500"):
        settings_from_ui(DIFFBFR, [1500, -3, 12.25, 3.6, 4, None, 2, 5, 0.0])   # refused, never clamped
    assert identity_meaning(None).startswith("n/a")
    assert "same person" in identity_meaning(0.3) and "drifted" in identity_meaning(0.9)


def test_weights_notice_follows_the_manifest():
    shipped = methods.load(ROOT / "weights" / "diffbfr", device="cpu")
    shipped.card = {**shipped.card, "beats_bicubic": False}
    assert "worse than plain bicubic" in weights_notice(shipped)
    shipped.card = {**shipped.card, "beats_bicubic": True}
    assert weights_notice(shipped) == ""
    assert "random tiny networks" in weights_notice(methods.tiny("diffbfr"))


def folder_bytes(files: AppFiles) -> int:
    return sum(f.stat().st_size for f in files.outdir.rglob("*") if f.is_file())


def test_results_folder_is_bounded_by_size(tmp_path):
    files = AppFiles([], max_bytes=200_000)
    img = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)  # ~120 kB as PNG
    paths = [files.write(f"p{i}.png", img) for i in range(4)]
    for k, p in enumerate(paths):  # age them so the oldest may go
        os.utime(p, (1000 + k, 1000 + k))
    files.write("new.png", img)
    assert folder_bytes(files) <= 200_000 + 130_000   # the newest file always stays
    assert not Path(paths[0]).exists() and Path(paths[-1]).parent.exists()


def test_results_folder_is_walked_only_past_its_bound(tmp_path, monkeypatch):
    """A slider move writes a file per face and stage: under the bound no write walks the
    folder; past it one walk deletes the oldest files."""
    files = AppFiles([], max_bytes=200_000)
    img = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)  # ~120 kB as PNG
    walks = []
    rglob = Path.rglob
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: walks.append(pattern) or rglob(self, pattern))
    first = files.write("a.png", img)
    assert walks == [] and files.bytes_estimate == Path(first).stat().st_size
    os.utime(first, (1000, 1000))
    files.write("b.png", img)   # over the bound: one walk, the old file and its folder go
    assert walks == ["*.png"] and not Path(first).exists()
    assert files.bytes_estimate == folder_bytes(files) <= 200_000


def test_build_demo_has_the_pieces(model, tmp_path, monkeypatch):
    import gradio as gr
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))   # the examples' copies
    demo = app_module.build_demo(AppState({"diffbfr": model}))
    types = {type(b).__name__ for b in demo.blocks.values()}
    assert {"PhotoInput", "ImageSlider", "Gallery", "Slider", "Checkbox", "Button", "DownloadButton"} <= types
    sliders = {b.elem_id for b in demo.blocks.values() if type(b).__name__ == "Slider"}
    # generated from the settings dataclass (and the method's simple control), not listed by hand
    expected = {f"{n}-{k.name}" for n, m in methods.METHODS.items() for k in S.knobs(m.settings)}
    expected |= {f"{n}-simple" for n, m in methods.METHODS.items() if m.simple is not None}
    assert sliders == expected and "diffbfr-tem_t" in sliders
    api = demo.get_api_info()["named_endpoints"]
    assert list(api) == ["/restore"]   # the internal per-slider events are private
    assert isinstance(demo, gr.Blocks) and demo.delete_cache is not None
    assert app_module.parse_args(["--share", "--port", "7000", "--tiny"]).share


def test_create_app_loads_shipped_weights_and_falls_back(tmp_path):
    real = app_module.create_app(ROOT / "weights", device="cpu")
    assert set(real.restorers) == {"diffbfr"} and real.models["diffbfr"].label == ""
    empty = app_module.create_app(tmp_path, device="cpu")
    assert "random tiny networks" in empty.models["diffbfr"].label


def test_restore_pressed_while_the_upload_is_still_decoding(handlers):
    """Restore with no session state yet but a photo in the box: decode it, don't say 'no photo'."""
    copy = _upload("late.png")
    copy.write_bytes(FACE.read_bytes())
    (up, status, pair, *_), _ = call(handlers.on_restore, None, path=str(copy))
    assert up is not None and up.name == "late" and "restored 1 face" in status and pair is not None


def test_failed_upload_clears_the_photo_box(handlers):
    bad = _upload("broken.png")
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out, _ = _quiet(handlers.on_image, str(bad))
    assert out[0] is None and out[-1] == {"__type__": "update", "value": None}


def test_output_scale_and_before_image_match(handlers):
    up = _quiet(handlers.on_image, str(FACE))[0][0]
    (up, status, pair, *_), _ = call(handlers.on_restore, up, scale="2")
    assert _img(pair[0]).shape == _img(pair[1]).shape == (256, 256, 3) and "Output 2x" in status


def test_simple_control_moves_the_expert_sliders_coherently(handlers):
    updates = handlers.on_simple("diffbfr", 100)
    set_ = {k.name: u["value"] for (m, k), u in zip(handlers.layout, updates) if isinstance(u, dict) and "value" in u}
    assert set_ == {"irm_start": 400.0, "irm2_start": 200.0, "tem_t": 100.0, "tem_steps": 10, "irm64_samples": 1}
    # below the default position the counts stay at their defaults; above it TEM's steps grow and
    # stage 1 averages fewer samples (more of what the noise invents)
    assert DIFFBFR.simple.apply(0)["tem_steps"] == DiffBFRSettings().tem_steps < DIFFBFR.simple.apply(55)["tem_steps"]
    assert DIFFBFR.simple.apply(0)["irm64_samples"] == DiffBFRSettings().irm64_samples > \
        DIFFBFR.simple.apply(55)["irm64_samples"]
    default = DIFFBFR.simple.apply(DIFFBFR.simple.default)
    assert default == {k: getattr(DiffBFRSettings(), k) for k in default}   # the default position = defaults


def test_api_endpoint_function(handlers, tmp_path):
    photo = tmp_path / "portrait.png"
    photo.write_bytes(FACE.read_bytes())
    restored, gallery, record = handlers.api_restore(str(photo), "diffbfr", True, '{"tem_t": 12, "irm64_steps": 1}')
    assert Path(restored).name == "portrait_restored.png" and _img(restored).shape == (128, 128, 3)
    assert len(gallery) == 4 and record["settings"]["tem_t"] == 12.0 and record["faces"][0]["index"] == 1
    import gradio as gr
    with pytest.raises(gr.Error, match="no setting"):
        handlers.api_restore(str(photo), "diffbfr", True, '{"bogus": 1}')


def test_auto_sets_each_face_and_says_why(model, tmp_path, monkeypatch):
    from diffbfr.auto import CALIBRATION_FILE, Auto, Calibration, Estimator
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    auto = Auto(Estimator.tiny(), Calibration.load(ROOT / "weights" / "diffbfr" / CALIBRATION_FILE))
    h = Handlers(AppState({"diffbfr": model}, autos={"diffbfr": auto}), [])
    up = _quiet(h.on_image, str(FACE))[0][0]
    (up, status, *_), _ = call(h.on_restore, up, auto=True)
    assert "→ Auto: irm_start" in status
    face = up.last[0].faces[0]
    assert face.auto is not None and face.settings != DiffBFRSettings(irm64_steps=1, irm128_steps=1, tem_steps=1)
    assert {k: getattr(face.settings, k) for k in auto.calibration.fields} == \
        {k: getattr(face.auto.settings, k) for k in auto.calibration.fields}
    (up, status2, *_), _ = call(h.on_tune, up, auto=False)      # manual again: the sliders' values
    assert "→ Auto" not in status2 and "Auto is off" in status2 and up.last[0].faces[0].auto is None


def test_uncertainty_view_after_a_restore(handlers):
    assert _quiet(handlers.on_uncertainty, None, progress=_noprogress)[0] == ([], "")
    up = _quiet(handlers.on_image, str(FACE))[0][0]
    (up, *_), _ = call(handlers.on_restore, up)
    (items, text), _ = _quiet(handlers.on_uncertainty, up, progress=_noprogress)
    assert len(items) == 2 and items[0][0].shape == (256, 256, 3) and "grey levels" in text


def test_app_runs_panini_on_tiny_networks_and_shows_its_decision(model, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    h = Handlers(AppState({"diffbfr": model, "panini": methods.tiny("panini")}), [])
    up = _quiet(h.on_image, str(FACE))[0][0]
    (up, status, pair, _, gallery, ident, *_), _ = call(h.on_restore, up, choice="both")
    assert "DiffBFR: restored 1 face" in status and "Panini-Net: restored 1 face" in status
    assert len(gallery) == 4 + 2 and "share taken from the learned face prior" in ident
    assert [r.method for r in up.last] == ["diffbfr", "panini"]


def test_api_uploads_are_deleted_after_a_grace_period(handlers):
    """Identical API uploads share one file while queued: the first request must not delete it."""
    shared = _upload("same.png")
    shared.write_bytes(np.asarray(Image.open(FACE)).tobytes()[:10] + b"x")   # any upload bytes
    handlers.files.discard_upload(str(shared), grace=True)
    assert shared.exists() and shared.resolve() in handlers.files.pending
    os.utime(shared, (0, 0))                                  # older than the grace period
    handlers.files.prune()
    assert not shared.exists() and not handlers.files.pending
    assert ui_files.API_UPLOAD_GRACE_S >= 60


def test_bad_upload_message_stays_when_the_photo_box_is_cleared(handlers):
    """A failed upload clears the Photo box; the box's change event that follows (no photo, no
    session) must keep the error on screen, not blank it."""
    bad = _upload("cut.jpg")
    bad.write_bytes(FACE.read_bytes()[:200])
    (up, status, *_), _ = _quiet(handlers.on_image, str(bad))
    assert up is None and status.startswith("⚠️")
    assert all(_is_skip(v) for v in _quiet(handlers.on_image, None, None)[0])
    # a photo the user removes himself still clears its message
    (up, *_), _ = _quiet(handlers.on_image, str(FACE))
    (up2, status2, *_), _ = _quiet(handlers.on_image, None, up)
    assert up2 is None and status2 == ""


def _paths_in(texts, root: Path) -> list[str]:
    """Server paths in user-facing text: the repository, the weights folder, network files."""
    bad = [str(root), str(root / "weights"), "weights/", ".safetensors", "/work/", "/tmp/"]
    return [f"{b!r} in {t!r}" for t in texts for b in bad if b in str(t)]


def test_untrained_method_says_so_in_plain_words_without_paths(model, tmp_path, monkeypatch):
    """Panini-Net is shipped untrained: choosing it says so in plain words, with no server path
    in the status, the toasts, the page's texts or the API; the DiffBFR result goes away and
    comes back (rerun) when DiffBFR is chosen again."""
    import gradio as gr
    import json
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    real = app_module.create_app(ROOT / "weights", device="cpu")
    assert "panini" in real.unavailable and "panini" not in real.restorers
    h = Handlers(AppState({"diffbfr": model}, real.unavailable), [])
    texts = [*real.unavailable.values(), *(label for label, _ in ui_page.method_choices(real)),
             *(weights_notice(m) for m in real.models.values())]
    up = _quiet(h.on_image, str(FACE))[0][0]
    (up, status, pair, *_), warned = call(h.on_restore, up)
    assert pair is not None
    texts += [status, *warned]

    out = _quiet(h.on_method, up, "panini")[0]
    vis = {k: v for k, v in zip(h.method_outputs, out)}
    assert "not trained" in vis["status"] and vis["result"] is None and vis["gallery"] == []
    assert vis["auto"]["visible"] is False and vis["diffbfr-simple"]["visible"] is False
    texts.append(vis["status"])
    (up, status, pair, download, gallery, ident, files, picker, preview), warned = \
        call(h.on_tune, up, choice="panini")
    assert "Panini-Net" in status and "not trained" in status and warned
    assert pair is None and gallery == [] and ident == "" and not download["visible"] and not files["visible"]
    assert up.restored and not up.last   # nothing of DiffBFR's left to map
    texts += [status, *warned]
    (up, status, pair, *_), _ = call(h.on_tune, up, choice="diffbfr")   # back: DiffBFR's result again
    assert "DiffBFR: restored 1 face" in status and pair is not None
    assert _quiet(h.on_method, up, "diffbfr")[0][h.method_outputs.index("auto")]["visible"] is False  # tiny: no Auto

    photo = tmp_path / "portrait.png"
    photo.write_bytes(FACE.read_bytes())
    with pytest.raises(gr.Error) as err:
        h.api_restore(str(photo), "panini", True, "{}")
    texts.append(str(err.value))
    photo.write_bytes(FACE.read_bytes())
    texts.append(json.dumps(h.api_restore(str(photo), "diffbfr", True, '{"irm64_steps": 1}')[2]))
    assert _paths_in(texts, ROOT) == []
    fallback = app_module.create_app(tmp_path / "nothing here", device="cpu")
    assert str(tmp_path) not in fallback.models["diffbfr"].label


def test_method_switch_shows_only_that_methods_controls(model, tmp_path, monkeypatch):
    from diffbfr.auto import CALIBRATION_FILE, Auto, Calibration, Estimator
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    auto = Auto(Estimator.tiny(), Calibration.load(ROOT / "weights" / "diffbfr" / CALIBRATION_FILE))
    h = Handlers(AppState({"diffbfr": model, "panini": methods.tiny("panini")}, autos={"diffbfr": auto}), [])
    seen = {}
    for choice in ("diffbfr", "panini", "both"):
        out = dict(zip(h.method_outputs, _quiet(h.on_method, None, choice)[0]))
        seen[choice] = {k for k in ("auto", "diffbfr-simple", "panini-simple") if out[k]["visible"]}
        assert out["result"] is None and out["gallery"] == [] and out["identity"] == ""
    assert seen == {"diffbfr": {"auto", "diffbfr-simple"}, "panini": {"panini-simple"},
                    "both": {"auto", "diffbfr-simple", "panini-simple"}}
    demo = app_module.build_demo(h.app)
    auto_box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "auto")
    assert auto_box.visible   # DiffBFR, the first method, has Auto


def test_intro_is_short_and_the_rest_is_folded(model, tmp_path, monkeypatch):
    """The page opens on the photo and the Restore button: one intro line, the rest in a closed
    accordion (the browser test measures the fold)."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))   # the examples' copies
    demo = app_module.build_demo(AppState({"diffbfr": model}))
    about = [b for b in demo.blocks.values() if type(b).__name__ == "Accordion" and "About" in b.label]
    assert len(about) == 1 and about[0].open is False
    assert len(ui_page.INTRO.strip().splitlines()) <= 2


def test_sessions_hold_a_key_and_the_photos_are_bounded_in_one_store(handlers, tmp_path):
    """A tab's State holds no photo (Gradio keeps a closed tab's State for an hour): the decoded
    photos live in one store, bounded in bytes; a tab whose photo was dropped is told in words."""
    from ui.session import GONE, UploadStore
    up = _quiet(handlers.on_image, str(ROOT / "examples" / "astronaut.jpg"))[0][0]
    assert up.size == (512, 512) and not any(isinstance(v, np.ndarray) for v in vars(up).values())
    (up, status, pair, *_), _ = call(handlers.on_restore, up, aligned=False)
    assert "restored 1 face" in status and pair is not None
    one = 128 * 128 * 3   # nothing photo-sized in the State: neither the result nor the input
    assert up.last and max(a.nbytes for a in _arrays(up)) <= one
    handlers.app.uploads = store = UploadStore(max_bytes=2 * one)   # room for two photos
    photos = []
    for seed in range(3):
        p = tmp_path / f"p{seed}.png"
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (128, 128, 3), np.uint8)).save(p)
        photos.append(_quiet(handlers.on_image, str(p))[0][0])
    assert len(store) == 2 and store.bytes == 2 * one
    photos[0].restored = True   # as after a Restore: a slider moved reruns
    (state, status, *_), warned = call(handlers.on_tune, photos[0])
    assert state is None and status == f"⚠️ {GONE}" and warned   # the oldest went first
    (state, status, *_), _ = call(handlers.on_restore, photos[2])
    assert state is photos[2] and "restored" in status          # the newest is still there


def _arrays(obj, depth=0):
    """Every numpy array an object holds, a few levels deep."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif depth < 6 and isinstance(obj, (list, tuple, dict)) or hasattr(obj, "__dict__"):
        items = obj.values() if isinstance(obj, dict) else vars(obj).values() if hasattr(obj, "__dict__") else obj
        for v in items:
            yield from _arrays(v, depth + 1)
