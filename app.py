"""diffbfr web demo (Gradio): a thin UI over the photo path (diffbfr/photo.py).

    python app.py                 # http://127.0.0.1:7860, every method found in weights/
    python app.py --share         # also ask Gradio for a temporary public link
    python app.py --tiny          # random tiny networks: try the UI without weights

Runs unchanged as a Hugging Face Space (ZeroGPU via `spaces.GPU`). What is shown is built by
app_views.py; the sliders are generated from each method's settings (diffbfr/settings.py).
"""
from __future__ import annotations

import os

# Before torch loads OpenMP: worker threads that sleep instead of spinning at barriers. With
# spinning, 2 threads on a 2-core machine that is also doing anything else (Gradio encoding
# images, another process) ran the networks ~40x slower than 1 thread; passive, ~1x.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402 (the environment must be set first)
import logging
import signal
from pathlib import Path

import gradio as gr

from app_files import AppFiles
from app_views import (
    gallery_items,
    identity_markdown,
    load_upload,
    settings_from_ui,
    status_markdown,
    weights_notice,
)
from diffbfr import methods
from diffbfr import settings as S
from diffbfr.imageio import ImageError
from diffbfr.photo import LRUCache, PhotoRestorer, run_stages

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
BOTH = "both"
log = logging.getLogger("diffbfr.app")
_MODELS: dict[str, methods.Model] = {}  # module global: a ZeroGPU worker reaches the models through it


@gpu(duration=60)
def run_stages_on_gpu(method: str, jobs, settings, seeds, progress=None):
    """Every network evaluation of one request (the missing stages of every face)."""
    return run_stages(_MODELS[method], jobs, settings, seeds, progress)


def stage_runner(model, jobs, settings, seeds=None, progress=None):
    return run_stages_on_gpu(model.name, jobs, settings, seeds, None if ON_ZERO_GPU else progress)


class AppState:
    """One PhotoRestorer per available method (sharing face detections) and, for the
    registered methods without weights, the reason they are unavailable."""

    def __init__(self, models: dict[str, methods.Model], unavailable: dict[str, str] | None = None,
                 identity: bool = True, runner=None, cache_size: int = 512):
        detections = LRUCache(32)
        self.models = models
        self.restorers = {n: PhotoRestorer(m, cache_size, identity=identity, runner=runner, detections=detections)
                          for n, m in models.items()}
        self.unavailable = unavailable or {}

    def chosen(self, choice: str) -> list[str]:
        return list(self.restorers) if choice == BOTH else [choice]


def create_app(weights: str | Path = ROOT / "weights", device: str | None = None, tiny: bool = False,
               identity: bool = True) -> AppState:
    models, unavailable = {}, {}
    for name, method in methods.METHODS.items():
        if tiny:
            models[name] = methods.tiny(name, seed=0, device=device or "cpu")
            continue
        try:
            models[name] = methods.load(methods.resolve_weights(weights, name), device=device)
        except (FileNotFoundError, ValueError) as exc:
            unavailable[name] = str(exc)
    if not models:  # nothing trained at all: keep the app usable, and say so everywhere
        log.warning("no weights found under %s; falling back to random tiny networks", weights)
        first = next(iter(methods.METHODS))
        models[first] = methods.tiny(first, seed=0, device=device or "cpu")
        models[first].label = f"random tiny networks, because no weights were found in {weights}"
    _MODELS.clear()
    _MODELS.update(models)
    return AppState(models, unavailable, identity=identity, runner=stage_runner)


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


def knob_layout() -> list[tuple[str, S.Knob]]:
    """(method, knob) for every slider, in the order the handlers receive their values."""
    return [(name, k) for name, m in methods.METHODS.items() for k in S.knobs(m.settings)]


