"""Does the DRE encode the degradation and not the face?  python -m bench.dre_retrieval [--limit 100]

Held-out UTKFace `test` faces (never trained on; sharpness >= --min-sharpness, first --limit by
name, 128 px) are each degraded under CONDITIONS: clean, the three evaluation LEVELS
(fixed_params(level, face seed)), and one factor alone at three strengths (blur, down-sampling,
Gaussian noise, JPEG).  Every image is embedded by the shipped DRE (whole 128 px face, eval
mode) and, for comparison, by the same network untrained (seed 0) and by raw pixels (a 32 px
thumbnail).  Similarity: cosine after subtracting the mean vector of the bench set.

Reported (leave-one-out k-NN, k = 1 and 5, majority vote, ties to the nearer class; the
neighbours of a point are only points of OTHER faces, so a face cannot vote for itself):
  level        the 3 LEVELS                              chance 1/3
  factor       which factor (single-factor images)       chance 1/4
  blur|down|noise|jpeg strength   within one factor      chance 1/3
  condition    all 16 conditions                          chance 1/16
and the own-face rate: how often a point's nearest neighbour among ALL other points is the same
face under another degradation (chance (C-1)/(N*C-1)); low = identity is not what it encodes.

Writes a PCA plot (no face pixels) to --plot and the numbers to --json; prints markdown.
--quick: 4 synthetic smooth 64 px "faces", no dataset (tests); --tiny: a random TINY DRE.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import face_seed, markdown_table  # noqa: E402
from diffbfr.checkpoint import load_network  # noqa: E402
from diffbfr.frame import FRAME  # noqa: E402
from diffbfr.nets.panini_dre import DRE, TINY, DREConfig  # noqa: E402
from diffbfr.train.data import iter_faces  # noqa: E402
from diffbfr.train.degrade import LEVELS, DegradeParams, apply_params, fixed_params  # noqa: E402
from diffbfr.train.estimator_trainer import dre_features  # noqa: E402

FACTORS = {  # factor -> strengths (sigmas in px of the 128 px frame, noise in grey levels)
    "blur": (0.8, 1.6, 2.4),
    "down": (2.0, 4.0, 8.0),
    "noise": (3.0, 6.0, 10.0),
    "jpeg": (80, 50, 20),
}


def conditions() -> list[dict]:
    """[{name, level, factor, strength}]: the 16 degradations every face goes through."""
    out = [{"name": "clean", "level": None, "factor": None, "strength": None}]
    out += [{"name": lv, "level": lv, "factor": None, "strength": None} for lv in LEVELS]
    for f, strengths in FACTORS.items():
        out += [{"name": f"{f} {s:g}", "level": None, "factor": f, "strength": s} for s in strengths]
    return out


def params_for(cond: dict, seed: int) -> DegradeParams:
    if cond["level"]:
        return fixed_params(cond["level"], seed)
    f, s = cond["factor"], cond["strength"]
    if f == "blur":
        return DegradeParams(blur=(s, s, 0.0))
    if f == "down":
        return DegradeParams(down_factor=s, down_interp="area", up_interp="bicubic")
    if f == "noise":
        return DegradeParams(noise_kind="gauss", noise_level=s, noise_seed=seed)
    if f == "jpeg":
        return DegradeParams(jpeg_quality=int(s))
    return DegradeParams()  # clean: every step skipped


def synthetic_faces(n: int, size: int = FRAME, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Smooth random images: stand-ins with some texture (tests only)."""
    rng = np.random.default_rng(seed)
    return [(f"synthetic{i}", cv2.resize(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), (size, size),
                                         interpolation=cv2.INTER_CUBIC)) for i in range(n)]


