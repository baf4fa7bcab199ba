"""Odd shapes: python -m bench.odd_shapes [--tiny | --weights DIR] [--cases a,b] [--out DIR]

Does an upload of an odd shape (a thin strip, flat grey, noise) cost what a person expects, or
does it hold the one queue for everyone? Each case is a file written once under
--out/inputs, then restored by the photo path the CLI runs (diffbfr.cli.restore_file: load ->
find faces -> restore -> paste back -> identity -> write) in a fresh subprocess, so that
every case starts from the same memory. Per case:

- time: the CLI's own timings (load, detect, stages, file total; wall seconds) and the
  process CPU seconds of that call (the shared machine inflates wall times);
- work: megapixels the face detectors were handed (every HOG and CNN run, pass C's rotated
  canvases and the CNN's verification chips included) and the largest single input: what
  the time follows;
- memory: the process's RSS before the call (model and dlib models loaded), its peak during
  the call (the kernel's VmHWM, reset before the call where the kernel allows it; otherwise
  sampled every 20 ms) and after it.

Cases (0 faces unless said): 10000x40 and 40x10000 flat strips (1.3 KB PNGs: the QA report's),
a 9000x48 strip of noise, 4000x2000 flat grey, 2828x2828 noise (8 MP, the largest upload not
downscaled), and two ordinary 1 MP references: scikit-image's coffee cup (no face) and
examples/two_people.jpg enlarged to 1 MP (2 faces); and the worst request (crowd_30_worst: 30
faces, the most expensive settings, "look harder", through the app's work cap) against the
typical photo at default settings (ref_1mp_two_faces). Target: no odd case above 2x its
reference, in time and in detector work.
Files: odd_shapes.md (the table), odd_shapes.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 2.0


def _flat(h, w, value=(128, 128, 128)):
    return np.full((h, w, 3), value, np.uint8)


def _noise(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _one_megapixel(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = np.sqrt(1e6 / (h * w))
    return cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)


def _coffee():
    import skimage.data
    return _one_megapixel(skimage.data.coffee())


def _two_people():
    bgr = cv2.imread(str(ROOT / "examples" / "two_people.jpg"), cv2.IMREAD_COLOR)
    return _one_megapixel(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def _crowd_30():
    """30 faces: examples/composite_portraits.jpg (6 faces) five times side by side."""
    bgr = cv2.imread(str(ROOT / "examples" / "composite_portraits.jpg"), cv2.IMREAD_COLOR)
    return cv2.cvtColor(np.concatenate([bgr] * 5, axis=1), cv2.COLOR_BGR2RGB)


# The worst request a person can send (issue #30, item 8): every count at its end and the start
# steps at the loaded networks' ends (lowered into their limits), "look harder" on, through the
# app's restorer (its work cap, work_budget.WORK_BUDGET_S), on the 30-face photo. Target: <= 2x the
# typical photo at default settings (ref_1mp_two_faces).
WORST = {"irm_start": 1000, "irm2_start": 1000, "tem_t": 1000, "irm64_steps": 50, "irm64_samples": 8,
         "irm128_steps": 50, "tem_steps": 20, "eta": 1.0}
APP_CASES = {"crowd_30_worst"}   # run as the app runs them: its work cap, the worst settings, thorough

# name -> (maker of the RGB image, file suffix, faces a person sees, reference name)
CASES = {
    "strip_10000x40": (lambda: _flat(40, 10000, (200, 190, 180)), ".png", 0, "ref_1mp_no_face"),
    "strip_40x10000": (lambda: _flat(10000, 40, (200, 190, 180)), ".png", 0, "ref_1mp_no_face"),
    "noise_9000x48": (lambda: _noise(48, 9000), ".png", 0, "ref_1mp_no_face"),
    "flat_4000x2000": (lambda: _flat(2000, 4000), ".png", 0, "ref_1mp_no_face"),
    "noise_2828x2828": (lambda: _noise(2828, 2828), ".png", 0, "ref_1mp_no_face"),
    "ref_1mp_no_face": (_coffee, ".jpg", 0, None),
    "ref_1mp_two_faces": (_two_people, ".jpg", 2, None),
    "crowd_30_worst": (_crowd_30, ".jpg", 30, "ref_1mp_two_faces"),
}


def make_input(name: str, folder: Path) -> Path:
    maker, suffix, _, _ = CASES[name]
    path = folder / f"{name}{suffix}"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        rgb = maker()
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 9]
        tmp = path.with_suffix(f".tmp{os.getpid()}{suffix}")
        cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
        tmp.replace(path)
    return path


# ---------------------------------------------------------------- the detector work

class DetectorWork:
    """Counts what dlib's detectors are handed, by wrapping the loaders scan.py calls
    (scan.hog_detector / scan.cnn_detector): pixels of every run and the largest input."""

    def __init__(self):
        self.runs: list[tuple[str, int, int]] = []   # (detector, height, width)

    def __enter__(self):
        from diffbfr.faces import scan
        self._scan, self._saved = scan, (scan.hog_detector, scan.cnn_detector)
        hog, cnn = self._saved

        class _Hog:
            def run(inner, image, *a):  # noqa: N805
                self.runs.append(("hog",) + tuple(image.shape[:2]))
                return hog().run(image, *a)

        def _cnn(image, *a):
            self.runs.append(("cnn",) + tuple(image.shape[:2]))
            return cnn()(image, *a)

        scan.hog_detector, scan.cnn_detector = (lambda: _Hog()), (lambda: _cnn)
        return self

    def __exit__(self, *exc):
        self._scan.hog_detector, self._scan.cnn_detector = self._saved

    def megapixels(self, detector: str | None = None) -> float:
        return sum(h * w for d, h, w in self.runs if detector in (None, d)) / 1e6

    def largest(self) -> float:
        return max((h * w for _, h, w in self.runs), default=0) / 1e6


# ---------------------------------------------------------------- one case, in a fresh process

def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_one(path: Path, args: argparse.Namespace) -> dict:
    """One file through the CLI's photo path in this process (models loaded first)."""
    from bench.common import load_model, settings_from_args
    from bench.proc_usage import Sampler, reset_peak, status_kb
    from diffbfr.cli import restore_file
    from diffbfr.faces import models as dm
    from diffbfr.imageio import DEFAULT_MAX_PIXELS
    from diffbfr.photo import PhotoOptions, PhotoRestorer
    from diffbfr.work_budget import WORK_BUDGET_S

    model = load_model(args)
    for load in (dm.hog_detector, dm.cnn_detector, dm.shape_predictor_68, dm.identity_network):
        load()
    app_case = path.stem in APP_CASES
    s = settings_from_args(args)
    if app_case:   # the worst settings, each lowered into what validation accepts for this model
        from diffbfr import settings as S
        s = S.clamp(type(s), {**S.to_dict(s), **{k: v for k, v in WORST.items() if hasattr(s, k)}},
                    model.knob_limits())
    # as the CLI makes it, or as the app does (its work cap)
    restorer = PhotoRestorer(model, cache_size=16, work_budget=WORK_BUDGET_S if app_case else None)
    out = Path(args.out) / "outputs"
    out.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    rss_before = status_kb(pid, "VmRSS") / 1024
    exact = reset_peak(pid)
    sampler = Sampler(pid, dict, 0.02)
    sampler.start()
    cpu0, t0 = _cpu_s(), time.perf_counter()
    with DetectorWork() as work:
        rec = restore_file(restorer, path, out, path.stem, s, PhotoOptions(thorough=app_case), DEFAULT_MAX_PIXELS)
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    sampler.stop()
    peak = status_kb(pid, "VmHWM") / 1024 if exact else sampler.peak_rss
    t = rec["timings_s"]
    return {"case": path.stem, "size": rec["size"], "faces": len(rec["faces"]), "wall_s": wall, "cpu_s": cpu,
            "load_s": t["load"], "detect_s": t["detect"], "stages_s": t.get("stages", 0.0),
            "detector_mp": work.megapixels(), "hog_mp": work.megapixels("hog"), "cnn_mp": work.megapixels("cnn"),
            "largest_mp": work.largest(), "detector_runs": len(work.runs),
            "rss_before_mb": rss_before, "rss_peak_mb": max(peak, rss_before),
            "rss_peak_exact": exact, "rss_after_mb": status_kb(pid, "VmRSS") / 1024}


