"""Automatic truncation, proved: python -m bench.auto_vs_fixed [--quick]

Other UTKFace `test` faces than the calibration's (never in it), degraded at a mix of levels
(fixed light / medium / heavy and random draws, in turn): auto settings vs every fixed
irm_start of the calibration grid (each with the irm2_start and tem_t that did best with it in
the calibration) and vs the defaults, on the calibration's objective, paired per face; the
estimator's accuracy on held-out faces; and its severity order on real LQ photos against a
classical sharpness measure.

The calibration itself (what ships, weights/diffbfr/auto_calibration.json) is fitted by
training: `python -m diffbfr.train auto-calibration`. This bench only measures it.

--quick: random tiny networks, a random estimator, a few variants of the example face: checks
the wiring in seconds (numbers meaningless).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.stats import spearmanr

from bench import common as C
from diffbfr.console import log
from diffbfr.niqe import NiqeModel
from diffbfr import methods
from diffbfr import metrics as M
from diffbfr.auto import CALIBRATION_FILE, FACTOR_NAMES, Calibration, Estimator, auto_settings, describe, severity_from_psnr
from diffbfr.train import auto_calibration as K
from diffbfr.faces.align import align_crop
from diffbfr.faces.identity import face_embedding
from diffbfr.stage_cache import LRUCache
from diffbfr.train.data import default_data_dir
from diffbfr.train.degrade import LEVELS, fixed_degrade
from diffbfr.train.estimator_trainer import degraded_sample

SEV = FACTOR_NAMES.index("severity")


def clean_faces(a) -> list[C.FaceItem]:
    """UTKFace test faces sorted by name, or (--quick) shifted copies of the example face."""
    if a.quick:
        return [C.FaceItem(f.name, f.image, "crop", 128.0) for f in K.clean_faces(True)]
    return C.utk_test_faces(None)[0]


def load(a) -> tuple[methods.Model, Estimator]:
    torch.set_num_threads(a.threads)
    if a.quick:
        return methods.tiny("diffbfr"), Estimator.tiny()
    return C.load_model(a, "cpu"), Estimator.load(a.estimator)


# ---------------------------------------------------------------- proof
class Scores:
    """PSNR, NIQE, J and (optionally) identity distance, the clean faces' embeddings cached."""

    def __init__(self, lam: float, identity: bool):
        self.lam, self.identity, self.niqe_model, self._emb = lam, identity, NiqeModel.load(), {}

    def __call__(self, hq: np.ndarray, key: str, out: np.ndarray) -> dict:
        p, n = M.psnr(hq, out), M.niqe(out, self.niqe_model)
        r = {"psnr": p, "niqe": n, "J": p - self.lam * n, "id": None}
        if self.identity:
            if key not in self._emb:
                self._emb[key] = face_embedding(hq, aligned=True)
            e = face_embedding(out, aligned=True)
            if self._emb[key] is not None and e is not None:
                r["id"] = float(np.linalg.norm(self._emb[key] - e))
        return r


def prove_lqs(faces, seed: int) -> tuple[list[np.ndarray], list[str]]:
    """A mix: face k gets light, medium, heavy (the fixed protocol) or a random draw, in turn."""
    kinds = [(LEVELS + ("random",))[k % 4] for k in range(len(faces))]
    lqs = [degraded_sample(f.image, np.random.default_rng(C.face_seed(seed, "prove:" + f.name)))[0] if kind == "random"
           else fixed_degrade(f.image, kind, C.face_seed(seed, f.name)) for f, kind in zip(faces, kinds)]
    return lqs, kinds


def accuracy(estimator: Estimator, faces, seed: int) -> str:
    pairs = [degraded_sample(f.image, np.random.default_rng(C.face_seed(seed, "acc:" + f.name))) for f in faces]
    y = np.stack([p[1] for p in pairs])
    pred = estimator.predict([p[0] for p in pairs])
    rows = []
    for i, name in enumerate(FACTOR_NAMES):
        rho = spearmanr(pred[:, i], y[:, i]).statistic if np.ptp(y[:, i]) > 0 else float("nan")
        rows.append([name, f"{np.mean(np.abs(pred[:, i] - y[:, i])):.3f}", f"{np.mean(y[:, i]):.2f}",
                     f"{np.std(y[:, i]):.2f}", f"{rho:.3f}"])
    table = C.markdown_table(["factor", "MAE", "true mean", "true std", "Spearman ρ"], rows)
    lv = []
    for level in LEVELS:
        lqs = [fixed_degrade(f.image, level, C.face_seed(seed, f.name)) for f in faces]
        s = estimator.predict(lqs)[:, SEV]
        true = [severity_from_psnr(M.psnr(f.image, q)) for f, q in zip(faces, lqs)]
        lv.append([level, f"{np.mean(true):.2f}", f"{s.mean():.2f} ± {s.std():.2f}"])
    return (f"{len(faces)} held-out faces, one random degradation each:\n\n{table}\n\nfixed levels:\n\n"
            + C.markdown_table(["level", "true severity", "estimated"], lv))


