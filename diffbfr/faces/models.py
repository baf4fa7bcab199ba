"""The dlib model files that pip packages ship, each loaded once per process.

`dlib-bin` has the HOG frontal face detector built in; `face-recognition-models` ships the
landmark predictors, the CNN (MMOD) face detector and the 128-D identity network as .dat
files. Nothing is downloaded at run time.
"""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import dlib

SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
IDENTITY_RESNET = "dlib_face_recognition_resnet_model_v1.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"


def model_path(name: str) -> Path:
    """Path of a model file shipped by `face-recognition-models`.

    The package's __init__ imports pkg_resources (deprecated, missing on new setuptools),
    so its folder is located with importlib instead of importing it.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-recognition-models is not installed: pip install face-recognition-models")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise RuntimeError(f"model file missing from face-recognition-models: {path}")
    return path


# dlib objects are costly to load (the 68-point model is ~100 MB) and safe to share for
# read-only use, so each is loaded once per process, on first use.
_lock = threading.Lock()
_cache: dict[str, object] = {}


def load_once(key: str, load):
    """The object cached under `key`, created by calling `load()` the first time."""
    with _lock:
        if key not in _cache:
            _cache[key] = load()
        return _cache[key]


def hog_detector():
    return load_once("hog", dlib.get_frontal_face_detector)


def cnn_detector():
    """dlib's CNN (MMOD) face detector: finds turned, tilted and soft faces that HOG misses,
    at ~50x HOG's cost per pixel on a CPU (see detect.py for how it is bounded)."""
    return load_once("cnn", lambda: dlib.cnn_face_detection_model_v1(str(model_path(CNN_DETECTOR))))


def shape_predictor_68():
    return load_once("sp68", lambda: dlib.shape_predictor(str(model_path(SHAPE_68))))


def shape_predictor_5():
    return load_once("sp5", lambda: dlib.shape_predictor(str(model_path(SHAPE_5))))


def identity_network():
    return load_once("resnet", lambda: dlib.face_recognition_model_v1(str(model_path(IDENTITY_RESNET))))
