"""The app's photo callbacks (ui/handlers.py) with random tiny networks: uploads, Restore,
live tuning from the cache, the example warm-up, the uncertainty map, Auto, both methods, the
sessions' photo store, the API's callback. Aligned-face mode gives deterministic face counts.
The page and what it shows: test_app_page.py; the files on disk: test_app_files.py."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffbfr import methods
from diffbfr.methods import DiffBFRSettings
from tests.app_calls import (
    FACE,
    ROOT,
    app_handlers,
    call,
    is_skip,
    noprogress,
    quiet,
    read_png,
    restore_api,
    uploaded_path,
)
from ui import state as ui_state
from ui.handlers import Handlers, knob_layout
from ui.outputs import LOAD, outputs
from ui.state import AppState
from ui.warm_up import warm_examples


@pytest.fixture(scope="module")
def model():
    return methods.tiny("diffbfr")


@pytest.fixture
def handlers(model, tmp_path, monkeypatch):
    return app_handlers(model, tmp_path, monkeypatch)


@pytest.mark.parametrize("content", [b"not an image at all", b""])
def test_bad_upload_is_a_message_and_is_deleted(handlers, content):
    bad = uploaded_path("bad.jpg")
    bad.write_bytes(content)
    (state, status, *_rest), warned = quiet(handlers.on_image, str(bad))
    assert state is None and status.startswith("⚠️") and warned
    assert not bad.exists()  # an unusable upload is not kept either


def test_restore_without_upload(handlers):
    (state, status, *_), warned = call(handlers.on_restore, None)
    assert state is None and "No photo loaded" in status and warned
    assert all(is_skip(v) for v in call(handlers.on_tune, None)[0])


def test_restore_tune_download_name_and_upload_cleanup(handlers):
    upload = uploaded_path("holiday photo.png")
    Image.open(FACE).save(upload, compress_level=1)  # an example's pixels, other bytes: an upload
    (up, status, *_), _ = quiet(handlers.on_image, str(upload))
    assert up is not None and "Press **Restore**" in status and up.name == "holiday photo"
    assert all(is_skip(v) for v in call(handlers.on_tune, up)[0])

    (up, status, pair, download, gallery, ident, files, *_), _ = call(handlers.on_restore, up, path=str(upload))
    assert "restored 1 face" in status and len(gallery) == 4
    assert read_png(pair[0]).shape == read_png(pair[1]).shape == (128, 128, 3)
    assert Path(download["value"]).name == "holiday_photo_restored.png" and download["visible"]
    assert "Identity distance" in ident and "does not mean the face got better" not in ident  # tiny: no card
    assert [Path(f).name for f in files["value"]] == ["holiday_photo_face1_restored.png",
                                                       "holiday_photo_face1_stages.png"]
    assert not upload.exists(), "the upload must not stay on disk after the result"

    (up, status, pair2, _, gallery2, *_), _ = call(handlers.on_tune, up, path=str(upload), tem_t=44.5)
    assert "reused from cache: IRM 64, IRM 128" in status and pair2[0] == pair[0]
    assert np.array_equal(gallery2[2][0], gallery[2][0]) and not np.array_equal(gallery2[3][0], gallery[3][0])


def test_example_copies_are_not_deleted(handlers):
    copy = uploaded_path(FACE.name)
    copy.write_bytes(FACE.read_bytes())
    (up, *_), _ = quiet(handlers.on_image, str(copy))
    call(handlers.on_restore, up, path=str(copy))
    assert copy.exists()


def test_warmed_example_is_shown_from_the_cache(handlers):
    """The background warm-up restores each example at the page's defaults; picking it (the
    Examples click runs on_restore with the page's inputs) then runs no network."""
    path = str(FACE)
    assert ui_state.example_rows() and (path, True) in ui_state.example_rows()
    restorer = handlers.app.restorers["diffbfr"]
    assert warm_examples(handlers, [(path, True)]) == 1
    misses = restorer.stages.misses
    defaults = [k.default for _, k in knob_layout()]
    (up, status, pair, *_), _ = quiet(handlers.on_restore, None, path, True, "diffbfr", "auto", False, False,
                                       *defaults, progress=noprogress)
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
            seen.append(handlers.in_flight.count)  # the warm-up: must only run with no person served
        return real(*a, **k)
    monkeypatch.setattr(restorer, "restore", restore)
    photo = tmp_path / "portrait.png"
    photo.write_bytes(FACE.read_bytes())
    api = threading.Thread(target=restore_api(handlers).restore, args=(str(photo), "diffbfr", True, "{}"))
    api.start()
    assert in_api.wait(10)
    warm = threading.Thread(target=warm_examples, args=(handlers, [(str(FACE), True)], 0.02))
    warm.start()
    warm.join(0.5)
    assert warm.is_alive() and seen == []   # waiting for the API call
    release.set()
    api.join(30)
    warm.join(30)
    assert seen == [0] and handlers.in_flight.count == 0


def test_no_face_photo_has_no_slider_and_no_download(handlers, tmp_path):
    p = tmp_path / "wall.png"
    Image.new("RGB", (160, 120), (120, 130, 140)).save(p)
    (up, *_), _ = quiet(handlers.on_image, str(p))
    (up, status, pair, download, gallery, ident, files, *_), warned = call(handlers.on_restore, up, aligned=False)
    assert "No face restored" in status and "No face found" in status and warned
    assert pair is None and download["visible"] is False and gallery == [] and ident == ""
    assert files["visible"] is False


