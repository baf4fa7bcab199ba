"""Face layer speed: python -m bench.faces_speed [--photo PATH] [--megapixels 1.0] [--repeats 7]

Times, for one ~1-megapixel photo (median of --repeats runs after --warmup runs; the
dlib models are loaded before timing):
  - detect + landmarks : detect_faces() (the default detector's passes, 68 points)
  - align              : align_face() for every face (similarity fit + antialiased warp)
  - total              : find_faces(), i.e. the two above as the app calls them
  - paste back         : paste_back() of every (unchanged) aligned face, at x1 and x2
Then the cost of each detector pass per megapixel of its working copy (process CPU time:
dlib runs single-threaded, so this is the idle machine's wall time even when the shared
machine is loaded), and the worst case, a face-less photo on which every pass runs.
The photo is the largest in ../shared/data/real/whole resized to --megapixels, or,
without the data, a synthetic canvas with a drawn face-like pattern (detection may then
find nothing, which is reported). Target: total <= 1 s of CPU (one core). It was 0.3 s
before the face layer looked for small and tilted faces; every photo now also runs the
small-face pass B (~75-100 ms per MP of its 4 MP working copy), and photos with small faces,
like this one, the tilted passes; what the user waits for is bench.app_speed's first
result (<= 3 s).
"""

from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np

from bench.common import median_time
from diffbfr.faces.align import align_face, find_faces
from diffbfr.faces.detect import DlibDetector, detect_faces
from diffbfr.faces.paste import paste_back
from diffbfr.faces.scan import cnn_pass, hog_pass

TARGET_S = 1.0


def pick_photo(path: str | None, megapixels: float) -> tuple[np.ndarray, str]:
    if path is None:
        from diffbfr.train.data import default_data_dir

        best = 0
        for p in sorted((default_data_dir() / "real" / "whole").glob("*.*")):
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is not None and img.shape[0] * img.shape[1] > best:
                best, path = img.shape[0] * img.shape[1], str(p)
    if path is None:
        return synthetic_photo(megapixels), "synthetic canvas"
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {path}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return resize_to(rgb, megapixels), path


def resize_to(image: np.ndarray, megapixels: float) -> np.ndarray:
    h, w = image.shape[:2]
    s = np.sqrt(megapixels * 1e6 / (h * w))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, (round(w * s), round(h * s)), interpolation=interp)


def synthetic_photo(megapixels: float) -> np.ndarray:
    """A UTKFace test crop on a noisy canvas when there is no real photo."""
    side = int(np.sqrt(megapixels * 1e6))
    rng = np.random.default_rng(0)
    canvas = rng.integers(60, 180, (side, side, 3), dtype=np.uint8)
    try:
        from diffbfr.train.data import iter_faces

        _, face = next(iter_faces("test", limit=1))
        y, x = side // 3, side // 3
        canvas[y:y + 200, x:x + 200] = face
    except Exception:  # no data at all: detection time on a face-less canvas
        pass
    return canvas



def pass_costs(photo: np.ndarray, repeats: int) -> None:
    """CPU ms per megapixel of working copy of one HOG and one CNN pass, and the worst case
    of the default detector (a face-less photo of the same size: every pass runs)."""
    h, w = photo.shape[:2]
    det = DlibDetector()
    rows = [("HOG pass A", lambda: hog_pass(photo, det.work_scale(h, w)), det.work_scale(h, w)),
            ("HOG pass B", lambda: hog_pass(photo, det.small_scale(h, w)), det.small_scale(h, w)),
            ("CNN pass D", lambda: cnn_pass(photo, det.cnn_scale(h, w)), det.cnn_scale(h, w))]
    for name, fn, scale in rows:
        mp = h * w * scale * scale / 1e6
        cpu = median_time(fn, max(1, repeats // 3), 1, time.process_time)
        print(f"{name:18s} : {cpu * 1000:7.1f} ms CPU on a {mp:.2f} MP working copy "
              f"({cpu * 1000 / mp:.0f} ms/MP)")
    blank = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, photo.shape, np.uint8),
                             (0, 0), 3.0)
    cpu = median_time(lambda: detect_faces(blank, det), 1, 0, time.process_time)
    print(f"no face, all passes: {cpu * 1000:7.1f} ms CPU ({cpu * 1000 / (h * w / 1e6):.0f} ms "
          f"per MP of photo; the smallest findable face there: {det.min_face_size(h, w):.0f} px)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", help="photo to time (default: largest real/whole photo)")
    ap.add_argument("--megapixels", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args(argv)

    photo, source = pick_photo(a.photo, a.megapixels)
    h, w = photo.shape[:2]
    faces = detect_faces(photo)  # also loads the dlib models, outside the timing
    aligned, reason = find_faces(photo)

    t_detect = median_time(lambda: detect_faces(photo), a.repeats, a.warmup)
    t_align = median_time(lambda: [align_face(photo, f) for f in faces], a.repeats, a.warmup)
    t_total = median_time(lambda: find_faces(photo), a.repeats, a.warmup)
    c_total = median_time(lambda: find_faces(photo), a.repeats, 0, time.process_time)
    restored = [f.image for f in aligned]
    t_paste = median_time(lambda: paste_back(photo, aligned, restored), a.repeats, a.warmup)
    t_paste2 = median_time(lambda: paste_back(photo, aligned, restored, scale=2), a.repeats,
                           a.warmup)

    print(f"photo: {source} resized to {w}x{h} ({w * h / 1e6:.2f} MP); "
          f"{len(faces)} face(s){'' if faces else ' -- ' + str(reason)}")
    print(f"runs: median of {a.repeats} after {a.warmup} warm-up; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"detect + landmarks : {t_detect * 1000:7.1f} ms")
    print(f"align {len(faces):2d} face(s)   : {t_align * 1000:7.1f} ms")
    verdict = "OK" if c_total <= TARGET_S else "over target"
    print(f"total find_faces   : {t_total * 1000:7.1f} ms wall, {c_total * 1000:.1f} ms CPU "
          f"(target <= {TARGET_S * 1000:.0f} ms CPU: {verdict})")
    print(f"paste back         : {t_paste * 1000:7.1f} ms")
    print(f"paste back, x2     : {t_paste2 * 1000:7.1f} ms")
    pass_costs(photo, a.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