class Handlers:
    """Event callbacks: turn photo-path results into component values and user messages.
    Every callback catches its errors: the user sees a sentence, never a traceback."""

    def __init__(self, app: AppState):
        self.app = app
        self.files = AppFiles(example_files())
        self.layout = knob_layout()

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
            up = load_upload(path, name=Path(path).stem)
        except Exception as exc:  # noqa: BLE001 -- unknown decoder failures included
            if not isinstance(exc, ImageError):
                log.exception("loading %s failed", path)
                exc = f"Could not read this image ({type(exc).__name__}: {exc})."
            self.files.discard_upload(path)  # unusable: no reason to keep it
            gr.Warning(str(exc))
            return self._cleared(None, f"⚠️ {exc}")
        h, w = up.rgb.shape[:2]
        lines = [f"Loaded a {w}x{h} photo. Press **Restore**."] + [f"- {n}" for n in up.notices]
        return self._cleared(up, "\n".join(lines))

    def on_restore(self, up, aligned, choice, *values, progress=gr.Progress()):
        if up is None:
            msg = ("No photo loaded: upload one or pick an example (if you just did, "
                   "wait a second for it to load and press Restore again).")
            gr.Warning(msg)
            return self._cleared(None, msg)
        return self._run(up, bool(aligned), choice, values, progress)

    def on_tune(self, up, aligned, choice, *values, progress=gr.Progress()):
        """A setting moved: rerun live, but only once the user has pressed Restore."""
        if up is None or not up.restored:
            return tuple(gr.skip() for _ in range(6))
        return self._run(up, bool(aligned), choice, values, progress)

    def _settings(self, name: str, values) -> object:
        mine = [v for (m, _), v in zip(self.layout, values) if m == name]
        return settings_from_ui(methods.get(name), mine)

    def _run(self, up, aligned: bool, choice: str, values, progress):
        if choice in self.app.unavailable:
            msg = f"{methods.get(choice).title} is not available: {self.app.unavailable[choice]}"
            gr.Warning(msg)
            return up, f"⚠️ {msg}", gr.skip(), gr.skip(), gr.skip(), gr.skip()
        names = self.app.chosen(choice)
        try:
            results = []
            for k, name in enumerate(names):
                def report(f, m, _k=k, _n=name):
                    progress((_k + f) / len(names), desc=f"{methods.get(_n).title}: {m}")
                results.append(self.app.restorers[name].restore(up.rgb, self._settings(name, values), aligned,
                                                               key=up.key, progress=report))
        except Exception as exc:  # noqa: BLE001
            log.exception("restore failed")
            gr.Warning(f"Restoration failed: {exc}")
            return up, f"⚠️ Restoration failed ({type(exc).__name__}: {exc}).", gr.skip(), gr.skip(), \
                gr.skip(), gr.skip()
        finally:
            path, up.path = up.path, None
            self.files.discard_upload(path)
        up.restored = True
        first = results[0]
        status = "\n\n".join(status_markdown(r, methods.get(r.method), self.app.models[r.method].label)
                             for r in results)
        if up.notices:
            status += "\n" + "\n".join(f"- {n}" for n in up.notices)
        if not first.faces:
            gr.Warning(first.notices[-1] if first.notices else "No face found.")
            return up, status, None, gr.update(value=None, visible=False), [], ""
        before, after = self.files.result_pair(up, first.image, first.method)
        gallery = [item for r in results for item in gallery_items(r, methods.get(r.method))]
        titles = {n: methods.get(n).title for n in names}
        return (up, status, (before, after), gr.update(value=after, visible=True), gallery,
                identity_markdown(results, titles))


INTRO = """# Face restoration you can watch and steer
Upload a photo: the faces in it are found, each one is restored by a model trained on clean
faces, and pasted back. Every stage is shown and every stage has a knob.
**DiffBFR** restores each face with two conditional diffusion models (64 px, then 128 px),
each starting from the *noised* low-quality face instead of pure noise, then polishes texture
with a model of clean faces. Move a setting after restoring: only the stages it affects run again."""

CSS = """
#stages .grid-wrap { min-height: 0 !important; height: auto !important; max-height: 720px; }
#stages .caption-label { font-size: 0.75rem; }
#status { min-height: 2.5rem; }
footer { display: none !important; }
"""


def method_choices(app: AppState) -> list[tuple[str, str]]:
    out = [(m.title + ("" if n in app.restorers else " (not yet trained)"), n) for n, m in methods.METHODS.items()]
    if len(app.restorers) > 1:
        out.append(("Both, side by side", BOTH))
    return out


