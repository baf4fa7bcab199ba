"""Measure the canonical 5-point template (TEMPLATE_128 in diffbfr/faces/align.py) on UTKFace,
and (--cnn-boxes) how the CNN detector frames faces relative to HOG (CNN_TO_HOG, faces/scan.py).

The models are trained on UTKFace crops resized to 128 px, so "aligned" has to mean
"framed like those crops". We run the app's own detector and landmarks over train
crops, map the 5 points into the 128 px frame, and take a robust mean.

    python tools/fit_template.py               # 5,000 random train crops (~4 min, 1 core)
    python tools/fit_template.py --n 0         # all 22,415 train crops (~17 min)
    python tools/fit_template.py --cnn-boxes 300   # CNN_TO_HOG in faces/scan.py (~4 min)

Only crops where the HOG detector itself found the face contribute, so the template
describes what detection + landmarks produce on real photos.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from diffbfr.train.data import default_data_dir, iter_faces, read_manifest  # noqa: E402
from diffbfr.faces.detect import DlibDetector, detect_faces  # noqa: E402
from diffbfr.faces.landmarks import landmarks68_on_chip, points5_from_68  # noqa: E402
from diffbfr.faces.scan import CNN_TO_HOG, cnn_pass, hog_pass  # noqa: E402

# The template describes HOG + landmarks (the CNN only runs when HOG finds nothing)
HOG_ONLY = DlibDetector(small_pixels=0, cnn_pixels=0)

FRAME = 128
POINT_NAMES = ("left eye", "right eye", "nose tip", "left mouth", "right mouth")


def sample_train_files(root: Path, n: int, seed: int) -> set[str] | None:
    """n random train crops, drawn in manifest order (n=0: all, i.e. no filter)."""
    names = [r["file"] for r in read_manifest(root) if r["split"] == "train"]
    if not n or n >= len(names):
        return None
    return {names[i] for i in np.random.default_rng(seed).choice(len(names), n, replace=False)}


def robust_mean(points: np.ndarray, k: float = 3.0):
    """Mean of the crops whose points are not outliers (median + k robust sigmas).

    A crop is judged by its RMS distance to the coordinate-wise median shape: a wrong
    landmark fit moves several points at once, so we drop the whole crop.
    """
    med = np.median(points, axis=0)
    dist = np.sqrt(((points - med) ** 2).sum(axis=2).mean(axis=1))
    mad = np.median(np.abs(dist - np.median(dist)))
    keep = dist <= np.median(dist) + k * 1.4826 * mad
    return points[keep].mean(axis=0), keep


def fit_cnn_boxes(root: Path, n: int, seed: int) -> int:
    """How MMOD boxes relate to HOG boxes of the same face, and what that does to landmarks.

    Each train crop is put on a flat canvas (1.5x its size, so neither detector meets the
    border) at two scales (face ~180 and ~90 px); where both detectors find exactly one
    face, the HOG box is expressed relative to the CNN box. Then the 5 points landmarked in
    the mapped CNN box are compared with those from the HOG box (in eye distances).
    """
    rel, err_raw, err_mapped, t0 = [], [], [], time.perf_counter()
    for k, (_, img) in enumerate(iter_faces("train", data_dir=root,
                                           files=sample_train_files(root, n, seed))):
        for scale in (1.0, 0.5):
            face = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            pad = face.shape[0] // 4
            canvas = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                        value=[int(v) for v in face.reshape(-1, 3).mean(0)])
            hog, cnn = hog_pass(canvas, 1.0), cnn_pass(canvas, 1.0, hog_framing=False)
            if len(hog) != 1 or len(cnn) != 1:
                continue
            (h,), (c,) = hog, cnn
            rel.append(((h.centre[0] - c.centre[0]) / c.size, (h.centre[1] - c.centre[1]) / c.size,
                        h.size / c.size))
            ref = points5_from_68(landmarks68_on_chip(canvas, h.centre, h.size))
            eye = np.linalg.norm(ref[1] - ref[0])
            for centre, size, errs in ((c.centre, c.size, err_raw), (
                    (c.centre[0] + CNN_TO_HOG[0] * c.size, c.centre[1] + CNN_TO_HOG[1] * c.size),
                    c.size * CNN_TO_HOG[2], err_mapped)):
                p5 = points5_from_68(landmarks68_on_chip(canvas, centre, size))
                errs.append(np.linalg.norm(p5 - ref, axis=1).mean() / eye)
        if (k + 1) % 50 == 0:
            print(f"  {k + 1} crops, {len(rel)} pairs, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    rel = np.array(rel)
    med = np.median(rel, axis=0)
    q1, q3 = np.percentile(rel, (25, 75), axis=0)
    print(f"pairs (crop x scale) with one face from each detector: {len(rel)}")
    for i, nm in enumerate(("dx / cnn side", "dy / cnn side", "hog side / cnn side")):
        print(f"{nm:22s} median {med[i]:+.4f}  IQR {q1[i]:+.4f} .. {q3[i]:+.4f}")
    # HOG box sides come in pyramid steps (x1.2), so the side ratio is bimodal: its
    # geometric mean is the typical HOG framing, as FACE_BOX_128 is a mean HOG box
    side = float(np.exp(np.log(rel[:, 2]).mean()))
    print(f"hog side / cnn side    geometric mean {side:.4f}")
    print(f"CNN_TO_HOG = ({med[0]:.3f}, {med[1]:.3f}, {side:.3f})")
    print(f"5-point error vs HOG box, mean / p90 in eye distances: raw CNN box "
          f"{np.mean(err_raw):.3f} / {np.percentile(err_raw, 90):.3f}; with the current "
          f"CNN_TO_HOG {CNN_TO_HOG}: {np.mean(err_mapped):.3f} / {np.percentile(err_mapped, 90):.3f}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="random train crops (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--cnn-boxes", type=int, default=0, metavar="N",
                    help="instead: fit the CNN -> HOG box mapping on N train crops")
    args = ap.parse_args(argv)

    root = Path(default_data_dir())
    if not (root / "utkface" / "manifest.csv").is_file():
        print(f"no UTKFace data under {root}", file=sys.stderr)
        return 1
    if args.cnn_boxes:
        return fit_cnn_boxes(root, args.cnn_boxes, args.seed)

    pts, boxes, missed, total = [], [], [], 0
    t0 = time.perf_counter()
    for name, img in iter_faces("train", data_dir=root, files=sample_train_files(root, args.n, args.seed)):
        total += 1
        faces = detect_faces(img, HOG_ONLY)
        if not faces:
            missed.append(name)
            continue
        best = max(faces, key=lambda f: f.score)  # tight crops: the face is the best hit
        h, w = img.shape[:2]
        s = np.array([FRAME / w, FRAME / h])
        pts.append((best.points5 + 0.5) * s - 0.5)  # pixel centres under cv2.resize
        boxes.append(np.asarray(best.box) * np.tile(s, 2))  # box edges scale plainly
        if total % 1000 == 0:
            print(f"  {total} crops, {len(pts)} found, {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr)

    pts, boxes = np.array(pts), np.array(boxes)
    template, keep = robust_mean(pts)
    inl = pts[keep]
    spread = inl.std(axis=0)
    dev = np.sqrt(((inl - template) ** 2).sum(axis=2))
    box = boxes[keep].mean(axis=0)

    print(f"data: {root}")
    print(f"train crops examined: {total} ({'all' if not args.n else f'random, seed {args.seed}'})")
    print(f"face found by HOG: {len(pts)} ({100 * len(pts) / total:.1f} %), missed {len(missed)}")
    print(f"inliers used for the mean: {int(keep.sum())} ({len(pts) - int(keep.sum())} outliers)")
    print(f"time: {time.perf_counter() - t0:.0f} s")
    print("point         mean x   mean y   sd x   sd y   median dist  p90 dist")
    for i, nm in enumerate(POINT_NAMES):
        print(f"{nm:12s} {template[i, 0]:7.2f} {template[i, 1]:8.2f} {spread[i, 0]:6.2f} "
              f"{spread[i, 1]:6.2f} {np.median(dev[:, i]):10.2f} "
              f"{np.percentile(dev[:, i], 90):9.2f}")
    print("\nTEMPLATE_128 = np.array([")
    for x, y in template:
        print(f"    [{x:.2f}, {y:.2f}],")
    print("])")
    print(f"FACE_BOX_128 = ({box[0]:.1f}, {box[1]:.1f}, {box[2]:.1f}, {box[3]:.1f})")
    if args.json:
        args.json.write_text(json.dumps({
            "examined": total, "found": len(pts), "inliers": int(keep.sum()),
            "template_128": template.round(3).tolist(), "sd_128": spread.round(3).tolist(),
            "face_box_128": box.round(2).tolist(), "missed": missed,
        }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
