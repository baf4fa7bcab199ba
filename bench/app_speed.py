"""How responsive the web app is.

    python -m bench.app_speed                 # real weights from weights/ if present, else tiny
    python -m bench.app_speed --tiny --json bench_out/app_speed.json

Measures
1. app start: `python app.py` in a subprocess, from spawn until its HTTP endpoint answers
   (Python + imports + model load + building the Blocks + launch);
2. first result: the function the Restore button calls (ui.handlers.Handlers.on_restore) on a
   one-face 512 px photo (examples/astronaut.jpg) at the page's defaults (Auto on where
   calibrated, output size auto), in a fresh process (so it pays the one-off costs: dlib
   models, first network calls; no example warm-up);
3. TEM-only rerun: the slider callback (on_tune) with only the TEM timestep changed (Auto
   off, as moving that slider switches it off);
4. a warm full restore (new seed) for reference.
Targets on a 2-core CPU: first result <= 3 s, TEM rerun <= 0.5 s.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path

from bench.app_process import AppProcess
from diffbfr import methods
from ui.handlers import Handlers
from ui.state import create_app

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"first_result_s": 3.0, "tem_rerun_s": 0.5}


def time_app_start(tiny: bool, weights: str, timeout: float = 120.0) -> float:
    with AppProcess(["--weights", weights, *(["--tiny"] if tiny else [])], timeout=timeout, poll_s=0.05) as app:
        return app.start_s


def _noprogress(*_a, **_k):
    pass


def time_callbacks(tiny: bool, weights: str, image: Path, reruns: int) -> dict:
    warnings.simplefilter("ignore")  # gr.Warning outside a server is a Python warning
    state = create_app(weights, None, tiny)
    h = Handlers(state, [])
    name = next(iter(state.restorers))
    auto = any(r.auto is not None for r in state.restorers.values())   # the page's default

    def call(fn, up, values, auto):   # a photo callback with the page's default controls
        return fn(up, str(image), False, name, "auto", False, auto, *values, progress=_noprogress)
    values = [k.default for _, k in h.layout]
    tem = next(i for i, (m, k) in enumerate(h.layout) if (m, k.name) == (name, "tem_t"))
    seed = next(i for i, (m, k) in enumerate(h.layout) if (m, k.name) == (name, "seed"))

    up = h.on_image(str(image))[0]
    if up is None:
        raise SystemExit(f"could not load {image}")
    t0 = time.perf_counter()
    out = call(h.on_restore, up, values, auto)
    first = time.perf_counter() - t0
    faces = len(out[4]) // (1 + len(state.models[name].method.stages))
    # slider reruns: moving the TEM slider switches Auto off (it is one of Auto's settings)
    out = call(h.on_tune, out[0], values, False)

    tem_times = []
    for i in range(reruns):
        changed = list(values)
        changed[tem] = values[tem] + 0.5 * (i + 1)     # a new TEM timestep each time: never cached
        t0 = time.perf_counter()
        out = call(h.on_tune, out[0], changed, False)
        tem_times.append(time.perf_counter() - t0)
        assert "reused from cache: IRM 64, IRM 128" in out[1], out[1]

    changed = list(values)
    changed[seed] = values[seed] + 1
    t0 = time.perf_counter()
    call(h.on_tune, out[0], changed, False)
    warm = time.perf_counter() - t0
    label = state.models[name].label
    return {"model": label or f"weights from {weights}", "faces": faces,
            "photo": f"{image.name} {up.size[0]}x{up.size[1]}",
            "first_result_s": first, "tem_rerun_s": statistics.median(tem_times),
            "tem_rerun_all_s": tem_times, "warm_full_restore_s": warm}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=str(ROOT / "weights"))
    ap.add_argument("--tiny", action="store_true", help="random tiny networks even if weights exist")
    ap.add_argument("--image", default=str(ROOT / "examples" / "astronaut.jpg"))
    ap.add_argument("--reruns", type=int, default=5, help="TEM-only reruns (median reported)")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    a = ap.parse_args(argv)
    tiny = a.tiny or not methods.weights_folders(a.weights)
    if tiny and not a.tiny:
        print(f"no weights in {a.weights}: timing random tiny networks (--tiny)")

    start = time_app_start(tiny, a.weights)
    res = {"app_start_s": start, **time_callbacks(tiny, a.weights, Path(a.image), a.reruns),
           "cpu_count": os.cpu_count(), "load_avg_1min": os.getloadavg()[0]}
    print(f"model: {res['model']}  photo: {res['photo']}, {res['faces']} face(s)")
    print(f"app start (spawn -> HTTP answers):   {start:6.2f} s")
    for key, label in (("first_result_s", "first result (Restore, cold):"),
                       ("tem_rerun_s", "TEM-only rerun (median):"),
                       ("warm_full_restore_s", "warm full restore (new seed):")):
        target = TARGETS.get(key)
        verdict = "" if target is None else ("  ok" if res[key] <= target else "  OVER") + f" (target {target} s)"
        print(f"{label:37s}{res[key]:6.2f} s{verdict}")
    print(f"CPU: {res['cpu_count']} cores, 1-min load average {res['load_avg_1min']:.1f} while measuring")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
