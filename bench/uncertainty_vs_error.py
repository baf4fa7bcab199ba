"""Does the uncertainty map mean something? python -m bench.uncertainty_vs_error [--faces 8] [--quick]

UTKFace `test` faces (first --faces by name), degraded with the fixed protocol at every level
(degrade.fixed_degrade, seed per face as bench.quality), restored K times (diffbfr/uncertainty.py,
eta = 1, seeds seed..seed+K-1). Per level:
- Spearman rank correlation, per face over its 128 x 128 pixels, between the uncertainty
  (std over the K samples, grey) and the absolute error of the first sample against the clean
  face (grey); mean over faces, and pooled over all pixels of all faces;
- the same correlation for a content-only predictor, the gradient magnitude of the LQ face
  (errors concentrate on edges whatever the model does): the map means something beyond
  "edges are hard" only where it beats this;
- across faces: Spearman between a face's mean uncertainty and its mean absolute error;
- mean uncertainty (grey levels): it should grow with the degradation.
Timing: restore_faces of K copies (one batch) vs one sample, same face, median of --repeats.
--auto: each face restored at its Auto settings (weights/estimator + the calibration) instead
of the fixed --irm-start etc.: heavier faces then get more noise, so more is invented.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.stats import spearmanr

from bench import common as C
from bench.auto_vs_fixed import clean_faces
from diffbfr import methods
from diffbfr.auto import Auto
from diffbfr.console import log
from diffbfr.photo import restore_faces
from diffbfr.train.degrade import LEVELS, fixed_degrade
from diffbfr.uncertainty import K, grey, stochastic, uncertainties


def gradient(img: np.ndarray) -> np.ndarray:
    g = grey(img)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))


def rho(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel(), b.ravel()
    return float("nan") if np.ptp(a) == 0 or np.ptp(b) == 0 else float(spearmanr(a, b).statistic)


def timing(model, face, s, k: int, repeats: int, stage: str | None) -> dict[str, float]:
    """Medians for one restoration and for the uncertainty run (K samples of the measured
    stage in one batch, the later stages once), as CPU time of this process (what the brief
    asks, and steadier than wall time on a shared machine) and wall time."""
    def run(n):
        c0, t0 = time.process_time(), time.perf_counter()
        if n == 1:
            restore_faces(model, [face], s)
        else:
            uncertainties(model, [face], s, n, stage=stage)
        return time.process_time() - c0, time.perf_counter() - t0
    run(1)   # warm-up: first calls allocate
    ones, manys = [], []
    for _ in range(repeats):   # interleaved: a change in the machine's load hits both alike
        ones.append(run(1))
        manys.append(run(k))

    def med(runs, i):
        return statistics.median(r[i] for r in runs)
    return {"cpu_1": med(ones, 0), "cpu_k": med(manys, 0), "wall_1": med(ones, 1), "wall_k": med(manys, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.uncertainty_vs_error", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny random networks, the example face: wiring check")
    ap.add_argument("--faces", type=int, default=None, help="faces per level (default 8; --quick 2)")
    ap.add_argument("--k", type=int, default=K)
    ap.add_argument("--sample-eta", type=float, default=None,
                    help="eta of the K samples (default: the method's uncertainty settings, 1)")
    ap.add_argument("--repeats", type=int, default=None, help="timing repeats (default 5; --quick 1)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stage", default=None,
                    help="stage whose spread is measured (default: each face's first sampling stage)")
    ap.add_argument("--auto", action="store_true", help="per-face Auto settings (weights/estimator + calibration)")
    ap.add_argument("--sheet", default=None, help="contact sheet: clean, LQ, sample, uncertainty, overlay, abs error")
    C.add_model_args(ap, argv)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    n_faces, repeats = a.faces or (2 if a.quick else 8), a.repeats or (1 if a.quick else 5)
    model = methods.tiny("diffbfr") if a.quick else C.load_model(a, "cpu")
    eta = None if a.sample_eta is None else {"eta": a.sample_eta}
    s = stochastic(model.method, C.settings_from_args(a), eta)
    faces = clean_faces(a)[:n_faces]
    auto = Auto.load(Path(a.weights), model.name) if a.auto else None
    rows, sheet, t0 = [], [], time.perf_counter()
    for level in LEVELS:
        lqs = [fixed_degrade(f.image, level, C.face_seed(a.seed, f.name)) for f in faces]
        t1 = time.perf_counter()
        face_settings = [stochastic(model.method, x.settings, eta) for x in auto.faces(lqs, s)] if auto else s
        us = uncertainties(model, lqs, face_settings, a.k, stage=a.stage)
        per, grad, scores, errs, err_maps = [], [], [], [], []
        for i, (f, lq, u) in enumerate(zip(faces, lqs, us)):
            err = np.abs(grey(u.result) - grey(f.image))
            per.append(rho(u.std, err))
            grad.append(rho(gradient(lq), err))
            scores.append(u.score)
            errs.append(float(err.mean()))
            err_maps.append(err.ravel())
            if i < 3:   # three faces per level on the sheet
                sheet.append([f.image, lq, u.result, u.heat, u.overlay,
                              cv2.cvtColor(np.clip(err * 4, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)])
        pooled = rho(np.concatenate([u.std.ravel() for u in us]), np.concatenate(err_maps))
        rows.append([level, len(faces), f"{C.mean_or_nan(per):.3f}", f"{pooled:.3f}", f"{C.mean_or_nan(grad):.3f}",
                     f"{rho(np.array(scores), np.array(errs)):.3f}", f"{np.mean(scores):.2f} ± {np.std(scores):.2f}",
                     f"{np.mean(errs):.2f}"])
        log(f"[{level}] {len(faces)} faces x {a.k} samples in {time.perf_counter() - t1:.1f}s")
    tm = timing(model, faces[0].image, s if auto is None else face_settings[0], a.k, repeats, a.stage)
    table = C.markdown_table(["level", "faces", "ρ(unc, abs err) per face", "ρ pooled", "ρ(LQ gradient, abs err)",
                              "ρ across faces (mean unc vs mean abs err)", "mean unc (grey lv)", "mean abs err"], rows)
    text = "\n".join([
        f"# Uncertainty map ({'tiny random networks' if a.quick else a.weights}; K = {a.k}, "
        f"at {dict(model.method.uncertainty_settings, **(eta or {}))}, "
        f"stage {a.stage or 'first sampling stage'}, "
        f"settings {'Auto per face, others as ' if auto else ''}{s})", "", table, "",
        f"One face (last level), median of {repeats} interleaved runs, torch threads {torch.get_num_threads()}: "
        f"CPU time 1 restoration {tm['cpu_1']:.2f} s, uncertainty run (K = {a.k} samples in one batch) {tm['cpu_k']:.2f} s = "
        f"**{tm['cpu_k'] / tm['cpu_1']:.2f}×** (vs {a.k}× unbatched); wall {tm['wall_1']:.2f} s vs "
        f"{tm['wall_k']:.2f} s = {tm['wall_k'] / tm['wall_1']:.2f}×",
        "", f"{(time.perf_counter() - t0) / 60:.1f} min"])
    print(text)
    if a.sheet and sheet:
        Path(a.sheet).parent.mkdir(parents=True, exist_ok=True)
        C.save_rgb(a.sheet, C.contact_sheet(sheet, ["clean", "LQ", "result", "uncertainty", "overlay", "abs err x4"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
