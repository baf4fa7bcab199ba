"""DiffBFR web demo (Gradio).

    python app.py                 # http://127.0.0.1:7860, weights from weights/
    python app.py --share         # also ask Gradio for a temporary public link
    python app.py --tiny          # random tiny networks: try the UI without weights

Runs unchanged as a Hugging Face Space (ZeroGPU via `spaces.GPU`). This file is only the
UI: loading, caching and stage logic live in diffbfr/app_state.py.
"""
from __future__ import annotations

import os

# Before torch loads OpenMP: worker threads that sleep instead of spinning at barriers. With
# spinning, 2 threads on a 2-core machine that is also doing anything else (Gradio encoding
# images, another process) ran the networks ~40x slower than 1 thread; passive, ~1x.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402 (the environment must be set first)
import atexit
import hashlib
import logging
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from diffbfr.app_state import (
    AppState,
    gallery_items,
    identity_markdown,
    run_stage_jobs,
    settings_from_ui,
    status_markdown,
)
from diffbfr.imageio import ImageError, save_png
from diffbfr.pipeline import DiffBFR, RestoreSettings

try:  # ZeroGPU on Hugging Face Spaces; a no-op everywhere else
    import spaces
    gpu = spaces.GPU
except ImportError:
    def gpu(fn=None, **_kw):
        return fn if fn is not None else (lambda f: f)
# On ZeroGPU the decorated function runs in a worker process that receives its arguments
# pickled, so no callback (our progress reporter) can cross; stages then report no progress.
ON_ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
log = logging.getLogger("diffbfr.app")
_MODEL: DiffBFR | None = None  # module global: a ZeroGPU worker reaches the model through it


@gpu(duration=60)
def run_stages(jobs, settings, progress=None):
    """Every network evaluation of one request (IRM 1, IRM 2, TEM for the missing stages)."""
    return run_stage_jobs(_MODEL, jobs, settings, progress)


def stage_runner(jobs, settings, progress=None):
    return run_stages(jobs, settings, None if ON_ZERO_GPU else progress)


