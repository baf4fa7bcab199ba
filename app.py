"""diffbfr web demo (Gradio): a thin UI over the photo path (diffbfr/photo.py).

    python app.py                 # http://127.0.0.1:7860, every method found in weights/
    python app.py --share         # also ask Gradio for a temporary public link
    python app.py --tiny          # random tiny networks: try the UI without weights

Runs unchanged as a Hugging Face Space (ZeroGPU via `spaces.GPU`). This file is the layout
and its wiring; the callbacks are app_handlers.py, what they show app_views.py, the files
they write app_files.py. One call restores a photo through the API: api_name="restore".
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
import threading
from pathlib import Path

import gradio as gr

from app_files import is_aligned_example
from app_handlers import BOTH, AppState, Handlers, stage_runner_for
from app_views import weights_notice
from diffbfr import methods
from diffbfr.auto import Auto

try:  # ZeroGPU on Hugging Face Spaces; a no-op everywhere else
    import spaces
    gpu = spaces.GPU
except ImportError:
    def gpu(fn=None, **_kw):
        return fn if fn is not None else (lambda f: f)
ON_ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
log = logging.getLogger("diffbfr.app")
_MODELS: dict[str, methods.Model] = {}  # module global: a ZeroGPU worker reaches the models through it
SCALE_CHOICES = [("Auto", "auto"), ("Same size", "1"), ("2x", "2"), ("4x", "4")]


def create_app(weights: str | Path = ROOT / "weights", device: str | None = None, tiny: bool = False,
               identity: bool = True) -> AppState:
    models, unavailable, autos = {}, {}, {}
    for name in methods.METHODS:
        try:  # a method with a calibration gets automatic start steps
            autos[name] = Auto.for_method(weights, name, random_tiny=tiny)
        except (FileNotFoundError, ValueError):
            pass
        try:
            models[name] = methods.model_for(name, weights, random_tiny=tiny, device=device)
        except (FileNotFoundError, ValueError) as exc:
            # the page and the API say it in words; the details (server paths) go to the log
            log.info("%s is not available: %s", name, exc)
            unavailable[name] = ("it is not trained yet" if isinstance(exc, FileNotFoundError)
                                 else "its weights could not be loaded")
    if not models:  # nothing trained at all: keep the app usable, and say so everywhere
        log.warning("no weights found under %s; falling back to random tiny networks", weights)
        first = next(iter(methods.METHODS))
        models[first] = methods.tiny(first, seed=0, device=device or "cpu")
        models[first].label = "random tiny networks, because no weights were found"   # where: in the log
        unavailable.pop(first, None)
    _MODELS.clear()
    _MODELS.update(models)
    return AppState(models, unavailable, identity=identity, runner=stage_runner_for(_MODELS, gpu, ON_ZERO_GPU),
                    autos=autos)


def example_files() -> list[str]:
    return sorted(str(p) for p in EXAMPLES.iterdir()
                  if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"}) if EXAMPLES.is_dir() else []


def example_rows() -> list[tuple[str, bool]]:
    """(path, is an aligned face crop) of every example."""
    return [(p, is_aligned_example(p)) for p in example_files()]


class PhotoInput(gr.Image):
    """gr.Image that hands the upload's path to diffbfr.imageio unopened. Plain gr.Image opens
    it with Pillow first, so a non-image, truncated or decompression-bomb file would fail
    inside Gradio with Pillow's wording instead of reaching our loader and its message."""

    is_template = True  # rendered by the frontend as the base class, a plain Image

    def preprocess(self, payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)  # Gradio already checked that it lies in its upload folder
        return super().preprocess(payload)


INTRO = """# Face restoration you can watch and steer
Upload a photo and press **Restore**: its faces are repaired and pasted back, and you see and steer every step."""

ABOUT = """The faces in your photo are found, each one is repaired by a model that has learned
what clean faces look like, and pasted back into your photo. You see every step, and you can
steer it: slide toward **fidelity** to stay close to your photo, toward **detail** to let the
model invent more. The methods, for the curious: **DiffBFR** repairs a face with two diffusion
models (at 64 px, then 128 px) that start from your face with some noise added, not from pure
noise, then polishes skin and hair texture. **Panini-Net** redraws the face with a generator
of clean faces (a GAN prior) and blends, feature by feature, what it draws with what your photo
shows, leaning on the prior more where your photo is more damaged."""

LICENCE = ("The models are trained on UTKFace, which is for **non-commercial research only**; so "
           "are their results, and the `composite_*` examples (averages of 36 UTKFace faces each: "
           "no real person). Photos you upload are deleted once restored and are never kept.")

