"""Speed benchmark: python -m bench.speed [--device cpu|cuda|all] [--repeats N] [--threads N] [--full]

Per-stage wall time (median over --repeats after --warmup runs) and network evaluations
(counted with forward hooks on the three UNets, not taken from the settings) for one
face, and, with the same models, plain sampling from pure noise:
  - ddim-from-T : each IRM stage started at t = T (pure noise) with our step counts;
  - ancestral-1000: each IRM stage from t = T with 1000 DDIM steps at eta = 1 (= DDPM
    ancestral sampling). Unless --full, only --ancestral-steps steps are run and the
    time is extrapolated linearly per network evaluation (labelled "extrapolated").
TEM is the same small-t polish in every pipeline (starting it from pure noise would
throw the restoration away), so it is timed once and added to each total.
Baselines go through the pipeline's own stage functions (DiffBFR.run_irm64/run_irm128
with irm_start = irm2_start = T), so the conditioning is exactly what restoration uses.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench import common as C

NET_FOR_STAGE = {"irm64": "irm64", "irm128": "irm128", "tem": "tem128"}


class NFECounter:
    """Counts forward calls of each UNet (a batch of one image = one evaluation)."""

    def __init__(self, nets: dict):
        self.counts = {k: 0 for k in nets}
        self._handles = [net.register_forward_pre_hook(self._hook(k)) for k, net in nets.items()]

    def _hook(self, name):
        def hook(module, args):
            self.counts[name] += 1
        return hook

    def reset(self) -> None:
        self.counts = {k: 0 for k in self.counts}

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def _sync(device: torch.device):
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def timed(fn, repeats: int, warmup: int, sync, counter: NFECounter, net: str | None):
    """(median seconds, all runs, NFE counted during the first timed run) of fn()."""
    for _ in range(warmup):
        fn()
    runs, nfe = [], None
    for _ in range(max(repeats, 1)):
        counter.reset()
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        runs.append(time.perf_counter() - t0)
        if nfe is None:
            nfe = sum(counter.counts.values()) if net is None else counter.counts[net]
    return statistics.median(runs), runs, nfe


def timing_face(path: str | None) -> np.ndarray:
    """The face to time: --image (aligned crop, resized to 128) or a fixed smooth random
    image (cost does not depend on content)."""
    import cv2

    if path:
        from diffbfr.faces.align import align_crop
        return align_crop(C.load_rgb(path), "auto").image
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return np.ascontiguousarray(cv2.resize(small, (128, 128), interpolation=cv2.INTER_CUBIC))


def bench_device(a, device: str, settings, face) -> list[dict]:
    from diffbfr.diffusion.schedule import T

    model = C.load_model(a, device)
    dev = torch.device(model.device)
    sync = _sync(dev)
    counter = NFECounter(model.nets)
    rows = []

    def add(pipeline, stage, secs, nfe, note="", runs=None):
        rows.append({"device": str(dev), "pipeline": pipeline, "stage": stage, "nfe": nfe,
                     "ms": secs * 1000, "ms_per_nfe": secs * 1000 / nfe if nfe else None,
                     "note": note, "runs_ms": [round(r * 1000, 3) for r in (runs or [])]})

    s = settings
    irm64 = model.run_irm64(face, s)
    irm128 = model.run_irm128(face, irm64, s)
    r, w = a.repeats, a.warmup
    # ours: the truncated few-step pipeline
    for stage, fn in (("irm64", lambda: model.run_irm64(face, s)),
                      ("irm128", lambda: model.run_irm128(face, irm64, s)),
                      ("tem", lambda: model.run_tem(irm128, s))):
        med, runs, nfe = timed(fn, r, w, sync, counter, NET_FOR_STAGE[stage])
        add("ours (truncated)", stage, med, nfe, runs=runs)
    med, runs, nfe = timed(lambda: model.restore_face(face, s), r, w, sync, counter, None)
    add("ours (truncated)", "restore_face", med, nfe, "one call, all stages", runs)
    tem_row = next(x for x in rows if x["stage"] == "tem")

    # DDIM from pure noise with our step counts
    sd = dataclasses.replace(s, irm_start=T, irm2_start=T)
    for stage, fn in (("irm64", lambda: model.run_irm64(face, sd)),
                      ("irm128", lambda: model.run_irm128(face, irm64, sd))):
        med, runs, nfe = timed(fn, r, w, sync, counter, NET_FOR_STAGE[stage])
        add("ddim-from-T", stage, med, nfe, runs=runs)

    # ancestral 1000 steps from pure noise (eta = 1), measured k steps then extrapolated
    k = 1000 if a.full else min(a.ancestral_steps, 1000)
    sa = dataclasses.replace(s, irm_start=T, irm2_start=T, irm64_steps=k, irm128_steps=k, eta=1.0)
    reps = 1 if a.full else r
    for stage, fn in (("irm64", lambda: model.run_irm64(face, sa)),
                      ("irm128", lambda: model.run_irm128(face, irm64, sa))):
        med, runs, nfe = timed(fn, reps, 0 if a.full else w, sync, counter, NET_FOR_STAGE[stage])
        if a.full:
            add("ancestral-1000", stage, med, nfe, "measured (--full)", runs)
        else:
            add("ancestral-1000", stage, med / max(nfe, 1) * 1000, 1000,
                f"extrapolated from {nfe} steps ({med * 1000:.1f} ms)", runs)
    counter.close()

    # totals: sum of per-stage medians, TEM shared
    ours_total = sum(x["ms"] for x in rows if x["pipeline"] == "ours (truncated)" and x["stage"] in NET_FOR_STAGE)
    for pipe in ("ours (truncated)", "ddim-from-T", "ancestral-1000"):
        st = [x for x in rows if x["pipeline"] == pipe and x["stage"] in ("irm64", "irm128")]
        ms = sum(x["ms"] for x in st) + tem_row["ms"]
        nfe = sum(x["nfe"] for x in st) + tem_row["nfe"]
        rows.append({"device": str(dev), "pipeline": pipe, "stage": "total (irm64+irm128+tem)", "nfe": nfe,
                     "ms": ms, "ms_per_nfe": ms / nfe if nfe else None,
                     "note": "sum of stage medians" + ("" if pipe.startswith("ours") else "; TEM as ours"),
                     "ratio": ms / ours_total if ours_total else None, "runs_ms": []})
    return rows


def report(a, settings, rows: list[dict]) -> str:
    lines = ["# DiffBFR speed benchmark", "",
             f"- model: {'DiffBFR.tiny(seed=0) (random tiny nets)' if a.tiny else a.weights}",
             f"- settings: {settings}",
             f"- torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {a.repeats} "
             f"(median), warm-up {a.warmup}, face: {a.image or 'synthetic 128 px'}",
             f"- host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end "
             "(other work on the machine inflates and scatters CPU times)",
             "- ratio = pipeline total / ours total (higher = ours is that many times faster)", ""]
    lines.append(C.markdown_table(
        ["device", "pipeline", "stage", "NFE", "ms (median)", "ms/NFE", "× ours", "note"],
        [[r["device"], r["pipeline"], r["stage"], r["nfe"], C.fmt(r["ms"], 1), C.fmt(r["ms_per_nfe"], 2),
          C.fmt(r.get("ratio"), 1) if "ratio" in r else "", r["note"]] for r in rows]))
    for dev in dict.fromkeys(r["device"] for r in rows):
        tot = {r["pipeline"]: r for r in rows if r["device"] == dev and "ratio" in r}
        anc, ddim = tot["ancestral-1000"], tot["ddim-from-T"]
        lines += ["", f"{dev}: truncated pipeline {tot['ours (truncated)']['ms']:.1f} ms; "
                  f"{anc['ratio']:.1f}x faster than 1000-step ancestral from noise"
                  f"{'' if a.full else ' (extrapolated)'}, {ddim['ratio']:.2f}x vs DDIM from t=T with the same steps"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="all", help="cpu | cuda | all (cpu, plus cuda when present)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs before each measurement")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--ancestral-steps", type=int, default=20, help="steps measured for the extrapolation")
    ap.add_argument("--full", action="store_true", help="run the 1000 ancestral steps for real")
    ap.add_argument("--image", default=None, help="face image to time (default: synthetic)")
    ap.add_argument("--out", default="bench_out", help="writes speed.md and speed.json here")
    C.add_model_args(ap)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    devices = ["cpu", "cuda"] if a.device == "all" else [a.device]
    if a.device == "all" and not torch.cuda.is_available():
        devices = ["cpu"]
    if "cuda" in devices and not torch.cuda.is_available():
        print("CUDA requested but not available", file=sys.stderr)
        return 2
    settings = C.settings_from_args(a)
    face = timing_face(a.image)
    rows = []
    for d in devices:
        print(f"timing on {d} ...", file=sys.stderr, flush=True)
        rows += bench_device(a, d, settings, face)
    text = report(a, settings, rows)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.md").write_text(text)
    (out / "speed.json").write_text(json.dumps({"settings": dataclasses.asdict(settings),
                                                "threads": torch.get_num_threads(), "rows": rows}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
