"""Learning curves across a relay of runs: python -m bench.learning_curves RUN.json [RUN.json ...]
[--out weights/diffbfr/learning_curves.png]

Each RUN.json is a weights JSON (NAME.json beside NAME.safetensors) or a run's state.json; its
`val_history` holds the trainer's validation every --val-every steps (sampled PSNR at fixed
start steps, `val_psnr_s*`, and the start image's own PSNR, `val_psnr_start`). A run that
warm-started from earlier weights counts its steps after theirs (`prior_steps`), so the runs of
successive sessions join into one curve per network. One panel per network; dashed: the start
image. Prints the last point of every curve.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def curves(paths) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """network -> series name (val_psnr_s50, ...) -> [(total step, dB)], sorted by step."""
    out: dict[str, dict[str, list]] = {}
    for path in paths:
        payload = json.loads(Path(path).read_text())
        meta = payload.get("meta", payload)   # weights JSON: {config, meta}; state.json: flat
        name = meta.get("model") or payload.get("config", {}).get("name") or Path(path).stem
        offset = int(meta.get("prior_steps", 0))
        for point in meta.get("val_history", []):
            for key, value in point.items():
                if key.startswith("val_psnr_"):
                    out.setdefault(name, {}).setdefault(key, []).append((offset + int(point["step"]), float(value)))
    for series in out.values():
        for key in series:
            series[key] = sorted(set(series[key]))
    return out


def plot(data, out: Path) -> None:
    fig, axes = plt.subplots(1, len(data), figsize=(6 * len(data), 4), squeeze=False)
    for ax, (name, series) in zip(axes[0], sorted(data.items())):
        for key, points in sorted(series.items()):
            steps, db = zip(*points)
            start = key == "val_psnr_start"
            ax.plot(steps, db, "--" if start else "-o", markersize=3,
                    label="start image" if start else f"sampled, start {key.removeprefix('val_psnr_s')}")
        ax.set(title=name, xlabel="training steps (all sessions)", ylabel="PSNR dB (held-out faces)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.learning_curves", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="weights JSONs or state.json files, any order")
    ap.add_argument("--out", default="bench_out/learning_curves.png")
    a = ap.parse_args(argv)
    data = curves(a.runs)
    if not data:
        print("no val_history in these files")
        return 1
    plot(data, Path(a.out))
    for name, series in sorted(data.items()):
        last = {k.removeprefix("val_psnr_"): v[-1] for k, v in series.items()}
        print(name, " ".join(f"{k} {db:.2f} dB @ {step}" for k, (step, db) in sorted(last.items())))
    print(f"plot: {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