def degraded_set(faces: list[tuple[str, np.ndarray]], seed: int
                 ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(images, face index per image, condition index per image), face-major."""
    images, face_ids, cond_ids = [], [], []
    for fi, (name, img) in enumerate(faces):
        for ci, cond in enumerate(conditions()):
            images.append(apply_params(img, params_for(cond, face_seed(seed, f"{name}:{cond['name']}"))))
            face_ids.append(fi)
            cond_ids.append(ci)
    return images, np.array(face_ids), np.array(cond_ids)


def pixels(images: list[np.ndarray]) -> np.ndarray:
    return np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_AREA).ravel() for im in images]).astype(np.float64)


# ---------------------------------------------------------------- retrieval
def similarity(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.mean(0)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x @ x.T


def knn_accuracy(sim: np.ndarray, labels: np.ndarray, face_ids: np.ndarray, k: int) -> float:
    """Leave-one-out k-NN accuracy; neighbours are restricted to points of other faces."""
    n, hits = len(labels), 0
    classes = {c: j for j, c in enumerate(sorted(set(labels.tolist()), key=str))}
    for i in range(n):
        s = np.where(face_ids == face_ids[i], -np.inf, sim[i])
        nn = np.argsort(-s, kind="stable")[:k]
        votes = np.zeros(len(classes))
        for rank, j in enumerate(nn):
            votes[classes[labels[j]]] += 1.0 - 1e-6 * rank  # a tie goes to the class met first
        hits += int(np.argmax(votes) == classes[labels[i]])
    return hits / n


def own_face_rate(sim: np.ndarray, face_ids: np.ndarray) -> float:
    s = sim.copy()
    np.fill_diagonal(s, -np.inf)
    return float(np.mean(face_ids[np.argmax(s, 1)] == face_ids))


def evaluate(x: np.ndarray, face_ids: np.ndarray, cond_ids: np.ndarray) -> dict:
    """Every row of the table for one embedding x (one row per image)."""
    conds = conditions()
    level = np.array([conds[c]["level"] or "" for c in cond_ids])
    factor = np.array([conds[c]["factor"] or "" for c in cond_ids])
    strength = np.array([str(conds[c]["strength"]) for c in cond_ids])
    tasks = {"level": (level != "", level, len(LEVELS)),
             "factor": (factor != "", factor, len(FACTORS))}
    for f in FACTORS:
        tasks[f"{f} strength"] = (factor == f, strength, len(FACTORS[f]))
    tasks["condition"] = (np.ones(len(cond_ids), bool), cond_ids, len(conds))
    out = {}
    for name, (mask, labels, n_classes) in tasks.items():
        sim = similarity(x[mask])
        out[name] = {"k1": knn_accuracy(sim, labels[mask], face_ids[mask], 1),
                     "k5": knn_accuracy(sim, labels[mask], face_ids[mask], 5), "chance": 1 / n_classes}
    n_faces, n_conds = len(set(face_ids.tolist())), len(conds)
    out["own-face NN"] = {"rate": own_face_rate(similarity(x), face_ids),
                          "chance": (n_conds - 1) / (n_faces * n_conds - 1)}
    lv = level != ""
    out["own-face NN (levels)"] = {"rate": own_face_rate(similarity(x[lv]), face_ids[lv]),
                                   "chance": (len(LEVELS) - 1) / (n_faces * len(LEVELS) - 1)}
    return out


# ---------------------------------------------------------------- plot, table
def pca2(x: np.ndarray) -> np.ndarray:
    """First two principal components of the vectors the k-NN compares (mean-centred unit
    vectors: when two components dominate, points lie near a circle)."""
    x = x.astype(np.float64) - x.mean(0)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def plot(embeddings: dict[str, np.ndarray], cond_ids: np.ndarray, path: Path, title: str) -> Path:
    """One row per encoder: (levels + clean) coloured by level | single factors by factor,
    darker = stronger.  Points are embeddings: no pixels of any face."""
    conds = conditions()
    level_colors = {"clean": "black", "light": "tab:green", "medium": "tab:orange", "heavy": "tab:red"}
    cmaps = {"blur": "Blues", "down": "Purples", "noise": "Greens", "jpeg": "Oranges"}
    fig, axes = plt.subplots(len(embeddings), 2, figsize=(11, 4.6 * len(embeddings)), squeeze=False)
    for row, (name, x) in zip(axes, embeddings.items()):
        xy = pca2(x)
        for ci, c in enumerate(conds):
            pts = xy[cond_ids == ci]
            if c["factor"] is None:
                row[0].scatter(pts[:, 0], pts[:, 1], s=9, alpha=0.7, color=level_colors[c["name"]], label=c["name"])
            else:
                shade = 0.45 + 0.5 * FACTORS[c["factor"]].index(c["strength"]) / (len(FACTORS[c["factor"]]) - 1)
                row[1].scatter(pts[:, 0], pts[:, 1], s=9, alpha=0.7, color=plt.get_cmap(cmaps[c["factor"]])(shade),
                               label=c["name"])
        row[0].set_title(f"{name}: clean and the three levels")
        row[1].set_title(f"{name}: one factor at a time (darker = stronger)")
        for ax in row:
            ax.set_xticks([]), ax.set_yticks([])
    for ax in axes[-1]:  # one legend per column, under the last row, so no point is hidden
        ax.legend(fontsize=8, markerscale=2, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=4)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def table(results: dict[str, dict]) -> str:
    names = list(results)
    first = results[names[0]]
    rows = []
    for task, r in first.items():
        if "k1" in r:
            cells = [f"{results[n][task]['k1']:.3f} / {results[n][task]['k5']:.3f}" for n in names]
            rows.append([task, *cells, f"{r['chance']:.3f}"])
        else:
            rows.append([task, *[f"{results[n][task]['rate']:.3f}" for n in names], f"{r['chance']:.3f}"])
    return markdown_table(["label (k-NN: k=1 / k=5)", *names, "chance"], rows)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="weights/panini/dre.safetensors")
    ap.add_argument("--limit", type=int, default=100, help="test faces (first by name after the sharpness filter)")
    ap.add_argument("--min-sharpness", type=float, default=30.0, help="as in training: soft faces blur the labels")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed", type=int, default=0, help="base of the per-face degradation seeds")
    ap.add_argument("--no-baselines", action="store_true", help="skip the untrained DRE and the pixel baseline")
    ap.add_argument("--plot", default="weights/panini/dre_embedding.png")
    ap.add_argument("--json", default="bench_out/dre.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="4 synthetic 64 px faces instead of UTKFace (tests)")
    ap.add_argument("--tiny", action="store_true", help="a random TINY DRE instead of --weights (tests)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0, load0 = time.time(), os.getloadavg()[0]

    if a.quick:
        faces = synthetic_faces(4, 64)
    else:
        faces = list(iter_faces("test", a.data_dir, a.min_sharpness, a.limit, size=FRAME))
    images, face_ids, cond_ids = degraded_set(faces, a.seed)
    torch.manual_seed(0)
    if a.tiny:
        dre, cfg = DRE(TINY).eval(), TINY
    else:
        dre = load_network(a.weights)
        cfg = dre.config
    encoders = {"DRE (trained)" if not a.tiny else "DRE (tiny, random)": lambda: dre_features(dre, images).numpy()}
    if not a.no_baselines:
        if not a.tiny:  # a random tiny DRE is its own untrained baseline
            torch.manual_seed(0)
            untrained = DRE(DREConfig.from_dict(cfg.to_dict())).eval()
            encoders["DRE untrained"] = lambda: dre_features(untrained, images).numpy()
        encoders["pixels 32 px"] = lambda: pixels(images)
    embeddings = {name: fn() for name, fn in encoders.items()}
    results = {name: evaluate(x, face_ids, cond_ids) for name, x in embeddings.items()}

    src = "synthetic" if a.quick else f"UTKFace test, sharpness >= {a.min_sharpness:g}"
    title = (f"DRE embeddings, PCA of mean-centred unit vectors: {len(faces)} faces ({src}) x "
             f"{len(conditions())} degradations")
    out_plot = plot(embeddings, cond_ids, Path(a.plot), title)
    report = {"faces": len(faces), "conditions": [c["name"] for c in conditions()], "source": src,
              "weights": None if a.tiny else a.weights, "results": results, "seconds": round(time.time() - t0, 1),
              "load_avg_1min_start": load0, "plot": str(out_plot)}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{len(faces)} faces ({src}) x {len(conditions())} conditions = {len(images)} images; "
          f"{report['seconds']} s; plot {out_plot}; numbers {a.json}\n")
    print(table(results))
    return report


if __name__ == "__main__":
    main()
