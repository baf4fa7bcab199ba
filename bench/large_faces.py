"""Large faces are never made worse: python -m bench.large_faces [--sizes 256,512,1024]
[--weights weights/diffbfr] [--no-auto] [--no-weights]

A face larger than the models' 128 px frame used to be replaced by its 128 px restoration,
upsampled: a sharp face came back blurred. paste_back(keep_detail=True), the default, pastes
only the change the restoration made (output = photo + warp(restored - aligned input)), so
detail finer than the frame stays the photo's own. Measured here on undegraded faces:

- sources: the largest face of scikit-image's astronaut (public domain) and of the real
  whole photos Blake_Lively.jpg, 06.png, 00b.jpg, 10045.png (when ../shared/data is there);
- each photo is resized so that the face's 128 px frame spans --sizes photo pixels (area
  filter down, cubic up: faces upsampled past their source are soft, not "sharp at 1024");
- restorations: "perfect-128", the aligned face returned unchanged, i.e. the best a 128 px
  model can return for an undegraded face; and "weights", the shipped networks as the app
  runs them: PhotoRestorer at the default settings with Auto on (--no-auto: off);
- each restoration is pasted with keep_detail on (default) and off, and the output compared
  with the input over the face region (the box around the face's frame in the photo):
  PSNR (dB, RGB) and SSIM (diffbfr.metrics: PSNR stops at its 60 dB cap, which an unchanged
  face reaches and, over a whole photo, so do the least-changed ones; shown as ">= 60").
  Target: perfect-128 with keep_detail >= 35 dB.
  Each photo is also measured "+grain" (fixed sigma-6 per-pixel grain added): detail at
  full resolution, which the upsampled sources lack.
- "weights" rows also give the whole photo's PSNR, output vs input, as the app returns it
  (keep_detail on). Target (issue 20): >= 38 dB for the real photos whose face frame spans
  >= 512 px, with Auto on.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import skimage.data

from diffbfr.metrics import PSNR_CAP, psnr, ssim
from diffbfr.faces.align import FRAME, AlignedFace, find_faces
from diffbfr.faces.paste import paste_back
from diffbfr.frame import transform_points

REAL = ("Blake_Lively.jpg", "06.png", "00b.jpg", "10045.png")
TARGET_DB = 35.0
WHOLE_TARGET_DB, WHOLE_MIN_SPAN = 38.0, 512


def sources() -> list[tuple[str, np.ndarray]]:
    from diffbfr.train.data import default_data_dir

    out = [("astronaut", skimage.data.astronaut())]
    for name in REAL:
        bgr = cv2.imread(str(default_data_dir() / "real" / "whole" / name), cv2.IMREAD_COLOR)
        if bgr is not None:
            out.append((name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return out


# The face region scored: the part of the 128 px frame that paste_back replaces fully
# (inside its feathered margin, paste.MASK_MARGIN + MASK_RAMP = 17 px), i.e. the face.
INNER = 17


def face_region(face: AlignedFace, hw: tuple[int, int]) -> tuple[slice, slice]:
    """Bounding box (clipped to the photo) of the frame's inner square, photo pixels."""
    inv = cv2.invertAffineTransform(face.matrix)
    lo, hi = INNER - 0.5, FRAME - INNER - 0.5
    corners = np.array([[lo, lo], [hi, lo], [lo, hi], [hi, hi]])
    pts = transform_points(inv, corners)
    x0, y0 = np.maximum(np.floor(pts.min(axis=0)).astype(int), 0)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
    return slice(y0, min(y1, hw[0])), slice(x0, min(x1, hw[1]))


def resized_for(photo: np.ndarray, face_size: float, target: float) -> np.ndarray:
    s = target / face_size
    h, w = photo.shape[:2]
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    return cv2.resize(photo, (round(w * s), round(h * s)), interpolation=interp)


def with_grain(photo: np.ndarray, sigma: float = 6.0, seed: int = 0) -> np.ndarray:
    """The photo plus fixed per-pixel grain: full-resolution detail (film grain, skin
    texture) that no 128 px frame can hold, for sources that are soft at this size."""
    noise = np.random.default_rng(seed).normal(0.0, sigma, photo.shape)
    return np.clip(np.rint(photo + noise), 0, 255).astype(np.uint8)


