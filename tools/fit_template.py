"""Measure the canonical 5-point template (TEMPLATE_128 in diffbfr/align.py) on UTKFace.

The models are trained on UTKFace crops resized to 128 px, so "aligned" has to mean
"framed like those crops". We run the app's own detector and landmarks over train
crops, map the 5 points into the 128 px frame, and take a robust mean.

    python tools/fit_template.py               # 5,000 random train crops (~4 min, 1 core)
    python tools/fit_template.py --n 0         # all 22,415 train crops (~17 min)

Only crops where the HOG detector itself found the face contribute, so the template
describes what detection + landmarks produce on real photos.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from diffbfr.train.data import default_data_dir, iter_faces, read_manifest  # noqa: E402
from diffbfr.faces.detect import detect_faces  # noqa: E402

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="random train crops (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    root = Path(default_data_dir())
    if not (root / "utkface" / "manifest.csv").is_file():
        print(f"no UTKFace data under {root}", file=sys.stderr)
        return 1

    pts, boxes, missed, total = [], [], [], 0
    t0 = time.perf_counter()
    for name, img in iter_faces("train", data_dir=root, files=sample_train_files(root, args.n, args.seed)):
        total += 1
        faces = detect_faces(img)
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