CSS = """
#stages .grid-wrap { min-height: 0 !important; height: auto !important; max-height: 720px; }
/* gallery: the whole face, its label under it instead of over its chin */
#stages .thumbnail-item { aspect-ratio: auto !important; height: auto !important; overflow: visible !important;
  display: flex !important; flex-direction: column; }
#stages .thumbnail-item > img { aspect-ratio: 1 / 1; height: auto !important; }
#stages .caption-label { position: static !important; opacity: 1 !important; max-width: 100% !important;
  border: none !important; background: none !important; white-space: normal !important;
  font-size: 0.75rem; padding: 2px 4px !important; }
#status { min-height: 2.5rem; }
footer { display: none !important; }
"""


def method_choices(app: AppState) -> list[tuple[str, str]]:
    out = [(m.title + ("" if n in app.restorers else " (not yet trained)"), n) for n, m in methods.METHODS.items()]
    if len(app.restorers) > 1:
        out.append(("Both, side by side", BOTH))
    return out


def build_demo(app: AppState, warm_examples: bool = False) -> gr.Blocks:
    """The page. warm_examples: restore the examples in the background (Handlers.warm_examples)."""
    h = Handlers(app, example_files())
    first = next(iter(app.restorers))
    notices = [weights_notice(m) for m in app.models.values()]
    with gr.Blocks(title="diffbfr face restoration", delete_cache=(900, 1800)) as demo:
        state = gr.State(None)
        gr.Markdown(INTRO)
        with gr.Accordion("About / how it works", open=False, elem_id="about"):   # the page opens on the photo
            gr.Markdown(ABOUT)
        gr.Markdown("\n\n".join([n for n in notices if n] + [LICENCE]), elem_id="weights_notice")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=300):
                image_in = PhotoInput(label="Photo", type="filepath", image_mode=None, height=300,
                                      sources=["upload", "clipboard"], elem_id="photo")
                choice = gr.Radio(method_choices(app), value=first, label="Method", elem_id="method",
                                  visible=len(methods.METHODS) > 1)
                # right under the photo: at 1280x800 the photo and Restore are on screen together
                restore_btn = gr.Button("Restore", variant="primary", elem_id="restore")
                simple = {}
                for name, method in methods.METHODS.items():
                    if method.simple is not None:
                        simple[name] = gr.Slider(0, 100, method.simple.default, step=1,
                                                 label=f"{method.simple.label} ({method.title})",
                                                 info=method.simple.help, elem_id=f"{name}-simple",
                                                 visible=name == first)
                has_auto = any(r.auto is not None for r in app.restorers.values())
                auto = gr.Checkbox(has_auto, label="Auto: choose the start steps from how damaged each face looks",
                                   info="Each face gets settings calibrated for its estimated degradation "
                                        "(shown under the result). Moving a start-step slider switches it off.",
                                   visible=app.restorers[first].auto is not None, elem_id="auto")
                examples_box = gr.Column()
            with gr.Column(scale=3, min_width=300):
                status = gr.Markdown(elem_id="status")
                result = gr.ImageSlider(label="Before / after (drag the handle)", type="filepath",
                                        format="png", max_height=560, elem_id="result")
                download = gr.DownloadButton("Download restored photo (PNG)", visible=False,
                                             elem_id="download")
                gallery = gr.Gallery(label="Per face: the input, then every stage", columns=4,
                                     format="png", object_fit="contain", allow_preview=True, elem_id="stages")
                identity = gr.Markdown(elem_id="identity")
                pick = gr.CheckboxGroup([], label="Faces to restore (untick to leave a face as it is)",
                                        visible=False, elem_id="pick")
                preview = gr.Image(label="Faces found", interactive=False, height=260, elem_id="faces_found",
                                   format="jpeg")
                face_files = gr.File(label="Per-face downloads", file_count="multiple", visible=False,
                                     elem_id="face_files")
                guess_btn = gr.Button("Where is it guessing? (4 samples per face, about 2x a restore)",
                                      elem_id="guess")
                guess = gr.Gallery(label="Where the model is guessing (bright = samples disagree)", columns=4,
                                   format="png", object_fit="contain", elem_id="guessing")
                guess_text = gr.Markdown(elem_id="guessing_text")
        with gr.Accordion("Advanced settings", open=False, elem_id="advanced"):
            aligned = gr.Checkbox(False, label="Input is an aligned face",
                                  info="Skip face detection and treat the whole image as one face crop "
                                       "(FFHQ-style 512 px square or a tight 128-200 px crop).")
            scale = gr.Radio(SCALE_CHOICES, value="auto", label="Output size",
                             info="Small photos: make the output larger so a small face keeps the "
                                  "restoration's 128 px detail (the rest is upscaled classically).")
            thorough = gr.Checkbox(False, label="Look harder for faces (slower)",
                                   info="Run every face detector pass on every photo: finds more small and "
                                        "turned faces in group photos, about 1.5 s more per photo.")
            sliders, heading = [], None
            for name, k in h.layout:   # the order the handlers read the slider values in
                if name != heading:
                    heading = name
                    gr.Markdown(f"**{methods.get(name).title}** — {methods.get(name).description}")
                sliders.append(gr.Slider(*h.slider_range(name, k), step=k.step, label=k.label, info=k.help,
                                         elem_id=f"{name}-{k.name}"))
        with examples_box:
            examples = None
            if example_files():
                examples = gr.Examples(example_files(), inputs=[image_in], examples_per_page=12,
                                       label="Examples (public domain or made here): click one to restore it")

        outputs = [state, status, result, download, gallery, identity, face_files, pick, preview]
        inputs = [state, image_in, aligned, choice, scale, thorough, auto, *sliders]
        private = dict(api_visibility="private")
        image_in.change(h.on_image, [image_in, state], outputs[:8] + [image_in], concurrency_id="load",
                        concurrency_limit=2, show_progress="hidden", **private)
        if examples is not None:   # a picked example is restored at once (warmed: from the cache)
            examples.load_input_event.then(is_aligned_example, [image_in], [aligned], queue=False, **private) \
                .then(h.on_restore, inputs, outputs, concurrency_id="gpu", show_progress_on=[status], **private)
        restore_btn.click(h.on_restore, inputs, outputs, concurrency_id="gpu", show_progress_on=[status],
                          **private)
        # live tuning: release (not change) so dragging doesn't queue a run per pixel, and
        # always_last so a burst of moves collapses into one rerun.
        tune = dict(concurrency_id="gpu", trigger_mode="always_last", show_progress="minimal",
                    show_progress_on=[status], **private)
        manual = {f for r in app.restorers.values() if r.auto is not None for f in r.auto.calibration.fields}
        for sl, (_, k) in zip(sliders, h.layout):
            if k.name in manual:  # moving a start-step slider means "I choose": Auto off
                sl.release(lambda: gr.update(value=False), None, [auto], **private) \
                    .then(h.on_tune, inputs, outputs, **tune)
            else:
                sl.release(h.on_tune, inputs, outputs, **tune)
        guess_btn.click(h.on_uncertainty, [state], [guess, guess_text], concurrency_id="gpu",
                        show_progress_on=[guess_text], **private)
        for control in (aligned, scale, thorough, auto):
            control.input(h.on_tune, inputs, outputs, **tune)
        # another method: only its controls, and the other method's result off the page first
        shown = {**{f"{n}-simple": sl for n, sl in simple.items()}, "auto": auto, "status": status,
                 "result": result, "download": download, "gallery": gallery, "identity": identity,
                 "face_files": face_files, "pick": pick, "preview": preview, "guess": guess,
                 "guess_text": guess_text}
        choice.input(h.on_method, [state, choice], [shown[n] for n in h.method_outputs], **private) \
            .then(h.on_tune, inputs, outputs, **tune)
        pick.input(h.on_pick, [state, pick, *inputs[1:]], outputs, **tune)
        for name, sl in simple.items():
            sl.release(lambda v, _n=name: [gr.update(value=False)] + h.on_simple(_n, v), [sl], [auto, *sliders],
                       **private).then(h.on_tune, inputs, outputs, **tune)

        # the one-call API: photo + method + settings (JSON) -> restored photo, stages, JSON
        with gr.Row(visible=False):
            api_in = [PhotoInput(type="filepath", image_mode=None), gr.Textbox(value=first), gr.Checkbox(False),
                      gr.Textbox(value="{}"), gr.Checkbox(True), gr.Textbox(value="auto")]  # auto, scale: as the page
            api_out = [gr.Image(type="filepath", format="png"), gr.Gallery(format="png"), gr.JSON()]
            gr.Button().click(h.api_restore, api_in, api_out, api_name="restore", concurrency_id="gpu")
    if warm_examples:
        threading.Thread(target=h.warm_examples, args=(example_rows(),), daemon=True,
                         name="warm-examples").start()
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
    p.add_argument("--no-warm", action="store_true",
                   help="do not restore the examples in the background after start")
    return p.parse_args(argv)


def _stop(_signum, _frame):
    # SIGTERM (process managers, our tests) ends like Ctrl-C: Gradio closes its server and
    # the atexit clean-up of our temporary files runs, which a plain SIGTERM would skip.
    raise KeyboardInterrupt


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _stop)
    args = parse_args(argv)
    # not on ZeroGPU: its GPU is lent per request, and a warm-up has no request to borrow it for
    demo = build_demo(create_app(args.weights, args.device, args.tiny),
                      warm_examples=not (args.no_warm or ON_ZERO_GPU))
    # one restore at a time: the model is not re-entrant-fast, and CPU Spaces have 2 cores
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                show_error=True, css=CSS, theme=gr.themes.Soft())


if __name__ == "__main__":
    main()
