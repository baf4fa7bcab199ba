"""A grey photo gives grey outputs everywhere (issue #30, items 5 and 6): the pasted photo,
every stage image, every download, at every setting of both methods; "grey" includes nearly
grey scans (channels differing by up to ~20 levels), not only exactly grey ones. Tiny random
networks: they paint colour noise, so a stage that is not made grey fails here."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffbfr import methods
from diffbfr import settings as S
from diffbfr.auto import Auto, Calibration, Estimator
from diffbfr.grey import chroma, is_nearly_grey
from diffbfr.imageio import load_image
from diffbfr.photo import PhotoOptions, PhotoRestorer

ROOT = Path(__file__).resolve().parent.parent
FACE = ROOT / "examples" / "astronaut_face_aligned.png"
FAST = {"irm64_steps": 1, "irm128_steps": 1, "tem_steps": 1}


def tinted_scan(path=FACE, levels: int = 20) -> np.ndarray:
    """A grey print scanned with a warm tint growing to `levels` red-blue, saved as JPEG: its
    channels differ by up to ~`levels`, as in the issue's 276x182 photo."""
    g = np.asarray(Image.open(path).convert("L")).astype(np.float32)
    tint = np.linspace(0.0, 1.0, g.shape[1])[None, :] * levels / 2
    rgb = np.stack([g + tint, g + tint / 5, g - tint], axis=2).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=85)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _is_grey(img) -> bool:
    return int(chroma(np.asarray(img)).max()) == 0


def test_nearly_grey_scans_count_as_grey_and_colour_photos_do_not():
    scan = tinted_scan()
    assert 10 <= chroma(scan).max() <= 24 and not _is_grey(scan)
    assert is_nearly_grey(scan)
    loaded = load_image(scan)
    assert loaded.was_grey and _is_grey(loaded.rgb) and any("nearly black and white" in n for n in loaded.notices)
    for colour in ("astronaut.jpg", "two_people.jpg", "hopper_small.jpg", "composite_portraits.jpg"):
        assert not is_nearly_grey(np.asarray(Image.open(ROOT / "examples" / colour).convert("RGB"))), colour


def _settings_grid(model):
    """Every way a person can set the method: the fidelity slider's ends and default, and the
    expert knobs at their range's ends."""
    method, limits = model.method, model.knob_limits()
    grid = [S.validate(method.settings, {}, limits)]
    if method.simple is not None:
        grid += [S.clamp(method.settings, method.simple.apply(p, limits), limits) for p in (0, 100)]
    lo_hi = {k.name: S.value_range(k, limits) for k in S.knobs(method.settings)
             if k.name not in ("seed",) and not k.name.endswith(("_steps", "_samples"))}
    grid.append(S.validate(method.settings, {n: hi for n, (_, hi) in lo_hi.items()}, limits))
    return [s if not set(FAST) <= set(S.to_dict(s)) else
            S.validate(method.settings, {**S.to_dict(s), **FAST}, limits) for s in grid]


@pytest.mark.parametrize("name", ["diffbfr", "panini"])
def test_grey_in_grey_out_at_every_setting(name):
    model = methods.tiny(name)
    auto = Auto(Estimator.tiny(), Calibration("diffbfr", (0.0, 1.0), {"irm_start": [100.0, 300.0]})) \
        if name == "diffbfr" else None
    restorer = PhotoRestorer(model, cache_size=64, identity=False, auto=auto)
    scan = tinted_scan()
    runs = [(s, False) for s in _settings_grid(model)] + ([(_settings_grid(model)[0], True)] if auto else [])
    for s, use_auto in runs:
        result = restorer.restore(scan, s, PhotoOptions(aligned=True, auto=use_auto))   # the Python API: no loader
        assert _is_grey(result.image), (name, s)
        for face in result.faces:
            for stage, img in face.stages.images.items():
                assert _is_grey(img), (name, s, stage)
            assert _is_grey(face.stage_strip(model.method))


def test_app_downloads_and_gallery_of_a_grey_photo_are_grey(tmp_path, monkeypatch):
    from ui.handlers import Handlers, knob_layout
    from ui.state import AppState
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    h = Handlers(AppState({"diffbfr": methods.tiny("diffbfr"), "panini": methods.tiny("panini")},
                          identity=False), [])
    photo = tmp_path / "scan.jpg"
    Image.fromarray(tinted_scan()).save(photo, quality=95)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        up = h.on_image(str(photo))[0]
        values = [{**FAST}.get(k.name, k.default) for _, k in knob_layout()]
        out = h.on_restore(up, None, True, "both", "1", False, False, *values, progress=lambda *a, **k: None)
    _, status, (before, after), _, gallery, _, face_files, *_ = out
    assert "nearly black and white" in status
    assert _is_grey(Image.open(after).convert("RGB")) and _is_grey(Image.open(before).convert("RGB"))
    assert len(gallery) == 6 and all(_is_grey(img) for img, _ in gallery)
    files = face_files["value"]
    assert len(files) == 4 and all(_is_grey(Image.open(f).convert("RGB")) for f in files)


def test_cli_outputs_of_a_nearly_grey_scan_are_grey(tmp_path):
    from diffbfr.cli import main
    src = tmp_path / "scan.jpg"
    Image.fromarray(tinted_scan()).save(src, quality=95)
    out = tmp_path / "out"
    assert main(["-i", str(src), "-o", str(out), "--tiny", "--aligned", "--tem-t", "100"]) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 2 and all(_is_grey(Image.open(p).convert("RGB")) for p in pngs)