def real_check(estimator: Estimator, folder: Path, sheet: str | None) -> str:
    """Estimated severity of real LQ crops vs a classical sharpness measure (log variance of
    the Laplacian of the aligned grey face: blur lowers it)."""
    files = C.list_images(folder)
    faces = [align_crop(C.load_rgb(p), "ffhq").image for p in files]
    est = estimator.estimate(faces)
    sharp = [float(np.log10(cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() + 1e-6))
             for f in faces]
    sev = [e.severity for e in est]
    rho = spearmanr(sev, sharp).statistic
    order = np.argsort(sev)
    if sheet:   # outside the repository: these photos are not ours to commit
        tiles = [faces[i] for i in order]
        C.save_rgb(sheet, C.contact_sheet([tiles[k:k + 6] for k in range(0, len(tiles), 6)],
                                          [f"#{k + 1}" for k in range(6)]))
    rows = [[files[i].name, f"{sev[i]:.2f}", f"{sharp[i]:.2f}", describe(est[i])] for i in order]
    return (f"{len(files)} photos in {folder}, sorted by estimated severity; Spearman(severity, log10 Laplacian "
            f"variance) = {rho:.3f} (negative = more severe where less sharp)\n\n"
            + C.markdown_table(["photo", "severity", "log10 LapVar", "words"], rows))


def cmd_prove(a) -> int:
    t0 = time.perf_counter()
    model, estimator = load(a)
    cal = Calibration.load(a.calibration)
    base = C.settings_from_args(a)
    used = set(cal.meta.get("faces", []))
    held = [f for f in clean_faces(a) if f.name not in used]
    faces = held[:a.faces]
    lqs, kinds = prove_lqs(faces, a.seed)
    est = estimator.estimate(lqs)
    policies = {f"fixed irm_start={k}": K.with_fields(base, (float(k), v["irm2_start"], v["tem_t"]))
                for k, v in cal.meta["fixed_best"].items()}
    policies["defaults"] = base
    policies["auto"] = [auto_settings(base, e, cal) for e in est]
    scores, cache, keys = Scores(a.lam, not (a.no_identity or a.quick)), LRUCache(10**9), [f.name for f in faces]
    res = {}
    for name, s in policies.items():
        t1 = time.perf_counter()
        outs = K.restore(model, lqs, s, cache, keys)
        res[name] = [scores(f.image, f.name, o) for f, o in zip(faces, outs)]
        log(f"[prove] {name}: J {np.mean([r['J'] for r in res[name]]):.2f}  {time.perf_counter() - t1:.1f}s")
    auto_j = np.array([r["J"] for r in res["auto"]])
    rows = []
    for name, rs in res.items():
        j = np.array([r["J"] for r in rs])
        d = auto_j - j
        per_kind = [C.fmt(C.mean_or_nan(j[[k == kind for k in kinds]])) for kind in LEVELS + ("random",)]
        rows.append([name, f"{np.mean([r['psnr'] for r in rs]):.2f}", f"{np.mean([r['niqe'] for r in rs]):.2f}",
                     C.fmt(C.mean_or_nan(r["id"] for r in rs), 3), f"**{j.mean():.2f}**", *per_kind,
                     "—" if name == "auto" else f"{d.mean():+.2f} ± {d.std(ddof=1) / np.sqrt(len(d)):.2f}"])
    fixed_j = {n: np.mean([r["J"] for r in rs]) for n, rs in res.items() if n.startswith("fixed")}
    verdict = all(auto_j.mean() > v for v in fixed_j.values())
    chosen = np.array([[getattr(s, f) for f in K.FIELDS] for s in policies["auto"]])
    out = [f"# Auto vs fixed truncation ({len(faces)} held-out faces, {model.name}, "
           f"{'tiny random networks' if a.quick else a.weights})", "", cal.meta.get("objective", ""), "",
           C.markdown_table(["settings", "PSNR ↑", "NIQE ↓", "ID dist ↓", "J ↑", *[f"J {k}" for k in LEVELS],
                             "J random", "auto − this (± s.e.)"], rows), "",
           f"auto beats every fixed irm_start of the grid: **{'yes' if verdict else 'NO'}**; auto irm_start "
           f"used: min {chosen[:, 0].min():g}, median {np.median(chosen[:, 0]):g}, max {chosen[:, 0].max():g}", "",
           "## Estimator accuracy", "", accuracy(estimator, held[:a.acc_faces], a.seed)]
    if a.real and Path(a.real).is_dir():
        out += ["", "## Real LQ photos", "", real_check(estimator, Path(a.real), a.real_sheet)]
    out += ["", f"{(time.perf_counter() - t0) / 60:.1f} min"]
    text = "\n".join(out)
    print(text)
    if a.report:
        Path(a.report).parent.mkdir(parents=True, exist_ok=True)
        Path(a.report).write_text(text + "\n")
    return 0 if verdict or a.quick else 1


def parse_args(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    quick = "--quick" in argv
    ap = argparse.ArgumentParser(prog="python -m bench.auto_vs_fixed", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny random networks and faces: wiring check")
    ap.add_argument("--estimator", default="weights/estimator")
    ap.add_argument("--lam", type=float, default=K.LAMBDA, help="lambda of the objective J = PSNR - lambda * NIQE")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--faces", type=int, default=4 if quick else 32)
    ap.add_argument("--acc-faces", type=int, default=8 if quick else 400)
    ap.add_argument("--calibration", default=None, help=f"default weights/diffbfr/{CALIBRATION_FILE}")
    ap.add_argument("--no-identity", action="store_true")
    ap.add_argument("--real", default=None if quick else str(default_data_dir() / "real" / "cropped"))
    ap.add_argument("--real-sheet", default=None, help="contact sheet of the real faces (keep it out of the repo)")
    ap.add_argument("--report", default=None, help="also write the report here")
    C.add_model_args(ap, argv)
    a = ap.parse_args(argv)
    a.calibration = a.calibration or str(Path("bench_out/auto_quick" if quick else "weights/diffbfr") / CALIBRATION_FILE)
    return a


def main(argv=None) -> int:
    return cmd_prove(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
