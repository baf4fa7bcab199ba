"""Speed benchmark: python -m bench.speed [--method diffbfr] [--device cpu|cuda|all] [--repeats N]

For any registered method:
  - per stage: wall time (median over --repeats after --warmup runs) and network evaluations
    for one face (NFE counted with forward hooks on every network, not read off the settings);
  - restore_face: one face, all stages;
  - batching: --faces N different faces through restore_faces, one network call per stage
    (the photo path) vs one face at a time (max_batch 1): ms per face and the speed-up;
  - the method's speed baselines (Method.speed_baselines: DiffBFR samples from pure noise,
    `ddim-from-T` and `ancestral-1000`). Steps above --measure-steps are not run: each stage
    is timed at --measure-steps and extrapolated linearly per network evaluation
    ("extrapolated" in the note); --full runs them for real.
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

import cv2
import numpy as np
import torch

from bench import common as C
from diffbfr import settings as S
from diffbfr.faces.align import align_crop
from diffbfr.photo import restore_face, restore_faces


class NFECounter:
    """Counts forward calls of every network (a batch = one evaluation)."""

    def __init__(self, nets: dict):
        self.count = 0
        self._handles = [net.register_forward_pre_hook(self._hook) for net in nets.values()]

    def _hook(self, module, args):
        self.count += 1

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def timed(fn, repeats: int, warmup: int, sync, counter: NFECounter):
    """(median seconds, all runs, NFE of one run) of fn()."""
    for _ in range(warmup):
        fn()
    runs, nfe = [], None
    for _ in range(max(repeats, 1)):
        counter.count = 0
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        runs.append(time.perf_counter() - t0)
        nfe = counter.count if nfe is None else nfe
    return statistics.median(runs), runs, nfe


def timing_faces(path: str | None, n: int) -> list[np.ndarray]:
    """Faces to time: --image (an aligned crop) and smooth random faces (cost does not depend
    on content)."""
    rng = np.random.default_rng(0)
    faces = [align_crop(C.load_rgb(path), "auto").image] if path else []
    while len(faces) < n:
        small = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        faces.append(np.ascontiguousarray(cv2.resize(small, (128, 128), interpolation=cv2.INTER_CUBIC)))
    return faces


def reduced(s, cap: int):
    """Settings with every *_steps field above `cap` lowered to it."""
    steps = {f.name: getattr(s, f.name) for f in dataclasses.fields(s) if f.name.endswith("_steps")}
    return dataclasses.replace(s, **{k: min(v, cap) for k, v in steps.items()})


def bench_device(a, device: str, settings, faces) -> list[dict]:
    model = C.load_model(a, device)
    method = model.method
    sync = (lambda: torch.cuda.synchronize(model.device)) if model.device.type == "cuda" else (lambda: None)
    counter = NFECounter(model.nets)
    rows = []

    def add(pipeline, stage, secs, nfe, note="", runs=None, **extra):
        rows.append({"device": str(model.device), "pipeline": pipeline, "stage": stage, "nfe": nfe,
                     "ms": secs * 1000, "ms_per_nfe": secs * 1000 / nfe if nfe else None, "note": note,
                     "runs_ms": [round(r * 1000, 3) for r in (runs or [])], **extra})

    def stage_rows(pipeline: str, s, extrapolate: bool):
        s_run = reduced(s, a.measure_steps) if extrapolate else s
        known = restore_face(model, faces[0], s_run).images   # each stage's inputs (cost: not timed)
        total_ms, total_nfe = 0.0, 0
        for st in method.stages:
            inputs = {r: [known[r]] for r in st.reads}
            med, runs, nfe = timed(lambda: model.run_stage(st.name, inputs, s_run, [method.seed_of(s)]),
                                   a.repeats, a.warmup, sync, counter)
            want, note = st.nfe(s), ""
            if extrapolate and nfe and want > nfe:
                med, note = med / nfe * want, f"extrapolated from {nfe} steps ({med * 1000:.1f} ms)"
                nfe = want
            add(pipeline, st.name, med, nfe, note, runs)
            total_ms, total_nfe = total_ms + med * 1000, total_nfe + nfe
        return total_ms, total_nfe

    ours_ms, ours_nfe = stage_rows("ours", settings, False)
    med, runs, nfe = timed(lambda: restore_face(model, faces[0], settings), a.repeats, a.warmup, sync, counter)
    add("ours", "restore_face", med, nfe, "one call, all stages", runs)
    for name, overrides in method.speed_baselines.items():
        # built directly, not validated: the baselines lie outside the served ranges (1000 steps)
        total, nfe = stage_rows(name, dataclasses.replace(settings, **overrides), not a.full)
        add(name, "total (sum of stages)", total / 1000, nfe, "", ratio=total / ours_ms)

    # batching: N faces through the photo path, batched vs one at a time
    if len(faces) > 1:
        per_face = {}
        for batch in (1, model.max_batch):
            model.max_batch, default = batch, model.max_batch
            med, runs, _ = timed(lambda: restore_faces(model, faces, settings), a.repeats, a.warmup, sync, counter)
            model.max_batch = default
            per_face[batch] = med / len(faces)
            add(f"{len(faces)} faces, batch {batch}", "restore_faces", med, None,
                f"{per_face[batch] * 1000:.1f} ms per face", runs)
        rows[-1]["ratio"] = per_face[1] / per_face[model.max_batch]
        rows[-1]["note"] += f"; {rows[-1]['ratio']:.2f}x faster per face than batch 1"
    counter.close()
    return rows


def report(a, settings, rows: list[dict]) -> str:
    lines = [f"# {a.method} speed benchmark", "",
             f"- model: {a.method}, {'random tiny networks' if a.tiny else a.weights}",
             f"- settings: {settings}",
             f"- torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {a.repeats} "
             f"(median), warm-up {a.warmup}, faces: {a.image or 'synthetic 128 px'}",
             f"- host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end "
             "(other work on the machine inflates and scatters CPU times)",
             "- × ours = that pipeline's time / ours (higher: ours is that many times faster)", ""]
    lines.append(C.markdown_table(
        ["device", "pipeline", "stage", "NFE", "ms (median)", "ms/NFE", "× ours", "note"],
        [[r["device"], r["pipeline"], r["stage"], "" if r["nfe"] is None else r["nfe"], C.fmt(r["ms"], 1),
          C.fmt(r["ms_per_nfe"], 2), C.fmt(r.get("ratio"), 2) if "ratio" in r else "", r["note"]]
         for r in rows]))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="all", help="cpu | cuda | all (cpu, plus cuda when present)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs before each measurement")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--faces", type=int, default=4, help="faces for the batching measurement (1: skip)")
    ap.add_argument("--measure-steps", type=int, default=20, help="baselines: steps timed per stage")
    ap.add_argument("--full", action="store_true", help="run the baselines' steps for real")
    ap.add_argument("--image", default=None, help="an aligned face image to time (default: synthetic)")
    ap.add_argument("--out", default="bench_out", help="writes speed.md and speed.json here")
    C.add_model_args(ap, argv)
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
    faces = timing_faces(a.image, max(a.faces, 1))
    rows = []
    for d in devices:
        print(f"timing on {d} ...", file=sys.stderr, flush=True)
        rows += bench_device(a, d, settings, faces)
    text = report(a, settings, rows)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.md").write_text(text)
    (out / "speed.json").write_text(json.dumps({"settings": S.to_dict(settings),
                                                "threads": torch.get_num_threads(), "rows": rows}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