def create_app(weights: str | Path = ROOT / "weights", device: str | None = None,
               tiny: bool = False) -> AppState:
    global _MODEL
    if tiny:
        model, label = DiffBFR.tiny(seed=0, device=device or "cpu"), \
            "random tiny networks (--tiny): the output is noise, for trying the UI only"
    else:
        try:
            model, label = DiffBFR.load(weights, device=device), ""
        except FileNotFoundError as exc:
            log.warning("%s; falling back to random tiny networks", exc)
            model, label = DiffBFR.tiny(seed=0, device=device or "cpu"), \
                f"random tiny networks, because {exc}: the output is noise"
    _MODEL = model
    return AppState(model, runner=stage_runner, label=label)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def example_files() -> list[str]:
    return sorted(str(p) for p in EXAMPLES.iterdir()
                  if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"}) if EXAMPLES.is_dir() else []


class PhotoInput(gr.Image):
    """gr.Image that hands the upload's path to diffbfr.imageio unopened. Plain gr.Image opens
    it with Pillow first, so a non-image, truncated or decompression-bomb file would fail
    inside Gradio with Pillow's wording instead of reaching our loader and its message."""

    is_template = True  # rendered by the frontend as the base class, a plain Image

    def preprocess(self, payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)  # Gradio already checked that it lies in its upload folder
        return super().preprocess(payload)


class Handlers:
    """Event callbacks: turn AppState results into component values and user messages.
    Every callback catches its errors: the user sees a sentence, never a traceback."""

    def __init__(self, app: AppState):
        self.app = app
        # copies of the example files in Gradio's cache are reused on the next click: keep them
        self.example_hashes = {_sha256(Path(p)) for p in example_files()}
        self.outdir = Path(tempfile.mkdtemp(prefix="diffbfr_app_"))
        atexit.register(shutil.rmtree, self.outdir, True)

    # outputs of every callback: state, status, result, download, gallery, identity
    def _cleared(self, up, status):
        return up, status, None, gr.update(value=None, visible=False), [], ""

    def on_image(self, path):
        if not path:
            return self._cleared(None, "")
        if not os.path.exists(path):
            # the component can fire `change` twice for one upload; the first call already
            # handled it and deleted the file: keep what it showed
            return tuple(gr.skip() for _ in range(6))
        try:
            up = self.app.load(path)
        except Exception as exc:  # noqa: BLE001 -- unknown decoder failures included
            if not isinstance(exc, ImageError):
                log.exception("loading %s failed", path)
                exc = f"Could not read this image ({type(exc).__name__}: {exc})."
            self._discard_upload(path)  # unusable: no reason to keep it
            gr.Warning(str(exc))
            return self._cleared(None, f"⚠️ {exc}")
        h, w = up.rgb.shape[:2]
        lines = [f"Loaded a {w}x{h} photo. Press **Restore**."] + [f"- {n}" for n in up.notices]
        return self._cleared(up, "\n".join(lines))

    def on_restore(self, up, aligned, irm_start, irm2_start, tem_t, irm64_steps, irm128_steps,
                   tem_steps, seed, progress=gr.Progress()):
        if up is None:
            msg = ("No photo loaded: upload one or pick an example (if you just did, "
                   "wait a second for it to load and press Restore again).")
            gr.Warning(msg)
            return self._cleared(None, msg)
        s = settings_from_ui(irm_start, irm2_start, tem_t, irm64_steps, irm128_steps, tem_steps, seed)
        return self._run(up, bool(aligned), s, progress)

    def on_tune(self, up, aligned, irm_start, irm2_start, tem_t, irm64_steps, irm128_steps,
                tem_steps, seed, progress=gr.Progress()):
        """Slider moved: rerun live, but only once the user has pressed Restore."""
        if up is None or not up.restored:
            return tuple(gr.skip() for _ in range(6))
        s = settings_from_ui(irm_start, irm2_start, tem_t, irm64_steps, irm128_steps, tem_steps, seed)
        return self._run(up, bool(aligned), s, progress)

    def _run(self, up, aligned: bool, s: RestoreSettings, progress):
        try:
            out = self.app.restore(up, s, aligned, progress=lambda f, m: progress(f, desc=m))
        except Exception as exc:  # noqa: BLE001
            log.exception("restore failed")
            gr.Warning(f"Restoration failed: {exc}")
            return up, f"⚠️ Restoration failed ({type(exc).__name__}: {exc}).", gr.skip(), gr.skip(), \
                gr.skip(), gr.skip()
        finally:
            path, up.path = up.path, None
            self._discard_upload(path)
        if not out.faces:
            gr.Warning(out.notices[-1] if out.notices else "No face found.")
        # Photos go out as PNG files we encode once at fast compression: handing Gradio arrays
        # would re-encode the unchanged "before" photo at slow compression on every slider move.
        before = self.outdir / f"before_{up.key[:16]}.png"
        if before.exists():
            os.utime(before)  # still in use: keep _prune() away from it
        else:
            save_png(before, out.before, compress_level=1)
        after = str(save_png(self.outdir / f"restored_{uuid.uuid4().hex[:12]}.png", out.image,
                             compress_level=1))
        self._prune()
        return (up, status_markdown(out, self.app.label), (str(before), after),
                gr.update(value=after, visible=True), gallery_items(out), identity_markdown(out))

    def _prune(self, max_age_s: float = 600.0) -> None:
        # Gradio copies returned files into its own cache at once; ours only need to live
        # until then (10 minutes is plenty, and keeps concurrent sessions safe).
        now = time.time()
        for f in self.outdir.glob("*.png"):
            try:
                if now - f.stat().st_mtime > max_age_s:
                    f.unlink()
            except OSError:
                pass

    def _discard_upload(self, path: str | None) -> None:
        """Uploads are not kept on disk once used (the session keeps the decoded pixels).
        Not at load time: the browser may still be fetching the file for its preview."""
        if not path or not os.path.isfile(path):
            return
        upload_dir = Path(get_upload_folder()).resolve()
        p = Path(path).resolve()
        if upload_dir not in p.parents or _sha256(p) in self.example_hashes:
            return  # not an upload (a local file, or an example Gradio will hand out again)
        p.unlink(missing_ok=True)
        try:
            p.parent.rmdir()  # Gradio keeps each upload in its own folder
        except OSError:
            pass


INTRO = """# DiffBFR: blind face restoration with diffusion models
**IRM** restores each face with two conditional diffusion models (64 px, then 128 px), each
starting from the *noised* low-quality face instead of pure noise; **TEM**, an unconditional
model of clean faces, then repaints fine texture from a small timestep.
Upload a photo or pick an example and press **Restore**. Then move a slider: only the stages
it affects run again (TEM alone for the TEM slider)."""

CSS = """
#stages .grid-wrap { min-height: 0 !important; height: auto !important; max-height: 720px; }
#stages .caption-label { font-size: 0.75rem; }
#status { min-height: 2.5rem; }
footer { display: none !important; }
"""


def build_demo(app: AppState) -> gr.Blocks:
    h = Handlers(app)
    d = RestoreSettings()
    with gr.Blocks(title="DiffBFR face restoration", delete_cache=(900, 1800)) as demo:
        state = gr.State(None)
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                image_in = PhotoInput(label="Photo", type="filepath", image_mode=None, height=340,
                                      sources=["upload", "clipboard"], elem_id="photo")
                aligned = gr.Checkbox(False, label="Input is an aligned face",
                                      info="Skip face detection and treat the whole image as one "
                                           "face crop (FFHQ-style 512 px square or a tight 128-200 px crop).")
                restore_btn = gr.Button("Restore", variant="primary", elem_id="restore")
                with gr.Accordion("Settings", open=True):
                    irm_start = gr.Slider(0, 1000, d.irm_start, step=10, label="IRM start step",
                                          info="Noise put on the low-quality face before stage 1 (64 px). "
                                               "More noise: more detail is invented, less identity is kept.")
                    irm2_start = gr.Slider(0, 1000, d.irm2_start, step=10, label="IRM stage-2 start step",
                                           info="Noise put on the upscaled stage-1 face before stage 2 "
                                                "(128 px) refines it. Higher lets stage 2 repaint more.")
                    tem_t = gr.Slider(0, 100, d.tem_t, step=0.5, label="TEM timestep", elem_id="tem_t",
                                      info="How much fine texture TEM repaints (a timestep out of 1000; "
                                           "linear 0-100 in steps of 0.5 because small values matter). "
                                           "0 = off, 2-20 = skin and hair texture, >50 starts changing features.")
                    irm64_steps = gr.Slider(1, 50, d.irm64_steps, step=1, label="Sampling steps (stage 1)",
                                            elem_id="irm64_steps",
                                            info="Denoising steps of IRM stage 1: more is smoother and "
                                                 "slower (time grows linearly).")
                    seed = gr.Slider(0, 9999, d.seed, step=1, label="Seed",
                                     info="Picks the random noise. Same seed and settings give the same "
                                          "result; change it to see another plausible restoration.")
                    with gr.Accordion("More steps", open=False):
                        irm128_steps = gr.Slider(1, 50, d.irm128_steps, step=1, label="Sampling steps (stage 2)",
                                                 elem_id="irm128_steps",
                                                 info="Denoising steps of IRM stage 2 (128 px).")
                        tem_steps = gr.Slider(1, 20, d.tem_steps, step=1, label="Sampling steps (TEM)",
                                              info="Denoising steps of TEM; 1-2 suffice for small timesteps.")
                if example_files():
                    gr.Examples(example_files(), inputs=[image_in], label="Examples (public domain)")
                    gr.Markdown("The blurry close-up is an already aligned face: tick "
                                "*Input is an aligned face* for it.", elem_id="examples_hint")
            with gr.Column(scale=3, min_width=360):
                status = gr.Markdown(elem_id="status")
                result = gr.ImageSlider(label="Before / after (drag the handle)", type="numpy",
                                        format="png", max_height=560, elem_id="result")
                download = gr.DownloadButton("Download restored photo (PNG)", visible=False,
                                             elem_id="download")
                gallery = gr.Gallery(label="Per face: LQ | IRM 64 | IRM 128 | TEM", columns=4,
                                     format="png", object_fit="contain",
                                     allow_preview=True, elem_id="stages")
                identity = gr.Markdown(elem_id="identity")

        outputs = [state, status, result, download, gallery, identity]
        sliders = [irm_start, irm2_start, tem_t, irm64_steps, irm128_steps, tem_steps, seed]
        image_in.change(h.on_image, [image_in], outputs, concurrency_id="load",
                        concurrency_limit=4, show_progress="hidden")
        restore_btn.click(h.on_restore, [state, aligned, *sliders], outputs, concurrency_id="gpu")
        # live tuning: release (not change) so dragging doesn't queue a run per pixel, and
        # always_last so a burst of moves collapses into one rerun.
        for s in sliders:
            s.release(h.on_tune, [state, aligned, *sliders], outputs, concurrency_id="gpu",
                      trigger_mode="always_last", show_progress="minimal")
        aligned.input(h.on_tune, [state, aligned, *sliders], outputs, concurrency_id="gpu",
                      trigger_mode="always_last", show_progress="minimal")
    return demo


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="DiffBFR face restoration web demo")
    p.add_argument("--host", default=None,
                   help="address to listen on (default 127.0.0.1, or $GRADIO_SERVER_NAME; 0.0.0.0 = all)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860 or $GRADIO_SERVER_PORT)")
    p.add_argument("--share", action="store_true", help="ask Gradio for a temporary public link")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--weights", default=str(ROOT / "weights"), help="folder with the .safetensors weights")
    p.add_argument("--tiny", action="store_true", default=os.environ.get("DIFFBFR_TINY") == "1",
                   help="use random tiny networks (no weights needed; also DIFFBFR_TINY=1)")
    return p.parse_args(argv)


def _stop(_signum, _frame):
    # SIGTERM (process managers, our tests) ends like Ctrl-C: Gradio closes its server and
    # the atexit clean-up of our temporary files runs, which a plain SIGTERM would skip.
    raise KeyboardInterrupt


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _stop)
    args = parse_args(argv)
    demo = build_demo(create_app(args.weights, args.device, args.tiny))
    # one restore at a time: the model is not re-entrant-fast, and CPU Spaces have 2 cores
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                show_error=True, css=CSS, theme=gr.themes.Soft())


if __name__ == "__main__":
    main()
