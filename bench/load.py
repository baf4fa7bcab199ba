"""The web app under load: N concurrent API clients, their latency, the app's memory and disk.

    python -m bench.load --clients 8 --requests 3                    # examples/astronaut.jpg
    python -m bench.load --clients 4 --requests 1 --megapixels 100   # synthetic 100 MP JPEG
    python -m bench.load --clients 4 --requests 1 --megapixels 100 --format png
    python -m bench.load --weights weights                          # the shipped weights

Starts `python app.py --tiny --port P` in a subprocess (random tiny networks, unless --weights
is given), warms it up with one small request, then starts --clients threads at once, each a
gradio_client.Client sending --requests calls to the one-call API (api_name="/restore") one
after the other. Each request sends its own variant of the photo (an 8x8 corner repainted), so
that none is answered from the app's caches, which are keyed by the pixels: distinct users;
--same-file sends one file for all (Gradio then stores a single upload for them). Measured:
- success count and latency (median, max) per request, seen by the client (upload included);
- the app's resident memory: sampled every --sample-ms over the app process and its children
  (peak of the sum), plus the kernel's exact peak of the app process (VmHWM, reset after the
  warm-up where the kernel allows it); baseline = after the warm-up, after = once the run is
  over and the app idled --settle seconds;
- disk: the app runs with GRADIO_TEMP_DIR and TMPDIR in a fresh folder: all its temporary files
  (uploads, Gradio's cached outputs) and, apart, its own results folder (diffbfr_results_* in
  Gradio's folder, or diffbfr_app_* in TMPDIR).
Only 127.0.0.1 is contacted; every request and the whole run have time limits.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import statistics
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gradio_client import Client, handle_file
from PIL import Image

from bench.app_process import AppProcess
from bench.proc_usage import MB, Sampler, folder_mb, reset_peak, status_kb, tree_rss_mb

ROOT = Path(__file__).resolve().parent.parent
SMALL_PHOTO = ROOT / "examples" / "astronaut.jpg"


def photo_dir() -> Path:
    """Where the photos and their variants are made once and reused: in the temp folder as it is
    when called (the tests point tempfile's folder into pytest's, so they never write outside)."""
    return Path(tempfile.gettempdir()) / "diffbfr_load_photos"


# ---------------------------------------------------------------- the photo

def synthetic_photo(megapixels: float, fmt: str = "jpeg", folder: Path | None = None) -> Path:
    """A megapixels-sized 10:7 photo: a noisy colour gradient with the example astronaut pasted
    in, large enough that the face survives the app's downscale to 8 MP. Made once (in `folder`,
    default photo_dir()), reused."""
    folder = folder or photo_dir()
    w = int(math.sqrt(megapixels * 1e6 / 0.7)) // 8 * 8
    h = int(w * 0.7) // 8 * 8
    path = folder / f"face_{w}x{h}.{'png' if fmt == 'png' else 'jpg'}"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    ramp = Image.linear_gradient("L")
    bands = [ramp.resize((w, h), Image.Resampling.BILINEAR),
             ramp.rotate(90).resize((w, h), Image.Resampling.BILINEAR),
             Image.new("L", (w, h), 140)]
    # sensor-like noise: real photos of this size are tens of MB, and upload and decode costs
    # follow the file size (a smooth gradient alone compresses to almost nothing)
    noise = Image.effect_noise((w, h), 24)
    bands = [Image.blend(b, noise, 0.15) for b in bands]
    del noise
    photo = Image.merge("RGB", bands)
    del bands
    side = min(w, h) // 2
    face = Image.open(SMALL_PHOTO).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    photo.paste(face, (w // 3, h // 4))
    _save(photo, path, "PNG" if fmt == "png" else "JPEG")
    return path


def _save(photo: Image.Image, path: Path, fmt: str, **kw) -> None:
    options = {"PNG": {"compress_level": 1}, "JPEG": {"quality": 90}}.get(fmt, {})
    tmp = path.with_suffix(f".tmp{os.getpid()}{path.suffix}")  # concurrent benches never see half a file
    photo.save(tmp, format=fmt, **options, **kw)
    tmp.replace(path)


def photo_variants(photo: Path, n: int, folder: Path | None = None) -> list[Path]:
    """n versions of the photo whose pixels differ (an 8x8 block in one corner), so that no
    request is answered from the app's caches, which are keyed by the decoded pixels: what
    distinct users sending distinct photos cost. Same format; made once, kept in `folder`
    (default photo_dir())."""
    folder = folder or photo_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha1(f"{photo.resolve()}:{photo.stat().st_mtime_ns}".encode()).hexdigest()[:8]
    paths = [folder / f"{photo.stem}_{tag}_v{i}{photo.suffix}" for i in range(n)]
    missing = [i for i, p in enumerate(paths) if not p.exists()]
    if missing:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own 100 MP photo
            with Image.open(photo) as src:
                fmt, exif = src.format, src.info.get("exif")
                img = src.convert("RGB") if src.mode not in ("RGB", "RGBA") else src.copy()
        for i in missing:  # each variant only repaints the corner: one image, saved n times
            img.paste(((i * 47 + 1) % 256, (i * 91) % 256, (i * 13) % 256, 255)[:len(img.getbands())],
                      (0, 0, 8, 8))
            _save(img, paths[i], fmt, **({"exif": exif} if exif else {}))
    return paths


# ---------------------------------------------------------------- the app

class App(AppProcess):
    """`python app.py` (bench.app_process) with its temporary files in `workdir`, whose size
    disk_mb() reports."""

    def __init__(self, workdir: Path, weights: str | None, start_timeout: float = 180.0, warm: bool = True):
        self.gradio_tmp = workdir / "gradio"
        self.tmp = workdir / "tmp"
        self.gradio_tmp.mkdir(parents=True)
        self.tmp.mkdir()
        super().__init__((["--weights", weights] if weights else ["--tiny"]) + ([] if warm else ["--no-warm"]),
                         env={"GRADIO_TEMP_DIR": str(self.gradio_tmp), "TMPDIR": str(self.tmp),
                              "HF_HUB_OFFLINE": "1", "DIFFBFR_TINY": "0"},
                         log=workdir / "app.log", timeout=start_timeout)

    def disk_mb(self) -> dict[str, float]:
        """'all': every file the app keeps in its temporary folders (Gradio's: uploads, cached
        outputs, examples; TMPDIR); 'results': of which the app's own result folder (named
        diffbfr_results_* inside Gradio's folder, or diffbfr_app_* in TMPDIR)."""
        results = [*self.gradio_tmp.glob("diffbfr_results_*"), *self.tmp.glob("diffbfr_app_*")]
        return {"all": folder_mb(self.gradio_tmp) + folder_mb(self.tmp),
                "results": sum(folder_mb(f) for f in results)}