def knob_slider(name: str, k: S.Knob) -> gr.Slider:
    return gr.Slider(k.lo, k.ui_hi, k.default, step=k.step, label=k.label, info=k.help,
                     elem_id=f"{name}-{k.name}")


def build_demo(app: AppState) -> gr.Blocks:
    h = Handlers(app)
    notices = [weights_notice(m) for m in app.models.values()]
    with gr.Blocks(title="diffbfr face restoration", delete_cache=(900, 1800)) as demo:
        state = gr.State(None)
        gr.Markdown(INTRO)
        gr.Markdown("\n\n".join(n for n in notices if n), elem_id="weights_notice")
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                image_in = PhotoInput(label="Photo", type="filepath", image_mode=None, height=340,
                                      sources=["upload", "clipboard"], elem_id="photo")
                aligned = gr.Checkbox(False, label="Input is an aligned face",
                                      info="Skip face detection and treat the whole image as one "
                                           "face crop (FFHQ-style 512 px square or a tight 128-200 px crop).")
                choice = gr.Radio(method_choices(app), value=next(iter(app.restorers)), label="Method",
                                  elem_id="method", visible=len(methods.METHODS) > 1)
                restore_btn = gr.Button("Restore", variant="primary", elem_id="restore")
                sliders = []
                for name, method in methods.METHODS.items():
                    ks = S.knobs(method.settings)
                    with gr.Accordion(f"{method.title} settings", open=name == next(iter(app.restorers))):
                        sliders += [knob_slider(name, k) for k in ks if not k.advanced]
                        with gr.Accordion("Advanced", open=False):
                            sliders += [knob_slider(name, k) for k in ks if k.advanced]
                order = {(n, k.name): i for i, (n, k) in enumerate(h.layout)}
                sliders.sort(key=lambda sl: order[tuple(sl.elem_id.split("-", 1))])
                if example_files():
                    gr.Examples(example_files(), inputs=[image_in], label="Examples (public domain)")
                    gr.Markdown("The blurry close-up is an already aligned face: tick "
                                "*Input is an aligned face* for it.", elem_id="examples_hint")
            with gr.Column(scale=3, min_width=360):
                status = gr.Markdown(elem_id="status")
                result = gr.ImageSlider(label="Before / after (drag the handle)", type="filepath",
                                        format="png", max_height=560, elem_id="result")
                download = gr.DownloadButton("Download restored photo (PNG)", visible=False,
                                             elem_id="download")
                gallery = gr.Gallery(label="Per face: the input, then every stage", columns=4,
                                     format="png", object_fit="contain",
                                     allow_preview=True, elem_id="stages")
                identity = gr.Markdown(elem_id="identity")

        outputs = [state, status, result, download, gallery, identity]
        inputs = [state, aligned, choice, *sliders]
        image_in.change(h.on_image, [image_in], outputs, concurrency_id="load",
                        concurrency_limit=4, show_progress="hidden")
        restore_btn.click(h.on_restore, inputs, outputs, concurrency_id="gpu")
        # live tuning: release (not change) so dragging doesn't queue a run per pixel, and
        # always_last so a burst of moves collapses into one rerun.
        for sl in sliders:
            sl.release(h.on_tune, inputs, outputs, concurrency_id="gpu",
                       trigger_mode="always_last", show_progress="minimal")
        for control in (aligned, choice):
            control.input(h.on_tune, inputs, outputs, concurrency_id="gpu",
                          trigger_mode="always_last", show_progress="minimal")
    return demo


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="diffbfr face restoration web demo")
    p.add_argument("--host", default=None,
                   help="address to listen on (default 127.0.0.1, or $GRADIO_SERVER_NAME; 0.0.0.0 = all)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860 or $GRADIO_SERVER_PORT)")
    p.add_argument("--share", action="store_true", help="ask Gradio for a temporary public link")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--weights", default=str(ROOT / "weights"),
                   help="weights root with one folder per method (default: weights/)")
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
