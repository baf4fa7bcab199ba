"""The app over a long mixed session: does its memory come back? python -m bench.soak
[--requests 240] [--weights [DIR]] [--clients 1] [--env NAME=VALUE ...] [--out bench_out/soak]

Starts `python app.py --no-warm` (tiny random networks unless --weights; bench.app_process,
temporary files in a fresh folder, loopback only; --url/--pid: an app already running) and
sends at least --requests requests in cycles of 12, one after the other (or --clients threads,
one cycle each at a time), each cycle the same mix of what people do:

- the one-call API (/restore): small photos and group photos (each request its own variant,
  so the caches keep filling, as with distinct users), a 20 MP JPEG (downscaled to 8 MP on
  load), a faceless 10000x40 strip (each time another grey), and files that are not images;
- the page, as a browser tab does it (one gradio_client session per tab, its State kept on
  the server): upload (the photo's change event; every other tab the 20 MP photo), Restore,
  a seed slider move (every stage reruns), a TEM-steps slider move (TEM only), "Where is it
  guessing?", and a truncated upload (in the 20 MP cycles from a second tab: the first is
  closed holding its photo and result, which Gradio keeps for an hour; --clear-tabs: in the
  same tab, which clears its State). The page's events are private (not callable by name):
  they are called by their index, the way the page calls them.

The app's RSS (the app process and its children) is read after each request and, after each
round of cycles (every client done with one), once the app has idled --settle seconds: the
idle RSS, what the summary's curve shows. Target: the idle RSS never exceeds its level at
the first reading past the warm-up (--warmup requests, 20) by more than --budget MB (150).
Files: soak.md, soak.json (every request: kind, seconds, ok, RSS; the idle curve) and
soak_rss.png (both curves).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from gradio_client import Client, handle_file

from bench.app_process import AppProcess
from bench.load import ROOT, SMALL_PHOTO, photo_variants, synthetic_photo
from bench.proc_usage import Sampler, tree_rss_mb

GROUP_PHOTO = ROOT / "examples" / "two_people.jpg"
CROWD_PHOTO = ROOT / "examples" / "composite_portraits.jpg"
BUDGET_MB = 150.0
WARMUP = 20


# ---------------------------------------------------------------- inputs

@dataclass
class Inputs:
    small: list[Path]
    group: list[Path]
    crowd: list[Path]
    big: list[Path]
    strips: list[Path]
    not_image: Path
    truncated: Path


def make_inputs(folder: Path, n: int) -> Inputs:
    """The files the mix sends, made once in `folder` (n variants of each photo)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    strips = [folder / f"strip_10000x40_{i}.png" for i in range(n)]   # the QA report's faceless strip
    for i, strip in enumerate(strips):
        if not strip.exists():
            Image.fromarray(np.full((40, 10000, 3), 100 + i % 150, np.uint8)).save(strip)
    not_image = folder / "notes.png"
    not_image.write_bytes(b"this is not an image, whatever its name says\n" * 20)
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(GROUP_PHOTO.read_bytes()[: GROUP_PHOTO.stat().st_size // 2])
    big = synthetic_photo(20, "jpeg", folder)
    return Inputs(photo_variants(SMALL_PHOTO, n, folder), photo_variants(GROUP_PHOTO, n, folder),
                  photo_variants(CROWD_PHOTO, n, folder), photo_variants(big, max(1, n // 4), folder),
                  strips, not_image, truncated)


# ---------------------------------------------------------------- a browser tab

class PageSession:
    """One browser tab: the page's events called by index with the page's default values
    (read from the app's config), the session's State held by the server as for a browser."""

    def __init__(self, url: str, timeout: float):
        self.client = Client(url, verbose=False, download_files=False, analytics_enabled=False,
                             httpx_kwargs={"timeout": timeout})
        self.timeout = timeout
        cfg = self.client.config
        self.components = {c["id"]: c for c in cfg["components"]}
        self.deps = cfg["dependencies"]

    def _elem(self, cid: int) -> str | None:
        return self.components[cid].get("props", {}).get("elem_id")

    def _fn(self, elem_id: str, prefix: str) -> dict:
        for d in self.deps:
            if (str(d.get("api_name", "")).startswith(prefix)
                    and any(self._elem(t[0]) == elem_id for t in d.get("targets", []) if t[0] is not None)):
                return d
        raise LookupError(f"no {prefix} event on #{elem_id}")

    def call(self, elem_id: str, prefix: str, photo: Path | None = None, **values):
        """The `prefix` event of #elem_id with the page's current values, `photo` in the photo
        box and `values` (elem_id -> value) changed."""
        dep = self._fn(elem_id, prefix)
        args = []
        for cid in dep["inputs"]:
            comp = self.components[cid]
            if comp.get("type") == "state":
                continue   # the client leaves State to the server's session
            eid = comp.get("props", {}).get("elem_id")
            if eid == "photo":
                args.append(handle_file(str(photo)) if photo else None)
            else:
                args.append(values.get(eid, comp.get("props", {}).get("value")))
        endpoint = self.client.endpoints[dep["id"]]
        endpoint.is_valid = True   # private: the page calls it by index, so do we
        return self.client.submit(*args, fn_index=dep["id"]).result(timeout=self.timeout)

    def close(self) -> None:
        self.client.close()


# ---------------------------------------------------------------- the mix

@dataclass
class Step:
    n: int
    kind: str
    ok: bool
    seconds: float
    rss_mb: float
    error: str = ""


def api_call(client: Client, photo: Path, timeout: float, expect_error: bool = False) -> tuple[bool, str]:
    try:
        client.submit(handle_file(str(photo)), "diffbfr", False, "{}", api_name="/restore").result(timeout=timeout)
        return not expect_error, "" if not expect_error else "no error for a bad file"
    except Exception as exc:  # noqa: BLE001
        msg = f"{type(exc).__name__}: {exc}"[:200]
        return expect_error, "" if expect_error else msg


def page_tab(url: str, photo: Path, bad: Path, timeout: float, seed: int, keep_result: bool = False):
    """One tab's requests, as (kind, callable) pairs run one after the other. The truncated
    upload clears the tab's State; with keep_result it goes to a second tab, and the first is
    closed holding its photo and result, as most people leave (Gradio keeps a closed tab's
    State for an hour)."""
    tab: dict = {}

    def opened():
        tab["s"] = PageSession(url, timeout)
        tab["s"].call("photo", "on_image", photo)

    def restore():
        tab["s"].call("restore", "on_restore", photo)

    def seed_slider():
        tab["s"].call("diffbfr-seed", "on_tune", photo, **{"diffbfr-seed": seed % 1000 + 1})

    def tem_slider():
        tab["s"].call("diffbfr-tem_steps", "on_tune", photo,
                      **{"diffbfr-seed": seed % 1000 + 1, "diffbfr-tem_steps": 3})

    def guess():
        tab["s"].call("guess", "on_uncertainty")
        if keep_result:
            tab["s"].close()
            tab["s"] = PageSession(url, timeout)

    def bad_upload():
        try:
            tab["s"].call("photo", "on_image", bad)   # answered with a warning, not an error
        finally:
            tab["s"].close()
    return [("page upload", opened), ("page restore", restore), ("page seed slider", seed_slider),
            ("page TEM slider", tem_slider), ("page uncertainty", guess), ("page bad upload", bad_upload)]


def cycle(inputs: Inputs, url: str, api: Client, timeout: float, c: int, cycles: int, keep_results: bool = True):
    """(kind, callable) for each of the 12 requests of cycle c: 7 units (a tab's 6 requests are
    one), rotated by c, so that over 7 cycles an idle reading follows each kind of request."""
    def pick(files):
        return files[c % len(files)]
    # every other tab a 20 MP upload (8 MP once loaded), the others another variant than the API
    # just restored: a fresh photo, not a cache hit
    tab_photo = pick(inputs.big) if c % 2 else inputs.group[(c + cycles) % len(inputs.group)]
    units = [[("api photo", lambda p=pick(inputs.small): api_call(api, p, timeout))],
             [("api group", lambda p=pick(inputs.group): api_call(api, p, timeout))],
             page_tab(url, tab_photo, inputs.truncated, timeout, c, keep_result=keep_results and bool(c % 2)),
             [("api not an image", lambda: api_call(api, inputs.not_image, timeout, expect_error=True))],
             [("api 20 MP", lambda p=pick(inputs.big): api_call(api, p, timeout))],
             [("api strip", lambda p=pick(inputs.strips): api_call(api, p, timeout))],
             [("api crowd", lambda p=pick(inputs.crowd): api_call(api, p, timeout))]]
    k = c % len(units)
    return [step for unit in units[k:] + units[:k] for step in unit]


PER_CYCLE = 12


def run(requests: int, weights: str | None, timeout: float, work: Path, inputs_dir: Path,
        env: dict[str, str], clients: int = 1, url: str | None = None, pid: int | None = None,
        settle: float = 2.0, keep_results: bool = True) -> tuple[list[Step], list[tuple[int, float]], float, float]:
    """The mix (whole cycles, at least `requests` requests) against a fresh `app.py --no-warm`,
    or against the app already running at `url` (process `pid`). After every round of cycles
    (one per client) all clients wait, the app idles `settle` seconds and its idle RSS is read.
    Returns (every request, [(requests so far, idle RSS MB)], RSS after start, sampled peak)."""
    os.environ.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    rounds = max(1, -(-requests // (PER_CYCLE * clients)))
    cycles = rounds * clients
    inputs = make_inputs(inputs_dir, 2 * cycles)
    if url is None:   # its temporary files in `work`, as bench.load's app
        (work / "gradio").mkdir(parents=True)
        (work / "tmp").mkdir()
        args = ["--no-warm"] + (["--weights", weights] if weights else ["--tiny"])
        app = AppProcess(args, env={"GRADIO_TEMP_DIR": str(work / "gradio"), "TMPDIR": str(work / "tmp"),
                                    "HF_HUB_OFFLINE": "1", "DIFFBFR_TINY": "0", **env},
                         log=work / "app.log", timeout=180.0)
        url, pid, stop = app.url, app.proc.pid, app.stop
    else:
        stop = None
    steps: list[Step] = []
    idle_curve: list[tuple[int, float]] = []
    lock = threading.Lock()

    def read_idle():   # run by one client once all have finished the round
        time.sleep(settle)
        idle_curve.append((len(steps), tree_rss_mb(pid)))
        print(f"  {len(steps)} requests, idle RSS {idle_curve[-1][1]:.0f} MB", flush=True)

    rounds_done = threading.Barrier(clients, action=read_idle)
    try:
        idle_curve.append((0, tree_rss_mb(pid)))
        sampler = Sampler(pid, dict, 0.1)
        sampler.start()

        def worker(k: int):
            api = Client(url, verbose=False, download_files=False, analytics_enabled=False,
                         httpx_kwargs={"timeout": timeout})
            for c in range(k, cycles, clients):   # whole cycles: a tab stays one client's
                for kind, fn in cycle(inputs, url, api, timeout, c, cycles, keep_results):
                    t0 = time.perf_counter()
                    try:
                        res = fn()
                        ok, err = res if isinstance(res, tuple) else (True, "")
                    except Exception as exc:  # noqa: BLE001
                        ok, err = False, f"{type(exc).__name__}: {exc}"[:200]
                    seconds = time.perf_counter() - t0
                    with lock:
                        steps.append(Step(len(steps) + 1, kind, ok, seconds, tree_rss_mb(pid), err))
                rounds_done.wait()
            api.close()

        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sampler.stop()
        return steps, idle_curve, idle_curve[0][1], sampler.peak_rss
    finally:
        if stop is not None:
            stop()


def summary(steps: list[Step], idle_curve: list[tuple[int, float]], start: float, peak: float,
            warmup: int, budget: float) -> tuple[str, bool]:
    """The idle RSS curve, per request kind its time, and the verdict: the idle RSS after the
    first checkpoint at or past `warmup` requests never exceeds it by more than `budget`."""
    ref_i = next((i for i, (n, _) in enumerate(idle_curve) if n >= warmup), len(idle_curve) - 1)
    ref_n, ref = idle_curve[ref_i]
    worst = max((mb for _, mb in idle_curve[ref_i:]), default=ref)
    ok = worst <= ref + budget
    lines = [f"| requests | idle RSS MB | vs request {ref_n} |", "|---|---|---|"]
    lines += [f"| {n} | {mb:.0f} | {mb - ref:+.0f} |" for n, mb in idle_curve]
    kinds: dict[str, list[Step]] = {}
    for s in steps:
        kinds.setdefault(s.kind, []).append(s)
    lines += ["", "| request | n | failed | median s |", "|---|---|---|---|"]
    for k, ss in kinds.items():
        times = sorted(s.seconds for s in ss)
        lines.append(f"| {k} | {len(ss)} | {sum(not s.ok for s in ss)} | {times[len(times) // 2]:.2f} |")
    errors = sorted({f"{s.kind}: {s.error}" for s in steps if s.error})
    lines += [""] + [f"error: {e}" for e in errors[:10]]
    lines.append(f"RSS after start {start:.0f} MB; idle at request {ref_n}: {ref:.0f} MB; the highest idle RSS "
                 f"after it {worst:.0f} MB ({worst - ref:+.0f}); the highest RSS right after a request "
                 f"{max(s.rss_mb for s in steps):.0f} MB; sampled peak {peak:.0f} MB. Target: idle RSS within "
                 f"+{budget:.0f} MB: {'met' if ok else 'NOT met'}.")
    return "\n".join(lines), ok


def plot(steps: list[Step], idle_curve, path: Path, title: str, warmup: int, budget: float) -> None:
    import matplotlib
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([s.n for s in steps], [s.rss_mb for s in steps], lw=0.8, alpha=0.6, label="right after each request")
    ax.plot([n for n, _ in idle_curve], [mb for _, mb in idle_curve], "o-", lw=1.5, label="idle")
    ref_n, ref = next(((n, mb) for n, mb in idle_curve if n >= warmup), idle_curve[-1])
    ax.axhline(ref + budget, color="r", ls="--", lw=0.8, label=f"idle at request {ref_n} + {budget:.0f} MB")
    ax.set_xlabel("requests")
    ax.set_ylabel("app RSS (MB)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> bool:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=240, help="at least this many (whole cycles of 12)")
    ap.add_argument("--clients", type=int, default=1, help="threads sharing the mix (default 1: one at a time)")
    ap.add_argument("--weights", nargs="?", const=str(ROOT / "weights"), default=None,
                    help="use these weights (default with the flag alone: weights/); without: tiny networks")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra environment for the app (e.g. MALLOC_ARENA_MAX=2), repeatable")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    ap.add_argument("--settle", type=float, default=2.0, help="idle seconds before each idle RSS reading")
    ap.add_argument("--warmup", type=int, default=WARMUP)
    ap.add_argument("--budget", type=float, default=BUDGET_MB, help="MB allowed above the post-warm-up level")
    ap.add_argument("--out", default="bench_out/soak")
    ap.add_argument("--tag", default="", help="suffix of the output files (compare runs)")
    ap.add_argument("--keep", action="store_true", help="keep the app's folder (log, temp files)")
    ap.add_argument("--clear-tabs", action="store_true",
                    help="every tab ends with the truncated upload, which clears its State (default: the 20 MP "
                         "tabs are closed holding their photo and result, as people leave)")
    ap.add_argument("--url", default=None, help="drive the app already running here instead of starting one")
    ap.add_argument("--pid", type=int, default=None, help="with --url: the app's process id (its RSS is read)")
    a = ap.parse_args(argv)
    if (a.url is None) != (a.pid is None):
        ap.error("--url and --pid go together")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(e.split("=", 1) for e in a.env)
    work = Path(tempfile.mkdtemp(prefix="soak_", dir=out))
    try:
        steps, idle_curve, start, peak = run(a.requests, a.weights, a.timeout, work / "app", out / "inputs", env,
                                             a.clients, a.url, a.pid, a.settle, not a.clear_tabs)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    model = f"the app at {a.url}" if a.url else f"weights {a.weights}" if a.weights else "tiny random networks"
    title = (f"{len(steps)} mixed requests, {a.clients} client(s), {model}" + (f", {' '.join(a.env)}" if a.env else "")
             + (", tabs cleared" if a.clear_tabs else ""))
    text, ok = summary(steps, idle_curve, start, peak, a.warmup, a.budget)
    print(f"## Soak: {title}\n\n{text}")
    tag = f"_{a.tag}" if a.tag else ""
    (out / f"soak{tag}.md").write_text(f"## Soak: {title}\n\n{text}\n")
    (out / f"soak{tag}.json").write_text(json.dumps({"title": title, "start_mb": start, "peak_mb": peak,
                                                    "idle": idle_curve, "steps": [asdict(s) for s in steps]},
                                                   indent=1))
    plot(steps, idle_curve, out / f"soak_rss{tag}.png", title, a.warmup, a.budget)
    return ok


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