# ---------------------------------------------------------------- the clients

@dataclass
class Outcome:
    ok: bool
    latency_s: float
    faces: int = 0
    error: str = ""


def _one_client(url: str, photos: list[Path], timeout: float, downloads: Path,
                start: threading.Barrier, out: list[Outcome]) -> None:
    try:
        client = Client(url, verbose=False, download_files=str(downloads),
                        httpx_kwargs={"timeout": timeout}, analytics_enabled=False)
    except Exception as exc:  # noqa: BLE001 -- reported as failed requests, never raised
        start.abort()
        out += [Outcome(False, 0.0, error=f"connect: {exc}")] * len(photos)
        return
    try:
        start.wait(timeout)
    except threading.BrokenBarrierError:
        pass  # another client failed to connect: go anyway, the others still measure
    for photo in photos:
        t0 = time.perf_counter()
        try:
            job = client.submit(handle_file(str(photo)), "diffbfr", False, "{}", api_name="/restore")
            restored, _gallery, record = job.result(timeout=timeout)
            ok = bool(restored) and Path(restored).is_file()
            out.append(Outcome(ok, time.perf_counter() - t0, len(record.get("faces", [])),
                               "" if ok else "no restored image returned"))
        except Exception as exc:  # noqa: BLE001
            out.append(Outcome(False, time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}"[:300]))
    client.close()


def drive(url: str, photos: list[list[Path]], timeout: float, downloads: Path) -> list[Outcome]:
    """One client thread per list of photos, started together, each sending its photos one
    request after the other."""
    clients, requests = len(photos), max(len(p) for p in photos)
    start = threading.Barrier(clients)
    outs: list[list[Outcome]] = [[] for _ in range(clients)]
    threads = [threading.Thread(target=_one_client, daemon=True,
                                args=(url, photos[i], timeout, downloads / str(i), start, outs[i]))
               for i in range(clients)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout * (requests + 1) + 30
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    flat = [o for out in outs for o in out]
    missing = sum(map(len, photos)) - len(flat)
    return flat + [Outcome(False, timeout, error="no answer before the run's deadline")] * missing


# ---------------------------------------------------------------- one scenario

@dataclass
class Report:
    photo: str
    clients: int
    requests: int
    ok: int = 0
    failed: int = 0
    latency_median_s: float = 0.0
    latency_max_s: float = 0.0
    faces_per_request: float = 0.0
    app_start_s: float = 0.0
    rss_idle_mb: float = 0.0
    rss_baseline_mb: float = 0.0
    rss_peak_sampled_mb: float = 0.0
    rss_peak_hwm_mb: float | None = None
    rss_after_mb: float = 0.0
    disk_before_mb: float = 0.0
    disk_all_peak_mb: float = 0.0
    disk_all_after_mb: float = 0.0
    disk_results_peak_mb: float = 0.0
    disk_results_after_mb: float = 0.0
    errors: list[str] = field(default_factory=list)
    load_avg_1min: float = 0.0


def run_scenario(photo: Path, clients: int, requests: int, weights: str | None = None,
                 timeout: float = 300.0, settle: float = 5.0, sample_ms: float = 50.0,
                 keep: bool = False, same_file: bool = False, warm: bool = True) -> Report:
    # gradio_client ignores analytics_enabled=False without the variable: nothing leaves loopback
    os.environ.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    flat = [photo] * (clients * requests) if same_file else photo_variants(photo, clients * requests)
    photos = [flat[c * requests:(c + 1) * requests] for c in range(clients)]
    work = Path(tempfile.mkdtemp(prefix="diffbfr_load_"))
    rep = Report(photo=f"{photo.name} ({photo.stat().st_size / MB:.1f} MB)", clients=clients, requests=requests)
    app = App(work, weights, warm=warm)
    try:
        rep.app_start_s = app.start_s
        rep.rss_idle_mb = tree_rss_mb(app.proc.pid)
        warm = drive(app.url, [[SMALL_PHOTO]], timeout, work / "downloads" / "warmup")
        if not warm[0].ok:
            raise RuntimeError(f"warm-up request failed: {warm[0].error}\n{app.log_tail()}")
        time.sleep(settle / 2)
        rep.rss_baseline_mb = tree_rss_mb(app.proc.pid)
        disk_before = app.disk_mb()["all"]
        exact_peak = reset_peak(app.proc.pid)
        sampler = Sampler(app.proc.pid, app.disk_mb, sample_ms / 1000)
        sampler.start()
        outcomes = drive(app.url, photos, timeout, work / "downloads")
        time.sleep(settle)  # let the app finish its clean-up before 'after' is read
        sampler.stop()
        rep.rss_after_mb = tree_rss_mb(app.proc.pid)
        rep.rss_peak_sampled_mb = sampler.peak_rss
        if exact_peak:
            rep.rss_peak_hwm_mb = status_kb(app.proc.pid, "VmHWM") / 1024
        rep.disk_before_mb = disk_before
        rep.disk_all_peak_mb, rep.disk_results_peak_mb = sampler.peak_disk["all"], sampler.peak_disk["results"]
        after = app.disk_mb()
        rep.disk_all_after_mb, rep.disk_results_after_mb = after["all"], after["results"]
    finally:
        app.stop(1)   # measured already; gradio can take 10+ s to close with clients just gone
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    good = [o for o in outcomes if o.ok]
    rep.ok, rep.failed = len(good), len(outcomes) - len(good)
    lat = [o.latency_s for o in outcomes]
    rep.latency_median_s, rep.latency_max_s = statistics.median(lat), max(lat)
    rep.faces_per_request = statistics.mean(o.faces for o in good) if good else 0.0
    rep.errors = sorted({o.error for o in outcomes if o.error})
    rep.load_avg_1min = os.getloadavg()[0]
    return rep


def markdown(rep: Report, title: str) -> str:
    hwm = "n/a (kernel refused the reset)" if rep.rss_peak_hwm_mb is None else f"{rep.rss_peak_hwm_mb:.0f}"
    rows = [
        ("photo", rep.photo),
        ("clients x requests", f"{rep.clients} x {rep.requests}"),
        ("succeeded", f"{rep.ok} / {rep.ok + rep.failed}"),
        ("faces restored per request", f"{rep.faces_per_request:.1f}"),
        ("latency median / max (s)", f"{rep.latency_median_s:.2f} / {rep.latency_max_s:.2f}"),
        ("app RSS idle after start (MB)", f"{rep.rss_idle_mb:.0f}"),
        ("app RSS baseline, after warm-up (MB)", f"{rep.rss_baseline_mb:.0f}"),
        ("app RSS peak, sampled, app + children (MB)", f"{rep.rss_peak_sampled_mb:.0f}"),
        ("app RSS peak, kernel VmHWM (MB)", hwm),
        ("app RSS after the run (MB, vs baseline)",
         f"{rep.rss_after_mb:.0f} ({rep.rss_after_mb - rep.rss_baseline_mb:+.0f})"),
        ("disk, all temp files: before / peak / after (MB)",
         f"{rep.disk_before_mb:.0f} / {rep.disk_all_peak_mb:.0f} / {rep.disk_all_after_mb:.0f}"),
        ("disk, of which the app's results folder: peak / after (MB)",
         f"{rep.disk_results_peak_mb:.0f} / {rep.disk_results_after_mb:.0f}"),
        ("1-min load average at the end", f"{rep.load_avg_1min:.1f}"),
    ]
    lines = [f"### {title}", "", "| what | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    lines += [f"\nerror: {e}" for e in rep.errors]
    return "\n".join(lines)


def main(argv=None) -> Report:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=8, help="concurrent API clients (threads)")
    ap.add_argument("--requests", type=int, default=3, help="requests per client, one after the other")
    ap.add_argument("--megapixels", type=float, default=0,
                    help="send a synthetic photo of this size (made once under "
                         f"{photo_dir()}) instead of --image")
    ap.add_argument("--format", choices=["jpeg", "png"], default="jpeg", help="the synthetic photo's format")
    ap.add_argument("--image", default=str(SMALL_PHOTO), help="the photo to send (default: the example)")
    ap.add_argument("--weights", nargs="?", const=str(ROOT / "weights"), default=None,
                    help="use these weights (default with the flag alone: weights/); without: tiny networks")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per request (and to start the app)")
    ap.add_argument("--settle", type=float, default=5.0, help="idle seconds before 'after' is read")
    ap.add_argument("--sample-ms", type=float, default=50.0, help="RSS sampling interval")
    ap.add_argument("--same-file", action="store_true",
                    help="every request sends the very same file (default: each its own variant, "
                         "so that the app's caches never answer)")
    ap.add_argument("--keep", action="store_true", help="keep the run's folder (app log, temp files)")
    ap.add_argument("--no-warm", action="store_true",
                    help="start the app without restoring the examples in the background (app.py --no-warm)")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    a = ap.parse_args(argv)
    if a.clients < 1 or a.requests < 1:
        ap.error("--clients and --requests must be at least 1")
    photo = synthetic_photo(a.megapixels, a.format) if a.megapixels else Path(a.image)
    rep = run_scenario(photo, a.clients, a.requests, a.weights, a.timeout, a.settle, a.sample_ms, a.keep,
                       a.same_file, warm=not a.no_warm)
    model = f"weights {a.weights}" if a.weights else "tiny random networks"
    same = ", the same file for all" if a.same_file else ""
    print(markdown(rep, f"{a.clients} clients x {a.requests} requests, {photo.name}{same}, {model}"))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(asdict(rep), indent=2))
    return rep


if __name__ == "__main__":
    main()
