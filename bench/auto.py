"""Automatic truncation, calibrated and proved: python -m bench.auto calibrate|prove [--quick]

calibrate: UTKFace `test` faces (the first --faces by name), each degraded once by a seeded
draw of the training degradations (degrade.sample_params), restored on a grid of
(irm_start, irm2_start, tem_t) with the stage cache (a later stage's sweep reuses the earlier
stages); objective per face J = PSNR - lambda * NIQE (see OBJECTIVE). The faces are split
into --buckets equal-count buckets by *estimated* severity (what Auto will see), and the
monotone path through the grid (every setting non-decreasing from bucket to bucket) that
maximises the sum of the buckets' mean J is found exactly by dynamic programming. Written
to weights/diffbfr/auto_calibration.json with the whole sweep summary in its meta.

prove: other UTKFace `test` faces (never in the calibration), degraded at a mix of levels
(fixed light / medium / heavy and random draws, in turn): auto settings vs every fixed
irm_start of the grid (each with the irm2_start and tem_t that did best with it in the
calibration) and vs the defaults, on the same objective, paired per face; the estimator's
accuracy on held-out faces; and its severity order on real LQ photos against a classical
sharpness measure.

--quick: random tiny networks, a random estimator, a few variants of the example face, a
2x2x2 grid: checks the wiring in seconds (numbers meaningless).
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.stats import spearmanr

from bench import common as C
from bench import metrics as M
from bench.niqe import NiqeModel
from diffbfr import methods
from diffbfr import settings as S
from diffbfr.auto import (CALIBRATION_FILE, ESTIMATOR_FILE, FACTOR_NAMES, Calibration, Estimator, auto_settings,
                          describe, file_sha256, severity_from_psnr)
from diffbfr.faces.align import align_crop
from diffbfr.faces.identity import face_embedding
from diffbfr.photo import LRUCache, restore_faces
from diffbfr.train.data import default_data_dir
from diffbfr.train.degrade import LEVELS, fixed_degrade
from diffbfr.train.estimator import degraded_sample

FIELDS = ("irm_start", "irm2_start", "tem_t")
GRID = {"irm_start": (0, 100, 250, 500), "irm2_start": (0, 100, 250), "tem_t": (0, 10)}
QUICK_GRID = {"irm_start": (0, 100), "irm2_start": (0, 100), "tem_t": (0, 5)}
LAMBDA = 1.0
OBJECTIVE = ("J = PSNR (dB, vs the clean face) - lambda * NIQE, lambda = {lam:g} dB per NIQE unit: truncation "
             "trades fidelity (PSNR falls as more noise is added) for natural texture (NIQE falls); with lambda "
             "= 1 one NIQE unit, about a third of the gap between bicubic LQ (5.4) and the clean targets (2.9), "
             "is worth 1 dB. PSNR alone picks the least noise for every face (the placeholders are below "
             "bicubic), and identity distance costs 0.2 s a face with dlib, so it is reported, not optimised.")
SEV = FACTOR_NAMES.index("severity")
CHUNK = 16
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut_face_aligned.png"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- inputs
def clean_faces(a) -> list[C.FaceItem]:
    """UTKFace test faces sorted by name, or (--quick) shifted copies of the example face."""
    if a.quick:
        face = cv2.resize(C.load_rgb(EXAMPLE), (128, 128), interpolation=cv2.INTER_AREA)
        return [C.FaceItem(f"example+{k}", np.ascontiguousarray(np.roll(face, 3 * k, axis=1)), "crop", 128.0)
                for k in range(12)]
    return C.utk_test_faces(None)[0]


def load(a) -> tuple[methods.Model, Estimator]:
    torch.set_num_threads(a.threads)
    if a.quick:
        return methods.tiny("diffbfr"), Estimator.tiny()
    return C.load_model(a, "cpu"), Estimator.load(a.estimator)


def with_fields(base, values) -> object:
    return S.clamp(type(base), {**S.to_dict(base), **dict(zip(FIELDS, values))})


def restore(model, lqs, s, cache, keys) -> list[np.ndarray]:
    """Final outputs; `s` one settings object or one per face."""
    out = []
    for lo in range(0, len(lqs), CHUNK):
        part = s[lo:lo + CHUNK] if isinstance(s, list) else s
        out += [st.result for st in restore_faces(model, lqs[lo:lo + CHUNK], part, cache, keys[lo:lo + CHUNK])]
    return out


# ---------------------------------------------------------------- calibration
def monotone_path(scores: np.ndarray, grid: list[tuple]) -> list[int]:
    """Indices g_0..g_{B-1} into `grid` maximising sum_b scores[b, g_b] subject to
    grid[g_b] <= grid[g_b+1] in every coordinate (exact: dynamic programming over the grid)."""
    n_b, n_g = scores.shape
    le = np.array([[all(x <= y for x, y in zip(grid[i], grid[j])) for j in range(n_g)] for i in range(n_g)])
    best, back = scores[0].astype(float), []
    for b in range(1, n_b):
        cand = np.where(le, best[:, None], -np.inf)        # cand[i, j]: come from i, go to j
        arg = cand.argmax(0)
        back.append(arg)
        best = cand[arg, np.arange(n_g)] + scores[b]
    path = [int(best.argmax())]
    for arg in reversed(back):
        path.append(int(arg[path[-1]]))
    return path[::-1]


def buckets_by(values: np.ndarray, n: int) -> list[np.ndarray]:
    """Equal-count buckets of indices by value (ascending)."""
    return [b for b in np.array_split(np.argsort(values, kind="stable"), n) if len(b)]


def cmd_calibrate(a) -> int:
    t0 = time.perf_counter()
    model, estimator = load(a)
    grid = QUICK_GRID if a.quick else GRID
    base = C.settings_from_args(a)
    faces = clean_faces(a)[:a.faces]
    pairs = [degraded_sample(f.image, np.random.default_rng(C.face_seed(a.seed, "cal:" + f.name))) for f in faces]
    lqs = [p[0] for p in pairs]
    sev = estimator.predict(lqs)[:, SEV]
    true_sev = np.array([p[1][SEV] for p in pairs])
    combos = list(itertools.product(*(grid[f] for f in FIELDS)))   # tem_t innermost: IRM stages cached
    niqe_model = NiqeModel.load()
    psnr, niqe = np.zeros((len(faces), len(combos))), np.zeros((len(faces), len(combos)))
    cache, keys = LRUCache(10**9), [f.name for f in faces]
    for g, combo in enumerate(combos):
        t1 = time.perf_counter()
        outs = restore(model, lqs, with_fields(base, combo), cache, keys)
        psnr[:, g] = [M.psnr(f.image, o) for f, o in zip(faces, outs)]
        niqe[:, g] = [M.niqe(o, niqe_model) for o in outs]
        log(f"[calibrate {g + 1}/{len(combos)}] {dict(zip(FIELDS, combo))}: PSNR {psnr[:, g].mean():.2f} "
            f"NIQE {niqe[:, g].mean():.2f}  {time.perf_counter() - t1:.1f}s")
    J = psnr - a.lam * niqe
    groups = buckets_by(sev, a.buckets)
    scores = np.stack([J[idx].mean(0) for idx in groups])
    path = monotone_path(scores, combos)
    breaks = np.maximum.accumulate([float(np.median(sev[idx])) for idx in groups])
    breaks = breaks + 1e-4 * np.arange(len(breaks))       # strictly increasing even with ties
    fixed = {}
    for v in grid["irm_start"]:
        cols = [g for g, c in enumerate(combos) if c[0] == v]
        g = max(cols, key=lambda c: J[:, c].mean())
        fixed[str(v)] = {"irm2_start": combos[g][1], "tem_t": combos[g][2], "J": round(float(J[:, g].mean()), 3)}
    rows = []
    for b, idx in enumerate(groups):
        g_best = int(scores[b].argmax())
        rows.append({"severity": [round(float(sev[idx].min()), 3), round(float(sev[idx].max()), 3)], "n": len(idx),
                     "breakpoint": round(float(breaks[b]), 4), "true_severity_mean": round(float(true_sev[idx].mean()), 3),
                     "chosen": dict(zip(FIELDS, combos[path[b]])), "J_chosen": round(float(scores[b, path[b]]), 3),
                     "best_in_bucket": dict(zip(FIELDS, combos[g_best])), "J_best": round(float(scores[b, g_best]), 3)})
    values = {f: tuple(float(combos[path[b]][k]) for b in range(len(groups))) for k, f in enumerate(FIELDS)}
    meta = {"objective": OBJECTIVE.format(lam=a.lam), "lambda": a.lam, "grid": {k: list(v) for k, v in grid.items()},
            "base_settings": S.to_dict(base), "faces": [f.name for f in faces], "degradation_seed": a.seed,
            "degradation": "diffbfr.train.degrade.sample_params(default_rng(face_seed(seed, 'cal:' + name)))",
            "severity": "estimated by the shipped estimator (what Auto sees at run time)",
            "estimator_sha256": "" if a.quick else file_sha256(Path(a.estimator) / ESTIMATOR_FILE),
            "weights": "random tiny networks (--quick)" if a.quick else str(a.weights),
            "buckets": rows, "fixed_best": fixed, "command": "python -m bench.auto " + " ".join(a.argv),
            "cpu_minutes": round((time.perf_counter() - t0) / 60, 1)}
    out = Calibration(model.name, tuple(float(x) for x in breaks), values, meta).save(a.out)
    print(f"# Auto calibration ({len(faces)} faces, {len(combos)} settings, {meta['cpu_minutes']} min)\n")
    print(meta["objective"] + "\n")
    print(C.markdown_table(["est. severity", "n", "true sev.", "chosen irm/irm2/tem", "J chosen",
                            "best in bucket", "J best"],
                           [[f"{r['severity'][0]:.2f}-{r['severity'][1]:.2f}", r["n"], f"{r['true_severity_mean']:.2f}",
                             "/".join(f"{v:g}" for v in r["chosen"].values()), f"{r['J_chosen']:.2f}",
                             "/".join(f"{v:g}" for v in r["best_in_bucket"].values()), f"{r['J_best']:.2f}"]
                            for r in rows]))
    print("\nfixed irm_start (best irm2_start, tem_t with it), all calibration faces:\n")
    print(C.markdown_table(["irm_start", "irm2_start", "tem_t", "J"],
                           [[k, f"{v['irm2_start']:g}", f"{v['tem_t']:g}", f"{v['J']:.2f}"] for k, v in fixed.items()]))
    print(f"\nwritten: {out}")
    return 0


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
    policies = {f"fixed irm_start={k}": with_fields(base, (float(k), v["irm2_start"], v["tem_t"]))
                for k, v in cal.meta["fixed_best"].items()}
    policies["defaults"] = base
    policies["auto"] = [auto_settings(base, e, cal) for e in est]
    scores, cache, keys = Scores(a.lam, not (a.no_identity or a.quick)), LRUCache(10**9), [f.name for f in faces]
    res = {}
    for name, s in policies.items():
        t1 = time.perf_counter()
        outs = restore(model, lqs, s, cache, keys)
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
    chosen = np.array([[getattr(s, f) for f in FIELDS] for s in policies["auto"]])
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
    if not argv or argv[0] not in ("calibrate", "prove"):
        raise SystemExit("usage: python -m bench.auto calibrate|prove [--quick] [flags]  (--help after the command)")
    cmd, rest = argv[0], argv[1:]
    ap = argparse.ArgumentParser(prog=f"python -m bench.auto {cmd}", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny random networks and faces: wiring check")
    ap.add_argument("--estimator", default="weights/estimator")
    ap.add_argument("--lam", type=float, default=LAMBDA, help="lambda of the objective J = PSNR - lambda * NIQE")
    ap.add_argument("--threads", type=int, default=2)
    quick = "--quick" in rest
    if cmd == "calibrate":
        ap.add_argument("--faces", type=int, default=4 if quick else 60)
        ap.add_argument("--buckets", type=int, default=2 if quick else 5)
        ap.add_argument("--out", default=None, help=f"default weights/diffbfr/{CALIBRATION_FILE} "
                                                    "(--quick: bench_out/auto_quick/)")
    else:
        ap.add_argument("--faces", type=int, default=4 if quick else 32)
        ap.add_argument("--acc-faces", type=int, default=8 if quick else 400)
        ap.add_argument("--calibration", default=None, help=f"default weights/diffbfr/{CALIBRATION_FILE}")
        ap.add_argument("--no-identity", action="store_true")
        ap.add_argument("--real", default=None if quick else str(default_data_dir() / "real" / "cropped"))
        ap.add_argument("--real-sheet", default=None, help="contact sheet of the real faces (keep it out of the repo)")
        ap.add_argument("--report", default=None, help="also write the report here")
    C.add_model_args(ap, rest)
    a = ap.parse_args(rest)
    a.cmd, a.argv = cmd, argv
    default_cal = Path("bench_out/auto_quick" if quick else "weights/diffbfr") / CALIBRATION_FILE
    if cmd == "calibrate":
        a.out = a.out or str(default_cal)
    else:
        a.calibration = a.calibration or str(default_cal)
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    return cmd_calibrate(a) if a.cmd == "calibrate" else cmd_prove(a)


if __name__ == "__main__":
    sys.exit(main())
