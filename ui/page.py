"""The page: its texts, its components and their wiring to the callbacks (ui/handlers.py).

build_demo lays the page out top to bottom (_photo_column, _result_column, _advanced,
_examples), then wires the events (_wire_photo, _wire_tuning, _wire_method) and the one-call
API (_api: its hidden inputs made from RestoreAPI.restore's signature). Components are handed
around by name, the names ui/outputs.py and the handlers use.
"""
from __future__ import annotations

import inspect

import gradio as gr

from diffbfr import methods

from .api_errors import PlainErrorBlocks
from .files import is_aligned_example
from .handlers import Handlers
from .outputs import LOAD, PHOTO
from .restore_api import RestoreAPI
from .state import BOTH, AppState, example_files, example_rows
from .views import auto_words, weights_notice
from .warm_up import start_warm_up

SCALE_CHOICES = [("Auto", "auto"), ("Same size", "1"), ("2x", "2"), ("4x", "4")]
# what a restore reads after the session, in this order (handlers.Controls), then every slider
CONTROLS = ("photo", "aligned", "method", "scale", "thorough", "auto")
PRIVATE = dict(api_visibility="private")   # the page's own events: not on the API page


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
           "no real person). Photos you upload are deleted once restored. What the page shows you (the "
           "restored photo, its before image, the faces and stages) stays on the server only while you can "
           "still click it: a rerun deletes the previous result, and the rest is deleted after at most "
           "45 minutes, or when the app stops.")

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
/* the columns stack below ~700 px (two of min_width 300 and the gaps): examples after the result */
@media (max-width: 699px) { #examples_side { display: none !important; } }
@media (min-width: 700px) { #examples_below { display: none !important; } }
footer { display: none !important; }
"""


def method_choices(app: AppState) -> list[tuple[str, str]]:
    out = [(m.title + ("" if n in app.restorers else " (not yet trained)"), n) for n, m in methods.METHODS.items()]
    if len(app.restorers) > 1:
        out.append(("Both, side by side", BOTH))
    return out


def build_demo(app: AppState, warm_examples: bool = False) -> gr.Blocks:
    """The page. warm_examples: restore the examples in the background (ui/warm_up.py)."""
    h = Handlers(app, example_files())
    api = RestoreAPI(app, h.files, h.in_flight)
    c: dict[str, gr.components.Component] = {}   # the page's components by name
    # PlainErrorBlocks: every failure, Gradio's own checks included, reaches people in words
    with PlainErrorBlocks(title="diffbfr face restoration", delete_cache=(900, 1800)) as demo:
        c["state"] = gr.State(None)
        _header(app)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=300):
                examples_box = _photo_column(c, app)
            with gr.Column(scale=3, min_width=300):
                _result_column(c, app)
        # the examples twice, one shown at a time (CSS): under the photo beside the result on a
        # wide screen; on a phone, where the columns stack, after the result, not between
        # Restore and it (9 examples pushed the result a screen down)
        below = gr.Column(elem_id="examples_below")
        sliders = _advanced(c, h)
        examples = []
        for box in (examples_box, below):
            with box:
                examples.append(_examples(c))
        _wire_photo(c, h, sliders, examples)
        _wire_tuning(c, h, sliders)
        _wire_method(c, h, sliders)
        _api(api)
    if warm_examples:
        start_warm_up(h, example_rows())
    return demo


# ---------------------------------------------------------------- the layout
def _header(app: AppState) -> None:
    gr.Markdown(INTRO)
    with gr.Accordion("About / how it works", open=False, elem_id="about"):   # the page opens on the photo
        gr.Markdown(ABOUT)


def _photo_column(c: dict, app: AppState) -> gr.Column:
    """The photo, the method, Restore, the plain-words sliders and Auto; returns the (empty)
    column the examples go in once the photo box they fill exists."""
    first = next(iter(app.restorers))
    c["photo"] = PhotoInput(label="Photo", type="filepath", image_mode=None, height=300,
                            sources=["upload", "clipboard"], elem_id="photo")
    c["method"] = gr.Radio(method_choices(app), value=first, label="Method", elem_id="method",
                           visible=len(methods.METHODS) > 1)
    # right under the photo: at 1280x800 the photo and Restore are on screen together
    c["restore"] = gr.Button("Restore", variant="primary", elem_id="restore")
    for name, method in methods.METHODS.items():
        if method.simple is not None:
            c[f"{name}-simple"] = gr.Slider(0, 100, method.simple.default, step=1,
                                            label=f"{method.simple.label} ({method.title})",
                                            info=method.simple.help, elem_id=f"{name}-simple",
                                            visible=name == first)
    with_auto = [n for n, r in app.restorers.items() if r.auto is not None]
    words = auto_words(methods.get(with_auto[0] if with_auto else first))
    c["auto"] = gr.Checkbox(bool(with_auto), label=words["label"], info=words["info"],
                            visible=app.restorers[first].auto is not None, elem_id="auto")
    return gr.Column(elem_id="examples_side")


def _result_column(c: dict, app: AppState) -> None:
    """What the loaded weights can and cannot do and the licence, status, before/after, download,
    stages, identity (and the stages' words and charts), the face picker and preview, the
    per-face downloads and the uncertainty map."""
    # above the result, not above both columns: with two methods' warnings the photo and Restore
    # would be pushed below the fold (1280x800, tests/test_browser.py)
    notices = [weights_notice(m) for m in app.models.values()]
    gr.Markdown("\n\n".join([n for n in notices if n] + [LICENCE]), elem_id="weights_notice")
    c["status"] = gr.Markdown(elem_id="status")
    c["result"] = gr.ImageSlider(label="Before / after (drag the handle)", type="filepath",
                                 format="png", max_height=560, elem_id="result")
    c["download"] = gr.DownloadButton("Download restored photo (PNG)", visible=False, elem_id="download")
    c["gallery"] = gr.Gallery(label="Per face: the input, then every stage", columns=4,
                              format="png", object_fit="contain", allow_preview=True, elem_id="stages")
    c["identity"] = gr.Markdown(elem_id="identity")
    # beside the words under the identity table: a stage's chart (Stage.plot), hidden until one ran
    # (its label is the caption of the charts drawn, set with them: no method is named here)
    c["plot"] = gr.Image(label="Per-stage charts", interactive=False, visible=False,
                         format="png", elem_id="stage_plot")
    c["pick"] = gr.CheckboxGroup([], label="Faces to restore (untick to leave a face as it is)",
                                 visible=False, elem_id="pick")
    c["preview"] = gr.Image(label="Faces found", interactive=False, height=260, elem_id="faces_found",
                            format="jpeg")
    c["face_files"] = gr.File(label="Per-face downloads", file_count="multiple", visible=False,
                              elem_id="face_files")
    c["guess_btn"] = gr.Button("Where is it guessing? (4 samples per face, about 1.3x a restore)",
                               elem_id="guess")
    c["guess"] = gr.Gallery(label="Where the model is guessing (bright = samples disagree)", columns=4,
                            format="png", object_fit="contain", elem_id="guessing")
    c["guess_text"] = gr.Markdown(elem_id="guessing_text")


def _advanced(c: dict, h: Handlers) -> list[gr.Slider]:
    """Advanced settings: aligned, output size, thorough, and every method's sliders (returned,
    in h.layout order: the order the handlers read their values in)."""
    with gr.Accordion("Advanced settings", open=False, elem_id="advanced"):
        c["aligned"] = gr.Checkbox(False, label="Input is an aligned face",
                                   info="Skip face detection and treat the whole image as one face crop "
                                        "(FFHQ-style 512 px square or a tight 128-200 px crop).")
        c["scale"] = gr.Radio(SCALE_CHOICES, value="auto", label="Output size",
                              info="Small photos: make the output larger so a small face keeps the "
                                   "restoration's 128 px detail (the rest is upscaled classically).")
        c["thorough"] = gr.Checkbox(False, label="Look harder for faces (slower)",
                                    info="Run every face detector pass on every photo: finds more small and "
                                         "turned faces in group photos, about 1.5 s more per photo.")
        sliders, heading = [], None
        for name, k in h.layout:
            runs = name in h.app.restorers   # a method that cannot run shows no controls (kept
            if name != heading and runs:     # hidden: the handlers read every slider by position)
                heading = name
                gr.Markdown(f"**{methods.get(name).title}** — {methods.get(name).description}")
            sliders.append(gr.Slider(*h.slider_range(name, k), step=k.step, label=k.label, info=k.help,
                                     elem_id=f"{name}-{k.name}", visible=runs))
    return sliders


def _examples(c: dict) -> gr.Examples | None:
    if not example_files():
        return None
    return gr.Examples(example_files(), inputs=[c["photo"]], examples_per_page=12,
                       label="Examples (public domain or made here): click one to restore it")


# ---------------------------------------------------------------- the events
def _inputs(c: dict, sliders: list) -> list:
    """A restore's inputs: the session, then handlers.Controls."""
    return [c["state"], *(c[n] for n in CONTROLS), *sliders]


def _tune(c: dict) -> dict:
    """Live tuning: release (not change) so dragging doesn't queue a run per pixel, and
    always_last so a burst of moves collapses into one rerun."""
    return dict(concurrency_id="gpu", trigger_mode="always_last", show_progress="minimal",
                show_progress_on=[c["status"]], **PRIVATE)


def _wire_photo(c: dict, h: Handlers, sliders: list, examples) -> None:
    """Upload, Restore, a picked example, and the uncertainty map."""
    inputs, outputs = _inputs(c, sliders), [c[n] for n in PHOTO]
    c["photo"].change(h.on_image, [c["photo"], c["state"]], [c[n] for n in LOAD], concurrency_id="load",
                      concurrency_limit=2, show_progress="hidden", **PRIVATE)
    for ex in examples:   # a picked example is restored at once (warmed: from the cache)
        if ex is None:
            continue
        ex.load_input_event.then(is_aligned_example, [c["photo"]], [c["aligned"]], queue=False, **PRIVATE) \
            .then(h.on_restore, inputs, outputs, concurrency_id="gpu", show_progress_on=[c["status"]], **PRIVATE)
    c["restore"].click(h.on_restore, inputs, outputs, concurrency_id="gpu", show_progress_on=[c["status"]],
                       **PRIVATE)


def _wire_tuning(c: dict, h: Handlers, sliders: list) -> None:
    """Every setting reruns live what it affects; moving a setting Auto chooses switches Auto off."""
    inputs, outputs, tune = _inputs(c, sliders), [c[n] for n in PHOTO], _tune(c)
    manual = {f for r in h.app.restorers.values() if r.auto is not None for f in r.auto.calibration.fields}
    for sl, (_, k) in zip(sliders, h.layout):
        if k.name in manual:  # moving a slider Auto would set means "I choose": Auto off
            sl.release(lambda: gr.update(value=False), None, [c["auto"]], **PRIVATE) \
                .then(h.on_tune, inputs, outputs, **tune)
        else:
            sl.release(h.on_tune, inputs, outputs, **tune)
    c["guess_btn"].click(h.on_uncertainty, [c["state"]], [c["guess"], c["guess_text"]], concurrency_id="gpu",
                         show_progress_on=[c["guess_text"]], **PRIVATE)
    for name in ("aligned", "scale", "thorough", "auto"):
        c[name].input(h.on_tune, inputs, outputs, **tune)


def _wire_method(c: dict, h: Handlers, sliders: list) -> None:
    """Another method: only its controls, and the other method's result off the page first;
    the face picker; the plain-words sliders."""
    inputs, outputs, tune = _inputs(c, sliders), [c[n] for n in PHOTO], _tune(c)
    c["method"].input(h.on_method, [c["state"], c["method"]], [c[n] for n in h.method_outputs], **PRIVATE) \
        .then(h.on_tune, inputs, outputs, **tune)
    c["pick"].input(h.on_pick, [c["state"], c["pick"], *inputs[1:]], outputs, **tune)
    for name in h.simple_names:
        c[f"{name}-simple"].release(lambda v, _n=name: [gr.update(value=False)] + h.on_simple(_n, v),
                                    [c[f"{name}-simple"]], [c["auto"], *sliders], **PRIVATE) \
            .then(h.on_tune, inputs, outputs, **tune)


def api_inputs(fn) -> list[gr.components.Component]:
    """An endpoint's hidden input components, one per parameter of `fn` (its one declaration),
    each holding the parameter's default: a client's value for an argument it leaves out. The
    parameter without a default is the photo; a bool is a checkbox; any other a text box."""
    out = []
    for p in inspect.signature(fn).parameters.values():
        if p.default is inspect.Parameter.empty:
            out.append(PhotoInput(type="filepath", image_mode=None))
        elif isinstance(p.default, bool):
            out.append(gr.Checkbox(p.default))
        else:
            out.append(gr.Textbox(value=p.default))
    return out


def _api(api: RestoreAPI) -> None:
    """The one-call API: photo + method + settings (JSON) -> restored photo, stages, JSON record;
    its defaults are the page's (README, "One-call API")."""
    with gr.Row(visible=False):
        api_in = api_inputs(api.restore)   # the page's defaults, as RestoreAPI.restore declares them
        api_out = [gr.Image(type="filepath", format="png"), gr.Gallery(format="png"), gr.JSON()]
        # validator: the cheap refusals are answered when the call arrives, not after its turn
        gr.Button().click(api.restore, api_in, api_out, api_name="restore", concurrency_id="gpu",
                          validator=api.check)
