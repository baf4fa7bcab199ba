"""Helpers shared by the benches: method, weights and settings flags (from the registry), model loading,
reading and aligning faces, bicubic upsampling, contact sheets, tables. The per-face degradation
seed (face_seed) and the tables (markdown_table) are the Auto calibration's too: imported here
from diffbfr, not written again."""
from __future__ import annotations

import argparse
import csv
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from diffbfr import methods
from diffbfr import settings as S
from diffbfr.console import markdown_table  # noqa: F401 (benches read it here)
from diffbfr.faces.align import align_crop, find_faces
from diffbfr.frame import FRAME, is_square, resize_square
from diffbfr.imageio import IMAGE_SUFFIXES
from diffbfr.train.data import iter_faces
from diffbfr.train.degrade import face_seed  # noqa: F401 (benches read it here)



# ---------------------------------------------------------------- settings / model

def add_model_args(ap: argparse.ArgumentParser, argv=None) -> None:
    """--method, --weights, --tiny, --seed-independent flags, and the chosen method's settings
    (one flag per knob, e.g. --irm-start), generated from its settings dataclass."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", default="diffbfr", choices=sorted(methods.METHODS))
    method = methods.get(pre.parse_known_args(argv)[0].method)
    ap.add_argument("--method", default="diffbfr", choices=sorted(methods.METHODS),
                    help="which registered method to benchmark (default diffbfr)")
    ap.add_argument("--weights", default="weights",
                    help="weights root (one folder per method) or one method's folder")
    ap.add_argument("--tiny", action="store_true", help="random tiny networks (methods.tiny): tests only")
    S.add_arguments(ap, method.settings, f"{method.title} settings (the seed also bases the "
                                         "per-face degradation seeds)")
    if "seed" not in {k.name for k in S.knobs(method.settings)}:  # a deterministic method
        ap.add_argument("--seed", type=int, default=0, help="base of the per-face degradation seeds")


def method_of(a: argparse.Namespace) -> methods.Method:
    return methods.get(a.method)


def settings_from_args(a: argparse.Namespace):
    return S.from_arguments(method_of(a).settings, a)


def load_model(a: argparse.Namespace, device=None) -> methods.Model:
    """The model the bench flags (--method, --weights, --tiny) name."""
    return methods.model_for(a.method, a.weights, random_tiny=a.tiny, device=device)


def parse_sweep(spec: str, settings) -> tuple[str, list]:
    """'tem_t=0,2.5,10' -> ('tem_t', [0.0, 2.5, 10.0]) with the field's type."""
    return S.parse_sweep(type(settings), spec)


# ---------------------------------------------------------------- images and faces

def load_rgb(path: str | Path) -> np.ndarray:
    """Image file -> uint8 RGB (EXIF orientation applied, alpha dropped, grey expanded)."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def save_rgb(path: str | Path, img: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise SystemExit(f"not a folder: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


@dataclass
class FaceItem:
    name: str           # file name, "#k" appended for the k-th face (k >= 2) of a photo
    image: np.ndarray   # 128x128x3 uint8 in the canonical frame
    method: str         # "utk" | "detect" | "crop-fallback" | "crop"
    face_size: float    # source pixels spanned by the 128 px frame


def align_file(img: np.ndarray, mode: str = "detect") -> tuple[list[tuple[np.ndarray, str, float]], str | None]:
    """The alignment rule for folder images. Returns ([(face128, method, face_size)], reason).

    mode "detect": every face dlib finds -> align_face (via find_faces); if none is found
    and the image is square (sides within 1%) it is taken as an aligned crop ->
    align_crop(img, "auto") (FFHQ-style when >= 256 px, else UTKFace-style); a
    non-square image without a detected face is a failure, reported with the reason.
    mode "crop": every image is an aligned crop -> align_crop(img, "auto"), no detection.
    """
    if mode == "crop":
        a = align_crop(img, "auto")
        return [(a.image, "crop", a.face_size)], None
    faces, reason = find_faces(img)
    if faces:
        return [(f.image, "detect", f.face_size) for f in faces], None
    if is_square(img):
        a = align_crop(img, "auto")
        return [(a.image, "crop-fallback", a.face_size)], None
    return [], reason or "no face detected"


def folder_faces(folder, limit: int | None, mode: str = "detect", min_face: float = 0.0):
    """Aligned faces from a folder, files sorted by name, stopping after `limit` faces.
    Returns (faces, failures) with failures = [(file name, reason)]."""
    faces, failures = [], []
    for p in list_images(folder):
        if limit is not None and len(faces) >= limit:
            break
        try:
            img = load_rgb(p)
            found, reason = align_file(img, mode)
        except Exception as e:  # unreadable / odd file: counted, never silently dropped
            found, reason = [], f"{type(e).__name__}: {e}"
        if not found:
            failures.append((p.name, reason))
        for k, (face, method, size) in enumerate(found, 1):
            name = p.name if k == 1 else f"{p.name}#{k}"
            if size < min_face:
                failures.append((name, f"face spans {size:.0f} px < --min-face {min_face:g}"))
            elif limit is None or len(faces) < limit:
                faces.append(FaceItem(name, face, method, size))
    return faces, failures


def utk_test_faces(limit: int | None, data_dir=None):
    """The UTKFace test split (sorted by file name) through align_crop(img, "utk")."""
    faces = []
    for name, img in iter_faces(split="test", data_dir=data_dir, limit=limit):
        a = align_crop(img, "utk")
        faces.append(FaceItem(name, a.image, "utk", a.face_size))
    return faces, []


def up128(img: np.ndarray) -> np.ndarray:
    """Bicubic upsampling to the 128 px frame (how a 64 px stage is compared)."""
    return resize_square(img, FRAME, cv2.INTER_CUBIC)


# ---------------------------------------------------------------- output

def contact_sheet(rows: list[list[np.ndarray]], col_labels: list[str],
                  row_labels: list[str] | None = None, tile: int = 128) -> np.ndarray:
    """Grid of uint8 RGB tiles with a label header (and row labels under each row)."""
    pad, head = 4, 18
    n_cols = len(col_labels)
    foot = 14 if row_labels else 0
    h = head + len(rows) * (tile + pad + foot) + pad
    w = n_cols * (tile + pad) + pad
    sheet = np.full((max(h, head + pad), w, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for j, lab in enumerate(col_labels):
        cv2.putText(sheet, lab[:20], (pad + j * (tile + pad), 13), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for i, row in enumerate(rows):
        y = head + i * (tile + pad + foot)
        for j, img in enumerate(row[:n_cols]):
            t = img if img.shape[:2] == (tile, tile) else cv2.resize(img, (tile, tile), interpolation=cv2.INTER_NEAREST)
            sheet[y:y + tile, pad + j * (tile + pad):pad + j * (tile + pad) + tile] = t
        if row_labels:
            cv2.putText(sheet, row_labels[i][:60], (pad, y + tile + 11), font, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    return sheet


def write_csv(path: str | Path, rows: list[dict], fields: list[str]) -> None:
    """rows as CSV, only `fields`, in that order; None as an empty cell."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})


def mean_or_nan(values) -> float:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def finite_or_none(obj):
    """obj (dicts, lists) with NaN and inf floats as None: strict JSON has no NaN."""
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def fmt(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def median_time(fn, repeats: int, warmup: int, clock=time.perf_counter) -> float:
    """Median seconds of `repeats` calls of fn() after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)