def test_restore_pressed_while_the_upload_is_still_decoding(handlers):
    """Restore with no session state yet but a photo in the box: decode it, don't say 'no photo'."""
    copy = uploaded_path("late.png")
    copy.write_bytes(FACE.read_bytes())
    (up, status, pair, *_), _ = call(handlers.on_restore, None, path=str(copy))
    assert up is not None and up.name == "late" and "restored 1 face" in status and pair is not None


def test_failed_upload_clears_the_photo_box(handlers):
    bad = uploaded_path("broken.png")
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out, _ = quiet(handlers.on_image, str(bad))
    assert out[0] is None and out[-1] == {"__type__": "update", "value": None}


def test_output_scale_and_before_image_match(handlers):
    up = quiet(handlers.on_image, str(FACE))[0][0]
    (up, status, pair, *_), _ = call(handlers.on_restore, up, scale="2")
    assert read_png(pair[0]).shape == read_png(pair[1]).shape == (256, 256, 3) and "Output 2x" in status


def test_api_endpoint_function(handlers, tmp_path):
    photo = tmp_path / "portrait.png"
    photo.write_bytes(FACE.read_bytes())
    restored, gallery, record = restore_api(handlers).restore(str(photo), "diffbfr", True, '{"tem_t": 12, "irm64_steps": 1}')
    assert Path(restored).name == "portrait_restored.png" and read_png(restored).shape == (128, 128, 3)
    assert len(gallery) == 4 and record["settings"]["tem_t"] == 12.0 and record["faces"][0]["index"] == 1
    import gradio as gr
    with pytest.raises(gr.Error, match="no setting"):
        restore_api(handlers).restore(str(photo), "diffbfr", True, '{"bogus": 1}')


def test_auto_sets_each_face_and_says_why(model, tmp_path, monkeypatch):
    from diffbfr.auto import CALIBRATION_FILE, Auto, Calibration, Estimator
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    auto = Auto(Estimator.tiny(), Calibration.load(ROOT / "weights" / "diffbfr" / CALIBRATION_FILE))
    h = Handlers(AppState({"diffbfr": model}, autos={"diffbfr": auto}), [])
    up = quiet(h.on_image, str(FACE))[0][0]
    (up, status, *_), _ = call(h.on_restore, up, auto=True)
    assert "→ Auto: irm_start" in status
    face = up.last[0].faces[0]
    assert face.auto is not None and face.settings != DiffBFRSettings(irm64_steps=1, irm128_steps=1, tem_steps=1)
    assert {k: getattr(face.settings, k) for k in auto.calibration.fields} == \
        {k: getattr(face.auto.settings, k) for k in auto.calibration.fields}
    (up, status2, *_), _ = call(h.on_tune, up, auto=False)      # manual again: the sliders' values
    assert "→ Auto" not in status2 and "Auto is off" in status2 and up.last[0].faces[0].auto is None


def test_uncertainty_view_after_a_restore(handlers):
    assert quiet(handlers.on_uncertainty, None, progress=noprogress)[0] == ([], "")
    up = quiet(handlers.on_image, str(FACE))[0][0]
    (up, *_), _ = call(handlers.on_restore, up)
    (items, text), _ = quiet(handlers.on_uncertainty, up, progress=noprogress)
    assert len(items) == 2 and items[0][0].shape == (256, 256, 3) and "grey levels" in text


def test_app_runs_panini_on_tiny_networks_and_shows_its_decision(model, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    h = Handlers(AppState({"diffbfr": model, "panini": methods.tiny("panini")}), [])
    up = quiet(h.on_image, str(FACE))[0][0]
    (up, status, pair, _, gallery, ident, *_), _ = call(h.on_restore, up, choice="both")
    assert "DiffBFR: restored 1 face" in status and "Panini-Net: restored 1 face" in status
    assert len(gallery) == 4 + 2 and "share taken from the learned face prior" in ident
    assert [r.method for r in up.last] == ["diffbfr", "panini"]


def test_bad_upload_message_stays_when_the_photo_box_is_cleared(handlers):
    """A failed upload clears the Photo box; the box's change event that follows (no photo, no
    session) must keep the error on screen, not blank it."""
    bad = uploaded_path("cut.jpg")
    bad.write_bytes(FACE.read_bytes()[:200])
    (up, status, *_), _ = quiet(handlers.on_image, str(bad))
    assert up is None and status.startswith("⚠️")
    assert all(is_skip(v) for v in quiet(handlers.on_image, None, None)[0])
    # a photo the user removes himself still clears its message
    (up, *_), _ = quiet(handlers.on_image, str(FACE))
    (up2, status2, *_), _ = quiet(handlers.on_image, None, up)
    assert up2 is None and status2 == ""


def test_sessions_hold_a_key_and_the_photos_are_bounded_in_one_store(handlers, tmp_path):
    """A tab's State holds no photo (Gradio keeps a closed tab's State for an hour): the decoded
    photos live in one store, bounded in bytes; a tab whose photo was dropped is told in words."""
    from ui.session import GONE, UploadStore
    up = quiet(handlers.on_image, str(ROOT / "examples" / "astronaut.jpg"))[0][0]
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
        photos.append(quiet(handlers.on_image, str(p))[0][0])
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
