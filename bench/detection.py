"""Detection benchmark: python -m bench.detection [--photos 120] [--seed 0] [--quick]

Do the detectors find the faces a person sees, and nothing else? Two test sets:

1. Synthetic composites (seeded, repeatable): UTKFace *test* faces (never trained on; via
   diffbfr.train.data.iter_faces) blended with a soft elliptical alpha (no hard edge to give
   them away) into face-free backgrounds: scikit-image's sample pictures (cat, coffee cup,
   rocket, brick, grass, gravel, coins, moon, sky, retina, stained tissue, clock, page) and
   procedural textures. Per photo 0-3 faces (cycling 1,2,3,1,2,0), box widths log-uniform in
   16..256 px, in-plane rotation uniform in +-30 deg, Gaussian blur sigma 0..1.2 px, noise
   sigma 0..6, JPEG quality 40..95. A face counts as found when a box's centre is within half
   a face width of the true centre and its width within 0.5..2x; every other box is a false
   positive. "Face size" is the width of the face box as dlib HOG frames it (~0.9 of a
   UTKFace crop's side; AlignedFace.face_size, the 128 px frame's span, is ~1.12x it).
2. The real whole photos (../shared/data/real/whole, when present): faces found per photo
   against the faces a person sees (counted by eye, SEEN below).

Detectors compared (diffbfr.faces.detect.DlibDetector configurations):
  before   : HOG pass A + +-30 degree retries (close to what find_faces did before the CNN,
             small-face and +-20 degree passes; the retries now also run when A's faces
             are small, so it finds a little more than the original: 78.6 vs 75.7 %)
  hog      : HOG passes A-C (adds the upsampled small-face pass and the tilted passes), no
             CNN (so tilted-only boxes are not verified either)
  hog+cnn  : the default detector (the CNN confirms tilted-only boxes, and runs on the whole
             photo when HOG finds nothing)
  thorough : every pass on every photo (DlibDetector(thorough=True))
Times: wall ms and process CPU ms (dlib runs single-threaded, so CPU time is what an idle
machine's wall time would be; the shared bench machine's wall times are inflated by load),
per megapixel of photo.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from diffbfr.faces.align import FACE_BOX_128, FRAME
from diffbfr.faces.detect import DlibDetector, detect_faces
from diffbfr.faces.models import shape_predictor_68

# Face-free pictures that scikit-image ships with its wheel (no download): a cat and a cup
# (non-human things a detector might take for a face), textures, scans, sky.
SKIMAGE_BACKGROUNDS = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "coins",
                       "moon", "hubble_deep_field", "retina", "immunohistochemistry", "clock",
                       "page")

UTK_SIDE = 200  # UTKFace crops are 200 px squares framed like the canonical frame
# The face box (dlib HOG's mean box) inside a UTK crop: "face size" below is its width.
_BOX = np.asarray(FACE_BOX_128, np.float64) * UTK_SIDE / FRAME
BOX_WIDTH_IN_CROP = float(_BOX[2] - _BOX[0])
BOX_CENTRE_IN_CROP = ((_BOX[0] + _BOX[2]) / 2 - 0.5, (_BOX[1] + _BOX[3]) / 2 - 0.5)

# What the benchmark's photos do not measure and people have met (bench/README.md lists them too)
KNOWN_FAILURES = (
    "A chimpanzee's face is detected as a face (HOG; issue #30). Such detections often score low: below "
    "photo.UNSURE_SCORE (0.3) the page and the CLI say the detector is unsure and how to leave the face out "
    "(untick it under Faces to restore).",
)


@dataclass
class TruthFace:
    centre: tuple[float, float]  # photo pixel-centre coordinates of the face box centre
    size: float  # face box width in photo pixels
    angle: float  # in-plane rotation, degrees


@dataclass
class Composite:
    image: np.ndarray
    faces: list[TruthFace] = field(default_factory=list)


def skimage_backgrounds() -> list[np.ndarray]:
    out = []
    for name in SKIMAGE_BACKGROUNDS:
        img = getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        out.append(np.ascontiguousarray(img[:, :, :3].astype(np.uint8)))
    return out


def procedural_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth 1/f-like noise with a colour cast, sometimes stripes: walls, sky, foliage."""
    grey = np.zeros((h, w), np.float32)
    for octave in range(6):
        cell = 2 ** (octave + 2)  # coarse octaves weigh more, as in natural images
        small = rng.normal(0, 1, (h // cell + 2, w // cell + 2)).astype(np.float32)
        grey += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * 1.5 ** octave
    grey = (grey - grey.mean()) / (grey.std() + 1e-6)
    if rng.random() < 0.4:  # stripes: planks, blinds, fabric
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        theta, period = rng.uniform(0, np.pi), rng.uniform(8, 60)
        grey += np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period)
    colour = rng.uniform(40, 210, 3).astype(np.float32)
    tint = rng.uniform(0.6, 1.0, 3).astype(np.float32)  # channels vary together, not apart
    img = colour + grey[..., None] * rng.uniform(15, 45) * tint
    return np.clip(img, 0, 255).astype(np.uint8)


def background(rng: np.random.Generator, pool: list[np.ndarray], h: int, w: int) -> np.ndarray:
    k = int(rng.integers(len(pool) + 4))
    if k >= len(pool):
        return procedural_background(rng, h, w)
    src = pool[k]
    sh, sw = src.shape[:2]
    s = max(h / sh, w / sw) * rng.uniform(1.0, 1.5)
    big = cv2.resize(src, (int(np.ceil(sw * s)), int(np.ceil(sh * s))), interpolation=cv2.INTER_CUBIC)
    y = int(rng.integers(big.shape[0] - h + 1))
    x = int(rng.integers(big.shape[1] - w + 1))
    out = big[y:y + h, x:x + w]
    return np.ascontiguousarray(out[:, ::-1] if rng.random() < 0.5 else out)


def soft_mask() -> np.ndarray:
    """Soft elliptical alpha over face and some hair of a UTK crop (float32 0..1)."""
    m = np.zeros((UTK_SIDE, UTK_SIDE), np.float32)
    cv2.ellipse(m, (100, 102), (84, 96), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(m, (0, 0), 7.0)


def composite(rng: np.random.Generator, n: int, crops, pool,
              sizes: tuple[float, float] = (16, 256), max_angle: float = 30.0) -> Composite:
    """A photo of `n` faces (drawn from `crops`, an iterator) on a face-free background."""
    h, w = int(rng.integers(360, 720)), int(rng.integers(360, 720))
    canvas = background(rng, pool, h, w).astype(np.float32)
    mask = soft_mask()
    truth: list[TruthFace] = []
    for _ in range(n):
        size = float(np.exp(rng.uniform(np.log(sizes[0]), np.log(sizes[1]))))
        angle = float(rng.uniform(-max_angle, max_angle))
        s = size / BOX_WIDTH_IN_CROP
        half = 0.65 * size  # the face box stays inside the photo (hair may be cut)
        for _try in range(20):  # a place inside the photo that overlaps no other face
            cx, cy = rng.uniform(half, w - half), rng.uniform(half, h - half)
            if all(np.hypot(cx - f.centre[0], cy - f.centre[1]) > 0.8 * (f.size + size) for f in truth):
                break
        else:
            continue
        crop = next(crops)
        # shrink with an area filter first (as a camera would), then rotate and place
        side = max(4, int(round(UTK_SIDE * s)))
        k = side / UTK_SIDE
        face = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
        face = face.astype(np.float32)
        blur = rng.uniform(0, 1.2)  # optics / motion, sigma in photo pixels
        if blur > 0.3:
            face = cv2.GaussianBlur(face, (0, 0), blur)
        c_small = ((BOX_CENTRE_IN_CROP[0] + 0.5) * k - 0.5, (BOX_CENTRE_IN_CROP[1] + 0.5) * k - 0.5)
        t = cv2.getRotationMatrix2D(c_small, angle, 1.0)
        t[:, 2] += np.array([cx, cy]) - c_small
        warped = cv2.warpAffine(face, t, (w, h), flags=cv2.INTER_LINEAR)
        m_small = cv2.resize(mask, (side, side), interpolation=cv2.INTER_AREA)
        alpha = cv2.warpAffine(m_small, t, (w, h), flags=cv2.INTER_LINEAR)[..., None]
        canvas = canvas * (1 - alpha) + warped * alpha
        truth.append(TruthFace((float(cx), float(cy)), size, angle))
    canvas += rng.normal(0, rng.uniform(0, 6), canvas.shape).astype(np.float32)
    img = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    _, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                          [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
    img = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return Composite(np.ascontiguousarray(img), truth)


# --- scoring -----------------------------------------------------------------------

BUCKETS = (16, 24, 32, 48, 64, 128, 256)

# Faces a person sees in ../shared/data/real/whole, counted by eye. Not counted: in 00.jpg
# a ~10 px seated figure far behind the four people; in 03.jpg the second person, seen
# from behind (ear and hair, no face).
SEEN = {"00.jpg": 4, "00b.jpg": 2, "01.jpg": 4, "02.png": 4, "03.jpg": 1, "04.jpg": 1,
        "05.jpg": 1, "06.png": 2, "10045.png": 3, "Blake_Lively.jpg": 2}


def match(boxes, truth: list[TruthFace]) -> tuple[list[bool], int]:
    """(found flag per true face, number of unmatched boxes), greedy by centre distance."""
    used: set[int] = set()
    found = []
    for f in truth:
        best, best_d = None, None
        for j, (x0, y0, x1, y1) in enumerate(boxes):
            if j in used:
                continue
            d = np.hypot((x0 + x1) / 2 - 0.5 - f.centre[0], (y0 + y1) / 2 - 0.5 - f.centre[1])
            if d < 0.5 * f.size and 0.5 <= (x1 - x0) / f.size <= 2.0 and (best_d is None or d < best_d):
                best, best_d = j, d
        if best is not None:
            used.add(best)
        found.append(best is not None)
    return found, len(boxes) - len(used)


def detectors() -> dict[str, DlibDetector]:
    return {
        "before": DlibDetector(small_pixels=0, cnn_pixels=0, retry_rotations=(30.0, -30.0)),
        "hog": DlibDetector(cnn_pixels=0),
        "hog+cnn": DlibDetector(),
        "thorough": DlibDetector(thorough=True),
    }


@dataclass
class Score:
    sizes: list[float] = field(default_factory=list)
    found: list[bool] = field(default_factory=list)
    false_pos: int = 0
    photos: int = 0
    megapixels: float = 0.0
    wall: float = 0.0
    cpu: float = 0.0

    def add(self, image, truth, boxes, wall, cpu):
        found, fp = match(boxes, truth)
        self.sizes += [f.size for f in truth]
        self.found += found
        self.false_pos += fp
        self.photos += 1
        self.megapixels += image.shape[0] * image.shape[1] / 1e6
        self.wall += wall
        self.cpu += cpu

    def recall(self, lo, hi=np.inf) -> tuple[float, int]:
        sel = [ok for s, ok in zip(self.sizes, self.found) if lo <= s < hi]
        return (float(np.mean(sel)) if sel else float("nan")), len(sel)


def timed_boxes(detector, image):
    w0, c0 = time.perf_counter(), time.process_time()
    faces = detect_faces(image, detector)
    return [f.box for f in faces], time.perf_counter() - w0, time.process_time() - c0


def make_composites(n: int, seed: int, max_size: float = 256.0,
                    pool: int | None = None) -> list[Composite]:
    """n composites; faces drawn in a seeded order from the first `pool` test faces (all)."""
    from diffbfr.train.data import iter_faces

    rng = np.random.default_rng(seed)
    faces = [img for _, img in iter_faces("test", limit=pool)]
    order = rng.permutation(len(faces))
    crops = (faces[i] for i in itertools.cycle(order))
    backgrounds = skimage_backgrounds()
    return [composite(rng, (1, 2, 3, 1, 2, 0)[i % 6], crops, backgrounds, sizes=(16.0, max_size))
            for i in range(n)]


def synthetic_table(scores: dict[str, Score]) -> str:
    cols = [f"{a}-{b}" for a, b in zip(BUCKETS[:-1], BUCKETS[1:])]
    lines = ["| detector | " + " | ".join(f"recall {c} px" for c in cols)
             + " | recall >= 24 px | false pos / photo | ms/MP wall | ms/MP CPU | ms/photo CPU |",
             "|---" * (len(cols) + 6) + "|"]
    for name, sc in scores.items():
        cells = []
        for a, b in zip(BUCKETS[:-1], BUCKETS[1:]):
            r, n = sc.recall(a, b)
            cells.append(f"{100 * r:.0f} % ({n})")
        r24, n24 = sc.recall(24)
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {100 * r24:.1f} % ({n24}) | {sc.false_pos / sc.photos:.2f} "
                       f"({sc.false_pos}/{sc.photos}) | {1000 * sc.wall / sc.megapixels:.0f} | "
                       f"{1000 * sc.cpu / sc.megapixels:.0f} | {1000 * sc.cpu / sc.photos:.0f} |")
    return "\n".join(lines)


def real_photos() -> list[tuple[str, np.ndarray]]:
    from diffbfr.train.data import default_data_dir

    folder = default_data_dir() / "real" / "whole"
    out = []
    for p in sorted(folder.glob("*")) if folder.is_dir() else []:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)  # drops the alpha of RGBA PNGs
        if bgr is not None:
            out.append((p.name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return out


def real_table(dets: dict[str, DlibDetector], photos) -> str:
    lines = ["| photo | size | seen by eye | " + " | ".join(f"{n} found (CPU ms)" for n in dets) + " |",
             "|---" * (3 + len(dets)) + "|"]
    totals = {n: 0 for n in dets}
    for name, img in photos:
        cells = []
        for n, d in dets.items():
            boxes, _, cpu = timed_boxes(d, img)
            totals[n] += len(boxes)
            cells.append(f"{len(boxes)} ({1000 * cpu:.0f})")
        lines.append(f"| {name} | {img.shape[1]}x{img.shape[0]} | {SEEN.get(name, '?')} | "
                     + " | ".join(cells) + " |")
    lines.append(f"| total | | {sum(SEEN.get(n, 0) for n, _ in photos)} | "
                 + " | ".join(str(t) for t in totals.values()) + " |")
    return "\n".join(lines)


def run(photos: int, seed: int, real: bool = True, out: Path | None = None,
        pool: int | None = None, names: tuple[str, ...] | None = None) -> dict[str, Score]:
    """Score the detectors `names` (default: all) on `photos` composites; print the tables."""
    comps = make_composites(photos, seed, pool=pool)
    dets = {n: d for n, d in detectors().items() if names is None or n in names}
    detect_faces(np.zeros((64, 64, 3), np.uint8), DlibDetector())  # load models untimed
    shape_predictor_68()
    scores = {n: Score() for n in dets}
    for i, c in enumerate(comps):
        found = {}
        for n, d in dets.items():
            found[n], wall, cpu = timed_boxes(d, c.image)
            scores[n].add(c.image, c.faces, found[n], wall, cpu)
        if out is not None and i < 12:  # a few composites with truth and found boxes
            _save_example(out / f"composite_{i:02d}.png", c, found["hog+cnn"])
    print(f"## Synthetic composites: {photos} photos, {sum(len(c.faces) for c in comps)} faces, "
          f"seed {seed} ({sum(c.image.size // 3 for c in comps) / 1e6:.1f} MP in all)\n")
    print(synthetic_table(scores))
    if real:
        photos_real = real_photos()
        if photos_real:
            print("\n## Real whole photos (../shared/data/real/whole)\n")
            print(real_table(dets, photos_real))
    print("\n## Known failures (not in the numbers above)\n")
    print("\n".join(f"- {k}" for k in KNOWN_FAILURES))
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return scores


def _save_example(path: Path, c: Composite, boxes) -> None:
    img = cv2.cvtColor(c.image, cv2.COLOR_RGB2BGR)
    for f in c.faces:  # truth in green, found in red
        x, y, r = f.centre[0], f.centre[1], f.size / 2
        cv2.rectangle(img, (int(x - r), int(y - r)), (int(x + r), int(y + r)), (0, 255, 0), 1)
    for x0, y0, x1, y1 in boxes:
        cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), (0, 0, 255), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=120, help="synthetic composites")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true",
                    help="2 composites, no real photos, no thorough detector (tests)")
    ap.add_argument("--no-real", action="store_true", help="skip the real whole photos")
    ap.add_argument("--out", type=Path, help="write example composites with boxes here")
    a = ap.parse_args(argv)
    if a.quick:
        a.photos, a.no_real = 2, True
    quick = dict(pool=8, names=("before", "hog", "hog+cnn")) if a.quick else {}
    run(a.photos, a.seed, real=not a.no_real, out=a.out, **quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
