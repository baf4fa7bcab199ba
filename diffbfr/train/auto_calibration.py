"""Fit Auto's calibration:  python -m diffbfr.train auto-calibration [--quick] [--faces 60]

UTKFace `test` faces (the first --faces by name), each degraded once by a seeded draw of the
training degradations (degrade.sample_params), restored on a grid of (irm_start, irm2_start,
tem_t) with the stage cache (a later stage's sweep reuses the earlier stages); objective per
face J = PSNR - lambda * NIQE (see OBJECTIVE). The faces are split into --buckets
equal-count buckets by *estimated* severity (what Auto will see), and the monotone path
through the grid (every setting non-decreasing from bucket to bucket) that maximises the sum
of the buckets' mean J is found exactly by dynamic programming, among the settings that do no
harm: a bucket's mean PSNR may fall at most --max-loss dB (0.3) below its LQ faces' own
(bicubic) PSNR; a bucket where no setting manages that gets its highest-PSNR setting. Written to
weights/diffbfr/auto_calibration.json (what ships) with the whole sweep summary in its meta.
`python -m bench.auto_vs_fixed` measures the result on other faces.

This is the one trainer that runs the restoration path (methods, photo, auto's estimator):
the policy it fits is a function of the restorer's own outputs.

--quick: random tiny networks, a random estimator, a few variants of the example face, a
2x2x2 grid: checks the wiring in seconds (numbers meaningless).
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from .. import methods
from .. import settings as S
from ..auto import CALIBRATION_FILE, Calibration, Estimator
from ..console import log, markdown_table
from ..faces.align import align_crop
from ..metrics import niqe as niqe_score, psnr
from ..nets.estimator import ESTIMATOR_FILE, FACTOR_NAMES, file_sha256
from ..niqe import NiqeModel
from ..photo import LRUCache, restore_faces
from .data import iter_faces
from .degrade import face_seed
from .estimator_trainer import degraded_sample

NAME = "auto-calibration"
FIELDS = ("irm_start", "irm2_start", "tem_t")
# Inside the range the shipped networks were trained on (t_max 400 for the IRM nets).
# irm_start 0 skips stage 1 (stage 2 starts from the LQ face); tem_t 0: TEM off.
GRID = {"irm_start": (0, 100, 200, 400), "irm2_start": (0, 100, 200), "tem_t": (0, 10, 20)}
QUICK_GRID = {"irm_start": (0, 100), "irm2_start": (0, 100), "tem_t": (0, 5)}
LAMBDA = 1.0
MAX_LOSS = 0.3   # dB below bicubic a bucket may fall (issue 20: a nearly clean face must not be damaged)
OBJECTIVE = ("J = PSNR (dB, vs the clean face) - lambda * NIQE, lambda = {lam:g} dB per NIQE unit: truncation "
             "trades fidelity (PSNR falls as more noise is added) for natural texture (NIQE falls); with lambda "
             "= 1 one NIQE unit, about a third of the gap between bicubic LQ (5.4) and the clean targets (2.9), "
             "is worth 1 dB. PSNR alone picks the least noise for every face (the placeholders are below "
             "bicubic), and identity distance costs 0.2 s a face with dlib, so it is reported, not optimised.")
SEV = FACTOR_NAMES.index("severity")
CHUNK = 16
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "astronaut_face_aligned.png"


@dataclass
class Face:
    name: str
    image: np.ndarray   # 128 x 128 x 3 uint8, canonical frame


# ---------------------------------------------------------------- inputs
def clean_faces(quick: bool, data_dir=None) -> list[Face]:
    """UTKFace test faces sorted by name, aligned as the benches align them, or (quick)
    shifted copies of the example face."""
    if quick:
        face = np.asarray(Image.open(EXAMPLE).convert("RGB"))
        face = cv2.resize(face, (128, 128), interpolation=cv2.INTER_AREA)
        return [Face(f"example+{k}", np.ascontiguousarray(np.roll(face, 3 * k, axis=1))) for k in range(12)]
    return [Face(name, align_crop(img, "utk").image) for name, img in iter_faces(split="test", data_dir=data_dir)]


def load(quick: bool, weights: str, method: str, estimator: str, threads: int, tiny: bool = False):
    """(model, estimator): the shipped ones, or (quick) random tiny ones."""
    torch.set_num_threads(threads)
    if quick:
        return methods.tiny("diffbfr"), Estimator.tiny()
    return methods.model_for(method, weights, random_tiny=tiny, device="cpu"), Estimator.load(estimator)


def with_fields(base, values) -> object:
    return S.clamp(type(base), {**S.to_dict(base), **dict(zip(FIELDS, values))})


def restore(model, lqs, s, cache, keys) -> list[np.ndarray]:
    """Final outputs; `s` one settings object or one per face."""
    out = []
    for lo in range(0, len(lqs), CHUNK):
        part = s[lo:lo + CHUNK] if isinstance(s, list) else s
        out += [st.result for st in restore_faces(model, lqs[lo:lo + CHUNK], part, cache, keys[lo:lo + CHUNK])]
    return out


# ---------------------------------------------------------------- the fit
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


def do_no_harm(psnrs: np.ndarray, bicubic: np.ndarray, groups, max_loss: float) -> np.ndarray:
    """allowed[b, g]: setting g keeps bucket b's mean PSNR within max_loss dB of its LQ faces'
    own; where none does, the bucket's highest-PSNR setting alone."""
    mean = np.stack([psnrs[idx].mean(0) for idx in groups])
    floor = np.array([bicubic[idx].mean() for idx in groups])[:, None] - max_loss
    allowed = mean >= floor
    for b in np.flatnonzero(~allowed.any(1)):
        allowed[b, mean[b].argmax()] = True
    return allowed


