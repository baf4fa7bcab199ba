"""What the app's tests share: tiny-network handlers, their photo callbacks called with every
input the page wires to them, and small readers of what they return."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from diffbfr import methods
from ui import state as ui_state
from ui.handlers import Handlers, knob_layout
from ui.restore_api import RestoreAPI
from ui.state import AppState

ROOT = Path(__file__).resolve().parent.parent
FACE = ROOT / "examples" / "astronaut_face_aligned.png"
DIFFBFR = methods.get("diffbfr")


def app_handlers(model, tmp_path: Path, monkeypatch) -> Handlers:
    """The page's callbacks over one tiny model, identity on, the examples listed, the app's
    files under tmp_path (the `handlers` fixture of the app's tests)."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    return Handlers(AppState({"diffbfr": model}, identity=True), ui_state.example_files())


def restore_api(h: Handlers) -> RestoreAPI:
    """The one-call API beside these handlers, as the page makes it (their files and count of requests)."""
    return RestoreAPI(h.app, h.files, h.in_flight)


def values(**changes) -> list:
    """Every slider's value in the handlers' order: fast steps for the tiny networks."""
    fast = {"irm64_steps": 1, "irm128_steps": 1, "tem_steps": 1, **changes}
    return [fast.get(k.name, k.default) for _, k in knob_layout()]


def call(fn, up, aligned=True, path=None, scale="1", choice="diffbfr", thorough=False, auto=False, **changes):
    """A photo callback with every input the app wires to it."""
    return quiet(fn, up, path, aligned, choice, scale, thorough, auto, *values(**changes), progress=noprogress)


def quiet(fn, *a, **k):
    with warnings.catch_warnings(record=True) as w:   # gr.Warning outside a server -> warnings
        warnings.simplefilter("always")
        return fn(*a, **k), [str(x.message) for x in w]


def noprogress(*_a, **_k):
    pass


def read_png(path) -> np.ndarray:
    assert str(path).endswith(".png")   # lossless
    return np.asarray(Image.open(path).convert("RGB"))


def is_skip(v) -> bool:
    return isinstance(v, dict) and v.get("__type__") == "update" and len(v) == 1


def uploaded_path(name: str) -> Path:
    from gradio.utils import get_upload_folder
    path = Path(get_upload_folder()) / os.urandom(4).hex() / name
    path.parent.mkdir(parents=True)
    return path