def load_restorer(weights: str | None, auto: bool = True):
    """restore(photo) -> (aligned faces, restored 128 px faces, the output photo), as the app
    restores it (default settings, Auto unless auto=False); or None with the reason."""
    if weights is None:
        return None, "--no-weights"
    try:
        from diffbfr import methods
        from diffbfr.auto import Auto
        from diffbfr.photo import PhotoOptions, PhotoRestorer

        model = methods.load(weights)
        restorer = PhotoRestorer(model, cache_size=0, identity=False,
                                 auto=Auto.for_method(weights, model.name) if auto else None)
    except Exception as exc:  # noqa: BLE001 -- report, don't crash
        return None, f"{type(exc).__name__}: {exc}"

    def restore(photo):
        result = restorer.restore(photo, options=PhotoOptions(auto=auto))
        return [f.aligned for f in result.faces], [f.stages.result for f in result.faces], result.image

    return restore, None


def score(photo, out, face) -> tuple[float, float]:
    ys, xs = face_region(face, photo.shape[:2])
    return psnr(out[ys, xs], photo[ys, xs]), ssim(out[ys, xs], photo[ys, xs])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256,512,1024", help="frame spans of the face, photo px")
    ap.add_argument("--weights", default="weights/diffbfr")
    ap.add_argument("--no-weights", action="store_true")
    ap.add_argument("--no-auto", action="store_true", help="the weights at fixed default settings")
    a = ap.parse_args(argv)
    sizes = [float(v) for v in a.sizes.split(",")]
    restore, why = load_restorer(None if a.no_weights else a.weights, auto=not a.no_auto)

    rows = []
    for name, photo0 in sources():
        faces, _ = find_faces(photo0)
        if not faces:
            print(f"{name}: no face found, skipped")
            continue
        largest = max(faces, key=lambda f: f.face_size)
        for target, grain in [(t, g) for t in sizes for g in (False, True)]:
            photo = resized_for(photo0, largest.face_size, target)
            if grain:
                photo = with_grain(photo)
            found, _ = find_faces(photo)
            if not found:
                continue
            face = max(found, key=lambda f: f.face_size)
            runs = [("perfect-128", found, [f.image for f in found], None)]
            if restore is not None:
                runs.append(("weights" + ("" if a.no_auto else ", Auto"), *restore(photo)))
            for kind, aligned, restored, whole in runs:
                if not aligned:
                    continue
                i = min(range(len(aligned)), key=lambda k: abs(aligned[k].face_size - face.face_size))
                row = [name + (" +grain" if grain else ""), aligned[i].face_size, kind, target]
                for keep in (True, False):
                    out = paste_back(photo, aligned, restored, keep_detail=keep)
                    row += list(score(photo, out, aligned[i]))
                rows.append(row + [None if whole is None or whole.shape != photo.shape else psnr(whole, photo)])

    fmt = (lambda p: "—" if p is None else f">= {PSNR_CAP:g} (the cap)" if p >= PSNR_CAP else f"{p:.2f}")
    print("| source | face frame span px | restoration | PSNR keep_detail dB | SSIM keep_detail "
          "| PSNR replace dB | SSIM replace | whole photo PSNR dB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, span, kind, _target, p1, s1, p0, s0, whole in rows:
        print(f"| {name} | {span:.0f} | {kind} | {fmt(p1)} | {s1:.4f} | {fmt(p0)} | {s0:.4f} | {fmt(whole)} |")
    # judged at the asked span (--sizes), not the re-detected one (509-514 px for 512)
    judged = [r[8] for r in rows if r[8] is not None and r[3] >= WHOLE_MIN_SPAN and r[0] in REAL]
    if judged:
        worst = min(judged)
        print(f"\nweights, real photos, face frame >= {WHOLE_MIN_SPAN} px: whole-photo PSNR worst {fmt(worst)} dB "
              f"({'meets' if worst >= WHOLE_TARGET_DB else 'MISSES'} the {WHOLE_TARGET_DB:.0f} dB target)")
    perfect = [r[4] for r in rows if r[2] == "perfect-128"]
    if perfect:
        worst = min(perfect)
        print(f"\nperfect-128 with keep_detail: worst PSNR {fmt(worst)} dB "
              f"({'meets' if worst >= TARGET_DB else 'MISSES'} the {TARGET_DB:.0f} dB target)")
    if restore is None:
        print(f"shipped weights not measured: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