def buckets_by(values: np.ndarray, n: int) -> list[np.ndarray]:
    """Equal-count buckets of indices by value (ascending)."""
    return [b for b in np.array_split(np.argsort(values, kind="stable"), n) if len(b)]


def calibrate(a) -> int:
    t0 = time.perf_counter()
    model, estimator = load(a.quick, a.weights, a.method, a.estimator, a.threads, a.tiny)
    grid = QUICK_GRID if a.quick else GRID
    base = S.from_arguments(model.method.settings, a)
    faces = clean_faces(a.quick)[:a.faces]
    pairs = [degraded_sample(f.image, np.random.default_rng(face_seed(a.seed, "cal:" + f.name))) for f in faces]
    lqs = [p[0] for p in pairs]
    sev = estimator.predict(lqs)[:, SEV]
    true_sev = np.array([p[1][SEV] for p in pairs])
    combos = list(itertools.product(*(grid[f] for f in FIELDS)))   # tem_t innermost: IRM stages cached
    niqe_model = NiqeModel.load()
    psnrs, niqe = np.zeros((len(faces), len(combos))), np.zeros((len(faces), len(combos)))
    cache, keys = LRUCache(10**9), [f.name for f in faces]
    for g, combo in enumerate(combos):
        t1 = time.perf_counter()
        outs = restore(model, lqs, with_fields(base, combo), cache, keys)
        psnrs[:, g] = [psnr(f.image, o) for f, o in zip(faces, outs)]
        niqe[:, g] = [niqe_score(o, niqe_model) for o in outs]
        log(f"[calibrate {g + 1}/{len(combos)}] {dict(zip(FIELDS, combo))}: PSNR {psnrs[:, g].mean():.2f} "
            f"NIQE {niqe[:, g].mean():.2f}  {time.perf_counter() - t1:.1f}s")
    J = psnrs - a.lam * niqe
    groups = buckets_by(sev, a.buckets)
    scores = np.stack([J[idx].mean(0) for idx in groups])
    bicubic = np.array([psnr(f.image, lq) for f, lq in zip(faces, lqs)])
    allowed = do_no_harm(psnrs, bicubic, groups, a.max_loss)
    path = monotone_path(np.where(allowed, scores, -np.inf), combos)
    if not all(allowed[b, g] for b, g in enumerate(path)):   # no monotone path through them
        log("do-no-harm: no monotone path keeps every bucket within --max-loss; fitted without it")
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
                     "bicubic_psnr": round(float(bicubic[idx].mean()), 2),
                     "psnr_chosen": round(float(psnrs[idx, path[b]].mean()), 2),
                     "chosen": dict(zip(FIELDS, combos[path[b]])), "J_chosen": round(float(scores[b, path[b]]), 3),
                     "best_in_bucket": dict(zip(FIELDS, combos[g_best])), "J_best": round(float(scores[b, g_best]), 3)})
    values = {f: tuple(float(combos[path[b]][k]) for b in range(len(groups))) for k, f in enumerate(FIELDS)}
    meta = {"objective": OBJECTIVE.format(lam=a.lam), "lambda": a.lam, "max_loss_db": a.max_loss,
            "grid": {k: list(v) for k, v in grid.items()},
            "base_settings": S.to_dict(base), "faces": [f.name for f in faces], "degradation_seed": a.seed,
            "degradation": "diffbfr.train.degrade.sample_params(default_rng(face_seed(seed, 'cal:' + name)))",
            "severity": "estimated by the shipped estimator (what Auto sees at run time)",
            "estimator_sha256": "" if a.quick else file_sha256(Path(a.estimator) / ESTIMATOR_FILE),
            "weights": "random tiny networks (--quick)" if a.quick else str(a.weights),
            "buckets": rows, "fixed_best": fixed, "command": "python -m diffbfr.train " + " ".join(a.argv),
            "cpu_minutes": round((time.perf_counter() - t0) / 60, 1)}
    out = Calibration(model.name, tuple(float(x) for x in breaks), values, meta).save(a.out)
    print(f"# Auto calibration ({len(faces)} faces, {len(combos)} settings, {meta['cpu_minutes']} min)\n")
    print(meta["objective"] + "\n")
    print(markdown_table(["est. severity", "n", "true sev.", "bicubic PSNR", "chosen irm/irm2/tem", "its PSNR",
                          "J chosen", "best in bucket", "J best"],
                         [[f"{r['severity'][0]:.2f}-{r['severity'][1]:.2f}", r["n"], f"{r['true_severity_mean']:.2f}",
                           f"{r['bicubic_psnr']:.2f}", "/".join(f"{v:g}" for v in r["chosen"].values()),
                           f"{r['psnr_chosen']:.2f}", f"{r['J_chosen']:.2f}",
                           "/".join(f"{v:g}" for v in r["best_in_bucket"].values()), f"{r['J_best']:.2f}"]
                          for r in rows]))
    print("\nfixed irm_start (best irm2_start, tem_t with it), all calibration faces:\n")
    print(markdown_table(["irm_start", "irm2_start", "tem_t", "J"],
                         [[k, f"{v['irm2_start']:g}", f"{v['tem_t']:g}", f"{v['J']:.2f}"] for k, v in fixed.items()]))
    print(f"\nwritten: {out}")
    return 0


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = argv[1:] if argv and argv[0] == NAME else argv
    quick = "--quick" in rest
    ap = argparse.ArgumentParser(prog=f"python -m diffbfr.train {NAME}", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny random networks and faces: wiring check")
    ap.add_argument("--estimator", default="weights/estimator")
    ap.add_argument("--lam", type=float, default=LAMBDA, help="lambda of the objective J = PSNR - lambda * NIQE")
    ap.add_argument("--max-loss", type=float, default=MAX_LOSS,
                    help="dB a bucket's mean PSNR may fall below its LQ faces' own (do no harm); inf: off")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--faces", type=int, default=4 if quick else 60)
    ap.add_argument("--buckets", type=int, default=2 if quick else 5)
    ap.add_argument("--out", default=None, help=f"default weights/diffbfr/{CALIBRATION_FILE} "
                                                "(--quick: bench_out/auto_quick/)")
    ap.add_argument("--method", default="diffbfr", choices=["diffbfr"], help="the method calibrated")
    ap.add_argument("--weights", default="weights", help="weights root (one folder per method) or the method's folder")
    ap.add_argument("--tiny", action="store_true", help="random tiny networks (tests only)")
    S.add_arguments(ap, methods.get("diffbfr").settings, "DiffBFR settings the calibration starts from (the seed "
                                                          "also bases the per-face degradation seeds)")
    a = ap.parse_args(rest)
    a.argv = [NAME, *rest]
    a.out = a.out or str(Path("bench_out/auto_quick" if quick else "weights/diffbfr") / CALIBRATION_FILE)
    return a


def main(argv=None) -> int:
    return calibrate(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