def run_case(name: str, args: argparse.Namespace, timeout: float) -> dict:
    path = make_input(name, Path(args.out) / "inputs")
    cmd = [sys.executable, "-m", "bench.odd_shapes", "--one", str(path), "--out", str(args.out),
           "--method", args.method, "--weights", args.weights] + (["--tiny"] if args.tiny else [])
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    rec = json.loads(done.stdout.strip().splitlines()[-1])
    rec["bytes"] = path.stat().st_size
    return rec


def markdown(recs: list[dict]) -> str:
    by = {r["case"]: r for r in recs}
    lines = ["| case | file | faces | wall s | CPU s | load / detect / stages s | detector MP (HOG + CNN), "
             "runs, largest | RSS before / peak / after MB | x reference (wall, CPU, detector MP) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in recs:
        ref = by.get(CASES[r["case"]][3])
        ratio = "" if ref is None else " / ".join(
            f"{r[k] / max(ref[k], 1e-9):.2f}" for k in ("wall_s", "cpu_s", "detector_mp"))
        peak = f"{r['rss_peak_mb']:.0f}" + ("" if r["rss_peak_exact"] else "~")
        w, h = r["size"]
        lines.append(
            f"| {r['case']} ({w}x{h}) | {r['bytes'] / 1024:.1f} KB | {r['faces']} | {r['wall_s']:.2f} | "
            f"{r['cpu_s']:.2f} | {r['load_s']:.2f} / {r['detect_s']:.2f} / {r['stages_s']:.2f} | "
            f"{r['detector_mp']:.1f} ({r['hog_mp']:.1f} + {r['cnn_mp']:.2f}), {r['detector_runs']}, "
            f"{r['largest_mp']:.1f} | {r['rss_before_mb']:.0f} / {peak} / {r['rss_after_mb']:.0f} | {ratio} |")
    lines.append(f"\nTarget: every odd case <= {TARGET_RATIO:g}x its reference. '~': peak sampled every 20 ms "
                 f"(the kernel refused the VmHWM reset). 1-min load average {os.getloadavg()[0]:.1f}.")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    from bench.common import add_model_args

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_args(ap, argv)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    ap.add_argument("--out", default="bench_out/odd_shapes", help="inputs, outputs and the report")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per case")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the child: one file, JSON on stdout
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(run_one(Path(a.one), a)))
        return []
    names = [c.strip() for c in a.cases.split(",") if c.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        ap.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    recs = [run_case(n, a, a.timeout) for n in names]
    report = markdown(recs)
    model = "tiny random networks" if a.tiny else f"weights {a.weights}"
    print(f"## Odd shapes through the CLI's photo path ({model})\n\n{report}")
    out = Path(a.out)
    (out / "odd_shapes.md").write_text(report + "\n")
    (out / "odd_shapes.json").write_text(json.dumps(recs, indent=2))
    return recs


if __name__ == "__main__":
    main()
